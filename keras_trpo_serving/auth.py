"""Bearer tokens: where they come from, how they are checked, and the warning for a server
reachable beyond this machine without one. Standard library only."""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import os
import stat
from typing import Mapping, Optional

TOKEN_ENV = "KERAS_TRPO_SERVING_TOKEN"  # the bearer token when --token-file is not given
REALM = 'Bearer realm="keras-trpo"'
log = logging.getLogger("keras_trpo_serving.server")  # the name users filter on; unchanged since the stdlib server


def check_token(token: str, source: str) -> str:
    """``token`` if it can be sent in an ``Authorization: Bearer`` header; else ``ValueError``
    naming ``source`` (never the token)."""
    if not token:
        raise ValueError(f"the token from {source} is empty")
    if any(not 0x21 <= ord(c) <= 0x7E for c in token):
        raise ValueError(f"the token from {source} has spaces, control or non-ASCII characters; "
                         "use printable ASCII, e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'")
    return token


def load_token(token_file: Optional[str] = None,
               environ: Optional[Mapping[str, str]] = None) -> tuple[Optional[str], Optional[str]]:
    """The bearer token and where it came from: ``token_file`` (its first line), else the
    ``KERAS_TRPO_SERVING_TOKEN`` environment variable, else ``(None, None)``.

    Raises ``ValueError`` for an unreadable file or an unusable token. A file other users can
    read is used but logged as a warning."""
    environ = os.environ if environ is None else environ
    if token_file is not None:
        source = f"--token-file {token_file}"
        try:
            with open(token_file, encoding="utf-8") as f:
                token = f.readline().strip()
            mode = os.stat(token_file).st_mode
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"cannot read the token file {token_file}: {getattr(e, 'strerror', None) or e}") from None
        if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warning("token file %s is readable by other users (mode %o); chmod 600 it", token_file,
                        stat.S_IMODE(mode))
        return check_token(token, source), source
    if environ.get(TOKEN_ENV) is not None:
        return check_token(environ[TOKEN_ENV].strip(), f"${TOKEN_ENV}"), f"${TOKEN_ENV}"
    return None, None


def token_digest(token: str | bytes) -> bytes:
    # Comparing fixed-length digests: compare_digest on the raw strings would leak the length.
    return hashlib.sha256(token.encode("latin-1", "replace") if isinstance(token, str) else token).digest()


def bearer_problem(authorization: Optional[bytes], expected: bytes) -> Optional[tuple[str, str]]:
    """None if ``authorization`` (the raw header) carries the token whose digest is ``expected``;
    else ``(error message, WWW-Authenticate value)`` for the 401 (RFC 6750). Constant time in the token."""
    scheme, _, given = (authorization or b"").strip().partition(b" ")
    given = given.strip()
    if scheme.lower() == b"bearer" and given:
        if hmac.compare_digest(token_digest(given), expected):
            return None
        return "wrong token", f'{REALM}, error="invalid_token"'  # the token is never echoed or logged
    return "this server needs an 'Authorization: Bearer <token>' header", REALM


def exposure_warning(host: str, token_set: bool) -> Optional[str]:
    """The warning to log when a server bound to the IP address ``host`` is reachable beyond
    this machine with no token, else None."""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:  # not an address: assume the worst
        loopback = False
    if token_set or loopback:
        return None
    return (f"serving on {host} without a token: anyone who can reach this address can query the policy. "
            f"Pass --token-file FILE or set {TOKEN_ENV} (clients then send 'Authorization: Bearer <token>'), "
            "or bind 127.0.0.1.")
