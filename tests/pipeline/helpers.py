from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pyvips

from retouch.contracts.edit import UploadData
from retouch.pipeline import Encoded, run
from retouch.settings import Limits
from tests.conftest import FIXTURES, fixture_bytes


def edit(name: str, operations: dict[str, Any] | None = None, output: Any = None, **limits: Any) -> Encoded:
    request = UploadData.model_validate({"operations": operations or {}, "output": output or {}})
    return run(fixture_bytes(name), request.operations, request.output, Limits(**limits))


def pixels(result: Encoded | bytes) -> np.ndarray:
    data = result.data if isinstance(result, Encoded) else result
    image = pyvips.Image.new_from_buffer(data, "")
    return np.asarray(image.numpy())


def decoded(result: Encoded) -> pyvips.Image:
    return pyvips.Image.new_from_buffer(result.data, "")


def load_fixture(name: str) -> pyvips.Image:
    return pyvips.Image.new_from_file(str(FIXTURES / name))


def image_pixels(image: pyvips.Image) -> npt.NDArray[np.uint8]:
    array: npt.NDArray[np.uint8] = np.asarray(image.numpy(), dtype=np.uint8)
    return array
