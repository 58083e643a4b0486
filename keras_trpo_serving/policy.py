"""``ExportedPolicy``: what a keras-trpo policy does whatever runtime runs it (checks, ``act``,
``step``, ``reset``, sampling). NumPy only: the runtimes' classes are ``OnnxPolicy``
(keras_trpo_serving/onnx_policy.py), ``LiteRtPolicy`` (keras_trpo_serving/litert_policy.py) and ``CPolicy``
(keras_trpo_serving/c_policy.py).
"""
from __future__ import annotations

import threading
from typing import Any, Optional, Sequence

import numpy as np

from keras_trpo_serving.errors import InvalidActionMask, InvalidNoise, InvalidState, ModelLoadError, check_count, first_line
from keras_trpo_serving.observations import ObservationChecks, input_specs
from keras_trpo_serving.sampling import check_noise, draw_noise, parse_mask_metadata, parse_noise_metadata, rule_for
from keras_trpo_serving.spaces import ExportMetadata, Space
from keras_trpo_serving.state import STATE_IN, STATE_OUT, check_state, episode_starts

NOISE, SAMPLED_ACTION = "noise", "sampled_action"  # a stochastic export's input and output
ACTION_MASK = "action_mask"  # a masked export's input (float32 [B, mask_width], 1 = valid) and its metadata key
DEFAULT_WARMUP = 3
_F32 = np.dtype(np.float32)


class ExportedPolicy(ObservationChecks):
    """What a keras-trpo policy does whatever runtime runs it: input checks against the
    export's metadata, deterministic actions, actions sampled from the exported distribution,
    a recurrent policy's state.

    A subclass loads its file, calls ``_setup`` with the parsed metadata, sets ``_run`` (the
    runtime call: ``_run(output_names, feed)`` -> list of arrays, like onnxruntime's
    ``session.run``; ``feed`` maps input names to arrays: ``{"obs": x}``, one entry per key for
    a Dict observation, plus ``"noise"`` for a stochastic file, ``"state_in"`` for a recurrent
    one and ``"action_mask"`` for a masked one), ``_cast_action``, ``samples_in_graph``
    (``_check_noise_input``) and ``mask_width`` (``_check_mask_input``), then calls ``_probe`` and
    ``_warm_up``.

    A recurrent policy (``is_recurrent``) takes and returns a state of ``state_size`` floats per
    observation: ``step`` is stateless (the caller keeps the state, as sb3's ``predict``); ``act``
    keeps the policy's own state and ``reset`` zeros it.

    A masked policy (``mask_width`` not None: the file has an ``action_mask`` input) takes an optional
    ``action_mask`` in ``act``/``step``: 0/1 or booleans, ``[mask_width]`` for one observation or
    ``[B, mask_width]`` for a batch, in sb3-contrib's layout (``sampling_rule.mask_layout``); both the
    deterministic and the sampled action are then among the valid ones. Without a mask every action
    is valid (the file gets all ones, which gives exactly the unmasked policy's outputs).
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
        self._in_specs = input_specs(self._obs_spaces, self.obs_keys is not None)  # what check() uses
        self._action_dtype = self.action_space.dtype
        self._action_shape = self.action_space.shape
        # A runtime's int64 arrays may be C long long, whose scalars are not np.int64 instances.
        self._scalar_action = self.action_space.type == "Discrete"
        self._rng = np.random.default_rng(seed)
        self._rng_lock = threading.Lock()  # a Generator is not safe to share between threads
        self.sampling_rule = rule_for(meta.distribution, self.action_space)  # keras_trpo_serving/sampling.py
        self.noise_kind = self.sampling_rule.noise_kind  # "uniform" ([0, 1)) or "normal"
        self.noise_shape: tuple[int, ...] = (self.sampling_rule.noise_width,)  # per observation
        self.samples_in_graph = False  # the file has the "noise" input and "sampled_action" output
        self._noise_meta = meta.raw.get(NOISE)
        self.mask_width: Optional[int] = None  # entries of the file's action_mask input per observation (None: none)
        self._mask_meta = meta.raw.get(ACTION_MASK)
        self._ones1: Optional[np.ndarray] = None  # the all-valid mask of one observation, made once

    def __repr__(self) -> str:
        obs = (str(self.obs_shape) if self.obs_keys is None
               else "{" + ", ".join(f"{k}: {s.policy_input_shape}" for k, s in self._obs_spaces.items()) + "}")
        state = f", recurrent={self.recurrent}[{self.state_size}]" if self.is_recurrent else ""
        state += f", action_mask[{self.mask_width}]" if self.mask_width else ""
        return (f"{type(self).__name__}({self.path!r}, env={self.metadata.get('env_id') or '?'}, obs={obs}, "
                f"action={self.action_space.type}{list(self.action_space.shape)}, distribution={self.distribution}"
                f"{self._repr_extra()}{state})")

    def _repr_extra(self) -> str:
        """What a runtime adds to the repr after the distribution (``", quantization=int8"``)."""
        return ""

    def _graph_inputs(self) -> dict[str, tuple[int, ...]]:
        """The inputs the graph must have besides ``noise``, with their shapes after the batch axis."""
        shapes = {name: s.policy_input_shape for name, s in self._obs_spaces.items()}
        if self.is_recurrent:
            shapes[STATE_IN] = (self.state_size,)
        return shapes

    def _check_input_names(self, names: Sequence[str], outputs: set) -> None:
        """The graph's inputs (and ``state_out``) must be the ones the metadata implies (``noise`` and
        ``action_mask`` are checked by ``_check_noise_input`` and ``_check_mask_input``)."""
        have, want = set(names) - {NOISE, ACTION_MASK}, set(self._graph_inputs())
        if have != want:
            hint = ""
            if STATE_IN in have and not self.is_recurrent:
                hint = "; it has a 'state_in' input but its metadata says feed-forward (no recurrent/state_size)"
            elif STATE_IN in want and STATE_IN not in have:
                hint = f"; its metadata says recurrent={self.recurrent!r} but it has no 'state_in' input"
            raise ModelLoadError(f"{self.path!r} should have the inputs {sorted(want)} (a stochastic export also has "
                                 f"'noise', a masked one 'action_mask'), has {sorted(names)}{hint}: it was not exported by keras-trpo's export")
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
                                 "keras-trpo's export (python -m keras_trpo.export ... --stochastic)")
        if spec != want:
            raise ModelLoadError(f"{self.path!r} has a 'noise' input but its metadata says {spec}; a "
                                 f"{self.distribution} policy for this action space takes {want}")
        if SAMPLED_ACTION not in outputs:
            raise ModelLoadError(f"{self.path!r} has a 'noise' input but no 'sampled_action' output")
        self.samples_in_graph = True

    def _check_mask_input(self, width: Optional[int]) -> None:
        """A file with an ``action_mask`` input (``width`` entries per observation; ``-1`` if the graph
        leaves it open, None if it has no such input) must say so in its metadata, with this action
        space's width (``sampling_rule.mask_width``); a file whose metadata describes a mask must have
        the input. Then ``mask_width`` is set and ``act``/``step`` take ``action_mask``."""
        try:
            meta = parse_mask_metadata(self._mask_meta)
        except (ValueError, KeyError, TypeError) as e:
            raise ModelLoadError(f"{self.path!r}: metadata {ACTION_MASK!r} is not a mask description ({e})") from None
        if width is None:
            if meta is not None:
                raise ModelLoadError(f"{self.path!r}: its metadata describes an {ACTION_MASK!r} input of {meta} entries "
                                     "but the graph has no such input")
            return
        if meta is None:
            raise ModelLoadError(f"{self.path!r} has an {ACTION_MASK!r} input but no {ACTION_MASK!r} metadata: it was "
                                 "not written by keras-trpo's export")
        want = self.sampling_rule.mask_width
        if want is None:
            raise ModelLoadError(f"{self.path!r} has an {ACTION_MASK!r} input but {self.distribution} actions cannot be "
                                 "masked")
        if meta != want or width not in (-1, want):
            raise ModelLoadError(f"{self.path!r}: its {ACTION_MASK!r} input has {width} entries and its metadata says "
                                 f"{meta}; a {self.action_space.type} action space takes {want} "
                                 f"({self.sampling_rule.mask_layout})")
        self.mask_width = want
        self._ones1 = np.ones((1, want), _F32)

    def checked_mask(self, action_mask: Any, rows: int) -> Optional[np.ndarray]:
        """``action_mask`` for ``rows`` observations as the graph takes it: float32 ``[rows, mask_width]``
        of 0 and 1, or None (no mask: every action valid). ``InvalidActionMask`` naming the problem for
        a mask given to a policy without a mask input, or one of the wrong shape, with values other
        than 0/1 (NaN included), or with no valid action in a row, sub-space or bit
        (``SamplingRule.check_mask``, the one check)."""
        if action_mask is None:
            return None
        if self.mask_width is None:
            raise InvalidActionMask(f"this policy was exported without an {ACTION_MASK!r} input: it takes no action "
                                    "mask (export a masked agent, or send none)")
        return self.sampling_rule.check_mask(action_mask, rows).astype(_F32)

    def _feed(self, inputs: dict[str, np.ndarray], noise: Optional[np.ndarray] = None,
              state: Optional[np.ndarray] = None, mask: Optional[np.ndarray] = None) -> dict[str, np.ndarray]:
        """The graph's inputs: a stochastic file takes noise even for its deterministic outputs
        (which do not depend on it: zeros); a recurrent one its state; a masked one its mask (all
        ones, every action valid, if None)."""
        if not self.samples_in_graph and not self.is_recurrent and self.mask_width is None:
            return inputs
        feed = dict(inputs)
        rows = len(next(iter(inputs.values())))
        if self.mask_width is not None:
            feed[ACTION_MASK] = mask if mask is not None else (
                self._ones1 if rows == 1 else np.ones((rows, self.mask_width), _F32))
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
                                 f"{self.obs_shape if self.obs_keys is None else shapes}: {first_line(e)}") from None
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

    def one(self, actions: np.ndarray) -> Any:
        """The action ``act`` returns for one observation, from a batch of its actions (``[1, ...]``)."""
        return np.int64(actions[0]) if self._scalar_action else actions[0]

    # ------------------------------------------------------------------ acting
    def act(self, obs: Any, deterministic: bool = True, rng: Optional[np.random.Generator] = None,
            noise: Any = None, *, episode_start: Any = None, action_mask: Any = None) -> Any:
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
        for other files it is computed here from the distribution parameters (keras_trpo_serving/sampling.py).

        A recurrent policy's ``act`` is stateful: it feeds the policy's own state (zeros after
        ``reset`` or at the first call, sized to that call's batch) and keeps the new one;
        ``episode_start`` (a bool, or one per row) zeros those rows' state first. That state
        belongs to one control loop: threads sharing a policy should each keep their own state
        with ``step`` (as the HTTP server does). A feed-forward policy ignores ``episode_start``.

        ``action_mask`` (a masked policy only, ``mask_width`` not None): which actions are valid, 0/1
        or booleans, ``[mask_width]`` for one observation or ``[B, mask_width]`` for a batch, laid out
        as ``sampling_rule.mask_layout`` says (sb3-contrib's: one entry per action for Discrete, the
        sub-spaces' entries concatenated for MultiDiscrete, ``[may be 0, may be 1]`` per bit for
        MultiBinary). The action, deterministic or sampled, is then a valid one. None (the default)
        means every action is valid: a masked file fed no mask gives exactly its unmasked outputs.

        Raises:
          InvalidObservation: wrong shape, non-numeric dtype, out-of-range Discrete value, a
            Dict observation's missing or unknown key; ``NonFiniteObservation`` (a subclass) for
            NaN or inf; ``InvalidNoise`` (a subclass) for noise of the wrong shape or dtype, NaN,
            uniforms outside [0, 1), or noise or rng with ``deterministic=True``; ``InvalidState``
            (a subclass) for a batch of another size than the recurrent state's without ``reset``;
            ``InvalidActionMask`` (a subclass) for a mask given to a policy without a mask input, or
            of the wrong shape, with values other than 0/1, or with nothing valid in a row
            (a MultiDiscrete sub-space, a MultiBinary bit).
          TypeError: ``rng`` is not a ``numpy.random.Generator``.
        """
        if self._plain:  # feed-forward with one "obs" input: the common control loop, as short as it was
            x, single = self._array(obs, "obs")
            mask = None if action_mask is None else self.checked_mask(action_mask, len(x))
            if deterministic and noise is None and rng is None and len(x):  # _compute's first branch, inlined
                action = self._run(self._action_names, self._feed({"obs": x}, mask=mask))[0]
                if self._cast_action:
                    action = action.astype(self._action_dtype)
                return self.one(action) if single else action
            action, _ = self._compute({"obs": x}, len(x), deterministic, rng, noise, None, mask)
            return self.one(action) if single else action
        feed, rows, single = self._inputs(obs)
        mask = self.checked_mask(action_mask, rows)
        if not self.is_recurrent:
            action, _ = self._compute(feed, rows, deterministic, rng, noise, None, mask)
            return self.one(action) if single else action
        held = self._state
        if not rows:  # an empty batch: no state to use, and the held one (and its batch size) stays
            return self._compute(feed, rows, deterministic, rng, noise, None, mask)[0]
        if held is not None and len(held) != rows:
            raise InvalidState(f"this recurrent policy's state is for a batch of {len(held)} observation(s), this call "
                               f"has {rows}: call reset() before changing the batch size")
        state = held if held is not None else np.zeros((rows, self.state_size), _F32)
        starts = episode_starts(episode_start, rows, single)
        if starts is not None:
            state = state.copy()  # the runtimes never write into their inputs; this is the one place that would
            state[starts] = 0.0
        action, self._state = self._compute(feed, rows, deterministic, rng, noise, state, mask)
        return self.one(action) if single else action

    __call__ = act

    def step(self, obs: Any, state: Any = None, episode_start: Any = None, deterministic: bool = True,
             rng: Optional[np.random.Generator] = None, noise: Any = None, *,
             action_mask: Any = None) -> tuple[Any, Optional[np.ndarray]]:
        """``(action, new_state)`` for ``obs`` from ``state``: stateless, like sb3's
        ``predict(obs, state, episode_start)``; safe to call from several threads.

        ``state`` is float32 ``[S]`` or ``[1, S]`` for one observation (the new state comes back as
        ``[S]``), ``[B, S]`` for a batch; None means zeros (an episode start). ``episode_start`` (a
        bool, or one per row) zeros those rows first. ``deterministic``, ``rng``, ``noise`` and
        ``action_mask`` as in ``act``. A feed-forward policy returns ``(action, None)`` and refuses a state.

        Raises: as ``act``; ``InvalidState`` for a state of the wrong shape or dtype, NaN or inf, a
        state given to a feed-forward policy, or an ``episode_start`` that does not fit the batch.
        """
        feed, rows, single = self._inputs(obs)
        mask = self.checked_mask(action_mask, rows)
        if not self.is_recurrent:
            if state is not None:
                raise InvalidState("this policy is feed-forward: it takes no state (pass state=None)")
            action, _ = self._compute(feed, rows, deterministic, rng, noise, None, mask)
            return (self.one(action) if single else action), None
        s = self.checked_state(state, rows, single, episode_start)
        action, new = self._compute(feed, rows, deterministic, rng, noise, s, mask)
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
        check_count("batch", batch, 0)
        return np.zeros((batch, self.state_size), _F32)

    def reset(self) -> None:
        """Forget ``act``'s state: the next call starts from zeros (with any batch size). A no-op
        for a feed-forward policy."""
        self._state = None

    def _compute(self, feed: dict[str, np.ndarray], rows: int, deterministic: bool,
                 rng: Optional[np.random.Generator], noise: Any, state: Optional[np.ndarray],
                 mask: Optional[np.ndarray] = None) -> tuple[np.ndarray, Optional[np.ndarray]]:
        """The actions for checked inputs (``mask``: ``checked_mask``'s, or None), and the new state
        (None for a feed-forward policy)."""
        if deterministic:
            if noise is not None or rng is not None:
                raise InvalidNoise("noise and rng are for sampled actions: pass deterministic=False")
            if rows == 0:  # not every exported graph accepts an empty batch
                return self._empty()
            outs = self._run(self._det_run, self._feed(feed, None, state, mask))
            action = outs[0].astype(self._action_dtype) if self._cast_action else outs[0]
        else:
            z = self._noise(rows, rng, noise)
            if rows == 0:
                return self._empty()
            if self.samples_in_graph:
                outs = self._run(self._sample_run, self._feed(feed, z, state, mask))
                action = outs[0] if outs[0].dtype == self._action_dtype else outs[0].astype(self._action_dtype)
            else:
                # The rule applies the mask to the parameters whether or not the graph already has:
                # masking a masked logit again changes nothing.
                outs = self._run(self._param_run, self._feed(feed, None, state, mask))
                valid = None if mask is None else mask > 0.5
                action = self.sampling_rule.contract_action(dict(zip(self._param_names, outs)), z, valid)
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

    def distribution_params(self, obs: Any, state: Any = None, *, action_mask: Any = None) -> dict[str, np.ndarray]:
        """The exported distribution parameters for a batch (or one observation, with a batch axis
        of 1): ``{"logits": ...}`` or ``{"mean": ..., "log_std": ...}``; a recurrent policy's from
        ``state`` (as in ``step``; None: zeros); with ``action_mask`` (as in ``act``) the masked
        distribution's (``SamplingRule.masked_params``: invalid actions' logits ``MASKED_LOGIT``)."""
        feed, rows, single = self._inputs(obs)
        mask = self.checked_mask(action_mask, rows)
        if not self.is_recurrent:
            if state is not None:
                raise InvalidState("this policy is feed-forward: it takes no state (pass state=None)")
            outs = self._run(self._param_names, self._feed(feed, mask=mask))
        else:
            s = check_state(state, rows, self.state_size, single)
            outs = self._run(self._param_run, self._feed(feed, None, s, mask))
        params = dict(zip(self._param_names, outs))
        return params if mask is None else dict(self.sampling_rule.masked_params(params, mask > 0.5))
