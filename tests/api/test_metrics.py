"""GET /metrics on a real server: the counts of the image worker processes reach the API's answer, the token,
the rate limit left alone, and the counters of the pool, the limiter, webhooks and model loads."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from retouch import metrics, models
from retouch.executors.pool import DeadlineExceeded, WorkerCrashed, WorkerPool
from tests.api.test_jobs import Receiver
from tests.conftest import ImageServer, LiveApp, make_settings

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
TOKEN = "scrape-me-9f2"


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def scrape(base: str, token: str | None = None) -> Samples:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = httpx.get(f"{base}/metrics", headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


def wait_for(check: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_a_sync_edit_in_a_worker_process_shows_in_the_api_metrics(live: LiveApp, image_server: ImageServer) -> None:
    before = scrape(live.base)
    body = {"input": image_server.url("coffee.jpg"), "operations": {"resizing": {"width": 200}}}
    with live.client() as client:
        response = client.post("/v1/image/edit", json=body)
    assert response.status_code == 200, response.text
    after = scrape(live.base)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    route = {"route": "/v1/image/edit", "method": "POST"}
    assert grew("retouch_http_requests_total", status="200", **route) == 1
    assert grew("retouch_http_request_duration_seconds_count", **route) == 1
    # Counted in the pool worker that ran the edit, a process other than this one (the API's):
    assert grew("retouch_images_edited_total", family="resizing", outcome="ok") >= 1
    for stage in ("fetch", "decode", "encode", "write"):
        assert grew("retouch_stage_duration_seconds_count", stage=stage) >= 1, stage
    assert grew("retouch_input_bytes_count") >= 1 and grew("retouch_output_bytes_sum") > 0
    folder = metrics.directory()
    assert folder is not None
    written = {path.stem.rsplit("_", 1)[-1] for path in folder.glob("*.db")}
    assert written & {str(pid) for pid in live.service.pool.pids()}, "no pool worker wrote its metrics"
    # What the executors hold right now, read at scrape time.
    assert ("retouch_queue_depth", frozenset({("executor", "local"), ("queue", "pool")})) in after
    assert ("retouch_in_flight", frozenset({("executor", "local"), ("queue", "store")})) in after


def test_a_rejected_input_is_counted_as_rejected(live: LiveApp, image_server: ImageServer) -> None:
    before = scrape(live.base)
    with live.client() as client:
        response = client.post("/v1/image/edit", json={"input": image_server.url("page.html"), "operations": {}})
    assert response.status_code in (400, 422), response.text
    after = scrape(live.base)
    labels = {"family": "none", "outcome": "rejected"}
    assert (
        value(after, "retouch_images_edited_total", **labels) - value(before, "retouch_images_edited_total", **labels)
        >= 1
    )
    status = str(response.status_code)
    name, route = "retouch_http_requests_total", {"route": "/v1/image/edit", "method": "POST", "status": status}
    assert value(after, name, **route) - value(before, name, **route) == 1


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    """An app with a metrics token, a tight rate limit and quick webhook retries."""
    settings = make_settings(
        tmp_path_factory.mktemp("metrics"),
        metrics_token=TOKEN,
        rate_limit_per_minute=0,
        rate_limit_per_second=3,
        rate_limit_burst=3,
        webhook_backoff_seconds=0.2,
        workers=1,
    )
    app = LiveApp(settings)
    yield app
    app.close()


def test_the_token_is_required_when_set(guarded: LiveApp) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        response = httpx.get(f"{guarded.base}/metrics", headers=headers)
        assert response.status_code == 401, headers
        error = response.json()
        assert error["error_type"] and error["error_code"] and "RETOUCH_METRICS_TOKEN" in error["error_message"]
        assert response.headers["www-authenticate"] == "Bearer"
    assert (
        "retouch_http_requests_total"
        in httpx.get(f"{guarded.base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).text
    )


def test_metrics_are_not_rate_limited_and_refusals_are_counted(guarded: LiveApp) -> None:
    before = scrape(guarded.base, TOKEN)
    for _ in range(10):  # over 3 per second: scrapes are never refused
        scrape(guarded.base, TOKEN)
    key = guarded.create_key("limited")
    with guarded.client(key) as client:
        statuses = [client.get("/v1/storage/storages").status_code for _ in range(8)]
    assert 429 in statuses
    after = scrape(guarded.base, TOKEN)
    refused = statuses.count(429)
    assert (
        value(after, "retouch_rate_limited_requests_total") - value(before, "retouch_rate_limited_requests_total")
        == refused
    )
    # Refused before routing, and still counted under the route's template.
    name, labels = "retouch_http_requests_total", {"route": "/v1/storage/storages", "method": "GET", "status": "429"}
    assert value(after, name, **labels) - value(before, name, **labels) == refused


def test_webhook_deliveries_by_outcome(guarded: LiveApp, image_server: ImageServer) -> None:
    before = scrape(guarded.base, TOKEN)
    receiver = Receiver(fail=1)  # the first delivery fails: one retry, then delivered
    try:
        with guarded.client() as client:
            assert client.put("/v1/webhook", json={"url": receiver.url, "events": ["success"]}).status_code == 200
            task = client.post("/v1/image/edit/async", json={"input": image_server.url("coffee.jpg"), "operations": {}})
            assert task.status_code == 200, task.text

        def grew(outcome: str) -> float:
            name = "retouch_webhook_deliveries_total"
            return value(scrape(guarded.base, TOKEN), name, outcome=outcome) - value(before, name, outcome=outcome)

        wait_for(lambda: grew("delivered") == 1)
        assert grew("retry") == 1
        time.sleep(1.1)  # the webhook's settings are refused under the same per-second budget
        with guarded.client() as client:
            client.delete("/v1/webhook")
    finally:
        receiver.close()


@pytest.fixture
def metrics_on(tmp_path: Path) -> None:
    if not metrics.enabled():  # this test alone: the apps of other tests would have turned them on
        metrics.setup(metrics.fresh_directory(tmp_path))


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


def _die() -> None:
    os._exit(3)  # a decoder crash: the process is gone without a word


def test_a_deadline_kill_and_a_crash_count_restarts(metrics_on: None) -> None:
    before = parse(metrics.render().decode())
    pool = WorkerPool(1, default_deadline=0.3)
    try:
        with pytest.raises(DeadlineExceeded):
            pool.submit(_sleep, 10).result(timeout=30)
        with pytest.raises(WorkerCrashed):
            pool.submit(_die, deadline=30).result(timeout=60)  # its own deadline: the new worker is starting
    finally:
        pool.shutdown()
    after = parse(metrics.render().decode())
    name = "retouch_worker_restarts_total"
    for reason in ("deadline", "crash"):
        assert value(after, name, reason=reason) - value(before, name, reason=reason) == 1, reason


def test_a_model_load_is_timed(metrics_on: None) -> None:
    before = parse(metrics.render().decode())
    models.cached("test-model:/some/path", lambda: time.sleep(0.01))
    after = parse(metrics.render().decode())
    name = "retouch_model_load_duration_seconds_count"
    assert value(after, name, model="test-model") - value(before, name, model="test-model") == 1
    assert value(after, "retouch_model_load_duration_seconds_sum", model="test-model") >= 0.01


def test_the_dashboard_asks_only_for_metrics_that_exist(metrics_on: None) -> None:
    dashboard = json.loads((Path(__file__).parents[2] / "deploy" / "grafana-retouch.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    asked = {re.sub(r"_(bucket|sum|count|total)$", "", name) for e in exprs for name in re.findall(r"retouch_\w+", e)}
    defined = {family.name for metric in metrics.definitions() for family in metric.describe()}
    assert asked <= defined | {"retouch_queue_depth", "retouch_in_flight"}, asked - defined
    assert len(dashboard["panels"]) >= 12 and len(asked) >= 10


def test_a_client_cannot_invent_label_values(live: LiveApp) -> None:
    before = scrape(live.base)
    with httpx.Client(base_url=live.base) as client:
        assert client.get("/no/such/path/4711").status_code == 404
    after = scrape(live.base)
    labels = {value for (name, pairs) in after for _, value in pairs if name == "retouch_http_requests_total"}
    assert "/no/such/path/4711" not in labels
    unmatched = {"route": "unmatched", "method": "GET", "status": "404"}
    name = "retouch_http_requests_total"
    assert value(after, name, **unmatched) - value(before, name, **unmatched) == 1
