"""The API docs pages, offline: Swagger UI at ``/docs`` and ReDoc at ``/redoc``, their scripts and styles served
by this app from the ``fastapi-standalone-docs`` package (swagger-ui-dist under Apache-2.0, redoc under MIT,
their licence files beside them) instead of FastAPI's default CDN links, so the pages work without internet
and send the reader's browser nowhere else."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["ASSETS", "install_docs"]

#: The package's static folder: swagger/ (swagger-ui-bundle.js, swagger-ui.css), redoc/ (redoc.standalone.js,
#: logo-mini.svg) and fastapi/ (favicon.png).
ASSETS = Path(str(files("fastapi_standalone_docs") / "static"))


def install_docs(app: FastAPI, openapi_url: str = "/openapi.json") -> None:
    """Add ``/docs`` and ``/redoc`` to an app built with ``docs_url=None, redoc_url=None``."""

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - API docs",
            swagger_js_url=f"{root}/docs/swagger/swagger-ui-bundle.js",
            swagger_css_url=f"{root}/docs/swagger/swagger-ui.css",
            swagger_favicon_url=f"{root}/docs/fastapi/favicon.png",
            oauth2_redirect_url=None,
            # No "validate online" badge: it would send the document to validator.swagger.io.
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - API reference",
            redoc_js_url=f"{root}/redoc/redoc.standalone.js",
            redoc_favicon_url=f"{root}/docs/fastapi/favicon.png",
            with_google_fonts=False,
        )

    app.mount("/docs/swagger", StaticFiles(directory=ASSETS / "swagger"), name="swagger-ui-assets")
    app.mount("/docs/fastapi", StaticFiles(directory=ASSETS / "fastapi"), name="docs-favicon")
    # The package's redoc script asks for its logo at <page path>/logo-mini.svg.
    app.mount("/redoc", StaticFiles(directory=ASSETS / "redoc"), name="redoc-assets")
