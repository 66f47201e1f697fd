"""Running a fake server in a child process, so its CPU is not counted as the bot's."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def fake_in_subprocess(module: str) -> Iterator[str]:
    """Start ``python -m MODULE`` (which prints its URL first) and yield that URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", module],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        if not url.startswith("http"):
            raise RuntimeError(f"{module} did not start")
        yield url
    finally:
        process.terminate()
        process.wait(10)
