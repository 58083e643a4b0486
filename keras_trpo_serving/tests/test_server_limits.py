"""Connections under stress, with real sockets on 127.0.0.1: bursts, the concurrency limit, silent
and slow senders (which must not starve real clients), timeouts, shutdown.

The connection handling is uvicorn's; these tests check the settings we give it and the head
deadline we add (keras_trpo_serving/protocol.py)."""
import contextlib
import http.client
import json
import socket
import statistics
import threading
import time

import numpy as np
import pytest

from keras_trpo_serving import OnnxPolicy
from keras_trpo_serving.server import PolicyServer, make_server
from keras_trpo_serving.tests.conftest import fixture_path
from keras_trpo_serving.tests.test_server import request, running

OBS = np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32) * 3  # one distinct row per client


@pytest.fixture(scope="module")
def policy():
    return OnnxPolicy(fixture_path("gaussian"), seed=0)


def _burst(srv: PolicyServer, clients: int) -> list:
    """``clients`` threads, released together, each opening a new connection for one request.
    Returns (row, status, body) or (row, exception name, None) per client."""
    barrier = threading.Barrier(clients)
    results = [None] * clients

    def one(i):
        barrier.wait()
        try:
            conn = http.client.HTTPConnection(*srv.server_address[:2], timeout=30)
            conn.request("POST", "/v1/act", body=json.dumps({"obs": OBS[i].tolist()}),
                         headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            results[i] = (i, resp.status, resp.read())
            conn.close()
        except (OSError, http.client.HTTPException) as e:  # ConnectionResetError was the old symptom
            results[i] = (i, type(e).__name__, None)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def test_a_burst_of_one_request_connections_gets_answers_not_resets(policy):
    # socketserver's listen backlog of 5 reset ~45% of these (572 of 1280 in 20 rounds of 64).
    with running(make_server(policy, "127.0.0.1", 0)) as srv:
        expected = policy.act(OBS)
        for _ in range(3):
            results = _burst(srv, 64)
            assert [(i, s) for i, s, _ in results if s != 200] == []
            for i, _, body in results:
                np.testing.assert_array_equal(json.loads(body)["action"], expected[i].tolist())


def test_beyond_max_concurrency_clients_get_503_at_once_not_a_reset(policy):
    with running(make_server(policy, "127.0.0.1", 0, max_concurrency=4)) as srv:
        results = _burst(srv, 64)
        statuses = [s for _, s, _ in results]
        # uvicorn counts open connections: when all 64 are open before the first request is read (a loaded
        # machine), every one of them may get the 503; what must never happen is a reset or a hang.
        assert set(statuses) <= {200, 503}, statuses
        for i in range(3):  # and the server keeps serving
            status, body = request(srv, "POST", "/v1/act", {"obs": OBS[i].tolist()})
            assert status == 200 and body["action"] == policy.act(OBS[i]).tolist()


def _open_silent(srv: PolicyServer, n: int, held: contextlib.ExitStack) -> list[socket.socket]:
    """Connect and send nothing: what a flood of idle sockets looks like. Closed with ``held``."""
    return [held.enter_context(socket.create_connection(srv.server_address[:2], timeout=10)) for _ in range(n)]


def _closed_by_server(sock: socket.socket, wait: float) -> bool:
    sock.settimeout(wait)
    try:
        while chunk := sock.recv(65536):  # an answer (a 408) may come first
            del chunk
        return True
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def _until(condition, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _connections(srv: PolicyServer) -> int:
    return len(srv.server.server_state.connections)


def test_silent_sockets_take_no_thread_and_normal_clients_keep_being_served(policy):
    with running(make_server(policy, "127.0.0.1", 0)) as srv, contextlib.ExitStack() as held:
        threads_before = threading.active_count()
        silent = _open_silent(srv, 200, held)
        assert _until(lambda: _connections(srv) >= 200)
        assert threading.active_count() == threads_before  # one event loop watches them all
        for i in range(10):
            status, body = request(srv, "POST", "/v1/act", {"obs": OBS[i].tolist()})
            assert status == 200 and body["action"] == policy.act(OBS[i]).tolist()
        assert not any(_closed_by_server(s, 0.01) for s in silent)


def test_silent_and_idle_connections_are_closed_after_the_keep_alive_timeout(policy):
    with running(make_server(policy, "127.0.0.1", 0, keep_alive_timeout=0.3)) as srv, \
            contextlib.ExitStack() as held:
        conn = http.client.HTTPConnection(*srv.server_address[:2], timeout=10)
        assert request(srv, "GET", "/healthz", conn=conn)[0] == 200
        silent = _open_silent(srv, 1, held)[0]
        assert _closed_by_server(conn.sock, 5)  # kept alive, then idle for longer than 0.3 s
        assert _closed_by_server(silent, 5)  # never sent a byte
        conn.close()
        assert _until(lambda: _connections(srv) == 0, 5)


def test_a_head_that_trickles_gets_408_after_the_header_timeout(policy):
    with running(make_server(policy, "127.0.0.1", 0, header_timeout=0.3)) as srv, contextlib.ExitStack() as held:
        slow = _open_silent(srv, 1, held)[0]
        slow.sendall(b"POST /v1/act HTTP/1.1\r\nHost: x\r\n")
        slow.settimeout(5)
        answer = b"".join(iter(lambda: slow.recv(65536), b""))
        assert answer.startswith(b"HTTP/1.1 408") and b"--header-timeout" in answer, answer
        # a kept-alive client whose next request is slow to come is not cut by the head deadline
        conn = http.client.HTTPConnection(*srv.server_address[:2], timeout=10)
        assert request(srv, "GET", "/healthz", conn=conn)[0] == 200
        time.sleep(0.5)
        assert request(srv, "GET", "/healthz", conn=conn)[0] == 200
        conn.close()


SLOW_SENDERS = 150
BOUND_S = 0.1  # the acceptance bound for a real client's request
PROBES = 20


def _trickle(socks: list[socket.socket], stop: threading.Event, sent: list) -> None:
    """Send each socket its request head one byte at a time, round-robin, never finishing it."""
    head = b"POST /v1/act HTTP/1.1\r\nHost: x\r\nContent-Length: 18\r\nX-Pad: " + b"a" * 10_000
    i = 0
    while not stop.is_set() and i < len(head):
        for s in socks:
            s.send(head[i:i + 1])
        sent[0] += len(socks)
        i += 1
        time.sleep(0.002)


def _slow_sender_scenario(srv: PolicyServer) -> tuple[list[float], int]:
    """150 connections send their heads a byte at a time while a real client makes PROBES requests,
    each on a new connection. Returns the client's latencies (s) and the bytes the slow ones sent."""
    stop, sent = threading.Event(), [0]
    with contextlib.ExitStack() as held:
        socks = _open_silent(srv, SLOW_SENDERS, held)
        trickler = threading.Thread(target=_trickle, args=(socks, stop, sent), daemon=True)
        trickler.start()
        try:
            assert _until(lambda: _connections(srv) >= SLOW_SENDERS and sent[0] >= 5 * SLOW_SENDERS)
            latencies = []
            for i in range(PROBES):
                t = time.perf_counter()
                status, body = request(srv, "POST", "/v1/act", {"obs": OBS[i].tolist()})
                latencies.append(time.perf_counter() - t)
                assert status == 200
                time.sleep(0.01)
            assert trickler.is_alive() and _connections(srv) >= SLOW_SENDERS  # they were there all along
        finally:
            stop.set()
            trickler.join(10)
    return latencies, sent[0]


def test_slow_senders_do_not_starve_a_real_client(policy):
    """The issue's acceptance test: with 150 connections sending their headers byte by byte, a
    real client's request is answered within 100 ms (the thread-capped server took 3.6 s).

    Each probe is a whole request on a new connection, timed by the client. The machine is shared
    (2 cores, other jobs), so a probe can be late for reasons that have nothing to do with the
    server: the whole scenario may run up to 3 times, and the test passes when every probe of one
    run is within the bound. Starvation makes every run fail (the probes would wait seconds)."""
    runs = []
    with running(make_server(policy, "127.0.0.1", 0, header_timeout=60)) as srv:
        for _ in range(3):
            latencies, sent = _slow_sender_scenario(srv)
            runs.append((max(latencies), statistics.median(latencies), sent))
            if max(latencies) < BOUND_S:
                break
    print(f"slow senders: {SLOW_SENDERS}; runs (max s, median s, bytes trickled): {runs}")
    assert min(r[0] for r in runs) < BOUND_S, runs


def test_shutdown_closes_every_connection(policy):
    with contextlib.ExitStack() as held:
        with running(make_server(policy, "127.0.0.1", 0, graceful_timeout=2)) as srv:
            silent = _open_silent(srv, 3, held)
            kept = http.client.HTTPConnection(*srv.server_address[:2], timeout=10)
            assert request(srv, "GET", "/healthz", conn=kept)[0] == 200
            assert _until(lambda: _connections(srv) == 4)
        # not left to the 60 s keep-alive timeout
        assert all(_closed_by_server(s, 5) for s in silent) and _closed_by_server(kept.sock, 5)
        kept.close()


def test_connections_have_nagle_off(policy):
    # Without TCP_NODELAY uvicorn's two writes per answer waited for the client's delayed ACK: 44 ms each.
    with running(make_server(policy, "127.0.0.1", 0)) as srv:
        assert srv.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        conn = http.client.HTTPConnection(*srv.server_address[:2], timeout=10)
        assert request(srv, "GET", "/healthz", conn=conn)[0] == 200
        assert _until(lambda: _connections(srv) == 1)
        (connection,) = srv.server.server_state.connections
        accepted = connection.transport.get_extra_info("socket")
        assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        conn.close()
