"""The run's JSONL log and the memory figures its records carry."""

from __future__ import annotations

import json
import math
import resource
import sys
import warnings
from pathlib import Path

import mlx.core as mx

from mlx_hdr.io.atomic import write_text_atomic


class RunLog:
    """Append-only JSONL log (rank 0 only) that also keeps the records in memory."""

    def __init__(self, path: Path | None, echo=print):
        self.path, self.echo, self.records = path, echo, []
        if path is not None and path.exists():
            self.records = read_log(path)

    def write(self, record: dict, message: str | None = None) -> None:
        """Keep ``record``; with a path, also append it to the file and echo ``message``."""
        self.records.append(record)
        if self.path is not None:
            with open(self.path, "a") as f:
                f.write(_json(record) + "\n")
            self.say(message)

    def say(self, message: str | None) -> None:
        """Echo ``message`` (if any and if there is an echo function); nothing is logged."""
        if message and self.echo is not None:
            self.echo(message)

    def truncate_after(self, step: int) -> None:
        """Drop records from steps after a resumed checkpoint (they will be redone)."""
        keep = [r for r in self.records if r.get("step", 0) <= step]
        self.records = keep
        if self.path is not None:
            write_text_atomic(self.path, "".join(_json(r) + "\n" for r in keep))


def read_log(path: Path) -> list[dict]:
    """Records of a JSONL log; a last line cut short by a killed process is skipped, and so,
    with a warning, is any other line that is not a record the run can read (a damaged or
    edited log: it only feeds the curves)."""
    lines = [line for line in path.read_text(errors="replace").splitlines() if line]
    records, damaged = [], 0
    for i, line in enumerate(lines):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if _usable(record):
            records.append(record)
        elif i < len(lines) - 1:
            damaged += 1
    if damaged:
        warnings.warn(f"{path}: {damaged} damaged line(s) left out of the run's log", stacklevel=2)
    return records


def _usable(record) -> bool:
    """Whether a log line is a record the run reads back: an object with a whole ``step``
    (and, for a validation, the ``epoch`` and scores the curves plot)."""
    if not isinstance(record, dict) or not isinstance(record.get("step"), int):
        return False
    val = record.get("kind") == "val"
    scores = [record.get(k, "missing") for k in ("psnr", "ssim", "l1")] if val else []
    numbers = [record.get("epoch")] if val else []
    numbers += [record[k] for k in ("loss", "l1", "lpips") if k in record and not val]
    number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)  # noqa: E731
    # a score with nothing to measure is null (``_json``): a gap in its curve
    return all(map(number, numbers)) and all(v is None or number(v) for v in scores)


def memory_stats() -> dict:
    """Peak MLX allocator memory and the process's max RSS, in MiB."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    rss_mb = rss / 2**20 if sys.platform == "darwin" else rss / 1024
    return {"peak_mem_mb": mx.get_peak_memory() / 2**20, "max_rss_mb": rss_mb}


def _json(record: dict) -> str:
    """One record as standard JSON: a metric with nothing to measure (NaN, the highlight
    error of a view without clipped pixels) as null, which ``jq`` and browsers read."""
    clean = {
        k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in record.items()
    }
    return json.dumps(clean)
