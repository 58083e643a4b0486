"""The JSON body of POST /v1/act, parsed strictly: every problem is a ``BadRequest`` naming it.
Standard library only."""
from __future__ import annotations

import json
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Optional

_INT64_DIGITS = 18  # longer JSON integers are parsed as floats (beyond float32 anyway; no 4300-digit error)
BODY_KEYS = ("obs", "deterministic", "noise", "seed")
MAX_SEED = 2**53 - 1  # the largest integer every JSON client (JavaScript too) holds exactly


@dataclass(frozen=True)
class ActRequest:
    """A parsed POST /v1/act body. ``noise`` (nested lists, checked by the policy) or ``seed`` only
    with ``deterministic`` false, and not both: each request is answered on its own (stateless)."""

    obs: Any
    deterministic: bool = True
    noise: Any = None
    seed: Optional[int] = None


class BadRequest(Exception):
    """A request answered with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str, headers: Optional[dict[str, str]] = None):
        super().__init__(message)
        self.status, self.message, self.headers = int(status), message, headers or {}


def _reject_constant(name: str) -> Any:
    # NaN / Infinity are not JSON (RFC 8259), though Python's json would accept them.
    raise BadRequest(HTTPStatus.BAD_REQUEST, f"body contains {name}; observations must be finite numbers")


def _parse_int(digits: str) -> Any:
    # int() refuses over 4300 digits (a ValueError deep in json); a float keeps the value's
    # magnitude and a huge one becomes inf, which act() reports as out of float32's range.
    return int(digits) if len(digits) <= _INT64_DIGITS else float(digits)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    # {"obs": A, "obs": B} would silently mean B; ambiguous input is refused instead.
    body = dict(pairs)
    if len(body) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise BadRequest(HTTPStatus.BAD_REQUEST, f"body has the key {dup!r} twice")
    return body


def parse_act_body(raw: bytes) -> ActRequest:
    """A POST /v1/act body -> ``ActRequest``, or ``BadRequest`` (400) naming the problem.

    ``obs`` and ``noise`` are still nested lists here; the policy checks their shapes and values."""
    try:
        body = json.loads(raw, parse_constant=_reject_constant, parse_int=_parse_int,
                          object_pairs_hook=_unique_keys)
    except RecursionError:
        raise BadRequest(HTTPStatus.BAD_REQUEST, "body nests arrays or objects too deeply to parse") from None
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise BadRequest(HTTPStatus.BAD_REQUEST, f"body is not valid JSON: {e}") from None
    if not isinstance(body, dict) or "obs" not in body:
        raise BadRequest(HTTPStatus.BAD_REQUEST, 'expected a JSON object {"obs": [...]}')
    unknown = sorted(set(body) - set(BODY_KEYS))
    if unknown:  # a misspelt "deterministic" would otherwise silently give the default
        raise BadRequest(HTTPStatus.BAD_REQUEST, f"unknown field(s) {unknown[:5]}; expected only {list(BODY_KEYS)}")
    sampled = "noise" in body or "seed" in body
    deterministic = body.get("deterministic", not sampled)  # noise or seed alone asks for a sampled action
    if not isinstance(deterministic, bool):
        raise BadRequest(HTTPStatus.BAD_REQUEST, '"deterministic" must be true or false')
    if sampled and deterministic:
        raise BadRequest(HTTPStatus.BAD_REQUEST, '"noise" and "seed" are for sampled actions: '
                                                 'drop them or send "deterministic": false')
    if "noise" in body and "seed" in body:
        raise BadRequest(HTTPStatus.BAD_REQUEST, 'send "noise" or "seed", not both')
    seed = body.get("seed")
    if type(seed) is float and seed.is_integer() and abs(seed) <= MAX_SEED:  # 7.0 is an integer in JSON Schema
        seed = int(seed)
    if seed is not None and (type(seed) is not int or not 0 <= seed <= MAX_SEED):
        raise BadRequest(HTTPStatus.BAD_REQUEST, f'"seed" must be an integer from 0 to {MAX_SEED}, got {seed!r}'[:200])
    if "seed" in body and seed is None:
        raise BadRequest(HTTPStatus.BAD_REQUEST, f'"seed" must be an integer from 0 to {MAX_SEED}, got null')
    if "noise" in body and body["noise"] is None:
        raise BadRequest(HTTPStatus.BAD_REQUEST, '"noise" must be an array of numbers, got null')
    return ActRequest(body["obs"], deterministic, body.get("noise"), seed)


def _has_bool(obs: Any) -> bool:
    if isinstance(obs, bool):
        return True
    if isinstance(obs, list):
        return any(_has_bool(v) for v in obs) if obs and isinstance(obs[0], list) else any(type(v) is bool for v in obs)
    return False


def check_no_booleans(obs: Any) -> None:
    """``BadRequest`` (422) if ``obs`` holds true or false: JSON booleans are not numbers, though
    numpy would read them as 0 and 1 (and a Discrete policy would act on them)."""
    try:
        found = _has_bool(obs)
    except RecursionError:
        raise BadRequest(HTTPStatus.BAD_REQUEST, "body nests arrays or objects too deeply to parse") from None
    if found:
        raise BadRequest(HTTPStatus.UNPROCESSABLE_ENTITY, "observation contains true or false; expected numbers")
