from __future__ import annotations

from typing import Any

import numpy as np
import pyvips

from retouch.contracts.edit import UploadData
from retouch.pipeline import Encoded, run
from retouch.settings import Limits
from tests.conftest import fixture_bytes


def edit(name: str, operations: dict[str, Any] | None = None, output: Any = None, **limits: Any) -> Encoded:
    request = UploadData.model_validate({"operations": operations or {}, "output": output or {}})
    return run(fixture_bytes(name), request.operations, request.output, Limits(**limits))


def pixels(result: Encoded | bytes) -> np.ndarray:
    data = result.data if isinstance(result, Encoded) else result
    image = pyvips.Image.new_from_buffer(data, "")
    return np.asarray(image.numpy())


def decoded(result: Encoded) -> pyvips.Image:
    return pyvips.Image.new_from_buffer(result.data, "")
