"""What ``src/predict.py`` runs: classify the images of a query path against a support folder.

    python src/predict.py support_dir=DIR query=IMAGE_OR_DIR [ckpt_path=PATH] [output=FILE.json]

The library API is :class:`matchnet.classifier.OneShotClassifier`; this module adds the folder
layout (:func:`support_from_folder`, :func:`query_files`) and the JSON output (:func:`predictions`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from torch import Tensor

from matchnet.classifier import DEFAULT_CHECKPOINT, OneShotClassifier
from matchnet.errors import MatchnetError
from matchnet.hydra_job import output_dir
from matchnet.io import write_json_atomic

log = logging.getLogger(__name__)

PREDICTIONS_FILE = "predictions.json"


def _entries(folder: Path) -> list[Path]:
    """The sorted, non-hidden entries of ``folder``."""
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def _image_files(folder: Path, what: str) -> list[Path]:
    """The sorted image files of ``folder``; a sub-folder in it is an error."""
    entries = _entries(folder)
    nested = [p for p in entries if p.is_dir()]
    if nested:
        raise MatchnetError(
            f"{what} {folder} contains the folder {nested[0]}; it must hold image files only. Move that "
            "folder out of it."
        )
    return [p for p in entries if p.is_file()]


def support_from_folder(support_dir: str | os.PathLike[str]) -> tuple[list[Path], list[str]]:
    """Image paths and labels of a support folder: one sub-folder per class, named by its label.

    Classes are in sorted folder-name order, the images of a class in sorted file-name order.
    Hidden entries (names starting with ``.``) are skipped.
    """
    root = Path(support_dir)
    if not root.is_dir():
        raise MatchnetError(
            f"support_dir={root} does not exist or is not a folder; pass a folder with one sub-folder per "
            "class (the folder name is the label) holding that class's example images."
        )
    entries = _entries(root)
    loose = [p for p in entries if not p.is_dir()]
    classes = [p for p in entries if p.is_dir()]
    if not classes:
        found = f" (it holds only files, e.g. {loose[0].name})" if loose else " (it is empty)"
        raise MatchnetError(
            f"support_dir={root} has no class folders{found}; put each class's example images in a "
            f"sub-folder named by its label, e.g. {root}/<label>/1.png."
        )
    if loose:
        raise MatchnetError(
            f"support_dir={root} holds the file {loose[0]} outside the class folders; move every example "
            f"image into the sub-folder of its class ({root}/<label>/) and remove other files."
        )
    paths: list[Path] = []
    labels: list[str] = []
    for folder in classes:
        files = _image_files(folder, "The class folder")
        if not files:
            raise MatchnetError(
                f"The class folder {folder} has no images; put at least one example image of class "
                f"'{folder.name}' in it, or remove the folder."
            )
        paths += files
        labels += [folder.name] * len(files)
    return paths, labels


def query_files(query: str | os.PathLike[str]) -> list[Path]:
    """The query images: ``query`` itself when it is a file, else the sorted image files of the folder."""
    path = Path(query)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise MatchnetError(
            f"query={path} does not exist; pass an image file or a folder of images to classify."
        )
    files = _image_files(path, "The query folder")
    if not files:
        raise MatchnetError(f"The query folder {path} has no images; put the images to classify in it.")
    return files


def predictions(
    paths: Sequence[Path], labels: Sequence[Hashable], probs: Tensor, classes: Sequence[Hashable]
) -> list[dict[str, Any]]:
    """One ``{"query", "label", "probs": {label: probability}}`` per query; probabilities to 6 places."""
    return [
        {
            "query": str(path),
            "label": label,
            "probs": {str(c): round(p, 6) for c, p in zip(classes, row, strict=True)},
        }
        for path, label, row in zip(paths, labels, probs.tolist(), strict=True)
    ]


def predict_task(cfg: DictConfig, project_root: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """What ``src/predict.py`` runs: classify ``cfg.query`` against ``cfg.support_dir``.

    Writes the predictions to ``cfg.output`` (when set) and to ``predictions.json`` in the job folder.
    Returns ``(summary, predictions)``: counts and paths for ``result.json``, and one object per query
    (see :func:`predictions`). Without ``cfg.ckpt_path`` the checkpoint is
    ``<project_root>/checkpoints/omniglot-lake-20w1s.ckpt``.
    """
    if not cfg.get("support_dir"):
        raise MatchnetError(
            "support_dir is not set; pass support_dir=DIR, a folder with one sub-folder of example "
            "images per class."
        )
    if not cfg.get("query"):
        raise MatchnetError("query is not set; pass query=PATH, an image file or a folder of images.")
    ckpt = Path(cfg.ckpt_path) if cfg.get("ckpt_path") else project_root / DEFAULT_CHECKPOINT
    support_paths, support_labels = support_from_folder(cfg.support_dir)
    queries = query_files(cfg.query)
    if not cfg.get("ckpt_path") and not ckpt.is_file():
        raise MatchnetError(
            f"ckpt_path is not set and the default checkpoint {ckpt} does not exist; pass "
            "ckpt_path=PATH, a checkpoint written by src/train.py (e.g. outputs/train/<date>/<time>/"
            "checkpoints/best.ckpt), or put the released checkpoint there."
        )
    classifier = OneShotClassifier.from_checkpoint(
        ckpt, device=cfg.get("device") or "cpu", batch_size=int(cfg.get("batch_size") or 256)
    )
    classifier.fit(support_paths, support_labels)
    labels, probs = classifier.predict(queries)
    result = predictions(queries, labels, probs, classifier.classes)
    output = cfg.get("output")
    if output:
        write_json_atomic(output, result)
    write_json_atomic(output_dir() / PREDICTIONS_FILE, result)
    log.info("Classified %d queries into %d classes with %s", len(result), len(classifier.classes), ckpt)
    summary = {
        "queries": len(result),
        "classes": len(classifier.classes),
        "support_images": len(support_paths),
        "ckpt_path": str(ckpt),
        "output": str(output) if output else None,
        "predictions_file": str(output_dir() / PREDICTIONS_FILE),
    }
    return summary, result
