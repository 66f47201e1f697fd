"""The one browser callback of ``modbot auth``: a tiny HTTP listener on localhost.

Reddit sends the browser back to the app's redirect URI (``http://localhost:PORT``) with
``?state=...&code=...`` once the account's owner chooses Allow. This listener answers
that one request and hands the code over; anything else it is sent (a favicon, a
stray tab) gets a short answer and is otherwise ignored. Standard library only.
"""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs, urlsplit

from modbot.errors import ModbotError

MAX_REQUEST_LINE = 8192


class AuthDeclined(ModbotError):
    """The account's owner chose Decline, or Reddit sent back an error."""


def redirect_uri(port: int) -> str:
    """The redirect URI the app must have for ``modbot auth --port PORT``."""
    return f"http://localhost:{port}"


async def wait_for_code(port: int, state: str, wait: float) -> str:
    """Listen on localhost:``port`` until the callback carrying ``state`` arrives; its code."""
    answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 10)
            status, text = _outcome(line[:MAX_REQUEST_LINE].decode("latin-1"), state, answer)
            body = text.encode()
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (OSError, TimeoutError):
            pass  # a browser that went away; keep waiting for the real callback
        finally:
            writer.close()

    try:
        server = await asyncio.start_server(handle, host="localhost", port=port)
    except OSError as exc:
        raise ModbotError(
            f"cannot listen on localhost:{port} ({exc.strerror}); choose another --port "
            "and give the app that redirect URI"
        ) from exc
    async with server:
        try:
            return await asyncio.wait_for(answer, wait)
        except TimeoutError as exc:
            raise ModbotError(
                f"no answer from the browser within {wait:g} s; run modbot auth again"
            ) from exc


def _outcome(request_line: str, state: str, answer: asyncio.Future[str]) -> tuple[str, str]:
    """The HTTP status and text for one request, settling ``answer`` for the callback."""
    parts = request_line.split()
    if len(parts) < 2 or parts[0] != "GET":
        return "400 Bad Request", "modbot: not a browser callback.\n"
    query = parse_qs(urlsplit(parts[1]).query)
    if query.get("state", [""])[0] != state:
        return "404 Not Found", "modbot: waiting for Reddit's answer to the link it printed.\n"
    if answer.done():
        return "409 Conflict", "modbot: this answer was already received.\n"
    error = query.get("error", [""])[0]
    if error:
        why = "access was declined" if error == "access_denied" else f"Reddit said {error!r}"
        answer.set_exception(AuthDeclined(f"no refresh token: {why}"))
        return "200 OK", f"modbot: {why}. You can close this tab.\n"
    code = query.get("code", [""])[0]
    if not code:
        return "400 Bad Request", "modbot: the answer carried no code.\n"
    answer.set_result(code)
    return "200 OK", "modbot: authorised. You can close this tab and return to the terminal.\n"
