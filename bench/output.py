"""What every benchmark shares on its way out: progress lines on stderr, and its own key
of metrics/bench.json."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from fakenews.data.io import read_json, write_json


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def write_bench_key(out: Path | str, key: str, figures: Any) -> None:
    """Replace `key` in the bench figures file `out`, keeping every other benchmark's key."""
    out = Path(out)
    report = read_json(out) if out.is_file() else {}
    report[key] = figures
    write_json(report, out)
    say(f"figures written to {out} under '{key}'")
