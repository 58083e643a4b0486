"""GET /metrics: Prometheus text format, checked with prometheus_client's own parser."""
import http.client

import pytest
from prometheus_client.parser import text_string_to_metric_families

from keras_trpo_serving import OnnxPolicy
from keras_trpo_serving.tests.conftest import fixture_path
from keras_trpo_serving.tests.test_server import request, running
from keras_trpo_serving.server import make_server


def _scrape(srv) -> dict:
    conn = http.client.HTTPConnection(*srv.server_address[:2], timeout=10)
    conn.request("GET", "/metrics")
    resp = conn.getresponse()
    text = resp.read().decode()
    conn.close()
    assert resp.status == 200 and resp.getheader("Content-Type").startswith("text/plain")
    return {f.name: f for f in text_string_to_metric_families(text)}


def _value(family, name, **labels) -> float:
    return sum(s.value for s in family.samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


@pytest.mark.parametrize("batch_max", [0, 8])
def test_metrics_count_requests_latency_and_batches(batch_max):
    with running(make_server(OnnxPolicy(fixture_path("gaussian")), "127.0.0.1", 0, batch_max=batch_max)) as srv:
        for _ in range(3):
            assert request(srv, "POST", "/v1/act", {"obs": [1, 2, 3]})[0] == 200
        assert request(srv, "POST", "/v1/act", {"obs": [[1, 2, 3]] * 4})[0] == 200
        assert request(srv, "POST", "/v1/act", {"obs": [1, 2]})[0] == 422
        assert request(srv, "GET", "/nowhere")[0] == 404
        families = _scrape(srv)
    requests = families["serving_requests"]
    assert _value(requests, "serving_requests_total", route="/v1/act", status="200", method="POST") == 4
    assert _value(requests, "serving_requests_total", route="/v1/act", status="422") == 1
    assert _value(requests, "serving_requests_total", route="other", status="404") == 1  # paths are not labels
    latency = families["serving_request_duration_seconds"]
    assert latency.type == "histogram"
    assert _value(latency, "serving_request_duration_seconds_count", route="/v1/act") == 5
    assert _value(latency, "serving_request_duration_seconds_bucket", route="/v1/act", le="+Inf") == 5
    batches = families["serving_batch_requests"]
    assert _value(batches, "serving_batch_requests_sum") == 4  # the 422 never reached the policy
    assert _value(families["serving_batch_observations"], "serving_batch_observations_sum") == 7


def test_metrics_need_the_token_when_there_is_one():
    with running(make_server(OnnxPolicy(fixture_path("gaussian")), "127.0.0.1", 0, token="t0ken")) as srv:
        conn = http.client.HTTPConnection(*srv.server_address[:2], timeout=10)
        conn.request("GET", "/metrics")
        assert conn.getresponse().status == 401
        conn.close()
