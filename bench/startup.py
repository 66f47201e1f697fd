"""How fast commands start: ``modbot --help`` and ``modbot status`` against bare Python.

Each command runs as a fresh process ``--runs`` times (default 15); the median wall time
is printed next to ``python -c pass`` on the same machine, with the ratio. ``status``
reads a real (empty) state file. Targets: ``--help`` within 15x and ``status`` within
20x of bare Python (about 0.2 s and 0.3 s on a typical laptop).

    python -m bench.startup [--runs 15]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from modbot.store.sqlite import open_sqlite

TARGETS = {"modbot --help": 15.0, "modbot status": 20.0}


def median_wall(argv: list[str], runs: int, env: dict[str, str]) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)  # fmt: skip
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


async def empty_state(path: Path) -> None:
    await (await open_sqlite(path)).close()


def main(runs: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        database = Path(tmp) / "state.sqlite3"
        asyncio.run(empty_state(database))
        env = {k: v for k, v in os.environ.items() if not k.startswith("MODBOT_")}
        env["MODBOT_DATABASE"] = str(database)
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "modbot --help": [sys.executable, "-m", "modbot", "--help"],
            "modbot status": [sys.executable, "-m", "modbot", "status"],
        }
        times = {name: median_wall(argv, runs, env) for name, argv in commands.items()}
    bare = times["python -c pass"]
    print(f"startup, median of {runs} runs each")
    print(f"{'command':<18}{'median s':>10}{'x bare':>9}{'target':>9}")
    for name, seconds in times.items():
        target = TARGETS.get(name)
        verdict = "" if target is None else f"<= {target:g}x " + ("ok" if seconds / bare <= target else "MISSED")  # fmt: skip
        print(f"{name:<18}{seconds:>10.3f}{seconds / bare:>9.1f}   {verdict}")
    return times


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    main(parser.parse_args().runs)
