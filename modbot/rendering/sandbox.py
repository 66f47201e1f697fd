"""Rendering in a worker process, with a time limit and a memory limit.

Jinja's sandbox decides what a template may touch, not how long it runs or how much
it allocates: ``{% for i in range(100000) %}{% for j in range(100000) %}`` runs for
hours and ``''|center(10**9)`` takes a gigabyte. So templates never run in the bot's
own process. ``RenderWorker`` keeps one child process (``python -m modbot.rendering.sandbox``)
that compiles and runs templates; each request has ``MODBOT_RENDER_TIMEOUT`` seconds,
after which the child is killed and the request fails with one line, and the child's
address space is capped, so a huge allocation fails there as a ``MemoryError``. The
event loop only waits on a pipe, so SIGTERM is always answered.

Requests and answers are length-prefixed. A request is the bot's own plain data
(dicts, lists, text, numbers), sent with ``marshal``, several times quicker than JSON
both ways; an answer is JSON, because it is written by the process that runs the
templates and ``marshal`` must never read what that process could have shaped. Only
what changed travels: a set of templates once (the child keeps the last few sets
compiled, by digest, and a request names its set by digest alone once the child has
it), and an update's context once (the child keeps the last ``SHARED`` of them, by a
number the request then gives instead; an incident's comment is rendered again with
every new update, and its earlier updates are what they were). A child that has
dropped what a request names says so, and gets it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import marshal
import signal
import struct
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from modbot.core.render import Renderer, Templates, sample_jobs
from modbot.errors import TemplateError

log = logging.getLogger(__name__)

HEADER = struct.Struct(">I")
DEFAULT_MEMORY_MB = 256
MAX_MESSAGE = 64 * 1024 * 1024
COMPILED_SETS = 16  # template sets the child keeps compiled (one or two per watch)
SHARED = 20_000  # update contexts the child keeps (a few hundred per watch)


class RenderWorker:
    """The bot's one rendering process, started on first use and restarted after a kill."""

    def __init__(self, *, timeout: float, memory_mb: int = DEFAULT_MEMORY_MB) -> None:
        self.timeout = timeout
        self.memory_mb = memory_mb
        self._process: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()
        self._sent: set[str] = set()  # digests of the sets the running child was sent
        # Update contexts the running child keeps, by content, with their numbers (both
        # sides forget the oldest first, past ``SHARED``).
        self._shared: dict[tuple[tuple[str, Any], ...], int] = {}
        self._next_shared = 0

    async def render(
        self, templates: Templates, name: str, context: Mapping[str, Any], limit: int
    ) -> tuple[str, int]:
        """Run template ``name`` on ``context``; the text (at most ``limit`` characters)
        and how many old updates were left out. Raises ``TemplateError``."""
        answer = await self._ask(
            templates,
            lambda: {"op": "render", "name": name, "context": context, "limit": limit},
            name,
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

        def request() -> dict[str, Any]:
            shared: dict[int, Any] = {}
            batch = [
                {"name": n, "context": self._sharing(c, shared), "limit": lim} for n, c, lim in jobs
            ]
            return {"op": "batch", "jobs": batch, "shared": shared}

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

    def _sharing(self, context: Mapping[str, Any], shared: dict[int, Any]) -> Mapping[str, Any]:
        """``context`` with each update the child keeps given by its number; the others
        are added to ``shared`` (sent with the request, and kept by the child)."""
        updates = context.get("updates")
        if not isinstance(updates, list) or not updates:
            return context
        numbers: list[Any] = []
        for update in updates:
            try:
                key = tuple(update.items())
                number = self._shared.get(key)
            except (AttributeError, TypeError):  # not a dict of plain values: sent as it is
                numbers.append(update)
                continue
            if number is None and len(shared) >= SHARED // 2:
                numbers.append(update)  # a batch that big: its updates go as they are
                continue
            if number is None:
                number = self._shared[key] = self._next_shared
                self._next_shared += 1
                shared[number] = update
                if len(self._shared) > SHARED:
                    del self._shared[next(iter(self._shared))]
            numbers.append(number)
        return {**context, "updates": numbers}

    async def _ask(
        self,
        templates: Templates,
        request: Callable[[], dict[str, Any]],
        name: str,
        budget: int = 1,
    ) -> Any:
        async with self._lock:
            process = await self._child()
            where = f"{templates.origin.rstrip('/')}/{name}"
            data = self._packed(self._whole(request(), templates), where)
            try:
                async with asyncio.timeout(self.timeout * budget):
                    answer = await self._exchange(process, data)
                    if answer.get("missing"):  # the child dropped the set: send it again
                        self._sent.discard(templates.digest)
                    if answer.get("stale"):  # or updates it dropped: send them all
                        self._shared.clear()
                    if answer.get("missing") or answer.get("stale"):
                        data = self._packed(self._whole(request(), templates), where)
                        answer = await self._exchange(process, data)
            except TimeoutError as exc:
                await self._kill()
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

    def _whole(self, request: dict[str, Any], templates: Templates) -> dict[str, Any]:
        """``request``, naming the templates, with their sources unless the child was
        sent them."""
        request["digest"] = templates.digest
        if templates.digest in self._sent:
            return request
        self._sent.add(templates.digest)
        request["templates"] = {
            "origin": templates.origin,
            "sources": [list(pair) for pair in templates.sources],
        }
        return request

    @staticmethod
    def _packed(request: dict[str, Any], where: str) -> bytes:
        """``request`` as the child reads it. A value ``marshal`` cannot carry (one of a
        subclass: a fault in what builds contexts, never in a template) is one line, and
        the child, sent nothing, is kept (what it was counted as given, it says it lacks,
        and gets again)."""
        try:
            return marshal.dumps(request)
        except ValueError as exc:
            raise TemplateError(
                f"{where}: its context holds a value the render worker cannot be sent ({exc})"
            ) from exc

    async def _exchange(self, process: asyncio.subprocess.Process, data: bytes) -> dict[str, Any]:
        assert process.stdin is not None
        assert process.stdout is not None
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
        self._shared = {}
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
    shared: dict[int, Any] = {}
    while True:
        header = stdin.read(HEADER.size)
        if len(header) < HEADER.size:
            return  # the parent closed the pipe
        (size,) = HEADER.unpack(header)
        request = marshal.loads(stdin.read(size))  # noqa: S302 - the parent wrote it
        answer = _handle(request, compiled, shared)
        data = json.dumps(answer).encode()  # ASCII JSON: C's fast path, both ways
        stdout.write(HEADER.pack(len(data)) + data)
        stdout.flush()


def _handle(
    request: dict[str, Any], compiled: dict[str, Renderer], shared: dict[int, Any]
) -> dict[str, Any]:
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
        for number, update in request.get("shared", {}).items():
            shared[int(number)] = update
            if len(shared) > SHARED:
                del shared[next(iter(shared))]
        try:
            jobs = [_unshared(job, shared) for job in request["jobs"]]
        except KeyError:
            return {"ok": False, "stale": True, "error": "updates not sent"}
        return {"ok": True, "results": [_render(renderer, job) for job in jobs]}
    return _render(renderer, request)


def _unshared(job: dict[str, Any], shared: dict[int, Any]) -> dict[str, Any]:
    """``job`` with each update given by number replaced by the context kept for it."""
    context = job.get("context")
    updates = context.get("updates") if isinstance(context, dict) else None
    if not isinstance(context, dict) or not isinstance(updates, list):
        return job
    whole = [shared[u] if isinstance(u, int) else u for u in updates]
    return {**job, "context": {**context, "updates": whole}}


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
