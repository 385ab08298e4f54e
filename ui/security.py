"""Request guard for the studio's server (an ASGI middleware in front of Gradio).

- DNS rebinding: a request whose `Host` is not loopback (or a name the studio was told to
  answer to) gets 403.
- Cross-site writes: a non-GET request (or a websocket) whose `Origin` is not the studio's
  own origin gets 403, before anything is read or written. `Origin: null` (a sandboxed
  iframe, a `file:` page) is foreign too, unless it was named with `--allow-origin null`;
  `--allow-origin` may also name another origin (`http://myhost:8080`).
- Files: every route that takes a path (`/gradio_api/file=`, `/gradio_api/file/`,
  `/gradio_api/proxy=`… read from the app's own routes, plus the known ones) may serve only
  a local file inside the outputs folder or Gradio's cache; anything else — the models, the
  database, `../` tricks in any encoding, and above all a URL, which Gradio would fetch — gets
  403. Gradio's own page assets (`/assets/`, `/static/`, `/svelte/`) are served by relative
  name only.
- No fetching by body: a write whose JSON names a file by URL (`{"path": "https://…"}`, which
  Gradio would download) gets 403.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import unquote, urlsplit

LOOPBACK_NAMES = {"127.0.0.1", "localhost", "::1", "[::1]"}
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
# Gradio's routes that serve its own page (JS, CSS, fonts) from its package folder
ASSET_ROUTES = ("/assets/", "/static/", "/svelte/")
# guarded even when the app's routes cannot be read
KNOWN_FILE_ROUTES = ("/gradio_api/file=", "/gradio_api/file/", "/gradio_api/proxy=", "/file=", "/file/", "/proxy=")
MAX_JSON_BODY = 16 * 1024 * 1024

_PARAM = re.compile(r"\{(\w+)(?::(\w+))?\}")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")
_DEFAULT_PORTS = {"http": ":80", "https": ":443", "ws": ":80", "wss": ":443"}


def _hostname(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):
        return host.split("]")[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _decodings(text: str, most: int = 6) -> list[str]:
    """`text` and each further percent-decoding of it (%252e%252e → %2e%2e → ..), at most `most` forms."""
    forms = [text]
    while len(forms) < most and unquote(forms[-1]) != forms[-1]:
        forms.append(unquote(forms[-1]))
    return forms


def normalize_origin(origin: str) -> str:
    """`null`, or `scheme://host[:port]` in lower case without a default port; ValueError otherwise."""
    text = origin.strip().rstrip("/").lower()
    if text == "null":
        return text
    parts = urlsplit(text)
    try:
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError:
        raise ValueError(f"an origin is 'null' or scheme://host[:port], got {origin!r}") from None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname or parts.path or parts.query or parts.username:
        raise ValueError(f"an origin is 'null' or scheme://host[:port], got {origin!r}")
    netloc = parts.netloc.removesuffix(_DEFAULT_PORTS[parts.scheme])
    return f"{parts.scheme}://{netloc}"


def _looks_like_url(text: str) -> bool:
    """A scheme (`http:`, `file:`…), a network path (`//host`, `\\\\host`) or a backslash outside a Windows path."""
    text = text.strip()
    windows_path = os.name == "nt" and _WINDOWS_DRIVE.match(text) is not None
    if text.startswith(("//", "\\\\", "/\\", "\\/")) or "://" in text or ":\\\\" in text:
        return True
    return not windows_path and ("\\" in text or _SCHEME.match(text) is not None)


def path_routes(routes: Iterable, prefix: str = "") -> dict[str, str]:
    """Every route that takes a path, by the literal text before its first parameter.

    `/gradio_api/file={path_or_url:path}` → `/gradio_api/file=`. A route takes a path when a
    parameter uses the `path` convertor or is named like one (`url_path`, `path_or_url`); a mount
    of an app without routes (static files) takes one too. The kind is `asset` for Gradio's own
    page folders and `file` for everything else.
    """
    found: dict[str, str] = {}
    for route in routes:
        included = getattr(route, "original_router", None)  # FastAPI's include_router
        if included is not None:
            context = getattr(route, "include_context", None)
            found |= path_routes(included.routes, prefix + getattr(context, "prefix", ""))
            continue
        path = getattr(route, "path", None)
        sub_routes = getattr(route, "routes", None)
        if sub_routes:  # a mounted router or app, a host route
            found |= path_routes(sub_routes, prefix + (path or "").rstrip("/"))
            continue
        if path is None:
            continue
        full = prefix + path
        if sub_routes is not None:  # a mount of an app without routes (static files): it takes every path below
            full = full.rstrip("/") + "/{path:path}"
        params = list(_PARAM.finditer(full))
        if any(m.group(2) == "path" or "path" in m.group(1) or "url" in m.group(1) for m in params):
            literal = full[: params[0].start()]
            found[literal] = "asset" if literal in ASSET_ROUTES else "file"
    return found


class StudioGuard:
    def __init__(
        self,
        app,
        allowed_hosts: Iterable[str] = (),
        file_roots: Iterable[Path] = (),
        allowed_origins: Iterable[str] = (),
    ):
        self.app = app
        self.allowed = LOOPBACK_NAMES | {h.lower() for h in allowed_hosts}
        self.file_roots = [Path(os.path.realpath(r)) for r in file_roots]
        self.allowed_origins = {normalize_origin(o) for o in allowed_origins}
        self._routes: dict[str, str] | None = None

    def file_routes(self, app=None) -> dict[str, str]:
        """The guarded routes (prefix → `file` or `asset`): the known ones and those `app` mounts."""
        routes = {r: "file" for r in KNOWN_FILE_ROUTES} | {r: "asset" for r in ASSET_ROUTES}
        if app is not None and getattr(app, "routes", None) is not None:
            routes |= path_routes(app.routes)
        return routes

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        # 1. the Host header: loopback or a name the studio answers to
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host = _hostname(headers.get("host", ""))
        if host not in self.allowed:
            return await self._deny(scope, send, f"host {host!r} is not served here")
        # 2. a request that names an origin (a browser's cross-origin fetch, any write, a websocket):
        #    only the studio's own origin or one named with --allow-origin — reads included, so
        #    another page can neither change nor read anything
        origin = headers.get("origin")
        writes = scope["type"] == "websocket" or scope.get("method", "GET") not in SAFE_METHODS
        if origin is not None and not self._trusted_origin(origin, headers.get("host", "")):
            return await self._deny(scope, send, f"cross-site request from {origin!r} refused")
        # 3. routes that take a path: a local file inside the allowed folders (or a page asset), never a URL
        if self._routes is None:  # read once from the app that called us (all its routes exist by then)
            self._routes = self.file_routes(scope.get("app"))
        path = scope.get("path", "")
        root = scope.get("root_path", "")
        route_path = path[len(root) :] if root and path.startswith(root + "/") else path
        for prefix, kind in self._routes.items():
            for candidate in {path, route_path}:
                if candidate.startswith(prefix) and not self._allowed_value(candidate[len(prefix) :], kind):
                    return await self._deny(scope, send, "this file is not served")
        # 4. a write's JSON body must not name a file by URL (Gradio would download it)
        # (exactly Gradio's own test for an upload: any other type may be parsed as JSON by Gradio)
        content_type = headers.get("content-type", "")
        if scope["type"] == "http" and writes and not content_type.startswith("multipart/form-data"):
            body, receive = await self._buffered(receive)
            if body is None:
                return await self._deny(scope, send, "request body too large", status=413)
            if _names_a_url(body):
                return await self._deny(scope, send, "a file given by URL is not fetched")
        return await self.app(scope, receive, send)

    def _trusted_origin(self, origin: str, host_header: str) -> bool:
        try:
            normalized = normalize_origin(origin)
        except ValueError:
            return False
        if normalized in self.allowed_origins:
            return True
        if normalized == "null":
            return False
        scheme, _, netloc = normalized.partition("://")
        own = host_header.strip().lower().removesuffix(_DEFAULT_PORTS[scheme])
        return netloc == own

    def _allowed_value(self, value: str, kind: str) -> bool:
        """`value` (as the router passes it on) and each further decoding of it must be a safe path."""
        forms = _decodings(value)
        for form in forms:
            if not form or _looks_like_url(form) or any(ord(c) < 32 for c in form) or ".." in re.split(r"[\\/]", form):
                return False
            if kind == "asset" and (form.startswith("/") or _WINDOWS_DRIVE.match(form)):
                return False
            if kind == "file":
                real = Path(os.path.realpath(form))
                if not any(real.is_relative_to(root) for root in self.file_roots):
                    return False
        return len(forms) < 6  # still changing after five decodings: refused

    @staticmethod
    async def _buffered(receive):
        """Read the whole body (None past MAX_JSON_BODY) and a receive that replays it."""
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > MAX_JSON_BODY:
                return None, receive
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        return body, replay

    async def _deny(self, scope, send, reason: str, status: int = 403) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        body = json.dumps({"error": reason}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _names_a_url(body: bytes) -> bool:
    """True when a JSON body holds an object whose `path` is a URL (a file Gradio would download)."""
    if b"path" not in body and b"\\u" not in body:  # no `path` key, even spelt with escapes: nothing to parse
        return False
    try:
        stack = [json.loads(body)] if body else []
    except (ValueError, RecursionError):
        return False
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            path = item.get("path")
            if isinstance(path, str) and any(_looks_like_url(f) for f in _decodings(path)):
                return True
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False
