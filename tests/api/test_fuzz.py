"""Fuzz the edit contract through real HTTP: every field x hostile values, on every route.

Each example takes a valid request, replaces one field (or adds one where the contract has none) with a hostile
value - wrong types, huge, negative, NaN/infinite numbers, odd and oversized strings, nested junk - and sends it to
the sync, upload, async and batch routes. No answer may be a 5xx; every 4xx is the contract's envelope; an
accepted async task must never end in an internal error.

The default run is bounded (``HYPOTHESIS_PROFILE=ci``, ~30-60 s); ``make fuzz`` runs the long profile.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import LiveApp, fixture_bytes, make_settings

settings.register_profile(
    "ci", max_examples=120, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
)
settings.register_profile("long", max_examples=3000, deadline=None, suppress_health_check=list(HealthCheck))
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

#: Every field of the edit contract, as a path into the request body.
FIELDS = [
    ("input",),
    ("operations",),
    ("operations", "resizing"),
    ("operations", "resizing", "width"),
    ("operations", "resizing", "height"),
    ("operations", "resizing", "fit"),
    ("operations", "resizing", "fit", "type"),
    ("operations", "resizing", "fit", "crop"),
    ("operations", "resizing", "fit", "outpaint_by"),
    ("operations", "resizing", "fit", "feathering"),
    ("operations", "adjustments"),
    ("operations", "adjustments", "hdr"),
    ("operations", "adjustments", "hdr", "intensity"),
    ("operations", "adjustments", "exposure"),
    ("operations", "adjustments", "saturation"),
    ("operations", "adjustments", "contrast"),
    ("operations", "adjustments", "sharpness"),
    ("operations", "background"),
    ("operations", "background", "color"),
    ("operations", "background", "remove"),
    ("operations", "background", "remove", "category"),
    ("operations", "background", "remove", "clipping"),
    ("operations", "background", "blur"),
    ("operations", "background", "blur", "type"),
    ("operations", "background", "blur", "level"),
    ("operations", "padding"),
    ("operations", "privacy"),
    ("operations", "privacy", "blur_car_plate"),
    ("operations", "privacy", "identity_crop"),
    ("operations", "restorations"),
    ("operations", "restorations", "upscale"),
    ("operations", "restorations", "decompress"),
    ("operations", "restorations", "polish"),
    ("operations", "generative", "style_transfer", "style_strength"),
    ("output",),
    ("output", "destination"),
    ("output", "format"),
    ("output", "format", "type"),
    ("output", "format", "quality"),
    ("output", "format", "progressive"),
    ("output", "format", "compression"),
    ("output", "format", "compression", "quality"),
    ("output", "metadata"),
    ("output", "metadata", "dpi"),
    ("output", "metadata", "color_space"),
    ("output", "metadata", "color_space", "color_profile"),
]

_NUMBERS = st.one_of(
    st.integers(min_value=-(10**400), max_value=10**400),
    st.sampled_from([0, -1, 1, 2**31, 2**63, 10**18, -(10**310), 10**310]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 1e-308, 1e308]),
)
_STRINGS = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "",
            " ",
            "auto",
            "9" * 400,
            "9" * 400 + "px",
            "1e400%",
            "1e-05%",
            "inf%",
            "nan%",
            "-5%",
            "0.00001%",
            "10000000000000000%",
            "١٢%",  # Arabic-Indic digits
            "²px",
            "12.5.5%",
            "10px 10px 10px",
            "storage://local/x\x00y.jpg",
            "storage://local/%00.jpg",
            "storage://local/../../etc/passwd",
            "storage:///a.jpg",
            "http://[::1]/a.jpg",
            "http://169.254.169.254/latest",
            "https://" + "a" * 5000 + ".com/x.jpg",
            "#" + "f" * 7,
            "\ud800",
            "x" * 20_000,
        ]
    ),
)
_HOSTILE = st.one_of(
    st.none(),
    st.booleans(),
    _NUMBERS,
    _STRINGS,
    st.lists(st.one_of(st.integers(), st.text(max_size=5)), max_size=4),
    st.dictionaries(st.text(max_size=8), st.one_of(st.integers(), st.text(max_size=5), st.none()), max_size=3),
)


def _put(body: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    """``body`` with ``value`` at ``path``, creating the objects on the way (replacing non-objects)."""
    out = json.loads(json.dumps(body))
    node = out
    for key in path[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[path[-1]] = value
    return out


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    live = LiveApp(make_settings(tmp_path_factory.mktemp("fuzz"), workers=2, max_input_megapixels=4))
    folder = live.add_local_storage("local")
    (folder / "a.png").write_bytes(fixture_bytes("tiny_1x1.png"))
    (folder / "b.jpg").write_bytes(fixture_bytes("gray.jpg"))
    yield live
    live.close()


BASE = {
    "input": "storage://local/b.jpg",
    "operations": {"resizing": {"width": 50}},
    "output": {"destination": "storage://local/out/", "format": "jpeg"},
}
_async_tasks: list[str] = []


def _check(response: httpx.Response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:2000])
    if response.status_code >= 400:
        body = response.json()
        if response.status_code == 429:
            body = body["detail"]
        assert {"error_code", "error_type", "error_message"} <= set(body), body
        assert len(response.content) < 50_000, len(response.content)


def _encode(body: Any) -> bytes:
    # allow_nan: Python clients send NaN/Infinity, and the server's JSON parser accepts them.
    return json.dumps(body, allow_nan=True, ensure_ascii=False).encode("utf-8", "surrogatepass")


#: The fields that hold a number or a length: each one x the values that broke the old parsers.
SIZED_FIELDS = [
    ("operations", "resizing", "width"),
    ("operations", "resizing", "height"),
    ("operations", "padding"),
    ("operations", "resizing", "fit", "outpaint_by"),
    ("operations", "resizing", "fit", "feathering"),
    ("operations", "adjustments", "hdr"),
    ("operations", "adjustments", "exposure"),
    ("operations", "adjustments", "sharpness"),
    ("output", "format", "quality"),
    ("output", "format", "compression", "quality"),
    ("output", "metadata", "dpi"),
    ("operations", "generative", "style_transfer", "style_strength"),
]
_EDGES = st.sampled_from(
    [
        10**310,
        -(10**310),
        10**20,
        2**63,
        math.nan,
        math.inf,
        -math.inf,
        1e308,
        -0.0,
        0.5,
        "9" * 310,
        "9" * 310 + "px",
        "9" * 310 + "%",
        "0." + "0" * 300 + "1%",
        "1e400%",
        "1e-05%",
        "inf%",
        "nan%",
        "10000000000000000%",
        "0.00001%",
        "0.00001px",
        "-5%",
        "5px 5px 5px 5px 5px",
        "١٢%",
    ]
)
ROUTES = st.sampled_from(["sync", "upload", "async", "batch"])


@given(field=st.sampled_from(FIELDS), value=_HOSTILE, route=ROUTES)
def test_no_field_value_gives_a_5xx(app: LiveApp, field: tuple[str, ...], value: Any, route: str) -> None:
    _send(app, _put(BASE, field, value), route)


@given(field=st.sampled_from(SIZED_FIELDS), value=_EDGES, route=ROUTES)
def test_no_size_or_number_gives_a_5xx(app: LiveApp, field: tuple[str, ...], value: Any, route: str) -> None:
    _send(app, _put(BASE, field, value), route)


def _send(app: LiveApp, body: dict[str, Any], route: str) -> None:
    headers = {"content-type": "application/json"}
    with app.client() as client:
        if route == "upload":
            data = {k: v for k, v in body.items() if k != "input"}
            response = client.post(
                "/v1/image/edit/upload",
                files={"file": ("b.jpg", fixture_bytes("gray.jpg"), "image/jpeg"), "data": (None, _encode(data))},
            )
        else:
            path = {"sync": "/v1/image/edit", "async": "/v1/image/edit/async", "batch": "/v1/image/edit/batch"}[route]
            response = client.post(path, content=_encode(body), headers=headers)
    _check(response)
    if route == "async" and response.status_code == 200:
        _async_tasks.append(response.json()["data"]["result_url"])


def test_accepted_async_tasks_never_end_in_an_internal_error(app: LiveApp) -> None:
    """Runs after the fuzz above (file order): what it accepted must end DONE or ERROR with a user message."""
    deadline = time.monotonic() + 60
    with app.client() as client:
        for url in _async_tasks:
            while True:
                data = client.get(httpx.URL(url).path).json()["data"]
                if data["status"] in ("DONE", "ERROR"):
                    break
                assert time.monotonic() < deadline
                time.sleep(0.05)
            for error in data.get("errors") or []:
                assert "internal error" not in error["error"].lower(), error
