"""The shared pieces of the response bodies: the base class, the ``{"data": ...}`` wrapper, health answers.

The routes declare these as their ``response_model``. The service may still return plain dicts: FastAPI
validates them against the model and writes only the keys the dict had (``response_model_exclude_unset``),
so a field the service leaves out stays out of the answer rather than turning into ``null``, and an explicit
``null`` (``webhook.last_status``, ``{"data": null}``) stays ``null``.

Models, not TypedDicts, because the unit of work builds its results as these models (``EditResult``,
``ImageObject``, ``OutputObject``). Checking a dict against a model builds an instance per object, though: a
batch page of 10,000 results cost about 230 ms that way (about 30 ms against TypedDicts, 10-16 ms for the
untyped dict before; best of 15 runs on 2 vCPUs). So the two routes that answer a whole batch view
(``GET .../batch/{id}`` and its cancel) write the service's dict as before, unchecked at run time; the tests
check the service's real dicts of every kind against these models instead.
"""

from __future__ import annotations

import warnings
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "Data",
    "Deleted",
    "HealthResponse",
    "HealthStatus",
    "ReadinessChecks",
    "ReadinessResponse",
    "ReadinessStatus",
    "ResponseModel",
    "UndeclaredResponseField",
    "omitted",
]

T = TypeVar("T")


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def omitted(description: str) -> Any:
    """A field that an answer leaves out when it does not apply (never ``null``). Declare it as
    ``name: T | SkipJsonSchema[None] = omitted("...")``: the document shows a plain, optional ``T``."""
    return Field(None, description=description, json_schema_extra=_no_default)


class UndeclaredResponseField(RuntimeWarning):
    """A response dict held a key its model does not declare: the key was left out of the answer.

    The test suite turns warnings into errors, so a field added to the service's dicts without being added to
    its response model (and so to the OpenAPI document) fails every test that reaches it; in production the
    field is dropped and the warning is printed once."""


class ResponseModel(BaseModel):
    """Base of every response body: unknown keys are dropped (with :class:`UndeclaredResponseField`)."""

    model_config = ConfigDict(extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _undeclared(cls, data: Any) -> Any:
        if isinstance(data, dict):
            extra = data.keys() - cls.model_fields.keys()
            if extra:
                warnings.warn(
                    f"{cls.__name__} does not declare {sorted(extra)}: left out of the answer",
                    UndeclaredResponseField,
                    stacklevel=2,
                )
        return data


class Data(ResponseModel, Generic[T]):
    """Every success body: ``{"data": ...}``. Subclassed per route so the document names each one."""

    data: T = Field(..., description="The answer.")


class Deleted(Data[None]):
    """The answer to a DELETE: ``{"data": null}``."""

    data: None = Field(..., description="Always null: the object is gone.")


HealthStatus = Literal["ok"]
ReadinessStatus = Literal["ok", "error"]


class Health(ResponseModel):
    status: HealthStatus = Field(..., description="Always `ok`: the process answers.")


class HealthResponse(Data[Health]):
    """``GET /healthz``."""


class ReadinessChecks(ResponseModel):
    database: str = Field(..., description="`ok`, or `error: <exception type>` when the database cannot be reached.")
    libvips: str = Field(..., description="`ok <version>` of the image library, or `error: <exception type>`.")
    workers: str = Field(..., description="`ok <number of image worker processes>`.")


class Readiness(ResponseModel):
    status: ReadinessStatus = Field(..., description="`ok` when every check is ok (HTTP 200), else `error` (503).")
    checks: ReadinessChecks = Field(..., description="Each check's outcome.")


class ReadinessResponse(Data[Readiness]):
    """``GET /readyz``: the same body with HTTP 200 (ready) or 503 (not ready)."""
