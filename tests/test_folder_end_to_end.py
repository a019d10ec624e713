"""End to end on your own images: src/train.py, src/eval.py and src/predict.py with data=folder on an
image folder made on the fly (classes of coloured shapes, random sizes, PNG and JPEG)."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.image_folders import draw_image, write_split_folders
from helpers.scripts import last_json, run_main

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("channels", [3, 1])
def test_train_evaluate_predict(tmp_path: Path, channels: int) -> None:
    images = write_split_folders(tmp_path / "images", {"train": 4, "val": 2, "test": 2}, images=6)
    data = [
        "data=folder",
        f"data.root={images}",
        f"data.channels={channels}",
        "data.image_size=28",
        "data.way=2",
        "data.query=2",
        "logger=none",
    ]
    smoke = last_json(run_main("train.py", *data, "debug=fdr", f"hydra.run.dir={tmp_path}/s", cwd=tmp_path))
    assert smoke["split"] == "folders" and smoke["way"] == 2 and smoke["episodes"] == 1

    trained = last_json(
        run_main(
            "train.py", *data, "debug=tiny", "data.augment=true", f"hydra.run.dir={tmp_path}/t", cwd=tmp_path
        )
    )
    ckpt = trained["ckpt_path"]
    assert ckpt and Path(ckpt).is_file() and trained["episodes"] == 6

    evaluated = last_json(
        run_main("eval.py", f"ckpt_path={ckpt}", "logger=none", f"hydra.run.dir={tmp_path}/e", cwd=tmp_path)
    )
    assert evaluated["test_acc"] == trained["test_acc"] and evaluated["split"] == "folders"

    support = tmp_path / "support"
    for cls in ("test_00", "test_01"):
        (support / cls).mkdir(parents=True)
        for file in sorted((images / "test" / cls).iterdir())[:2]:
            (support / cls / file.name).write_bytes(file.read_bytes())
    queries = tmp_path / "queries"
    queries.mkdir()
    draw_image(6, 424242).save(queries / "a.png")  # class index 6 = test_00 (train 0-3, val 4-5)
    draw_image(7, 434343).convert("RGBA").save(queries / "b.png")
    predictions = last_json(
        run_main(
            "predict.py",
            f"ckpt_path={ckpt}",
            f"support_dir={support}",
            f"query={queries}",
            f"hydra.run.dir={tmp_path}/p",
            cwd=tmp_path,
        )
    )
    assert [Path(p["query"]).name for p in predictions] == ["a.png", "b.png"]
    for prediction in predictions:
        assert prediction["label"] in ("test_00", "test_01")
        assert set(prediction["probs"]) == {"test_00", "test_01"}
        assert sum(prediction["probs"].values()) == pytest.approx(1.0, abs=1e-4)


def test_bad_folder_fails_cleanly(tmp_path: Path) -> None:
    images = write_split_folders(tmp_path / "images", {"train": 3, "val": 2, "test": 2}, images=2)
    proc = run_main(
        "train.py",
        "data=folder",
        f"data.root={images}",
        "data.way=2",
        "data.query=2",
        "logger=none",
        f"hydra.run.dir={tmp_path}/run",
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "train_00 has 2" in proc.stderr and "data.shot + data.query = 1 + 2 = 3" in proc.stderr
