"""Paths, errors and logging shared by every part of the benchmark harness."""

import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
BENCH = ROOT / "bench"


class HarnessError(Exception):
    """The harness itself failed (a tool did not run, httpscope did not attach...)."""


class Skip(Exception):
    """A workload cannot run here (optional tool missing)."""


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None
