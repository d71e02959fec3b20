"""Issue 13: CORS for browser clients. RETOUCH_CORS_ORIGINS lists the origins whose pages may call the API:
their preflights are answered (before the key check: browsers send no key with them), their answers - errors
too - carry the CORS headers; any other origin gets no CORS header and a 400 to its preflight. By default no
origin is listed."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.conftest import LiveApp, make_settings

SHOP = "https://shop.example"
PREFLIGHT = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"}


def test_only_listed_origins(tmp_path: Path) -> None:
    app = LiveApp(make_settings(tmp_path, cors_origins=[SHOP], workers=1))
    try:
        url = f"{app.base}/v1/image/edit"
        allowed = httpx.options(url, headers={"Origin": SHOP, **PREFLIGHT})
        assert allowed.status_code == 200, allowed.text
        assert allowed.headers["access-control-allow-origin"] == SHOP
        assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
        refused = httpx.options(url, headers={"Origin": "https://evil.example", **PREFLIGHT})
        assert refused.status_code == 400 and "access-control-allow-origin" not in refused.headers
        # A real request from the listed origin: even its 401 is readable by the page, with the request id.
        answer = httpx.post(url, json={"input": "x"}, headers={"Origin": SHOP})
        assert answer.status_code == 401 and answer.headers["access-control-allow-origin"] == SHOP
        assert "x-request-id" in answer.headers["access-control-expose-headers"].lower()
        with app.client() as client:
            listed = client.get("/v1/storage/storages", headers={"Origin": "https://evil.example"})
        assert listed.status_code == 200 and "access-control-allow-origin" not in listed.headers
    finally:
        app.close()


def test_no_origin_by_default(live: LiveApp) -> None:
    answer = httpx.options(f"{live.base}/v1/image/edit", headers={"Origin": SHOP, **PREFLIGHT})
    assert "access-control-allow-origin" not in answer.headers and answer.status_code >= 400
