"""A `retouch worker` has no HTTP API: it serves its own /metrics on RETOUCH_WORKER_METRICS_PORT, with the counts
of its image worker processes added up, behind the same token as the API's."""

from __future__ import annotations

import httpx

from tests.api.test_metrics import Samples, parse, value, wait_for
from tests.conftest import FIXTURES
from tests.servers.topology import CeleryTopology


def _scrape(port: int) -> Samples:
    headers = {"Authorization": f"Bearer {CeleryTopology.METRICS_TOKEN}"}
    response = httpx.get(f"http://127.0.0.1:{port}/metrics", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    return parse(response.text)


def _total(ports: list[int], name: str, **labels: str) -> float:
    """The sum over the workers (an item runs on either)."""
    return sum(value(_scrape(port), name, **labels) for port in ports)


def test_worker_metrics_count_the_items_it_edited(celery_topology: CeleryTopology) -> None:
    topology = celery_topology
    ports = topology.worker_metrics_ports
    try:
        wait_for(lambda: all(_reachable(port) for port in ports), timeout=60)
    except AssertionError:
        raise AssertionError(f"a worker does not serve /metrics:\n{topology.describe_workers()}") from None
    for port in ports:
        refused = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
        assert refused.status_code == 401 and refused.json()["error_code"], refused.text
        assert httpx.get(f"http://127.0.0.1:{port}/nothing", headers={}, timeout=10).status_code == 404
    ok = {"family": "adjustments", "outcome": "ok"}
    images = _total(ports, "retouch_images_edited_total", **ok)
    encodes = _total(ports, "retouch_stage_duration_seconds_count", stage="encode")
    folder = topology.add_local_storage("metered")
    topology.add_local_storage("metered-out")
    for index in range(3):
        (folder / f"m-{index}.jpg").write_bytes((FIXTURES / "coffee.jpg").read_bytes())
    with topology.client() as client:
        response = client.post(
            "/v1/image/edit/batch",
            json={
                "input": "storage://metered/",
                "operations": {"adjustments": {"exposure": 10}},
                "output": "storage://metered-out/",
            },
        )
    assert response.status_code == 200, response.text
    # Counted in the workers' image processes, read through each worker's own port.
    wait_for(lambda: _total(ports, "retouch_images_edited_total", **ok) - images == 3, timeout=120)
    assert _total(ports, "retouch_stage_duration_seconds_count", stage="encode") - encodes >= 3
    depth = {("executor", "celery-worker"), ("queue", "pool")}
    assert ("retouch_queue_depth", frozenset(depth)) in _scrape(ports[0])


def _reachable(port: int) -> bool:
    try:
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
    except httpx.TransportError:
        return False
    return True
