"""Rendering in a worker process, with a time limit and a memory limit.

Jinja's sandbox decides what a template may touch, not how long it runs or how much
it allocates: ``{% for i in range(100000) %}{% for j in range(100000) %}`` runs for
hours and ``''|center(10**9)`` takes a gigabyte. So templates never run in the bot's
own process. ``RenderWorker`` keeps one child process (``python -m modbot.rendering.sandbox``)
that compiles and runs templates; each request has ``MODBOT_RENDER_TIMEOUT`` seconds,
after which the child is killed and the request fails with one line, and the child's
address space is capped, so a huge allocation fails there as a ``MemoryError``. The
event loop only waits on a pipe, so SIGTERM is always answered.

Requests and answers are length-prefixed JSON: the contexts are plain data already. A
set of templates travels once: the child keeps the last few sets compiled, by digest,
and a request names its set by digest alone once the child has it (a child that has
dropped it says so, and gets the sources again).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import struct
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from modbot.core.render import Renderer, Templates, sample_jobs
from modbot.errors import TemplateError

log = logging.getLogger(__name__)

HEADER = struct.Struct(">I")
DEFAULT_MEMORY_MB = 256
MAX_MESSAGE = 64 * 1024 * 1024
COMPILED_SETS = 16  # template sets the child keeps compiled (one or two per watch)


class RenderWorker:
    """The bot's one rendering process, started on first use and restarted after a kill."""

    def __init__(self, *, timeout: float, memory_mb: int = DEFAULT_MEMORY_MB) -> None:
        self.timeout = timeout
        self.memory_mb = memory_mb
        self._process: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()
        self._sent: set[str] = set()  # digests of the sets the running child was sent

    async def render(
        self, templates: Templates, name: str, context: Mapping[str, Any], limit: int
    ) -> tuple[str, int]:
        """Run template ``name`` on ``context``; the text (at most ``limit`` characters)
        and how many old updates were left out. Raises ``TemplateError``."""
        answer = await self._ask(
            templates, {"op": "render", "name": name, "context": context, "limit": limit}, name
        )
        return str(answer["text"]), int(answer["omitted"])

    async def render_batch(
        self, templates: Templates, jobs: Sequence[tuple[str, Mapping[str, Any], int]]
    ) -> list[tuple[str, int] | TemplateError]:
        """Several renders in one round trip (a changed poll renders many incidents); each
        result is the text and what was left out, or the ``TemplateError`` of that one.
        The time limit is ``MODBOT_RENDER_TIMEOUT`` for each job."""
        if not jobs:
            return []
        request = {
            "op": "batch",
            "jobs": [{"name": n, "context": c, "limit": lim} for n, c, lim in jobs],
        }
        answer = await self._ask(templates, request, jobs[0][0], budget=len(jobs))
        results: list[tuple[str, int] | TemplateError] = []
        for item in answer["results"]:
            if item.get("ok"):
                results.append((str(item["text"]), int(item["omitted"])))
            else:
                results.append(TemplateError(str(item.get("error"))))
        return results

    async def check(self, templates: Templates, limit: int) -> None:
        """Compile ``templates`` and render each against sample data, within the limits."""
        for name, context in sample_jobs(templates):
            await self.render(templates, name, context, limit)

    async def close(self) -> None:
        """Stop the child process."""
        await self._kill()

    async def _ask(
        self, templates: Templates, request: dict[str, Any], name: str, budget: int = 1
    ) -> Any:
        async with self._lock:
            process = await self._child()
            request["digest"] = templates.digest
            try:
                async with asyncio.timeout(self.timeout * budget):
                    answer = await self._exchange(process, self._with_sources(request, templates))
                    if answer.get("missing"):  # the child dropped the set: send it again
                        self._sent.discard(templates.digest)
                        answer = await self._exchange(
                            process, self._with_sources(request, templates)
                        )
            except TimeoutError as exc:
                await self._kill()
                where = f"{templates.origin.rstrip('/')}/{name}"
                raise TemplateError(
                    f"{where}: took longer than {self.timeout:g} s to render "
                    "(MODBOT_RENDER_TIMEOUT); stopped"
                ) from exc
            except (OSError, EOFError, ValueError, asyncio.IncompleteReadError) as exc:
                await self._kill()
                raise TemplateError(f"the render worker failed ({exc or 'it exited'})") from exc
            except BaseException:
                await self._kill()  # cancelled mid-request: the pipe is out of step
                raise
            if not answer.get("ok"):
                raise TemplateError(str(answer.get("error")))
            return answer

    def _with_sources(self, request: dict[str, Any], templates: Templates) -> dict[str, Any]:
        """``request``, with the templates' sources unless the child was sent them."""
        if templates.digest in self._sent:
            request.pop("templates", None)
            return request
        self._sent.add(templates.digest)
        request["templates"] = {
            "origin": templates.origin,
            "sources": [list(pair) for pair in templates.sources],
        }
        return request

    async def _exchange(
        self, process: asyncio.subprocess.Process, request: dict[str, Any]
    ) -> dict[str, Any]:
        assert process.stdin is not None
        assert process.stdout is not None
        data = json.dumps(request, ensure_ascii=False).encode()
        process.stdin.write(HEADER.pack(len(data)) + data)
        await process.stdin.drain()
        (size,) = HEADER.unpack(await process.stdout.readexactly(HEADER.size))
        if size > MAX_MESSAGE:
            raise ValueError("answer too large")
        answer = json.loads(await process.stdout.readexactly(size))
        if not isinstance(answer, dict):
            raise ValueError("malformed answer")
        return answer

    async def _child(self) -> asyncio.subprocess.Process:
        if self._process is not None and self._process.returncode is None:
            return self._process
        self._sent = set()  # a new child has none
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "modbot.rendering.sandbox",
            str(self.memory_mb),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        return self._process

    async def _kill(self) -> None:
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


# --- the child -------------------------------------------------------------------------------


def _limit_memory(megabytes: int) -> None:
    """Cap the child's address space, and make it die with its parent (Linux)."""
    try:
        import resource  # noqa: PLC0415 - POSIX only

        size = megabytes * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (size, size))
    except (ImportError, ValueError, OSError):
        log.debug("cannot limit the render worker's memory on this system")
    with contextlib.suppress(OSError, AttributeError):
        import ctypes  # noqa: PLC0415 - Linux only

        pr_set_pdeathsig, sigkill = 1, 9
        ctypes.CDLL("libc.so.6").prctl(pr_set_pdeathsig, sigkill)


def _serve(megabytes: int) -> None:
    # Ctrl-C in a terminal reaches the whole process group: the bot stops the worker
    # itself (it closes the pipe), so the worker must not die of it mid-render, loudly.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _limit_memory(megabytes)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    compiled: dict[str, Renderer] = {}
    while True:
        header = stdin.read(HEADER.size)
        if len(header) < HEADER.size:
            return  # the parent closed the pipe
        (size,) = HEADER.unpack(header)
        request = json.loads(stdin.read(size))
        answer = _handle(request, compiled)
        data = json.dumps(answer, ensure_ascii=False).encode()
        stdout.write(HEADER.pack(len(data)) + data)
        stdout.flush()


def _handle(request: dict[str, Any], compiled: dict[str, Renderer]) -> dict[str, Any]:
    try:
        renderer = compiled.get(request["digest"])
        if renderer is None:
            given = request.get("templates")
            if given is None:
                return {"ok": False, "missing": True, "error": "templates not sent"}
            templates = Templates(given["origin"], tuple((n, s) for n, s in given["sources"]))
            renderer = Renderer(templates)
            if len(compiled) >= COMPILED_SETS:
                compiled.pop(next(iter(compiled)))
            compiled[request["digest"]] = renderer
    except TemplateError as exc:
        return {"ok": False, "error": str(exc)}
    if request.get("op") == "batch":
        return {"ok": True, "results": [_render(renderer, job) for job in request["jobs"]]}
    return _render(renderer, request)


def _render(renderer: Renderer, job: dict[str, Any]) -> dict[str, Any]:
    try:
        text, omitted = renderer.render(job["name"], job["context"], job["limit"])
    except TemplateError as exc:
        return {"ok": False, "error": str(exc)}
    except MemoryError:
        return {"ok": False, "error": f"{job.get('name')}: exceeds the memory limit"}
    except Exception as exc:  # a template can raise anything; it must not end the worker
        return {"ok": False, "error": f"{job.get('name')}: {type(exc).__name__}: {exc}"}
    return {"ok": True, "text": text, "omitted": omitted}


if __name__ == "__main__":
    _serve(int(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_MEMORY_MB)
