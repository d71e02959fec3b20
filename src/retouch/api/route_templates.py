"""The route template of a request path (``/v1/image/edit/async/{task_id}``), for the metrics' ``route`` label.

A label must stay bounded, so the path itself (ids, file names) cannot be one. FastAPI keeps included routers
nested and sets the matched route only for requests that reach routing, so the 401, 413 and 429 answered before
it would go unnamed: the table here is built once from the routes the app includes, and a path is matched
against it after the answer."""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

from starlette.routing import BaseRoute, Mount, compile_path

__all__ = ["UNMATCHED", "RouteTemplates"]

#: The label of a path no route takes (scanners probing for /wp-admin are one line, not a thousand).
UNMATCHED = "unmatched"


class RouteTemplates:
    def __init__(self) -> None:
        self._patterns: list[tuple[re.Pattern[str], str]] = []
        self.lookup = lru_cache(maxsize=4096)(self._lookup)

    def add(self, routes: Iterable[BaseRoute], prefix: str = "") -> None:
        for route in routes:
            path = getattr(route, "path", None)
            if not isinstance(path, str):
                continue
            template = prefix + path + ("/{path:path}" if isinstance(route, Mount) else "")
            self._patterns.append((compile_path(template)[0], template))
        self.lookup.cache_clear()

    def _lookup(self, path: str) -> str:
        for pattern, template in self._patterns:
            if pattern.match(path):
                return template
        return UNMATCHED
