"""Reddit's own markdown renderer (snudown, compiled to JavaScript) for the tests.

The ``snudown`` name on the package index is an empty placeholder, so the tests use
the npm registry's ``snudown-js`` under Node.js. ``.ci/run`` installs it into
``.ci/snudown``; a developer can do the same:

    npm install --prefix .ci/snudown snudown-js

One Node process renders every document of a test session (JSON lines in and out).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODULES = Path(os.environ.get("MODBOT_SNUDOWN_DIR", ROOT / ".ci" / "snudown")) / "node_modules"
HOW = "npm install --prefix .ci/snudown snudown-js (needs Node.js; .ci/run does it)"
SCRIPT = """
const snudown = require('snudown-js');
const lines = require('readline').createInterface({input: process.stdin});
lines.on('line', (line) => {
  process.stdout.write(JSON.stringify(snudown.markdown(JSON.parse(line))) + '\\n');
});
"""


def missing() -> str | None:
    """Why snudown cannot run here, or ``None`` when it can."""
    if shutil.which("node") is None:
        return f"Node.js is not installed; to run this test: {HOW}"
    if not (MODULES / "snudown-js").is_dir():
        return f"snudown-js is not installed; to run this test: {HOW}"
    return None


class Snudown:
    """A running Node process that turns Reddit markdown into HTML, as Reddit does."""

    def __init__(self) -> None:
        self._process = subprocess.Popen(
            ["node", "-e", SCRIPT],
            cwd=MODULES.parent,  # where Node resolves 'snudown-js' from
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def html(self, markdown: str) -> str:
        assert self._process.stdin is not None
        assert self._process.stdout is not None
        self._process.stdin.write(json.dumps(markdown) + "\n")
        self._process.stdin.flush()
        return str(json.loads(self._process.stdout.readline()))

    def close(self) -> None:
        self._process.terminate()
        self._process.wait()
