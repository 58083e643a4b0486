"""Rollout backends: the same results on inline, process and Ray workers, and faults handled.

Process workers and Ray actors are real: worker processes started by the pool, and a local Ray
started by the ``local_ray`` fixture. Workers are killed with SIGKILL from the test.
"""
import functools
import logging
import os
import signal
import subprocess
import sys
import threading
import time

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import keras_trpo
from keras_trpo.config import ConfigError
from keras_trpo.plan import Dense, Normalizer, ObsInput, PolicyPlan
from keras_trpo.plan.numpy_policy import NumpyPolicy
from keras_trpo.rollouts.worker import Fragment, merge_fragments, split_envs
from keras_trpo.rollouts.workers import RolloutTimeoutError, RolloutWorkerError
from keras_trpo_serving.sampling import GaussianRule
from tests.goal_envs import PointGoalEnv
from tests.worker_envs import CountingEnv, RaisingEnv, SlowEnv, StallOnceEnv

TIMING = {"rollout_s", "update_s", "steps_per_s"}  # wall-clock metrics: the only ones allowed to differ


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray", reason="the ray backend tests need Ray: pip install 'ray>=2.60,<3'")
    from keras_trpo.rollouts.workers.ray_pool import ensure_ray

    started = not ray.is_initialized()
    ensure_ray(None, 2)
    yield ray
    if started:
        ray.shutdown()


def backend_kwargs(backend, workers, request):
    if backend == "ray":
        request.getfixturevalue("local_ray")
    return dict(rollout_backend=backend, rollout_workers=workers)


def train(env, backend, workers, request, iterations=3, **hp):
    agent = keras_trpo.TRPO(env, seed=5, **backend_kwargs(backend, workers, request), **hp)
    try:
        history = agent.fit(iterations * agent.config.n_envs * agent.config.n_steps, verbose=0).history
        return history, agent.get_weights(), agent.num_timesteps
    finally:
        agent.close()


# ----------------------------------------------------------------------------- same results everywhere
# Without XLA: what is compared is the workers' rollouts and their merge, not the update's kernels (XLA
# compiles cost ~2.5 s per agent, 11 agents here); bitcheck and test_agent cover the XLA update.
CASES = {
    "CartPole-v1": dict(n_envs=4, n_steps=128, jit_compile=False),
    # Dict observations (Box and Discrete keys, each normalised on its own), Gaussian actions, observation
    # normalisation and reward scaling, 20-step episodes truncated inside each rollout: packed through every
    # backend. (A Pendulum-v1 case added nothing beyond this one and CartPole-v1's registered id.)
    "PointGoal-Dict": dict(n_envs=4, n_steps=128, normalize_obs=True, normalize_reward=True, jit_compile=False),
    # A recurrent policy on Dict observations: each worker carries its envs' states across fragments (20-step
    # episodes straddle the 128-step rollouts) and resets them at episode starts, the truncations exercise the
    # recurrent critic's bootstrap, the packed keys go through each worker's NumPy plan before the cell;
    # sequences of 32 steps. (A PendulumNoVel-v1 case, ~32 s, added only flat observations, which the masked
    # recurrent case of test_masks carries through process workers.)
    "PointGoal-Dict-LSTM": dict(n_envs=4, n_steps=128, normalize_obs=True, recurrent="lstm", recurrent_units=8,
                                recurrent_sequence_length=32, value_epochs=2, jit_compile=False),
}
# Cases that are not registered ids: a picklable factory, so process workers and Ray actors can build them.
FACTORIES = {"PointGoal-Dict": functools.partial(PointGoalEnv, discrete_goal=True),
             "PointGoal-Dict-LSTM": functools.partial(PointGoalEnv, discrete_goal=True)}


@pytest.mark.timeout(600)
@pytest.mark.parametrize("env_id", list(CASES))
def test_history_and_weights_are_identical_on_every_backend_and_split(env_id, request):
    # The recurrent case skips the in-process split (the split and merge code is the one the process and Ray
    # workers run; the recurrent case is the suite's slowest, ~35 s, and CI runs near its time limit).
    splits = [("inline", 1), ("process", 3), ("ray", 2)]
    if "recurrent" not in CASES[env_id]:
        splits.insert(1, ("inline", 2))
    runs = {(b, w): train(FACTORIES.get(env_id, env_id), b, w, request, **CASES[env_id]) for b, w in splits}
    ref_history, ref_weights, ref_steps = runs[("inline", 1)]
    assert ref_steps == 3 * 4 * 128 and len(ref_history["kl"]) == 3
    assert np.isfinite(ref_history["mean_return"][-1])  # episodes did finish, so episode statistics are compared
    for key, (history, weights, steps) in runs.items():
        assert steps == ref_steps, key
        assert set(history) == set(ref_history), key
        for metric in set(ref_history) - TIMING:
            np.testing.assert_array_equal(history[metric], ref_history[metric], err_msg=f"{key}: {metric}")
        for got, want in zip(weights, ref_weights):
            np.testing.assert_array_equal(got, want, err_msg=str(key))


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 9), st.integers(1, 40), st.integers(0, 2**31 - 1))
def test_numpy_policy_rows_do_not_depend_on_the_batch(batch, width, seed):
    rng = np.random.default_rng(seed)
    var = rng.uniform(0.25, 4, 5).astype(np.float32)
    normalizer = Normalizer(rng.normal(size=5).astype(np.float32), var, 1e-8, 10.0, 1 / np.sqrt(var))
    layers = (Dense(rng.normal(size=(5, width)).astype(np.float32), rng.normal(size=width).astype(np.float32), "tanh", "d0"),
              Dense(rng.normal(size=(width, 7)).astype(np.float32), rng.normal(size=7).astype(np.float32), "relu", "d1"))
    head = Dense(rng.normal(size=(7, 3)).astype(np.float32), rng.normal(size=3).astype(np.float32), "linear", "policy_mean")
    plan = PolicyPlan((ObsInput("obs", 0, 5, normalizer=normalizer),), False, None, layers, head, "mean",
                      rng.normal(size=3).astype(np.float32), GaussianRule(-np.ones(3), np.ones(3), (3,)))
    policy = NumpyPolicy(plan)
    obs = rng.normal(size=(batch, 5)).astype(np.float32)
    together = policy(obs)["mean"]
    for i in range(batch):
        np.testing.assert_array_equal(policy(obs[i:i + 1])["mean"][0], together[i])


def test_split_envs_covers_every_env_once():
    assert split_envs(4, 1) == [(0, 4)]
    assert split_envs(4, 3) == [(0, 1), (1, 1), (2, 2)]
    assert split_envs(64, 16)[-1] == (60, 4)
    with pytest.raises(ValueError, match="cannot split 2 environments across 3"):
        split_envs(2, 3)


def fragment(first, m, T=3, episodes=()):
    z = np.zeros((T, m))
    return Fragment(first_env=first, obs=np.full((T, m, 1), first, np.float32), actions=z.astype(np.int32),
                    rewards=(z + first).astype(np.float32), terminated=z.astype(bool), episode_end=z.astype(bool),
                    truncated_index=np.zeros((0, 2), np.int64), truncated_obs=np.zeros((0, 1), np.float32),
                    last_obs=np.zeros((m, 1), np.float32), episodes=np.asarray(episodes, np.float64).reshape(-1, 4))


def test_merge_orders_envs_and_episodes_as_one_worker_would():
    # worker 1 (envs 2, 3) finished its episodes at steps 0 and 2, worker 0 at step 1
    parts = [fragment(2, 2, episodes=[(0, 3, 30.0, 5), (2, 2, 20.0, 9)]), fragment(0, 2, episodes=[(1, 0, 10.0, 4)])]
    r = merge_fragments(parts, 4)
    np.testing.assert_array_equal(r.obs[0, :, 0], [0, 0, 2, 2])
    assert r.episode_returns == [30.0, 10.0, 20.0] and r.episode_lengths == [5, 4, 9]
    with pytest.raises(ValueError, match="expected"):
        merge_fragments([fragment(0, 2), fragment(3, 1)], 3)


def test_worker_modules_do_not_import_tensorflow():
    code = ("import sys, keras_trpo.rollouts.workers.process, keras_trpo.rollouts.worker, "
            "keras_trpo.rollouts.workers.ray_pool, keras_trpo.rollouts.collector, keras_trpo.rollouts.buffer, "
            "keras_trpo.rollouts.episodes, keras_trpo.dict_obs; "
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=os.path.dirname(os.path.dirname(__file__)))


# ----------------------------------------------------------------------------- faults
def kill_when_stalled(marker, found):
    """Wait for the stalled env's marker, then SIGKILL its process (a worker or a Ray actor)."""
    deadline = time.time() + 120
    while not os.path.exists(marker) and time.time() < deadline:
        time.sleep(0.01)
    pid, env_index = map(int, open(marker).read().split())
    found.update(pid=pid, env=env_index)
    os.kill(pid, signal.SIGKILL)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("backend", ["process", "ray"])
def test_a_killed_worker_is_replaced_and_its_fragment_collected_again(backend, request, tmp_path, caplog):
    T, E = 40, 2
    marker = str(tmp_path / "stalled")
    kw = dict(seed=5, n_envs=E, n_steps=T, jit_compile=False, **backend_kwargs(backend, 2, request))
    agent = keras_trpo.TRPO(functools.partial(StallOnceEnv, marker, at=T + 20, base_seed=5), **kw)
    reference = keras_trpo.TRPO(CountingEnv, **{**kw, "rollout_backend": "inline", "rollout_workers": 1})
    np.testing.assert_array_equal(agent._collect(T).obs, reference._collect(T).obs)  # a first, normal rollout
    found = {}
    killer = threading.Thread(target=kill_when_stalled, args=(marker, found))
    killer.start()
    with caplog.at_level(logging.WARNING, logger="keras_trpo"):
        rollout = agent._collect(T)  # the second rollout; a worker is killed half-way through it
    killer.join()
    victim = found["env"]
    assert "died" in caplog.text and "replacement" in caplog.text
    if backend == "process":
        assert "killed by signal 9" in caplog.text
    expected = reference._collect(T)
    # the surviving worker's envs: exactly what they would have done without the fault
    survivor = 1 - victim
    np.testing.assert_array_equal(rollout.obs[:, survivor], expected.obs[:, survivor])
    np.testing.assert_array_equal(rollout.actions[:, survivor], expected.actions[:, survivor])
    # the victim's env: one whole fresh fragment from a new episode, nothing of the killed one
    assert rollout.obs.shape == (T, E, 3) and rollout.rewards.shape == (T, E)
    assert list(rollout.fresh_envs) == [victim]
    t, episode = 0, 0
    for step in range(T):
        np.testing.assert_array_equal(rollout.obs[step, victim], [t, episode % 2, 1.0])
        t += 1
        if t == (7 if episode % 2 else 11):
            assert rollout.episode_end[step, victim]
            t, episode = 0, episode + 1
        else:
            assert not rollout.episode_end[step, victim]
    # and training goes on, with step counts that add up
    history = agent.fit(2 * T * E, verbose=0).history
    assert agent.num_timesteps == 2 * T * E and history["timesteps"] == [T * E, 2.0 * T * E]
    assert all(np.isfinite(history["kl"]))
    agent.close()
    reference.close()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("backend", ["process", "ray"])
def test_an_env_error_in_a_worker_surfaces_with_its_message(backend, request):
    agent = keras_trpo.TRPO(functools.partial(RaisingEnv, 5, "sensor 3 disconnected"), seed=0, n_envs=2, n_steps=16,
                            **backend_kwargs(backend, 2, request))
    with pytest.raises(RolloutWorkerError, match="ValueError: sensor 3 disconnected") as info:
        agent.fit(64, verbose=0)
    assert "rollout worker" in str(info.value)
    agent.close()


def test_an_env_error_inline_is_the_env_s_own_exception():
    agent = keras_trpo.TRPO(functools.partial(RaisingEnv, 5, "sensor 3 disconnected"), seed=0, n_envs=2, n_steps=16)
    with pytest.raises(ValueError, match="sensor 3 disconnected"):
        agent.fit(64, verbose=0)
    agent.close()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("backend", ["process", "ray"])
def test_a_worker_that_does_not_answer_is_a_clear_error(backend, request):
    agent = keras_trpo.TRPO(functools.partial(SlowEnv, 5.0), seed=0, n_envs=2, n_steps=16, rollout_timeout=1.0,
                            **backend_kwargs(backend, 2, request))
    start = time.monotonic()
    with pytest.raises(RolloutTimeoutError, match=r"within 1 s \(the rollout_timeout setting\)"):
        agent.fit(64, verbose=0)
    assert time.monotonic() - start < 30
    agent.close()


def test_missing_ray_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` fail
    agent = keras_trpo.TRPO("CartPole-v1", seed=0, rollout_backend="ray", rollout_workers=2)
    with pytest.raises(ImportError, match=r"pip install 'ray"):
        agent.fit(2048, verbose=0)


def test_env_instances_stay_inline():
    agent = keras_trpo.TRPO(gym.make("CartPole-v1"), seed=0, rollout_backend="process")
    with pytest.raises(ConfigError, match="needs rollout_backend='inline'"):
        agent.fit(2048, verbose=0)


def test_settings_are_checked():
    with pytest.raises(ConfigError, match="rollout_backend must be one of"):
        keras_trpo.TRPO("CartPole-v1", rollout_backend="threads")
    with pytest.raises(ConfigError, match=r"rollout_workers \(3\) cannot exceed n_envs \(2\)"):
        keras_trpo.TRPO("CartPole-v1", n_envs=2, rollout_workers=3)
    with pytest.raises(ConfigError, match="rollout_timeout must be a positive"):
        keras_trpo.TRPO("CartPole-v1", rollout_timeout=0)


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_env_list_steps_exactly_as_gymnasiums_same_step_sync_vector_env(env_id):
    from keras_trpo.envs import EnvList, VectorEnvGroup, make_vec_env

    fast = EnvList([gym.make(env_id) for _ in range(3)])
    reference = VectorEnvGroup(make_vec_env(env_id, 3, "sync"))
    np.testing.assert_array_equal(np.stack(fast.reset([7, 8, 9])), reference.reset([7, 8, 9]))
    space = fast.envs[0].action_space
    space.seed(0)
    ended = 0
    for _ in range(600):
        actions = np.stack([space.sample() for _ in range(3)])
        a, b = fast.step(actions), reference.step(actions)
        np.testing.assert_array_equal(np.stack(a[0]), b[0])
        for x, y in zip(a[1:4], b[1:4]):
            np.testing.assert_array_equal(x, y)
        assert a[4].keys() == b[4].keys()
        for e in a[4]:
            np.testing.assert_array_equal(a[4][e], b[4][e])
        ended += len(a[4])
    assert ended >= 3  # resets were exercised
    fast.close()
    reference.close()
