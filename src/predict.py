"""Classify images of new classes from a few labelled examples of each, with a trained checkpoint.

    python src/predict.py support_dir=DIR query=IMAGE_OR_DIR [ckpt_path=PATH] [output=FILE.json]

``support_dir`` holds one sub-folder per class (its name is the label) with one or more example
images. The last line of standard output is a JSON list with one
``{"query": path, "label": predicted label, "probs": {label: probability}}`` per query image; with
``output=FILE.json`` the list is written to that file instead and a confirmation is printed.
"""

import json
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from matchnet.cli import run_task
from matchnet.predicting import predict_task

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@hydra.main(version_base="1.3", config_path="../conf", config_name="predict")
def main(cfg: DictConfig) -> None:
    found: list[list[dict[str, Any]]] = []

    def task(cfg: DictConfig) -> dict[str, Any]:
        summary, predictions = predict_task(cfg, PROJECT_ROOT)
        found.append(predictions)
        return summary

    result = run_task(task, cfg)
    if result is None:
        return
    if result["output"]:
        count = result["queries"]
        print(f"Wrote {count} prediction{'s' * (count != 1)} to {result['output']}", flush=True)
    else:
        print(json.dumps(found[0]), flush=True)


if __name__ == "__main__":
    main()
