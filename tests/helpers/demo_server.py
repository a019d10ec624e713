"""Serve the demo page in-process on a free local port, for the demo tests (the API and the browser)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from helpers.paths import DATA_ROOT, ROOT

# The shipped checkpoint; MATCHNET_SHIPPED_CKPT points the tests at another one (as in test_predict.py).
SHIPPED_CKPT = Path(
    os.environ.get("MATCHNET_SHIPPED_CKPT", ROOT / "checkpoints" / "omniglot-lake-20w1s.ckpt")
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serve(ckpt: Path = SHIPPED_CKPT, data_root: Path | None = DATA_ROOT) -> Iterator[str]:
    """The demo of ``ckpt`` served on 127.0.0.1; yields its address and closes it afterwards."""
    from matchnet.demo.alphabets import Alphabets
    from matchnet.demo.app import build_app, launch
    from matchnet.demo.core import DemoModel

    app = build_app(DemoModel.from_checkpoint(ckpt), Alphabets(data_root))
    url = launch(app, host="127.0.0.1", port=free_port(), quiet=True)
    try:
        yield url
    finally:
        app.close()


@contextmanager
def serve_shipped() -> Iterator[str]:
    """:func:`serve` the shipped checkpoint on the real alphabets; the test fails when the checkpoint is
    missing, since the page is only worth testing with a trained model."""
    if not SHIPPED_CKPT.is_file():
        pytest.fail(f"{SHIPPED_CKPT} does not exist; the demo tests need the shipped checkpoint.")
    with serve(SHIPPED_CKPT, DATA_ROOT) as url:
        yield url
