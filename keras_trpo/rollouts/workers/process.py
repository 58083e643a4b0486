"""The ``process`` backend: one worker process per slice of the environments.

Workers are started as ``python -m keras_trpo.rollouts.workers.process FD`` (not ``multiprocessing``'s
spawn, which re-imports the user's ``__main__`` and with it TensorFlow), each connected to the
trainer by a private socket pair, so a worker imports only NumPy, gymnasium and the simulator.
Messages are pickled, which is safe here: both ends are this library, over a socket nobody else
holds. Workers run in their own session, so a Ctrl-C in the terminal reaches only the trainer,
and they exit when the trainer's end of the socket closes.
"""
from __future__ import annotations

import os
import pickle
import signal
import socket
import subprocess
import sys
import traceback
from multiprocessing.connection import Connection, wait
from typing import Any, Optional

from keras_trpo.plan.description import PolicyPlan
from keras_trpo.rollouts.worker import PolicySource
from keras_trpo.rollouts.workers.base import PoolSpec, RemotePool, RolloutTimeoutError, RolloutWorkerError


def _dumps(obj: Any) -> bytes:
    return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)


def _dumps_env(kwargs: dict) -> bytes:
    """The worker's arguments, or a clear error when the env factory cannot be sent."""
    try:
        return _dumps(("init", kwargs))
    except Exception as first:  # a lambda or closure: cloudpickle (Ray brings it) can send those by value
        try:
            import cloudpickle
        except ImportError:
            cloudpickle = None
        if cloudpickle is not None:
            try:
                return cloudpickle.dumps(("init", kwargs), protocol=pickle.HIGHEST_PROTOCOL)
            except Exception:
                pass
        raise TypeError(
            f"rollout_backend='process' sends the environment to worker processes, so env must be an env id or a "
            f"picklable factory (a module-level function or class); {kwargs['env']!r} is not "
            f"({type(first).__name__}: {first}). Install cloudpickle to send lambdas, or use rollout_backend='inline'."
        ) from first


def _worker_env() -> dict[str, str]:
    # The worker must import what the trainer can (keras_trpo from a checkout, the user's env module).
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p and os.path.isdir(p))
    return env


class ProcessPool(RemotePool):
    def __init__(self, spec: PoolSpec):
        n = spec.n_workers
        self._procs: list[Optional[subprocess.Popen]] = [None] * n
        self._conns: list[Optional[Connection]] = [None] * n
        super().__init__(spec)

    def _start(self, k: int, generation: int) -> None:
        init = _dumps_env(self.spec.worker_kwargs(k, generation))
        ours, theirs = socket.socketpair()
        try:
            self._procs[k] = subprocess.Popen(
                [sys.executable, "-m", "keras_trpo.rollouts.workers.process", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), env=_worker_env(), start_new_session=True, stdin=subprocess.DEVNULL)
        finally:
            theirs.close()
        self._conns[k] = Connection(ours.detach())
        self._conns[k].send_bytes(init)

    def _await_ready(self, k: int) -> None:
        conn = self._conns[k]
        if not conn.poll(self.spec.timeout):
            raise RolloutTimeoutError(f"{self.spec.describe(k)} did not start within {self.spec.timeout:g} s "
                                      "(the rollout_timeout setting)")
        try:
            status, value = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):
            raise RolloutWorkerError(f"{self.spec.describe(k)} exited while starting (exit code "
                                     f"{self._procs[k].wait()}); see its messages above") from None
        if status != "ready":
            raise RolloutWorkerError(f"{self.spec.describe(k)} could not start: {value}")

    def _broadcast(self, policy: PolicySource, n_steps: int) -> bytes:
        if not isinstance(policy, PolicyPlan):
            raise TypeError("rollout_backend='process' needs a policy the NumPy actor can run (a Dense torso); "
                            "use rollout_backend='inline' for this model")
        return _dumps(("collect", policy, n_steps))

    def _submit(self, k: int, payload: bytes) -> None:
        try:
            self._conns[k].send_bytes(payload)
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass  # the worker is dead; _wait reports it and it is replaced

    def _wait(self, pending: list[int], timeout: float) -> list[tuple[int, str, Any]]:
        by_conn = {self._conns[k]: k for k in pending}
        events = []
        for conn in wait(list(by_conn), timeout):
            k = by_conn[conn]
            try:
                status, value = pickle.loads(conn.recv_bytes())
            except (EOFError, OSError):
                code = self._procs[k].wait()
                how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
                events.append((k, "died", how))
                continue
            events.append((k, "ok" if status == "fragment" else "error", value))
        return events

    def _stop(self, k: int) -> None:
        proc, conn = self._procs[k], self._conns[k]
        if conn is not None:
            conn.close()
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        self._procs[k] = self._conns[k] = None

    def close(self) -> None:
        for k in range(len(self._procs)):
            self._stop(k)


def _serve(fd: int) -> None:
    """The worker process: build the envs, then answer ``collect`` messages until told to stop."""
    from keras_trpo.rollouts.worker import RolloutWorker

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the trainer decides when to stop
    conn = Connection(fd)

    def reply(status: str, value: Any) -> None:
        conn.send_bytes(_dumps((status, value)))  # raises OSError (BrokenPipe) if the trainer is gone

    def failure() -> str:
        exc = sys.exc_info()[1]
        return f"{type(exc).__name__}: {exc}\n--- worker traceback ---\n{traceback.format_exc()}"

    try:
        try:
            _, kwargs = pickle.loads(conn.recv_bytes())
            worker = RolloutWorker(**kwargs)
        except EOFError:
            return
        except Exception:
            reply("error", failure())
            return
        reply("ready", os.getpid())
        try:
            while True:
                message = pickle.loads(conn.recv_bytes())
                if message[0] != "collect":
                    return
                try:
                    fragment = worker.collect(message[1], message[2])
                except Exception:
                    reply("error", failure())
                    continue
                reply("fragment", fragment)
        finally:
            worker.close()
    except (EOFError, OSError):
        return  # the trainer is gone (stopped or killed): nothing to report to, exit quietly


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
