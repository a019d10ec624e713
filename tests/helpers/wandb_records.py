"""Read back what an offline W&B run wrote (its ``run-*.wandb`` file), for tests."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from wandb.proto import wandb_internal_pb2

_FILE_HEADER = struct.Struct("<4sHB")  # ":W&B", magic, version
_RECORD_HEADER = struct.Struct("<IHB")  # crc32, length, type (1 full, 2 first, 3 middle, 4 last)
_BLOCK = 32768


def _chunks(data: bytes) -> list[bytes]:
    records, pending, offset = [], b"", _FILE_HEADER.size
    while offset + _RECORD_HEADER.size <= len(data):
        block_left = _BLOCK - offset % _BLOCK
        if block_left < _RECORD_HEADER.size:  # block trailer padding
            offset += block_left
            continue
        _, length, kind = _RECORD_HEADER.unpack_from(data, offset)
        offset += _RECORD_HEADER.size
        payload, offset = data[offset : offset + length], offset + length
        if kind == 0 and length == 0:
            continue
        pending += payload
        if kind in (1, 4):
            records.append(pending)
            pending = b""
    return records


def read_run(path: Path) -> dict[str, Any]:
    """``{"config": {...}, "history": [{key: value}, ...], "summary": {key: value}, "run": {...}}`` of
    one run file; ``run`` holds the run's ``name``, ``group``, ``job_type`` and ``tags``."""
    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    out: dict[str, Any] = {"config": {}, "history": [], "summary": {}, "run": {}}
    for chunk in _chunks(data):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(chunk)
        kind = record.WhichOneof("record_type")
        if kind == "history":
            out["history"].append(
                {
                    item.key or "/".join(item.nested_key): json.loads(item.value_json)
                    for item in record.history.item
                }
            )
        elif kind == "summary":
            for item in record.summary.update:
                out["summary"][item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
        elif kind == "run":
            run = record.run
            out["run"] = {
                "name": run.display_name,
                "group": run.run_group,
                "job_type": run.job_type,
                "tags": list(run.tags),
            }
            for item in run.config.update:
                out["config"][item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
        elif kind == "config":
            for item in record.config.update:
                out["config"][item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    return out
