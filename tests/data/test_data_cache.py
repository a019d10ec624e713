"""The preprocessed image cache: contents, reuse, rebuilds and atomic writes (on fake archives)."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from matchnet.data import omniglot
from matchnet.errors import MatchnetError


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Records the image size of every cache build."""
    calls: list[int] = []
    build = omniglot._build

    def spy(catalog: omniglot.Catalog, image_size: int) -> dict[str, object]:
        calls.append(image_size)
        return build(catalog, image_size)

    monkeypatch.setattr(omniglot, "_build", spy)
    return calls


def load(root: Path, size: int = 28) -> omniglot.OmniglotImages:
    return omniglot.load_images(omniglot.find_sources(root, download=False), size)


def test_cache_contents(fake_root: Path) -> None:
    data = load(fake_root)
    assert data.images.shape == (420, 1, 28, 28) and data.images.dtype == torch.uint8
    assert data.labels.dtype == torch.int64 and data.labels.tolist() == [i // 20 for i in range(420)]
    assert data.characters[0] == "Armenian/character01" and data.characters[-1] == "Tengwar/character03"
    assert data.sets == ["background"] * 12 + ["evaluation"] * 9
    assert data.alphabets == [name.split("/")[0] for name in data.characters]
    # Ink bright on a dark background, exactly the Lanczos-resized inverted PNG.
    with zipfile.ZipFile(fake_root / "images_background.zip") as archive:
        member = sorted(n for n in archive.namelist() if n.endswith(".png"))[0]
        png = Image.open(io.BytesIO(archive.read(member))).convert("L")
    expected = 255 - np.asarray(png)
    expected = np.asarray(Image.fromarray(expected).resize((28, 28), Image.Resampling.LANCZOS))
    assert torch.equal(data.images[0, 0], torch.from_numpy(expected.copy()))
    assert data.images[:, :, 0, :].max() == 0 and data.images.max() == 255


def test_cache_is_reused(fake_root: Path, builds: list[int]) -> None:
    first = load(fake_root)
    second = load(fake_root)
    assert builds == [28]
    assert torch.equal(first.images, second.images) and first.characters == second.characters
    assert sorted(p.name for p in (fake_root / "cache").iterdir()) == ["omniglot-28.pt"]


def test_rebuild_on_size_change(fake_root: Path, builds: list[int]) -> None:
    load(fake_root, 28)
    assert load(fake_root, 20).images.shape[-1] == 20
    # A file with another size under this size's name is rebuilt too.
    os.replace(fake_root / "cache" / "omniglot-20.pt", fake_root / "cache" / "omniglot-28.pt")
    assert load(fake_root, 28).images.shape[-1] == 28
    assert builds == [28, 20, 28]


def test_rebuild_on_source_change(fake_root: Path, builds: list[int]) -> None:
    load(fake_root)
    archive = fake_root / "images_evaluation.zip"
    stat = archive.stat()
    os.utime(archive, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    load(fake_root)
    assert builds == [28, 28]


@pytest.mark.parametrize("content", [b"", b"not a torch file", None])
def test_rebuild_on_corrupt_cache(fake_root: Path, builds: list[int], content: bytes | None) -> None:
    path = omniglot.cache_path(fake_root, 28)
    good = load(fake_root)
    if content is None:  # loads, but the tensor is cut short
        torch.save({**torch.load(path, weights_only=True), "images": good.images[:10]}, path)
    else:
        path.write_bytes(content)
    again = load(fake_root)
    assert builds == [28, 28] and torch.equal(again.images, good.images)
    assert torch.load(path, weights_only=True)["format"] == omniglot.CACHE_FORMAT


def test_rebuild_on_other_format(fake_root: Path, builds: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    load(fake_root)
    monkeypatch.setattr(omniglot, "CACHE_FORMAT", omniglot.CACHE_FORMAT + 1)
    load(fake_root)
    assert builds == [28, 28]


def test_unwritable_cache_is_a_clear_error(fake_root: Path) -> None:
    (fake_root / "cache").write_text("a file where the cache folder should be")
    with pytest.raises(MatchnetError, match="data.root must be writable") as error:
        load(fake_root)
    assert str(fake_root / "cache" / "omniglot-28.pt") in str(error.value)


def test_failed_write_leaves_nothing(fake_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full_disk(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(MatchnetError, match="No space left"):
        load(fake_root)
    assert list((fake_root / "cache").iterdir()) == []
