"""``OnnxPolicy``: an exported keras-trpo policy run by onnxruntime, nothing else."""
from __future__ import annotations

import os
import threading
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import onnxruntime as ort

from serving.errors import (InvalidNoise, InvalidObservation, InvalidState, ModelLoadError, NonFiniteObservation,
                            key_problems)
from serving.sampling import check_noise, draw_noise, noise_kind, noise_width, parse_noise_metadata, sample_from_params
from serving.spaces import ExportMetadata, Space, parse_metadata
from serving.state import STATE_IN, STATE_OUT, check_state, episode_starts

_F32 = np.dtype(np.float32)
NOISE, SAMPLED_ACTION = "noise", "sampled_action"  # a stochastic export's input and output
# Bytes 4-7 of an ORT-format model: the FlatBuffer file identifier onnxruntime writes.
ORT_FORMAT_IDENTIFIER = b"ORTM"
DEFAULT_WARMUP = 3
# onnxruntime's type strings for the outputs the export writes.
_ORT_DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(int64)": np.int64,
               "tensor(int32)": np.int32, "tensor(int8)": np.int8, "tensor(uint8)": np.uint8,
               "tensor(bool)": np.bool_, "tensor(float16)": np.float16}


def low_latency_options(threads: int = 1, allow_spinning: bool = False) -> ort.SessionOptions:
    """Session options for one small policy in a control loop on a small CPU.

    One intra-op thread and sequential execution: a few-layer MLP gains nothing from a thread
    pool, and handing work to pool threads costs more than the matmuls. No spinning: with
    ``threads > 1`` onnxruntime's pool threads otherwise busy-wait after each call, burning the
    cores the rest of the control loop needs between ticks (with one thread there is no pool
    and the setting changes nothing). All graph optimisations: fused nodes mean fewer kernel
    launches per call. Warnings are not logged (tf2onnx graphs trigger harmless "unused
    initializer" ones on every load).
    """
    _check_count("threads", threads, 1)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    spin = "1" if allow_spinning else "0"
    opts.add_session_config_entry("session.intra_op.allow_spinning", spin)
    opts.add_session_config_entry("session.inter_op.allow_spinning", spin)
    return opts


def _check_count(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def is_ort_format(path: str) -> bool:
    """Whether ``path`` holds an ORT-format model (a FlatBuffer with file identifier ``ORTM``)
    rather than an ONNX protobuf, whatever its name ends in."""
    with open(path, "rb") as f:
        head = f.read(8)
    return head[4:8] == ORT_FORMAT_IDENTIFIER


def _obs_text(policy: "ExportedPolicy") -> str:
    """The observation shape for a repr: ``(4,)``, or ``{key: shape}`` for a Dict."""
    if policy.obs_keys is None:
        return str(policy.obs_shape)
    return "{" + ", ".join(f"{k}: {s.policy_input_shape}" for k, s in policy._obs_spaces.items()) + "}"


def _state_text(policy: "ExportedPolicy") -> str:
    return f", recurrent={policy.recurrent}[{policy.state_size}]" if policy.is_recurrent else ""


def _first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0][:300]


class ExportedPolicy:
    """What a keras-trpo policy does whatever runtime runs it: input checks against the
    export's metadata, deterministic actions, actions sampled from the exported distribution,
    a recurrent policy's state.

    A subclass loads its file, calls ``_setup`` with the parsed metadata, sets ``_run`` (the
    runtime call: ``_run(output_names, feed)`` -> list of arrays, like onnxruntime's
    ``session.run``; ``feed`` maps input names to arrays: ``{"obs": x}``, one entry per key for
    a Dict observation, plus ``"noise"`` for a stochastic file and ``"state_in"`` for a
    recurrent one), ``_cast_action`` and ``samples_in_graph`` (``_check_noise_input``), then
    calls ``_probe`` and ``_warm_up``.

    A recurrent policy (``is_recurrent``) takes and returns a state of ``state_size`` floats per
    observation: ``step`` is stateless (the caller keeps the state, as sb3's ``predict``); ``act``
    keeps the policy's own state and ``reset`` zeros it.
    """

    def _setup(self, meta: ExportMetadata, seed: Optional[int]) -> None:
        """The spaces and everything ``act`` needs, resolved once from the parsed metadata:
        it runs at control-loop rates."""
        self.observation_space, self.action_space = meta.observation_space, meta.action_space
        self.distribution = meta.distribution
        self.metadata: dict[str, Any] = meta.as_dict()
        space = self.observation_space
        # A Dict observation is one graph input per key (sorted); obs_shape is then None.
        self.obs_keys: Optional[tuple[str, ...]] = tuple(space.spaces) if space.spaces is not None else None
        self._obs_spaces: dict[str, Space] = dict(space.spaces) if space.spaces is not None else {"obs": space}
        self.obs_shape: Optional[tuple[int, ...]] = None if self.obs_keys else space.policy_input_shape
        self.is_recurrent: bool = meta.state_size > 0
        self.recurrent: str = meta.recurrent  # "lstm", "gru" or ""
        self.state_size: int = meta.state_size
        self._plain = not self.is_recurrent and self.obs_keys is None
        self._state: Optional[np.ndarray] = None  # act's own state, [B, S]; None: zeros at the next call
        self._declared_inputs = [n for n in meta.raw.get("inputs", "").split(",") if n]
        self._param_names = list(meta.param_names)
        self._action_names = ["action"]
        # What each kind of call runs (with state_out for a recurrent file): built once, not per call.
        self._det_run, self._param_run = self._outputs(["action"]), self._outputs(self._param_names)
        self._sample_run = self._outputs([SAMPLED_ACTION])
        # Per observation input: (shape, Discrete space or None, the name errors use).
        self._in_specs = {name: (s.policy_input_shape, s if s.type == "Discrete" else None,
                                 "observation" if name == "obs" and self.obs_keys is None else f"observation {name!r}")
                          for name, s in self._obs_spaces.items()}
        self._action_dtype = self.action_space.dtype
        self._action_shape = self.action_space.shape
        # A runtime's int64 arrays may be C long long, whose scalars are not np.int64 instances.
        self._scalar_action = self.action_space.type == "Discrete"
        self._rng = np.random.default_rng(seed)
        self._rng_lock = threading.Lock()  # a Generator is not safe to share between threads
        self.noise_kind = noise_kind(meta.distribution)  # "uniform" ([0, 1)) or "normal"
        self.noise_shape: tuple[int, ...] = (noise_width(self.action_space),)  # per observation
        self.samples_in_graph = False  # the file has the "noise" input and "sampled_action" output
        self._noise_meta = meta.raw.get(NOISE)

    def _graph_inputs(self) -> dict[str, tuple[int, ...]]:
        """The inputs the graph must have besides ``noise``, with their shapes after the batch axis."""
        shapes = {name: s.policy_input_shape for name, s in self._obs_spaces.items()}
        if self.is_recurrent:
            shapes[STATE_IN] = (self.state_size,)
        return shapes

    def _check_input_names(self, names: Sequence[str], outputs: set) -> None:
        """The graph's inputs (and ``state_out``) must be the ones the metadata implies."""
        have, want = set(names) - {NOISE}, set(self._graph_inputs())
        if have != want:
            hint = ""
            if STATE_IN in have and not self.is_recurrent:
                hint = "; it has a 'state_in' input but its metadata says feed-forward (no recurrent/state_size)"
            elif STATE_IN in want and STATE_IN not in have:
                hint = f"; its metadata says recurrent={self.recurrent!r} but it has no 'state_in' input"
            raise ModelLoadError(f"{self.path!r} should have the inputs {sorted(want)} (a stochastic export also has "
                                 f"'noise'), has {sorted(names)}{hint}: it was not exported by keras-trpo's export")
        if self._declared_inputs and set(self._declared_inputs) != set(names):
            raise ModelLoadError(f"{self.path!r}: metadata inputs={','.join(self._declared_inputs)!r} but the graph's "
                                 f"inputs are {sorted(names)}")
        if self.is_recurrent and STATE_OUT not in outputs:
            raise ModelLoadError(f"{self.path!r} is recurrent but has no 'state_out' output (it has {sorted(outputs)})")

    def _check_noise_input(self, has_input: bool, outputs: set) -> None:
        """A file with a ``noise`` input must say so in its metadata, with this policy's noise, and
        have ``sampled_action``; then ``act(deterministic=False)`` samples in the graph."""
        if not has_input:
            return
        try:
            spec = parse_noise_metadata(self._noise_meta)
        except (ValueError, KeyError, TypeError) as e:
            raise ModelLoadError(f"{self.path!r}: metadata 'noise' is not a noise description ({e})") from None
        want = (self.noise_kind, self.noise_shape[0])
        if spec is None:
            raise ModelLoadError(f"{self.path!r} has a 'noise' input but no 'noise' metadata: it was not written by "
                                 "keras-trpo's export (python -m export ... --stochastic)")
        if spec != want:
            raise ModelLoadError(f"{self.path!r} has a 'noise' input but its metadata says {spec}; a "
                                 f"{self.distribution} policy for this action space takes {want}")
        if SAMPLED_ACTION not in outputs:
            raise ModelLoadError(f"{self.path!r} has a 'noise' input but no 'sampled_action' output")
        self.samples_in_graph = True

    def _feed(self, inputs: dict[str, np.ndarray], noise: Optional[np.ndarray] = None,
              state: Optional[np.ndarray] = None) -> dict[str, np.ndarray]:
        """The graph's inputs: a stochastic file takes noise even for its deterministic outputs
        (which do not depend on it: zeros); a recurrent one its state."""
        if not self.samples_in_graph and not self.is_recurrent:
            return inputs
        feed = dict(inputs)
        rows = len(next(iter(inputs.values())))
        if self.samples_in_graph:
            feed[NOISE] = noise if noise is not None else np.zeros((rows, *self.noise_shape), _F32)
        if self.is_recurrent:
            feed[STATE_IN] = state if state is not None else np.zeros((rows, self.state_size), _F32)
        return feed

    def _probe_input(self) -> dict[str, np.ndarray]:
        def fill(s: Space) -> float:
            return float(s.start) if s.type == "Discrete" else 0.0
        return {name: np.full((1, *s.policy_input_shape), fill(s), np.float32) for name, s in self._obs_spaces.items()}

    def _outputs(self, names: list[str]) -> list[str]:
        return names + [STATE_OUT] if self.state_size else names

    def _probe(self) -> None:
        """Run the graph once at load: a model that cannot run, or whose outputs have other
        sizes than the metadata implies, fails here with ModelLoadError rather than on the
        robot's first step."""
        x = self._probe_input()
        names = self._outputs(["action", *self._param_names] + ([SAMPLED_ACTION] if self.samples_in_graph else []))
        try:
            outs = dict(zip(names, self._run(names, self._feed(x))))
        except Exception as e:  # noqa: BLE001
            shapes = {k: v.shape[1:] for k, v in x.items()}
            raise ModelLoadError(f"{self.path!r} fails to run on one observation of shape "
                                 f"{self.obs_shape if self.obs_keys is None else shapes}: {_first_line(e)}") from None
        space = self.action_space
        want = {"action": (1, *space.shape)}
        if self.samples_in_graph:
            want[SAMPLED_ACTION] = (1, *space.shape)
        if self.is_recurrent:
            want[STATE_OUT] = (1, self.state_size)
        width = {"Discrete": space.n, "MultiDiscrete": int(np.sum(space.nvec)) if space.nvec is not None else 0,
                 "MultiBinary": space.n, "Box": int(np.prod(space.shape))}[space.type]
        want.update({name: (1, width) for name in self._param_names})
        for name, shape in want.items():
            got = outs[name].shape
            if got != shape and not (name in self._param_names and outs[name].size == int(np.prod(shape))):
                source = (f"the metadata's state_size {self.state_size}" if name == STATE_OUT
                          else f"the metadata's {space.type} action space")
                raise ModelLoadError(f"{self.path!r}: output {name!r} has shape {list(got)} for one observation; "
                                     f"{source} needs {list(shape)}")

    def _warm_up(self, calls: int) -> None:
        """Run exactly what ``act`` runs at batch 1, ``calls`` times per output set.

        The first run of a given set of outputs pays for onnxruntime's allocation planning:
        measured on a Hopper policy, ~300 us on a fresh session and ~2x the steady state after
        the all-outputs probe, against ~10 us once each set has run."""
        x = self._probe_input()
        for _ in range(calls):
            self._run(self._det_run, self._feed(x))
            self._run(self._param_run, self._feed(x))
            if self.samples_in_graph:
                self._run(self._sample_run, self._feed(x))

    # ------------------------------------------------------------------ checks
    def _array(self, obs: Any, name: str) -> tuple[np.ndarray, bool]:
        """Observation input ``name`` as a float32 ``[B, *shape]`` array, and whether it was a single
        observation; errors name it ("observation", or "observation 'key'" for a Dict entry)."""
        shape, space, what = self._in_specs[name]
        if isinstance(obs, np.ndarray):
            x = obs
        else:
            try:
                x = np.asarray(obs)
            except (ValueError, TypeError) as e:  # ragged nested lists
                raise InvalidObservation(f"{what} is not a rectangular array ({_first_line(e)}); "
                                         f"expected shape {shape} or (batch, *{shape})") from None
        if x.dtype != _F32:
            if x.dtype.kind not in "fiub":  # strings, objects, complex: no safe cast to float32
                raise InvalidObservation(f"{what} has dtype {x.dtype}; expected numbers "
                                         f"(cast to float32) of shape {shape}")
            x = x.astype(np.float32)
        if x.shape == shape:
            single = True
            x = x[None]
        elif x.ndim == len(shape) + 1 and x.shape[1:] == shape:
            single = False
        else:
            raise InvalidObservation(
                f"{what} has shape {x.shape}; expected {shape} for one observation "
                f"or (batch, {', '.join(map(str, shape))}) for a batch")
        # count_nonzero is a C loop; isfinite(x).all() goes through Python-level dispatch and
        # takes ~1.5x as long on the small arrays of a control loop.
        if np.count_nonzero(np.isfinite(x)) != x.size:
            raise NonFiniteObservation(f"{what} contains NaN or inf (or a value beyond float32's range); "
                                       f"expected finite numbers of shape {shape}")
        if space is not None:  # Discrete
            # The graph one-hot encodes the index: an out-of-range one would silently become zeros.
            lo, hi = int(space.start), int(space.start) + space.n - 1
            if x.size == 1:  # one index: plain floats, ~10x faster than three NumPy reductions
                v = float(x.flat[0])
                bad = v != int(v) or not lo <= v <= hi
            else:
                bad = x.size and (np.any(x != np.floor(x)) or x.min() < lo or x.max() > hi)
            if bad:
                raise InvalidObservation(f"Discrete {what} must be an integer in [{lo}, {hi}], got {x.ravel()[:8]}")
        return x, single

    def _inputs(self, obs: Any) -> tuple[dict[str, np.ndarray], int, bool]:
        """``obs`` checked: the graph's observation inputs, the number of rows, and whether it was one observation."""
        if self.obs_keys is None:
            x, single = self._array(obs, "obs")
            return {"obs": x}, len(x), single
        if not isinstance(obs, (dict, Mapping)):  # dict first: an ABC check costs more
            raise InvalidObservation(f"a Dict observation is a mapping of the keys {list(self.obs_keys)} to arrays, "
                                     f"got {type(obs).__name__}")
        if len(obs) != len(self.obs_keys) or not all(k in obs for k in self.obs_keys):
            raise InvalidObservation(f"Dict observation {key_problems(obs, self.obs_keys)}; expected exactly "
                                     f"{list(self.obs_keys)}")
        feed: dict[str, np.ndarray] = {}
        first = self.obs_keys[0]
        for key in self.obs_keys:
            feed[key], single = self._array(obs[key], key)
            if key == first:
                rows, one = len(feed[key]), single
            elif (single, len(feed[key])) != (one, rows):
                raise InvalidObservation(
                    f"observation {key!r} is {'one observation' if single else f'a batch of {len(feed[key])}'} "
                    f"but {first!r} is {'one observation' if one else f'a batch of {rows}'}")
        return feed, rows, one

    def check(self, obs: Any) -> tuple[Any, bool]:
        """``obs`` checked as ``act`` checks it: a float32 ``[B, *obs_shape]`` array (for a Dict
        observation, a dict of them, one per key), and whether it was one observation. Raises
        ``InvalidObservation`` (``NonFiniteObservation``) like ``act``. With ``one`` it splits
        ``act`` in two, for callers that compute several requests at once."""
        feed, _, single = self._inputs(obs)
        return (feed["obs"] if self.obs_keys is None else feed), single

    def one(self, actions: np.ndarray) -> Any:
        """The action ``act`` returns for one observation, from a batch of its actions (``[1, ...]``)."""
        return np.int64(actions[0]) if self._scalar_action else actions[0]

    # ------------------------------------------------------------------ acting
    def act(self, obs: Any, deterministic: bool = True, rng: Optional[np.random.Generator] = None,
            noise: Any = None, *, episode_start: Any = None) -> Any:
        """One observation -> one action; a batch ``[B, *obs_shape]`` -> ``[B, *action_shape]``.

        A Dict observation is a mapping of every key to its array (one observation: each
        entry's own shape, a Discrete entry's index a number; a batch: ``[B, ...]`` per key).

        Actions come in the dtype the env expects: ``np.int64`` for Discrete (a scalar for one
        observation, ``start`` included), int64 arrays for MultiDiscrete, int8 for
        MultiBinary, the Box's dtype (within its bounds) for Box.

        Deterministic actions are the graph's ``action`` output. With ``deterministic=False``
        the action is sampled from ``noise`` (float32 ``noise_shape`` per observation: uniforms
        in [0, 1) for categorical heads, standard normals for a Gaussian; ``[B, *noise_shape]``
        for a batch), drawn from ``rng`` (a ``numpy.random.Generator``) if not given, else from
        the policy's own generator (``seed=``). The same noise gives the agent's action for it
        on every format: a stochastic export computes it in the graph (``sampled_action``),
        for other files it is computed here from the distribution parameters (serving/sampling.py).

        A recurrent policy's ``act`` is stateful: it feeds the policy's own state (zeros after
        ``reset`` or at the first call, sized to that call's batch) and keeps the new one;
        ``episode_start`` (a bool, or one per row) zeros those rows' state first. That state
        belongs to one control loop: threads sharing a policy should each keep their own state
        with ``step`` (as the HTTP server does). A feed-forward policy ignores ``episode_start``.

        Raises:
          InvalidObservation: wrong shape, non-numeric dtype, out-of-range Discrete value, a
            Dict observation's missing or unknown key; ``NonFiniteObservation`` (a subclass) for
            NaN or inf; ``InvalidNoise`` (a subclass) for noise of the wrong shape or dtype, NaN,
            uniforms outside [0, 1), or noise or rng with ``deterministic=True``; ``InvalidState``
            (a subclass) for a batch of another size than the recurrent state's without ``reset``.
          TypeError: ``rng`` is not a ``numpy.random.Generator``.
        """
        if self._plain:  # feed-forward with one "obs" input: the common control loop, as short as it was
            x, single = self._array(obs, "obs")
            if deterministic and noise is None and rng is None and len(x):  # _compute's first branch, inlined
                action = self._run(self._action_names, self._feed({"obs": x}))[0]
                if self._cast_action:
                    action = action.astype(self._action_dtype)
                return self.one(action) if single else action
            action, _ = self._compute({"obs": x}, len(x), deterministic, rng, noise, None)
            return self.one(action) if single else action
        feed, rows, single = self._inputs(obs)
        if not self.is_recurrent:
            action, _ = self._compute(feed, rows, deterministic, rng, noise, None)
            return self.one(action) if single else action
        held = self._state
        if not rows:  # an empty batch: no state to use, and the held one (and its batch size) stays
            return self._compute(feed, rows, deterministic, rng, noise, None)[0]
        if held is not None and len(held) != rows:
            raise InvalidState(f"this recurrent policy's state is for a batch of {len(held)} observation(s), this call "
                               f"has {rows}: call reset() before changing the batch size")
        state = held if held is not None else np.zeros((rows, self.state_size), _F32)
        starts = episode_starts(episode_start, rows, single)
        if starts is not None:
            state = state.copy()  # the runtimes never write into their inputs; this is the one place that would
            state[starts] = 0.0
        action, self._state = self._compute(feed, rows, deterministic, rng, noise, state)
        return self.one(action) if single else action

    __call__ = act

    def step(self, obs: Any, state: Any = None, episode_start: Any = None, deterministic: bool = True,
             rng: Optional[np.random.Generator] = None, noise: Any = None) -> tuple[Any, Optional[np.ndarray]]:
        """``(action, new_state)`` for ``obs`` from ``state``: stateless, like sb3's
        ``predict(obs, state, episode_start)``; safe to call from several threads.

        ``state`` is float32 ``[S]`` or ``[1, S]`` for one observation (the new state comes back as
        ``[S]``), ``[B, S]`` for a batch; None means zeros (an episode start). ``episode_start`` (a
        bool, or one per row) zeros those rows first. ``deterministic``, ``rng`` and ``noise`` as
        in ``act``. A feed-forward policy returns ``(action, None)`` and refuses a state.

        Raises: as ``act``; ``InvalidState`` for a state of the wrong shape or dtype, NaN or inf, a
        state given to a feed-forward policy, or an ``episode_start`` that does not fit the batch.
        """
        feed, rows, single = self._inputs(obs)
        if not self.is_recurrent:
            if state is not None:
                raise InvalidState("this policy is feed-forward: it takes no state (pass state=None)")
            action, _ = self._compute(feed, rows, deterministic, rng, noise, None)
            return (self.one(action) if single else action), None
        s = self.checked_state(state, rows, single, episode_start)
        action, new = self._compute(feed, rows, deterministic, rng, noise, s)
        return (self.one(action), new[0]) if single else (action, new)

    def checked_state(self, state: Any, rows: int, single: bool, episode_start: Any = None) -> np.ndarray:
        """The state ``step`` feeds for ``rows`` observations (``single``: one observation, which
        takes ``[S]`` or ``[1, S]``): float32 ``[rows, S]``, zeros for None and for the rows
        ``episode_start`` marks (a new array). Raises ``InvalidState`` like ``step``."""
        s = check_state(state, rows, self.state_size, single)
        starts = episode_starts(episode_start, rows, single)
        if starts is not None:
            s[starts] = 0.0
        return s

    def initial_state(self, batch: int = 1) -> np.ndarray:
        """The state at an episode start: float32 zeros ``[batch, state_size]``."""
        _check_count("batch", batch, 0)
        return np.zeros((batch, self.state_size), _F32)

    def reset(self) -> None:
        """Forget ``act``'s state: the next call starts from zeros (with any batch size). A no-op
        for a feed-forward policy."""
        self._state = None

    def _compute(self, feed: dict[str, np.ndarray], rows: int, deterministic: bool,
                 rng: Optional[np.random.Generator], noise: Any,
                 state: Optional[np.ndarray]) -> tuple[np.ndarray, Optional[np.ndarray]]:
        """The actions for checked inputs, and the new state (None for a feed-forward policy)."""
        if deterministic:
            if noise is not None or rng is not None:
                raise InvalidNoise("noise and rng are for sampled actions: pass deterministic=False")
            if rows == 0:  # not every exported graph accepts an empty batch
                return self._empty()
            outs = self._run(self._det_run, self._feed(feed, None, state))
            action = outs[0].astype(self._action_dtype) if self._cast_action else outs[0]
        else:
            z = self._noise(rows, rng, noise)
            if rows == 0:
                return self._empty()
            if self.samples_in_graph:
                outs = self._run(self._sample_run, self._feed(feed, z, state))
                action = outs[0] if outs[0].dtype == self._action_dtype else outs[0].astype(self._action_dtype)
            else:
                outs = self._run(self._param_run, self._feed(feed, None, state))
                action = sample_from_params(self.distribution, self.action_space, outs[:len(self._param_names)], z)
        return action, (outs[-1] if self.is_recurrent else None)

    def _empty(self) -> tuple[np.ndarray, Optional[np.ndarray]]:
        state = np.zeros((0, self.state_size), _F32) if self.is_recurrent else None
        return np.zeros((0, *self._action_shape), self._action_dtype), state

    def _noise(self, rows: int, rng: Optional[np.random.Generator], noise: Any) -> np.ndarray:
        """The caller's noise checked, or noise drawn from ``rng`` or the policy's generator."""
        if noise is not None:
            if rng is not None:
                raise InvalidNoise("give noise or rng, not both")
            return check_noise(noise, rows, self.noise_shape[0], self.noise_kind)
        if rng is not None:
            if not isinstance(rng, np.random.Generator):
                raise TypeError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), got "
                                f"{type(rng).__name__}")
            return draw_noise(rng, self.noise_kind, rows, self.noise_shape[0])
        with self._rng_lock:
            return draw_noise(self._rng, self.noise_kind, rows, self.noise_shape[0])

    def distribution_params(self, obs: Any, state: Any = None) -> dict[str, np.ndarray]:
        """The exported distribution parameters for a batch (or one observation, with a batch axis
        of 1): ``{"logits": ...}`` or ``{"mean": ..., "log_std": ...}``; a recurrent policy's from
        ``state`` (as in ``step``; None: zeros)."""
        feed, rows, single = self._inputs(obs)
        if not self.is_recurrent:
            if state is not None:
                raise InvalidState("this policy is feed-forward: it takes no state (pass state=None)")
            return dict(zip(self._param_names, self._run(self._param_names, self._feed(feed))))
        s = check_state(state, rows, self.state_size, single)
        outs = self._run(self._param_run, self._feed(feed, None, s))
        return dict(zip(self._param_names, outs))


class OnnxPolicy(ExportedPolicy):
    """Load an exported policy, check inputs against its metadata, return actions.

    Args:
      path: an ``.onnx`` file or an ORT-format ``.ort`` file written by keras-trpo's export
        (an ORT-format file is recognised by its content, whatever its name ends in).
      seed: seeds the NumPy generator used by ``act(obs, deterministic=False)``.
      threads: onnxruntime intra-op threads (default 1; ignored if ``sess_options`` is given).
      allow_spinning: let onnxruntime's pool threads busy-wait for work (default False;
        ignored if ``sess_options`` is given). Only matters with ``threads > 1``.
      warmup: calls of each of ``act``'s two graph runs (deterministic action, distribution
        parameters) at batch 1 when loading, so the first real call runs at steady-state
        speed (default 3; 0 or False turns it off, True is 3). The load-time check below runs
        the graph once more regardless.
      sess_options: your own ``onnxruntime.SessionOptions`` instead of ``low_latency_options``.
      providers: onnxruntime execution providers (default ``["CPUExecutionProvider"]``).

    Raises:
      ModelLoadError: the file is missing, not a loadable ONNX or ORT-format model, or lacks
        the export's metadata, ``obs`` input or outputs.
      ValueError: ``threads`` below 1 or ``warmup`` below 0.

    ``act`` is safe to call from several threads at once (onnxruntime's ``run`` is
    thread-safe; the sampling generator is behind a lock), and so is ``step``; a recurrent
    policy's ``act`` keeps one state, one control loop's: other threads use ``step``.
    """

    def __init__(self, path: str | os.PathLike, *, seed: Optional[int] = None, threads: int = 1,
                 allow_spinning: bool = False, warmup: int = DEFAULT_WARMUP,
                 sess_options: Optional[ort.SessionOptions] = None, providers: Optional[Sequence[str]] = None):
        self.path = os.fspath(path)
        if isinstance(warmup, bool):
            warmup = DEFAULT_WARMUP if warmup else 0
        _check_count("warmup", warmup, 0)
        if not os.path.exists(self.path):
            raise ModelLoadError(f"no model file at {self.path!r}")
        if not os.path.isfile(self.path):
            raise ModelLoadError(f"{self.path!r} is not a file")
        try:
            self.format = "ort" if is_ort_format(self.path) else "onnx"
        except OSError as e:
            raise ModelLoadError(f"cannot read {self.path!r}: {e.strerror or e}") from None
        options = sess_options or low_latency_options(threads, allow_spinning)
        if self.format == "ort":
            # onnxruntime picks the ORT parser by the ".ort" suffix alone; say it for any name
            # (this sets the entry on your sess_options too, if you gave some).
            options.add_session_config_entry("session.load_model_format", "ORT")
        try:
            self.session = ort.InferenceSession(self.path, options,
                                                providers=list(providers or ["CPUExecutionProvider"]))
        except Exception as e:  # noqa: BLE001 - onnxruntime raises several opaque kinds
            kind = "ORT-format" if self.format == "ort" else "ONNX"
            raise ModelLoadError(f"{self.path!r} is not a loadable {kind} model: {_first_line(e)}") from None
        meta = parse_metadata(self.session.get_modelmeta().custom_metadata_map, self.path)
        self._setup(meta, seed)
        self._check_graph(meta.param_names)
        self._run = self.session.run
        action_out = next(o for o in self.session.get_outputs() if o.name == "action")
        # The export writes the space's dtype; cast only if a graph says otherwise.
        self._cast_action = _ORT_DTYPES.get(action_out.type) != self._action_dtype
        self._probe()
        self._warm_up(int(warmup))

    def _check_graph(self, param_names: Sequence[str]) -> None:
        """The graph must match the contract: float inputs shaped like the metadata says (``obs``,
        or one per Dict key; ``state_in`` for a recurrent policy), and ``action`` plus the
        distribution's parameters among the outputs (any order)."""
        inputs = self.session.get_inputs()
        names = sorted(i.name for i in inputs)
        outputs = {o.name for o in self.session.get_outputs()}
        self._check_input_names(names, outputs)
        for name, shape in self._graph_inputs().items():
            inp = next(i for i in inputs if i.name == name)
            if inp.type != "tensor(float)":
                raise ModelLoadError(f"{self.path!r}: input {name!r} is {inp.type}, expected tensor(float)")
            dims = list(inp.shape or [])
            expected = [None, *shape]
            # Symbolic dims (strings, None) match anything; fixed ones must agree with the metadata.
            if len(dims) != len(expected) or any(isinstance(d, int) and e is not None and d != e
                                                 for d, e in zip(dims, expected)):
                source = "state_size" if name == STATE_IN else "observation space"
                raise ModelLoadError(f"{self.path!r}: input {name!r} has shape {dims} but the metadata's {source} "
                                     f"needs [batch, {', '.join(map(str, shape))}]")
        needed = {"action", *param_names} - outputs
        if needed:
            raise ModelLoadError(f"{self.path!r} lacks outputs {sorted(needed)} for a {self.distribution} policy "
                                 f"(it has {sorted(outputs)})")
        noise = next((i for i in inputs if i.name == NOISE), None)
        dims = list(noise.shape or []) if noise is not None else []
        fixed_width = len(dims) == 2 and isinstance(dims[1], int)  # symbolic dims match anything
        if noise is not None and (noise.type != "tensor(float)" or len(dims) != 2
                                  or (fixed_width and dims[1] != self.noise_shape[0])):
            raise ModelLoadError(f"{self.path!r}: input 'noise' is {noise.type} {noise.shape}, expected float "
                                 f"[batch, {self.noise_shape[0]}]")
        self._check_noise_input(noise is not None, outputs)

    def __repr__(self) -> str:
        return (f"OnnxPolicy({self.path!r}, env={self.metadata.get('env_id') or '?'}, obs={_obs_text(self)}, "
                f"action={self.action_space.type}{list(self.action_space.shape)}, distribution={self.distribution}"
                f"{_state_text(self)})")
