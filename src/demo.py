"""A local web page to teach a trained Matching Network new classes from drawings and watch it classify.

    python src/demo.py [ckpt_path=PATH] [port=7860] [host=127.0.0.1] [share=false] [data_root=DIR]

Draw a character, label it and add it to the support set (one example is a one-shot class), or load
an Omniglot evaluation alphabet; then draw or upload a query and classify it: the page shows the
predicted label, the probability of every class and the attention over each support image. The
address is printed when the server is up; Ctrl+C stops it. See the README's "Demo" section.
"""

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from matchnet.errors import MatchnetError

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@hydra.main(version_base="1.3", config_path="../conf", config_name="demo")
def main(cfg: DictConfig) -> None:
    try:
        from matchnet.demo.app import run_demo

        run_demo(cfg, PROJECT_ROOT)
    except MatchnetError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
