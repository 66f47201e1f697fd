"""How fast commands start: ``modbot --help``, ``status`` and ``check --live`` against bare Python.

Each command runs as a fresh process, in rounds (default 15): every round runs
``python -c pass`` and then each command once, so a busy machine slows both sides of a
ratio alike. What is compared is the CPU time each process used (user + system, from
``wait4``), not the wall time, which a shared machine stretches at random. Printed:
per command, the median CPU ms, the median of the rounds' ratios to bare Python, and
the ratios' spread (p10-p90). ``status`` and ``check --live`` read a real (empty)
state file. Modules are compiled once, before the rounds, as an installed modbot's are
(``PYTHONPYCACHEPREFIX`` in a temporary folder, whatever ``PYTHONDONTWRITEBYTECODE``
says). Targets: ``--help`` within 5x and ``status`` within 12x of bare Python.

    python -m bench.startup [--runs 15]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from modbot.store.sqlite import open_sqlite

ROOT = Path(__file__).resolve().parent.parent

BARE = "python -c pass"
TARGETS = {"modbot --help": 5.0, "modbot status": 12.0, "modbot check --live": 12.0}


@dataclass
class Started:
    """One command's start-up: its median CPU ms, and its ratios to bare Python."""

    cpu_ms: float
    ratio: float
    low: float
    high: float


def cpu_ms(argv: list[str], env: dict[str, str], cwd: str) -> float:
    """CPU milliseconds (user + system) of one run of ``argv`` and its children."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)  # fmt: skip
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return used * 1000


async def empty_state(path: Path) -> None:
    await (await open_sqlite(path)).close()


def _quantile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(max(round(share * (len(ordered) - 1)), 0), len(ordered) - 1)]


def main(runs: int) -> dict[str, Started]:
    with tempfile.TemporaryDirectory() as tmp:
        database = Path(tmp) / "state.sqlite3"
        asyncio.run(empty_state(database))
        env = {k: v for k, v in os.environ.items() if not k.startswith("MODBOT_")}
        env["MODBOT_DATABASE"] = str(database)
        env["PYTHONPATH"] = str(ROOT)  # this checkout's modbot, whatever is installed
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        commands = {
            BARE: [sys.executable, "-c", "pass"],
            "modbot --help": [sys.executable, "-m", "modbot", "--help"],
            "modbot status": [sys.executable, "-m", "modbot", "status"],
            "modbot check --live": [sys.executable, "-m", "modbot", "check", "--live"],
        }
        for argv in commands.values():  # compiled once, as when installed
            cpu_ms(argv, env, tmp)
        samples: dict[str, list[float]] = {name: [] for name in commands}
        ratios: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(runs):
            bare = cpu_ms(commands[BARE], env, tmp)
            samples[BARE].append(bare)
            ratios[BARE].append(1.0)
            for name, argv in commands.items():
                if name != BARE:
                    used = cpu_ms(argv, env, tmp)
                    samples[name].append(used)
                    ratios[name].append(used / max(bare, 0.1))
    found = {
        name: Started(
            statistics.median(samples[name]),
            statistics.median(ratios[name]),
            _quantile(ratios[name], 0.1),
            _quantile(ratios[name], 0.9),
        )
        for name in commands
    }
    print(f"startup: CPU ms (user + system) per process, {runs} rounds of every command")
    print(f"{'command':<22}{'median ms':>10}{'x bare':>8}{'spread':>13}   target")
    for name, started in found.items():
        target = TARGETS.get(name)
        verdict = "" if target is None else f"<= {target:g}x " + ("ok" if started.ratio <= target else "MISSED")  # fmt: skip
        spread = f"{started.low:.1f}-{started.high:.1f}"
        print(f"{name:<22}{started.cpu_ms:>10.1f}{started.ratio:>8.1f}{spread:>13}   {verdict}")
    return found


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    main(parser.parse_args().runs)
