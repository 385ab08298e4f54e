"""Offline by construction.

`enforce()` must run before any Hugging Face or Gradio import: those libraries read
these variables once, at import time. `aiprod_studio.cli`, `engine` and `ui` call it
first thing. `no_network()` is a socket guard that turns any connection to a
non-loopback address into an error; the tests and the sovereignty self-test use it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
from collections.abc import Iterator
from typing import Any

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "DIFFUSERS_NO_ADVISORY_WARNINGS": "1",
    "DO_NOT_TRACK": "1",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "GRADIO_ENABLE_MONITORING": "False",
    "GRADIO_SHARE": "False",
    "GRADIO_MCP_SERVER": "False",
}


def enforce() -> dict[str, str]:
    """Set the offline environment (overriding anything the shell said) and return it."""
    os.environ.update(OFFLINE_ENV)
    return dict(OFFLINE_ENV)


class NetworkBlocked(OSError):
    """Raised by the socket guard for a connection that would leave the machine."""


def _is_loopback(address: object) -> bool:
    if isinstance(address, (str, bytes)):
        return True  # AF_UNIX path
    if not isinstance(address, tuple) or not address:
        return False
    host = address[0]
    if isinstance(host, bytes):
        host = host.decode()
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False  # a host name: resolving it would already be a network use


@contextlib.contextmanager
def no_network(attempts: list[object] | None = None) -> Iterator[list[object]]:
    """Within the block, connecting to anything but loopback raises `NetworkBlocked`.

    Every refused address is appended to `attempts` (returned), so a caller can assert
    that nothing was tried even where a library swallowed the exception.
    """
    refused = attempts if attempts is not None else []
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def check(address: object) -> None:
        if not _is_loopback(address):
            refused.append(address)
            raise NetworkBlocked(f"network access blocked: {address!r}")

    # (the address is whatever the socket's family takes: a tuple, a path, bytes; `Any`, as in socket's own stubs)
    def guarded_connect(self: socket.socket, address: Any) -> None:
        check(address)
        return real_connect(self, address)

    def guarded_connect_ex(self: socket.socket, address: Any) -> int:
        check(address)
        return real_connect_ex(self, address)

    def guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in (None, "localhost") and not _is_loopback((host,)):
            refused.append((host,))
            raise NetworkBlocked(f"name resolution blocked: {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    # the guard patches the socket module in place: its stubs do not expect methods to be replaced
    socket.socket.connect = guarded_connect  # type: ignore[method-assign, assignment]
    socket.socket.connect_ex = guarded_connect_ex  # type: ignore[method-assign, assignment]
    socket.getaddrinfo = guarded_getaddrinfo
    try:
        yield refused
    finally:
        socket.socket.connect = real_connect  # type: ignore[method-assign]
        socket.socket.connect_ex = real_connect_ex  # type: ignore[method-assign]
        socket.getaddrinfo = real_getaddrinfo
