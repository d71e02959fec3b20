"""The web console: static files (HTML, one JavaScript module, CSS) shipped in the package under
``retouch/console`` and served at ``/`` and ``/console``. It talks to the public API only, with the key the
user pastes (kept in the browser's session storage, sent as the Bearer header): what the console does, a
script can do. Nothing is fetched from another origin (the page's Content-Security-Policy says so)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["CONSOLE", "install_console"]

CONSOLE = Path(str(files("retouch") / "console"))

#: Scripts, styles, images and API calls from this origin only; tmp results are images from this origin too
#: (RETOUCH_PUBLIC_URL may name another host, hence img-src also allows https: and http:). No inline script.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data: http: https:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
_HEADERS = {
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",  # the page is tiny; a new version of retouch must not meet an old script
}


def install_console(app: FastAPI) -> None:
    async def console_page() -> FileResponse:
        return FileResponse(CONSOLE / "index.html", headers=_HEADERS)

    app.add_api_route("/", console_page, methods=["GET"], include_in_schema=False)
    app.add_api_route("/console", console_page, methods=["GET"], include_in_schema=False)
    app.mount("/console/assets", StaticFiles(directory=CONSOLE), name="console-assets")
