"""The console in a real browser: Debian's chromium driven by Playwright against a real server on 127.0.0.1.

One server and one browser for the module; the tests run in order (sign in first) on one page, as a user would.
Screenshots of each screen go to build/console-screenshots (RETOUCH_SCREENSHOTS overrides); docs/console/ holds
copies of a few for the README. Chromium must be installed (.ci/run installs it): without it these tests fail."""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright

from tests.conftest import FIXTURES, LiveApp, make_settings

CHROMIUM = os.environ.get("RETOUCH_CHROMIUM", "/usr/bin/chromium")
# Without the background-networking flags Chromium waits on update and sync servers a closed network never answers.
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = Path(os.environ.get("RETOUCH_SCREENSHOTS", Path(__file__).parents[2] / "build" / "console-screenshots"))
AXE = Path(__import__("axe_core_python").__file__).parent / "axe.min.js"
LAPTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    app = LiveApp(make_settings(tmp_path_factory.mktemp("console"), workers=2))
    photos = app.add_local_storage("photos")
    for i in range(30):
        shutil.copy(FIXTURES / "chelsea.jpg", photos / f"cat-{i:02d}.jpg")
    big = app.add_local_storage("big")
    for i in range(150):
        shutil.copy(FIXTURES / "photo_large.jpg", big / f"large-{i:03d}.jpg")
    app.add_local_storage("shop")
    yield app
    app.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)"
    with sync_playwright() as playwright:
        yield _launch(playwright)


def _launch(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, timeout=60_000)


class Watched:
    """The page, with every request it made and every console error it printed."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.urls: list[str] = []
        self.errors: list[str] = []
        page.on("request", lambda request: self.urls.append(request.url))
        page.on("console", lambda msg: self.errors.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.on("dialog", lambda dialog: dialog.accept())


@pytest.fixture(scope="module")
def ui(browser: Browser, server: LiveApp) -> Iterator[Watched]:
    context = browser.new_context(viewport=LAPTOP, base_url=server.base)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.base)
    watched = Watched(context.new_page())
    watched.page.set_default_timeout(20_000)
    yield watched
    context.close()


def shot(page: Page, name: str, full: bool = True) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full)


def until(page: Page, expression: str, timeout: float = 30) -> None:
    """Poll a JavaScript expression until it is truthy (wait_for_function would eval() in the page, which the
    console's CSP forbids)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"still false after {timeout} s: {expression}"
        page.wait_for_timeout(100)


def no_serious_violations(page: Page) -> None:
    """axe-core (shipped in the axe-core-python wheel) run in the page: no serious or critical violations.
    Evaluated over the DevTools protocol, so the page's CSP (script-src 'self') stays on."""
    page.evaluate(AXE.read_text(encoding="utf-8") + "\n;0")
    result: dict[str, Any] = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    bad = [
        f"{v['id']} ({v['impact']}): {v['help']} - {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert not bad, "\n".join(bad)


def test_a_wrong_key_is_refused_clearly(ui: Watched) -> None:
    page = ui.page
    page.goto("/")
    expect(page.get_by_role("heading", name="Sign in with an API key")).to_be_visible()
    page.get_by_label("API key", exact=True).fill("not-a-key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#login-error")).to_contain_text("This API key was refused (401)")
    expect(page.locator("#nav")).to_be_hidden()
    assert page.evaluate("sessionStorage.getItem('retouch.key')") is None
    shot(page, "login-wrong-key")
    no_serious_violations(page)


def test_sign_in_by_keyboard_and_see_the_dashboard(ui: Watched, server: LiveApp) -> None:
    page = ui.page
    page.goto("/console")
    page.keyboard.press("Tab")  # the skip link
    page.keyboard.press("Tab")  # the key
    assert page.evaluate("document.activeElement.id") == "key"
    page.keyboard.type(server.key)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    assert "Bearer" not in page.url and server.key not in page.url  # the key is never in a URL
    assert page.evaluate("sessionStorage.getItem('retouch.key')") == server.key
    expect(page.locator("#dash-storages")).to_contain_text("photos")
    expect(page.locator("#usage")).to_contain_text("Running now")
    shot(page, "dashboard")
    no_serious_violations(page)


def test_playground_edits_an_upload(ui: Watched) -> None:
    page = ui.page
    page.get_by_role("link", name="Playground").click()
    expect(page.locator("#ops-form .group").first).to_be_visible()
    # The form is the contract's: every field has its description, ranges included.
    expect(page.locator("#f-operations-adjustments-exposure-d")).to_contain_text("100")
    page.locator("#in-file").set_input_files(str(FIXTURES / "chelsea.jpg"))
    page.locator("#f-operations-resizing").check()
    page.get_by_label("Width", exact=True).fill("200")
    page.get_by_label("Height", exact=True).fill("100")
    page.locator("#f-output-format").check()
    page.locator("#f-output-format-type").select_option("webp")
    expect(page.locator("#req-json")).to_contain_text('"width": 200')
    expect(page.locator("#req-curl")).to_contain_text("/v1/image/edit/upload")
    page.get_by_role("button", name="Run").click()
    expect(page.locator("#run-status")).to_have_text("Done.", timeout=60_000)
    expect(page.locator("#out-size")).to_have_text("200 × 100")
    expect(page.locator("#out-format")).to_have_text("WEBP")
    expect(page.locator("#in-size")).to_have_text("451 × 300")
    until(page, "document.getElementById('after').complete && document.getElementById('after').naturalWidth")
    assert page.evaluate(
        "[document.getElementById('after').naturalWidth, document.getElementById('after').naturalHeight]"
    ) == [200, 100]
    assert re.match(r"\d+ ms", page.locator("#timing").inner_text())
    assert page.locator("#download").get_attribute("href").endswith(".webp")
    page.get_by_role("button", name="Copy curl").click()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied.startswith("curl -sS ") and '"width":200' in copied and "$RETOUCH_KEY" in copied
    assert page.evaluate("sessionStorage.getItem('retouch.key')") not in copied  # the key never leaves the page
    page.locator("#split").fill("30")
    shot(page, "playground")
    no_serious_violations(page)


def test_a_pasted_request_fills_the_form(ui: Watched) -> None:
    page = ui.page
    pasted = (
        '{"input": "storage://photos/cat-00.jpg", "operations": {"resizing": {"width": 120, "fit": "bounds"},'
        ' "adjustments": {"exposure": 20}, "background": {"remove": true}}, "output": "storage://shop/out/"}'
    )
    page.get_by_label("A JSON request (input, operations, output)", exact=True).fill(pasted)
    page.get_by_role("button", name="Load into the form").click()
    expect(page.locator("#paste-status")).to_have_text("Loaded into the form.")
    expect(page.locator("#in-storage")).to_have_value("storage://photos/cat-00.jpg")
    expect(page.locator("#f-operations-adjustments-exposure")).to_have_value("20")
    expect(page.locator("#f-operations-resizing-fit-type")).to_have_value("bounds")
    request = page.locator("#req-json").inner_text()
    assert '"exposure": 20' in request and '"remove": {}' in request and "storage://shop/out/" in request
    # Back to the upload's operations for the batch: width 200 x 100.
    page.get_by_label("A JSON request (input, operations, output)", exact=True).fill(
        '{"operations": {"resizing": {"width": 200, "height": 100}}}'
    )
    page.get_by_role("button", name="Load into the form").click()
    expect(page.locator("#req-json")).not_to_contain_text("exposure")


def test_a_batch_of_30_runs_to_the_end_and_fills_the_grid(ui: Watched) -> None:
    page = ui.page
    page.get_by_role("link", name="Batches").click()
    page.get_by_label("Source storage", exact=True).select_option("photos")
    expect(page.locator("#b-folder")).to_have_text("storage://photos/")
    expect(page.locator("#b-browser")).to_contain_text("cat-00.jpg")
    page.get_by_label("Preset", exact=True).select_option("playground")
    expect(page.locator("#b-ops")).to_contain_text('"width": 200')
    page.locator("#b-dest-storage").select_option("shop")
    where = "document.getElementById('berr-title').getBoundingClientRect().top + window.scrollY"
    errors_at = page.evaluate(where)
    page.get_by_role("button", name="Start the batch").click()
    expect(page.locator("#b-counts")).to_have_attribute("data-status", "DONE", timeout=60_000)
    expect(page.locator("#b-counts")).to_contain_text("30 done, 0 failed of 30")
    assert page.evaluate(
        "[document.getElementById('b-progress').value, document.getElementById('b-progress').max]"
    ) == [30, 30]
    expect(page.locator("#b-page")).to_have_text("1–12 of 30")
    until(
        page,
        "[...document.querySelectorAll('#b-grid img')].filter(i => i.complete && i.naturalWidth > 0).length === 12",
        60,
    )
    # Thumbnails are the service's own small edits (at most 160 px), not the full outputs.
    assert page.evaluate("Math.max(...[...document.querySelectorAll('#b-grid img')].map(i => i.naturalWidth))") <= 160
    assert page.evaluate(where) == errors_at  # the grid kept its height while results streamed in: nothing jumped
    expect(page.locator("#b-errors")).to_contain_text("No errors.")
    shot(page, "batch")
    page.locator("#b-next").click()
    expect(page.locator("#b-page")).to_have_text("13–24 of 30")
    page.locator("#b-next").click()
    expect(page.locator("#b-page")).to_have_text("25–30 of 30")
    expect(page.locator("#b-grid li[data-uri]")).to_have_count(6)
    page.get_by_role("button", name=re.compile("Compare cat-25")).click()
    until(
        page,
        "document.getElementById('v-before').naturalWidth > 0 && document.getElementById('v-after').naturalWidth > 0",
    )
    expect(page.locator("#v-meta")).to_contain_text("451×300 JPEG → 200×100 JPEG")
    shot(page, "batch-compare", full=False)
    no_serious_violations(page)
    page.get_by_role("button", name="Close").click()


def test_a_second_batch_is_cancelled(ui: Watched, server: LiveApp) -> None:
    page = ui.page
    page.get_by_label("Source storage", exact=True).select_option("big")
    expect(page.locator("#b-folder")).to_have_text("storage://big/")
    page.get_by_label("Preset", exact=True).select_option(label="Web: 1600 px wide, WebP")
    page.get_by_role("button", name="Start the batch").click()
    expect(page.get_by_role("button", name="Cancel the batch")).to_be_enabled()
    page.get_by_role("button", name="Cancel the batch").click()
    expect(page.locator("#b-counts")).to_have_attribute("data-status", "CANCELLED")
    task = int(page.locator("#b-task").inner_text().strip("()").split()[-1])
    with server.client() as client:  # the server agrees: cancelled, with items left undone
        view = client.get(f"/v1/image/edit/batch/{task}", params={"limit": 1}).json()["data"]
    assert view["status"] == "CANCELLED"
    assert view["progress"]["done"] < 150


def test_create_test_and_delete_a_storage(ui: Watched, server: LiveApp) -> None:
    page = ui.page
    folder = server.settings.storage_roots[0] / "made-in-browser"
    folder.mkdir()
    shutil.copy(FIXTURES / "chelsea.jpg", folder / "kitten.jpg")
    page.get_by_role("link", name="Storages").click()
    form = page.locator("#storage-form")
    form.get_by_label("Name", exact=True).fill("browser")
    form.get_by_label("Type", exact=True).select_option("local")
    form.get_by_label("Folder on the server (absolute, under RETOUCH_LOCAL_STORAGE_ROOTS)").fill(str(folder))
    form.get_by_role("button", name="Connect").click()
    row = page.locator("tr[data-name=browser]")
    expect(row).to_be_visible()
    page.get_by_role("button", name="Test browser").click()
    expect(page.locator("#storage-test")).to_contain_text("kitten.jpg")
    shot(page, "storages")
    no_serious_violations(page)
    # A wrong folder is the API's message, shown by the form.
    form.get_by_label("Name", exact=True).fill("outside")
    form.get_by_label("Folder on the server (absolute, under RETOUCH_LOCAL_STORAGE_ROOTS)").fill("/etc")
    form.get_by_role("button", name="Connect").click()
    expect(page.locator("#storage-error")).to_contain_text("not under an allowed local storage root")
    page.get_by_role("button", name="Delete browser").click()
    expect(row).to_have_count(0)
    with server.client() as client:
        assert "browser" not in [s["name"] for s in client.get("/v1/storage/storages").json()["data"]]


def test_webhook_set_and_tested(ui: Watched) -> None:
    from tests.api.test_jobs import Receiver

    receiver = Receiver()
    try:
        page = ui.page
        page.get_by_role("link", name="Webhook").click()
        expect(page.locator("#hook-state")).to_have_text("No webhook set.")
        page.get_by_label("Receiver URL", exact=True).fill(receiver.url)
        page.get_by_label("Secret (write-only; signs each body as X-Claid-Hmac-SHA256)").fill("a-long-secret")
        page.get_by_role("button", name="Save").click()
        expect(page.locator("#hook-state")).to_contain_text("(signed)")
        page.get_by_role("button", name="Send a test event").click()
        expect(page.locator("#hook-result")).to_contain_text("Delivered: the receiver answered 200")
        assert receiver.bodies and b'"event":"test"' in receiver.bodies[-1][0]
        shot(page, "webhook")
        no_serious_violations(page)
    finally:
        receiver.close()


def test_dashboard_shows_the_batches_and_usage(ui: Watched) -> None:
    page = ui.page
    page.get_by_role("link", name="Dashboard").click()
    rows = page.locator("#recent-tasks tbody tr")
    expect(rows.first).to_contain_text("CANCELLED")  # newest first: the cancelled batch, then the one of 30
    expect(rows.nth(1)).to_contain_text("DONE")
    expect(rows.nth(1)).to_contain_text("30 / 0 / 30")
    images = page.locator("#usage tr", has_text="Images done, 24 h").locator("td")
    assert int(images.inner_text()) >= 30
    shot(page, "dashboard-after")
    rows.nth(1).get_by_role("link").click()  # a batch opens in the batch view
    expect(page.locator("#b-counts")).to_contain_text("30 done, 0 failed of 30")


def test_phone_width_has_no_sideways_scroll(browser: Browser, server: LiveApp) -> None:
    context = browser.new_context(viewport=PHONE, base_url=server.base, is_mobile=True)
    try:
        page = context.new_page()
        page.goto("/")
        page.evaluate(f"sessionStorage.setItem('retouch.key', {server.key!r})")
        for view in ("dashboard", "playground", "batches", "storages", "webhook"):
            page.goto(f"/#{view}")
            expect(page.locator(f"#view-{view}")).to_be_visible()
            page.wait_for_load_state("networkidle")
            wide = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert wide <= 0, f"{view}: {wide}px wider than the phone"
            shot(page, f"phone-{view}")
    finally:
        context.close()


def test_a_storage_only_key_signs_in_and_is_told_what_it_lacks(browser: Browser, server: LiveApp) -> None:
    context = browser.new_context(viewport=LAPTOP, base_url=server.base)
    try:
        page = context.new_page()
        page.goto("/#storages")
        page.get_by_label("API key", exact=True).fill(server.create_key("storage-only", ("storage",)))
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("#storage-list")).to_contain_text("No storage connected.")
        page.get_by_role("link", name="Dashboard").click()
        expect(page.locator("#toast")).to_contain_text("lacks the scope")
    finally:
        context.close()


def test_thumbnails_wait_out_the_rate_limit(browser: Browser, tmp_path_factory: pytest.TempPathFactory) -> None:
    """With a small per-key limit (3/s, no burst) the grid's 12 thumbnail edits and the polling meet 429s; the
    console waits Retry-After and still fills the grid."""
    settings = make_settings(tmp_path_factory.mktemp("limited"), rate_limit_per_second=3, rate_limit_burst=0)
    limited = LiveApp(settings)
    context = browser.new_context(viewport=LAPTOP, base_url=limited.base)
    try:
        photos = limited.add_local_storage("photos")
        for i in range(12):
            shutil.copy(FIXTURES / "chelsea.jpg", photos / f"cat-{i:02d}.jpg")
        limited.add_local_storage("out")
        with limited.client() as client:
            body = {"input": "storage://photos/", "operations": {"resizing": {"width": 64}}, "output": "storage://out/"}
            client.post("/v1/image/edit/batch", json=body).raise_for_status()
        page = context.new_page()
        refused: list[int] = []
        page.on("response", lambda r: refused.append(r.status) if r.status == 429 else None)
        page.goto("/")
        page.get_by_label("API key", exact=True).fill(limited.key)
        page.get_by_role("button", name="Sign in").click()
        page.locator("#recent-tasks a").first.click()
        expect(page.locator("#b-counts")).to_have_attribute("data-status", "DONE", timeout=60_000)
        loaded = "[...document.querySelectorAll('#b-grid img')].filter(i => i.complete && i.naturalWidth > 0).length"
        until(page, f"{loaded} === 12", 60)
        assert refused, "the limit was never reached: this test tests nothing"
    finally:
        context.close()
        limited.close()


def test_nothing_came_from_elsewhere_and_no_script_errors(ui: Watched, server: LiveApp) -> None:
    foreign = [url for url in ui.urls if not url.startswith((server.base + "/", "blob:", "data:"))]
    assert not foreign, foreign
    # "Failed to load resource" is the browser noting an API error answer the page then showed (the wrong key's
    # 401, the refused folder's 400, no webhook's 404); anything else is a script error.
    unexpected = [e for e in ui.errors if not e.startswith("Failed to load resource")]
    assert not unexpected, unexpected
    page = httpx.get(server.base + "/")
    assert page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]


def test_docs_copies_are_screenshots_of_this_console() -> None:
    """The README's pictures are files this test run makes (copied by hand when the console changes)."""
    docs = Path(__file__).parents[2] / "docs" / "console"
    for name in ("playground.png", "batch.png"):
        assert (docs / name).stat().st_size > 10_000
    assert (SHOTS / "playground.png").exists() and time.time() - (SHOTS / "playground.png").stat().st_mtime < 3600
