"""The JSON body of POST /v1/act, parsed strictly: every problem is a ``BadRequest`` naming it.
Standard library only (and serving's errors)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Optional

from keras_trpo_serving.errors import InvalidActionMask, InvalidObservation, key_problems

_INT64_DIGITS = 18  # longer JSON integers are parsed as floats (beyond float32 anyway; no 4300-digit error)
BODY_KEYS = ("obs", "deterministic", "noise", "seed", "action_mask")
STATE_KEYS = ("state", "episode_start")  # a recurrent policy's request only
MAX_SEED = 2**53 - 1  # the largest integer every JSON client (JavaScript too) holds exactly


@dataclass(frozen=True)
class ActRequest:
    """A parsed POST /v1/act body. ``noise`` (nested lists, checked by the policy) or ``seed`` only
    with ``deterministic`` false, and not both: each request is answered on its own (stateless)."""

    obs: Any
    deterministic: bool = True
    noise: Any = None
    seed: Optional[int] = None
    state: Any = None  # a recurrent policy's state (nested lists, checked by the policy); None: zeros
    episode_start: Any = None  # a bool, or a list of bools for a batch
    action_mask: Any = None  # 0/1 or booleans (nested lists, checked by the policy); None: every action valid


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


def parse_act_body(raw: bytes, recurrent: bool = False) -> ActRequest:
    """A POST /v1/act body -> ``ActRequest``, or ``BadRequest`` (400) naming the problem.
    ``recurrent``: the policy takes ``state`` and ``episode_start`` (a feed-forward one refuses them).

    ``obs``, ``noise``, ``state`` and ``action_mask`` are still nested lists here; the policy checks their shapes
    and values (an ``action_mask`` that is not a list is ``InvalidActionMask``, 422 like every bad mask)."""
    try:
        body = json.loads(raw, parse_constant=_reject_constant, parse_int=_parse_int,
                          object_pairs_hook=_unique_keys)
    except RecursionError:
        raise BadRequest(HTTPStatus.BAD_REQUEST, "body nests arrays or objects too deeply to parse") from None
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise BadRequest(HTTPStatus.BAD_REQUEST, f"body is not valid JSON: {e}") from None
    if not isinstance(body, dict) or "obs" not in body:
        raise BadRequest(HTTPStatus.BAD_REQUEST, 'expected a JSON object {"obs": [...]}')
    keys = BODY_KEYS + STATE_KEYS if recurrent else BODY_KEYS
    unknown = sorted(set(body) - set(keys))
    if unknown:  # a misspelt "deterministic" would otherwise silently give the default
        why = "; this policy is feed-forward: it takes no state" if set(unknown) & set(STATE_KEYS) else ""
        raise BadRequest(HTTPStatus.BAD_REQUEST, f"unknown field(s) {unknown[:5]}; expected only {list(keys)}{why}")
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
    if "state" in body and not isinstance(body["state"], list):
        raise BadRequest(HTTPStatus.BAD_REQUEST, '"state" must be an array of numbers (one observation) or of '
                                                 f'arrays (a batch), got {json.dumps(body["state"])[:50]}')
    start = body.get("episode_start")
    if "episode_start" in body and not (isinstance(start, bool)
                                        or (isinstance(start, list) and all(isinstance(v, bool) for v in start))):
        raise BadRequest(HTTPStatus.BAD_REQUEST, '"episode_start" must be true, false or (for a batch) an array of '
                                                 f'them, got {json.dumps(start)[:50]}')
    if "action_mask" in body and not isinstance(body["action_mask"], list):  # 422, as every bad mask
        raise InvalidActionMask('"action_mask" must be an array of 0/1 or booleans (one observation) or of such '
                                f'arrays (a batch), got {json.dumps(body["action_mask"])[:50]}')
    return ActRequest(body["obs"], deterministic, body.get("noise"), seed, body.get("state"), start,
                      body.get("action_mask"))


def dict_columns(obs: Any, keys: tuple[str, ...]) -> Any:
    """A Dict policy's JSON observation as the policy takes it: one object stays as it is; a batch
    (a list of objects, one per observation) becomes one list per key. ``InvalidObservation``
    naming the row for a row that is not an object or has other keys."""
    if not isinstance(obs, list):
        return obs  # one observation (or not an object: the policy says what it expects)
    for i, row in enumerate(obs):
        if not isinstance(row, dict):
            kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(row), "a number")
            raise InvalidObservation(f"a Dict policy's batch is a list of objects with the keys {list(keys)}; "
                                     f"observation {i} is {kind}")
        if row.keys() != set(keys):
            raise InvalidObservation(f"observation {i} {key_problems(row, keys)}; expected exactly {list(keys)}")
    return {k: [row[k] for row in obs] for k in keys}


def _has_bool(obs: Any) -> bool:
    if isinstance(obs, bool):
        return True
    if isinstance(obs, dict):  # a Dict observation
        return any(_has_bool(v) for v in obs.values())
    if isinstance(obs, list):
        nested = obs and isinstance(obs[0], (list, dict))
        return any(_has_bool(v) for v in obs) if nested else any(type(v) is bool for v in obs)
    return False


def check_no_booleans(obs: Any, what: str = "observation") -> None:
    """``BadRequest`` (422) if ``obs`` holds true or false: JSON booleans are not numbers, though
    numpy would read them as 0 and 1 (and a Discrete policy would act on them)."""
    try:
        found = _has_bool(obs)
    except RecursionError:
        raise BadRequest(HTTPStatus.BAD_REQUEST, "body nests arrays or objects too deeply to parse") from None
    if found:
        raise BadRequest(HTTPStatus.UNPROCESSABLE_ENTITY, f"{what} contains true or false; expected numbers")
