"""Request guard for the studio's server (an ASGI middleware in front of Gradio).

- DNS rebinding: a request whose `Host` is not loopback (or a name the studio was told to
  answer to) gets 403.
- Cross-site writes: a non-GET request (or a websocket) whose `Origin` names another host
  gets 403, before anything is read or written.
- Files: Gradio's file route may serve only the outputs folder and Gradio's own cache;
  anything else — the models, the database, the manifest, `../` tricks in any encoding —
  gets 403.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import unquote, urlsplit

LOOPBACK_NAMES = {"127.0.0.1", "localhost", "::1", "[::1]"}
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
FILE_ROUTES = ("/gradio_api/file=", "/file=")


def _hostname(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):
        return host.split("]")[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _fully_unquoted(text: str) -> str:
    for _ in range(5):  # %252e%252e → %2e%2e → ..
        decoded = unquote(text)
        if decoded == text:
            break
        text = decoded
    return text


class StudioGuard:
    def __init__(self, app, allowed_hosts: Iterable[str] = (), file_roots: Iterable[Path] = ()):
        self.app = app
        self.allowed = LOOPBACK_NAMES | {h.lower() for h in allowed_hosts}
        self.file_roots = [Path(os.path.realpath(r)) for r in file_roots]

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host = _hostname(headers.get("host", ""))
        if host not in self.allowed:
            return await self._deny(scope, send, f"host {host!r} is not served here")
        origin = headers.get("origin")
        writes = scope["type"] == "websocket" or scope.get("method", "GET") not in SAFE_METHODS
        if origin and writes and origin != "null" and _hostname(urlsplit(origin).netloc) not in self.allowed:
            return await self._deny(scope, send, f"cross-site request from {origin!r} refused")
        path = scope.get("path", "")
        raw = scope.get("raw_path", b"").decode("latin-1")
        for route in FILE_ROUTES:
            if path.startswith(route) or raw.startswith(route):
                requested = _fully_unquoted((raw if raw.startswith(route) else path)[len(route):].split("?")[0])
                if not self._servable(requested):
                    return await self._deny(scope, send, "this file is not served")
        return await self.app(scope, receive, send)

    def _servable(self, requested: str) -> bool:
        if not requested or ".." in Path(requested).parts or "\x00" in requested:
            return False
        real = Path(os.path.realpath(requested))
        return any(real.is_relative_to(root) for root in self.file_roots)

    async def _deny(self, scope, send, reason: str) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        body = json.dumps({"error": reason}).encode()
        await send({"type": "http.response.start", "status": 403,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
