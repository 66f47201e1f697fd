"""A fake Datadog status page: ``/config.json`` as OpenRouter's page served it (the real
capture in tests/data/providers, two base64 images cut), and a script shell for every
other path, as the real page answers a program."""

from __future__ import annotations

import copy
import json
from typing import Any

from tests.conftest import ROOT
from tests.fakes.site import FakeSite

CAPTURE_PATH = ROOT / "tests/data/providers/openrouter-datadog-config-2026-09-15.json"
CAPTURE: dict[str, Any] = json.loads(CAPTURE_PATH.read_text())
SHELL = "<!DOCTYPE html><html><head><title>OpenRouter | Datadog</title></head><body></body></html>"


class FakeDatadog:
    """The fake page; ``site.url`` is its base URL."""

    def __init__(self, site: FakeSite) -> None:
        self.site = site
        self.document = copy.deepcopy(CAPTURE)
        for path in ("/", "/api/v2/incidents.json", "/index.json", "/incidents.json"):
            site.put(path, SHELL, content_type="text/html")
        site.put("/config.json", CAPTURE_PATH.read_bytes())  # byte for byte, as stored

    def publish(self) -> None:
        self.site.put("/config.json", json.dumps(self.document))

    def set_incidents(self, incidents: list[dict[str, Any]]) -> None:
        self.document["incidents"] = copy.deepcopy(incidents)
        self.publish()
