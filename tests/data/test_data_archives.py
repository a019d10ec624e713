"""Finding, downloading and verifying the Omniglot archives (on fake archives)."""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from helpers.omniglot_fakes import FAKE_ALPHABETS
from matchnet.data import omniglot
from matchnet.errors import MatchnetError


def leftovers(folder: Path) -> list[str]:
    """Temporary files left in ``folder`` (there must be none)."""
    return [p.name for p in folder.rglob("*.tmp")]  # matchnet.io.atomic_open's temporary files


def test_fake_archives_verify(fake_root: Path) -> None:
    catalog = omniglot.find_sources(fake_root, download=False)
    assert [s.set_name for s in catalog.sources] == ["background", "evaluation"]
    assert len(catalog.characters) == 21
    assert catalog.sets == ["background"] * 12 + ["evaluation"] * 9
    background = catalog.characters[:12]
    assert background == sorted(background)
    assert {name.split("/")[0] for name in background} == set(FAKE_ALPHABETS["background"])
    assert all(len(m) == 20 for s in catalog.sources for m in s.characters.values())


def test_extracted_folders_work_like_zips(
    tmp_path: Path, fake_root: Path, write_fake: Callable[..., Path]
) -> None:
    folders = tmp_path / "folders"
    for set_name in omniglot.SETS:
        write_fake(folders, set_name, folder=True)
    from_zips = omniglot.load_images(omniglot.find_sources(fake_root, download=False), 16)
    from_folders = omniglot.load_images(omniglot.find_sources(folders, download=False), 16)
    assert from_folders.characters == from_zips.characters
    assert torch.equal(from_folders.images, from_zips.images)
    assert torch.equal(from_folders.labels, from_zips.labels)


def test_missing_archives_without_download(tmp_path: Path) -> None:
    with pytest.raises(MatchnetError) as error:
        omniglot.find_sources(tmp_path, download=False)
    message = str(error.value)
    for expected in ("images_background.zip", "images_evaluation.zip", "data.download", str(tmp_path)):
        assert expected in message


def test_download_failure_names_the_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(omniglot, "DOWNLOAD_URL", (tmp_path / "offline").as_uri() + "/")
    root = tmp_path / "root"
    with pytest.raises(MatchnetError) as error:
        omniglot.find_sources(root, download=True)
    message = str(error.value)
    assert (
        "downloading" in message and "images_background.zip" in message and "images_evaluation.zip" in message
    )
    assert list(root.iterdir()) == []


def serve(tmp_path: Path, write_fake: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Fake archives behind a file:// DOWNLOAD_URL; returns their md5 per set."""
    server = tmp_path / "server"
    md5 = {s: hashlib.md5(write_fake(server, s).read_bytes()).hexdigest() for s in omniglot.SETS}
    monkeypatch.setattr(omniglot, "DOWNLOAD_URL", server.as_uri() + "/")
    return md5


def test_download(
    tmp_path: Path, write_fake: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, fake_counts: None
) -> None:
    monkeypatch.setattr(omniglot, "ARCHIVE_MD5", serve(tmp_path, write_fake, monkeypatch))
    root = tmp_path / "root"
    catalog = omniglot.find_sources(root, download=True)
    assert sorted(p.name for p in root.iterdir()) == ["images_background.zip", "images_evaluation.zip"]
    assert len(catalog.characters) == 21


def test_download_with_wrong_md5_is_discarded(
    tmp_path: Path, write_fake: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    serve(tmp_path, write_fake, monkeypatch)
    root = tmp_path / "root"
    with pytest.raises(MatchnetError, match="md5"):
        omniglot.find_sources(root, download=True)
    assert list(root.iterdir()) == []


def test_truncated_archive_is_named(fake_root: Path) -> None:
    archive = fake_root / "images_background.zip"
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(MatchnetError, match="images_background.zip") as error:
        omniglot.find_sources(fake_root, download=False)
    assert "truncated" in str(error.value)


def test_empty_archive_is_named(fake_root: Path) -> None:
    (fake_root / "images_evaluation.zip").write_bytes(b"")
    with pytest.raises(MatchnetError, match="images_evaluation.zip"):
        omniglot.find_sources(fake_root, download=False)


def test_an_archive_is_verified_again_only_once_it_changed(
    fake_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    read: list[str] = []
    names_and_stamp = omniglot._Reader.names_and_stamp
    monkeypatch.setattr(
        omniglot._Reader, "names_and_stamp", lambda self: read.append(self.path.name) or names_and_stamp(self)
    )
    first = omniglot.find_sources(fake_root, download=False)
    assert omniglot.find_sources(fake_root, download=False) == first  # a second run: no member list read
    assert read == ["images_background.zip", "images_evaluation.zip"]
    archive = fake_root / "images_evaluation.zip"
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])  # replaced by a damaged file
    with pytest.raises(MatchnetError, match="images_evaluation.zip"):
        omniglot.find_sources(fake_root, download=False)


@pytest.mark.parametrize("change", ["drop_drawing", "wrong_set", "extra_character"])
def test_foreign_archive_is_named(
    tmp_path: Path,
    write_fake: Callable[..., Path],
    fake_sets: dict[str, dict[str, bytes]],
    fake_counts: None,
    change: str,
) -> None:
    members = dict(fake_sets["background"])
    if change == "drop_drawing":
        members.pop(next(iter(members)))
    elif change == "wrong_set":
        members = fake_sets["evaluation"]
    else:
        members["images_background/Latin/character09/0999_01.png"] = next(iter(members.values()))
    write_fake(tmp_path, "background", members=members)
    write_fake(tmp_path, "evaluation")
    with pytest.raises(MatchnetError) as error:
        omniglot.find_sources(tmp_path, download=False)
    message = str(error.value)
    assert str(tmp_path / "images_background.zip") in message and "not the Omniglot background set" in message


def test_corrupt_png_is_named(
    tmp_path: Path, write_fake: Callable[..., Path], fake_sets: dict[str, dict[str, bytes]], fake_counts: None
) -> None:
    members = dict(fake_sets["evaluation"])
    broken = sorted(members)[7]
    members[broken] = b"\x89PNG\r\n\x1a\n this is not an image"
    write_fake(tmp_path, "background")
    write_fake(tmp_path, "evaluation", members=members)
    catalog = omniglot.find_sources(tmp_path, download=False)
    with pytest.raises(MatchnetError, match=broken):
        omniglot.load_images(catalog, 28)
    assert not (tmp_path / "cache" / "omniglot-28.pt").exists()
    assert leftovers(tmp_path) == []


def test_damaged_zip_member_is_named(fake_root: Path) -> None:
    archive = fake_root / "images_background.zip"
    with zipfile.ZipFile(archive) as z:
        info = z.infolist()[5]
    data = bytearray(archive.read_bytes())
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data[start + info.compress_size // 2] ^= 0xFF
    archive.write_bytes(bytes(data))
    catalog = omniglot.find_sources(fake_root, download=False)
    with pytest.raises(MatchnetError, match=info.filename):
        omniglot.load_images(catalog, 28)
