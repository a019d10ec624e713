"""Omniglot evaluation alphabets for the demo: one drawing per character, straight from the archive."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

from PIL import Image

from matchnet.data.omniglot import Source, find_sources
from matchnet.errors import MatchnetError


class Alphabets:
    """The evaluation alphabets under an Omniglot data root (never downloads).

    ``available`` is false, and ``problem`` says why, when the archives are missing or not Omniglot.
    """

    def __init__(self, root: str | os.PathLike[str] | None) -> None:
        self.root = Path(root) if root else None
        self._source: Source | None = None
        self.problem = ""
        if self.root is None:
            self.problem = "no Omniglot data root was given (data_root=...)"
            return
        try:
            catalog = find_sources(self.root, download=False)
        except MatchnetError as err:
            self.problem = str(err)
            return
        self._source = next(source for source in catalog.sources if source.set_name == "evaluation")

    @property
    def available(self) -> bool:
        return self._source is not None

    @property
    def names(self) -> list[str]:
        """The evaluation alphabets, sorted."""
        if self._source is None:
            return []
        return sorted({name.split("/")[0] for name in self._source.characters})

    def characters(self, alphabet: str) -> list[str]:
        """``Alphabet/characterNN`` names of one alphabet, sorted."""
        if self._source is None:
            raise MatchnetError(f"No Omniglot data: {self.problem}")
        found = [name for name in self._source.characters if name.split("/")[0] == alphabet]
        if not found:
            raise MatchnetError(
                f"{alphabet!r} is not an Omniglot evaluation alphabet; choose one of: "
                f"{', '.join(self.names)}."
            )
        return found

    def drawings(self, alphabet: str, drawing: int = 0) -> list[tuple[str, Image.Image]]:
        """``(label, image)`` for every character of ``alphabet``: its ``drawing``-th drawing (sorted order).

        Labels are ``'<alphabet> <NN>'`` with NN the character number.
        """
        characters = self.characters(alphabet)
        assert self._source is not None
        source = self._source
        images = []
        with _Members(source.path) as members:
            for name in characters:
                files = source.characters[name]
                if not 0 <= drawing < len(files):
                    raise MatchnetError(
                        f"drawing={drawing} is out of range; each character has {len(files)} drawings "
                        f"(0..{len(files) - 1})."
                    )
                with Image.open(io.BytesIO(members.read(files[drawing]))) as image:
                    image.load()
                    images.append((f"{alphabet} {name.split('/')[1].removeprefix('character')}", image))
        return images


class _Members:
    """Member bytes of an Omniglot zip or of its extracted folder (members relative to its parent)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._zip = zipfile.ZipFile(path) if path.is_file() else None

    def __enter__(self) -> _Members:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._zip is not None:
            self._zip.close()

    def read(self, member: str) -> bytes:
        try:
            if self._zip is not None:
                return self._zip.read(member)
            return (self.path.parent / member).read_bytes()
        except (OSError, zipfile.BadZipFile, KeyError) as err:
            raise MatchnetError(
                f"Cannot read {member} from {self.path} ({type(err).__name__}: {err}); the archive is "
                "damaged. Replace it with the official one."
            ) from err
