"""The HTTP server's settings, as one dataclass (standard library only, so the CLI can show the
defaults without the http extra installed)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

from keras_trpo_serving.auth import check_token


@dataclass(frozen=True)
class AppLimits:
    """What the application itself enforces (the connection limits are uvicorn's)."""

    max_body_bytes: int
    body_timeout: float
    batch_max: int = 0  # 0 or 1: no batching
    batch_wait_us: int = 0


@dataclass(frozen=True)
class ServerSettings:
    """Every setting of ``python -m keras_trpo_serving http`` (the CLI flag is the name with dashes)."""

    host: str = "127.0.0.1"
    port: int = 8000
    max_body_bytes: int = 1 << 20  # 1 MiB: ~25k float observations, far more than a control loop sends
    body_timeout: float = 30.0  # a body must arrive within this (408 after)
    header_timeout: float = 10.0  # a request's head must arrive within this of its first byte (408 after)
    keep_alive_timeout: float = 60.0  # an idle connection (kept alive, or never used) is closed after this
    max_concurrency: int = 1000  # open connections (or requests in progress) beyond which uvicorn answers 503
    backlog: int = 2048  # listen queue; Linux caps it at net.core.somaxconn
    max_header_bytes: int = 16384  # request line + headers (h11); larger heads get 400
    http: str = "h11"  # uvicorn's HTTP parser: h11 (limits the head's size) or httptools (faster)
    workers: int = 1  # processes sharing the socket (CLI only)
    batch_max: int = 0  # >1: gather up to this many concurrent deterministic /v1/act requests into one call
    batch_wait_us: int = 500  # ... waiting at most this long after the first
    graceful_timeout: float = 10.0  # on shutdown, requests in progress get this long to finish
    access_log: bool = False
    token: Optional[str] = field(default=None, repr=False)  # never printed

    def __post_init__(self) -> None:
        positive = {"max_body_bytes": self.max_body_bytes, "body_timeout": self.body_timeout,
                    "header_timeout": self.header_timeout, "keep_alive_timeout": self.keep_alive_timeout,
                    "graceful_timeout": self.graceful_timeout}
        for name, value in positive.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        counts = {"max_concurrency": (self.max_concurrency, 1), "backlog": (self.backlog, 1),
                  "max_header_bytes": (self.max_header_bytes, 256), "workers": (self.workers, 1),
                  "batch_max": (self.batch_max, 0), "batch_wait_us": (self.batch_wait_us, 0),
                  "port": (self.port, 0)}
        for name, (value, least) in counts.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
        if self.http not in ("h11", "httptools"):
            raise ValueError(f"http must be h11 or httptools, got {self.http!r}")
        if self.token is not None:
            check_token(self.token, "the token argument")

    def app_limits(self) -> AppLimits:
        return AppLimits(self.max_body_bytes, self.body_timeout, self.batch_max, self.batch_wait_us)

