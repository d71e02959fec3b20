"""The shared pieces of the response bodies: ``{"data": null}`` and the health answers.

Response bodies are typed as TypedDicts (pydantic validates them, and generates the same JSON Schema it does
for models), not as BaseModels: the service builds its answers as dicts, and a batch page can hold 10,000
results. Checking such a page against TypedDicts and writing it took about 30 ms, against about 230 ms for
BaseModels (which build an instance per object) and 10-16 ms for the untyped ``dict[str, Any]`` before (best
of 15 runs on the 2-vCPU machine). TypedDicts also keep a dict's keys as they are: a key the service leaves
out stays out (``NotRequired``: optional in the document, never ``null``), and an explicit ``null`` stays
``null``. A key a TypedDict does not declare is dropped from the answer, so a new field goes into its
TypedDict (and so into the document) first; ``tests/api/test_openapi.py`` checks the service's real dicts.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field
from typing_extensions import TypedDict

__all__ = ["Deleted", "Health", "HealthResponse", "Readiness", "ReadinessChecks", "ReadinessResponse"]


class Deleted(TypedDict):
    """The answer to a DELETE: ``{"data": null}``."""

    data: Annotated[None, Field(description="Always null: the object is gone.")]


class Health(TypedDict):
    status: Annotated[Literal["ok"], Field(description="Always `ok`: the process answers.")]


class HealthResponse(TypedDict):
    """``GET /healthz``."""

    data: Annotated[Health, Field(description="The process is up.")]


class ReadinessChecks(TypedDict):
    database: Annotated[
        str, Field(description="`ok`, or `error: <exception type>` when the database cannot be reached.")
    ]
    libvips: Annotated[str, Field(description="`ok <version>` of the image library, or `error: <exception type>`.")]
    workers: Annotated[str, Field(description="`ok <number of image worker processes>`.")]


class Readiness(TypedDict):
    status: Annotated[
        Literal["ok", "error"], Field(description="`ok` when every check is ok (HTTP 200), else `error` (503).")
    ]
    checks: Annotated[ReadinessChecks, Field(description="Each check's outcome.")]


class ReadinessResponse(TypedDict):
    """``GET /readyz``: the same body with HTTP 200 (ready) or 503 (not ready)."""

    data: Annotated[Readiness, Field(description="Readiness and its checks.")]
