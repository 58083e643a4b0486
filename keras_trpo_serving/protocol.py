"""uvicorn's HTTP/1.1 protocols with one thing added: a deadline for a request's head.

uvicorn times out a connection only while it is idle after an answer (``timeout_keep_alive``); a
client that connects and sends nothing, or sends its request line and headers a byte at a time,
holds its connection for ever, and every such connection counts against ``limit_concurrency``
(beyond which uvicorn answers 503 to everybody). Here a new connection gets the keep-alive
timeout too, and a request's head must be complete within ``ServingConfig.header_timeout`` of its
first byte; otherwise the server answers 408 and closes. Everything else is uvicorn's own code.
"""
from __future__ import annotations

import asyncio
import json
from typing import Any, Optional

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # httptools is optional
    HttpToolsProtocol = None  # type: ignore[assignment,misc]


class ServingConfig(uvicorn.Config):
    """``uvicorn.Config`` plus the head deadline (seconds); picklable, so ``--workers`` gets it too."""

    def __init__(self, *args: Any, header_timeout: float = 10.0, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.header_timeout = header_timeout


def _timeout_answer(seconds: float) -> bytes:
    body = json.dumps({"error": f"the request's headers did not arrive within {seconds:g} s (--header-timeout)"})
    return (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
            b"content-length: %d\r\n\r\n%s" % (len(body), body.encode()))


class _HeadDeadline:
    """Mixed into a uvicorn protocol class (which provides the attributes used here)."""

    config: ServingConfig
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    cycle: Any
    timeout_keep_alive: float
    timeout_keep_alive_task: Optional[asyncio.TimerHandle]

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)  # type: ignore[misc]
        self._head_timer: Optional[asyncio.TimerHandle] = None
        # A connection that never sends a byte is idle like a kept-alive one: uvicorn's own timer closes it.
        self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive,
                                                            self.timeout_keep_alive_handler)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        waiting = self.cycle is None or self.cycle.response_complete  # these bytes start (or continue) a head
        before = self.cycle
        super().data_received(data)  # type: ignore[misc]
        if self.cycle is not before:  # a request's head is complete: uvicorn has started it
            self._disarm()
        elif waiting and self._head_timer is None and not self.transport.is_closing():
            self._head_timer = self.loop.call_later(self.config.header_timeout, self._head_timed_out)

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self._disarm()
        super().connection_lost(exc)  # type: ignore[misc]

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing() and (self.cycle is None or self.cycle.response_complete):
            self.transport.write(_timeout_answer(self.config.header_timeout))
            self.transport.close()


class H11HeadDeadline(_HeadDeadline, H11Protocol):
    """uvicorn's h11 protocol with the head deadline."""


if HttpToolsProtocol is not None:
    class HttpToolsHeadDeadline(_HeadDeadline, HttpToolsProtocol):
        """uvicorn's httptools protocol with the head deadline."""
else:
    HttpToolsHeadDeadline = None  # type: ignore[assignment,misc]


def protocol_class(name: str) -> type[asyncio.Protocol]:
    """"h11" or "httptools" -> the protocol class; ``ValueError`` if httptools is asked for but missing."""
    if name == "h11":
        return H11HeadDeadline
    if name == "httptools":
        if HttpToolsHeadDeadline is None:
            raise ValueError("--http httptools needs httptools: pip install httptools")
        return HttpToolsHeadDeadline
    raise ValueError(f"unknown HTTP implementation {name!r}; use h11 or httptools")
