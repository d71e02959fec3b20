"""The ``operations`` object of an edit request, validated once at the edge.

Validators normalise the legacy and short forms real clients send (``fit: "crop"``,
``fit: {"crop": "smart"}``, ``remove: true``, ``hdr: 60``, ``null`` for a group) into one canonical
shape, so the pipeline reads a single form and never re-validates.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from retouch.contracts.common import HEX_COLOR_RE, Group, Strict, none_is_absent, parse_percent

__all__ = [
    "Adjustments",
    "Background",
    "BlurOptions",
    "Fit",
    "Generative",
    "Hdr",
    "ImageOperations",
    "Padding",
    "Privacy",
    "RemoveOptions",
    "Resizing",
    "Restorations",
]

Category = Literal["general", "products", "cars"]
_FEATHER_RE = re.compile(r"^[1-9][0-9]+%$|^[0-9]%$")
_LENGTH_RE = re.compile(r"^(\d+(?:\.\d+)?)(px|%)$")


# ----------------------------------------------------------------------------------------- resizing


def _parse_dimension(value: Any, field: str) -> int | str:
    if isinstance(value, bool):
        raise ValueError(f'expected a whole number of pixels, "auto" or a percentage like "50%" for `{field}`')
    if isinstance(value, int):
        if value < 1:
            raise ValueError(f"`{field}` must be at least 1 pixel, received {value}")
        return value
    if isinstance(value, str):
        text = value.strip()
        if text == "auto":
            return "auto"
        percent = parse_percent(text)
        if percent is not None:
            if percent <= 0:
                raise ValueError(f"`{field}` must be a positive percentage, received {value!r}")
            return f"{percent:g}%"
        if text.isdigit():
            return _parse_dimension(int(text), field)
    raise ValueError(
        f'expected a whole number of pixels, "auto" or a percentage like "50%" for `{field}` but received {value!r}'
    )


class Fit(Strict):
    """How the image is fitted into width × height. No mode ever stretches the image."""

    type: Literal["crop", "cover", "bounds", "canvas", "outpaint"] = Field(
        "crop",
        description="crop: cover the box, then cut the overflow; cover: cover the box, no cut; bounds: fit inside; "
        "canvas: fit inside, then fill the rest with background.color; outpaint: fill the rest with generated content.",
    )
    crop: Literal["center", "smart"] = Field(
        "center", description="With type crop: where to cut. smart = keep the salient content."
    )
    feathering: str = Field("15%", description="With type outpaint: width of the blend zone, e.g. '15%'.")
    outpaint_by: str | None = Field(
        None, description="With type outpaint: one or two px/% values ('10%', '5% 15%', '0px 1024px')."
    )

    @model_validator(mode="before")
    @classmethod
    def _legacy(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"type": data}
        if isinstance(data, dict) and "type" not in data and "crop" in data:
            # Legacy clients send {"crop": "smart"} with no type.
            return {"type": "crop", **data}
        return data

    @field_validator("feathering")
    @classmethod
    def _feathering(cls, value: str) -> str:
        if not _FEATHER_RE.match(value):
            raise ValueError(f"expected a percentage like '15%' for `feathering` but received {value!r}")
        return value

    @field_validator("outpaint_by")
    @classmethod
    def _outpaint_by(cls, value: str | None) -> str | None:
        if value is None:
            return value
        parts = value.split()
        if not 1 <= len(parts) <= 2 or not all(_LENGTH_RE.match(p) for p in parts):
            raise ValueError(f"expected one or two px or % values for `outpaint_by` but received {value!r}")
        return value


class Resizing(Strict):
    """Target size and fit. One side given: the other side keeps the aspect ratio (see docs/operations.md)."""

    width: int | str = Field("auto", description='Pixels, "auto" or a percentage of the input like "50%".')
    height: int | str = Field("auto", description='Pixels, "auto" or a percentage of the input like "50%".')
    fit: Fit = Field(default_factory=Fit, description="crop | cover | bounds | canvas | outpaint, or an object.")

    @model_validator(mode="before")
    @classmethod
    def _nulls(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("width") == "auto" and data.get("height") == "auto":
            raise ValueError('`width` and `height` cannot both be "auto"')
        return none_is_absent(data)

    @field_validator("width", "height", mode="before")
    @classmethod
    def _dimension(cls, value: Any, info: Any) -> int | str:
        return _parse_dimension(value, info.field_name)

    @model_validator(mode="after")
    def _percent_rules(self) -> Resizing:
        w, h = self.width, self.height
        w_pct = isinstance(w, str) and w.endswith("%")
        h_pct = isinstance(h, str) and h.endswith("%")
        if (w_pct and isinstance(h, int)) or (h_pct and isinstance(w, int)):
            raise ValueError('a percentage side must be paired with the same percentage or "auto", not pixels')
        if w_pct and h_pct and w != h:
            raise ValueError("percentage sides must be equal (the image is never stretched)")
        return self


# -------------------------------------------------------------------------------------- adjustments


class Hdr(Strict):
    intensity: int = Field(100, ge=0, le=100, description="Strength of local tone mapping, 0–100.")
    stitching: bool = Field(False, description="Keep the left/right edges seamless (360° panoramas).")


class Adjustments(Strict):
    """Colour and light; manual values are relative to the image's current state."""

    hdr: Hdr | None = Field(None, description="0–100 or {intensity, stitching}: local tone mapping.")
    exposure: int = Field(0, ge=-100, le=100, description="Brightness change, −100…100.")
    saturation: int = Field(0, ge=-100, le=100, description="Colourfulness change, −100…100.")
    contrast: int = Field(0, ge=-100, le=100, description="Contrast change, −100…100.")
    sharpness: int = Field(0, ge=0, le=100, description="Sharpening strength, 0…100.")

    @model_validator(mode="before")
    @classmethod
    def _nulls(cls, data: Any) -> Any:
        data = none_is_absent(data)
        if isinstance(data, dict) and "hdr" in data:
            hdr = data["hdr"]
            if isinstance(hdr, int) and not isinstance(hdr, bool):
                data = {**data, "hdr": {"intensity": hdr} if hdr else None}
        return data


# --------------------------------------------------------------------------------------- background


class Selective(Strict):
    object_to_keep: str = Field(..., min_length=3, max_length=128, description="Text naming the object to keep.")


class _Subject(Strict):
    """What the background operations keep: a category of subject, or a text-selected object."""

    category: Category | None = Field(None, description="general | products | cars (default general).")
    selective: Selective | None = Field(None, description="Keep only the named object (text-prompted).")

    @field_validator("category", mode="before")
    @classmethod
    def _cat(cls, value: Any) -> Any:
        # An older contract version allowed {"type": "products", "version": "2"}; versions are all current now.
        if isinstance(value, dict) and set(value) <= {"type", "version"} and "type" in value:
            return value["type"]
        return value


class RemoveOptions(_Subject):
    clipping: bool = Field(False, description="Crop the canvas to the object before resizing and padding.")

    @model_validator(mode="after")
    def _exclusive(self) -> RemoveOptions:
        if self.category is not None and self.selective is not None:
            raise ValueError("`category` and `selective` cannot be used together")
        return self


class BlurOptions(_Subject):
    type: Literal["regular", "lens"] = Field("regular", description="regular = gaussian; lens = bokeh-like disc.")
    level: Literal["low", "medium", "high"] = Field("medium", description="Blur strength.")


class Background(Strict):
    remove: RemoveOptions | None = Field(None, description="true or {category, selective, clipping}.")
    blur: BlurOptions | None = Field(None, description="true or {category, selective, type, level}.")
    color: str | None = Field(
        None,
        description='"#rrggbb" or "transparent": fills removed background, canvas and padding. Default white, '
        "or transparent when the input has alpha and the output format supports it.",
    )

    @model_validator(mode="before")
    @classmethod
    def _short_forms(cls, data: Any) -> Any:
        data = none_is_absent(data)
        if not isinstance(data, dict):
            return data
        data = {k: v for k, v in data.items() if k != "use_original_alpha"}  # listed in a contract default only
        for key in ("remove", "blur"):
            if data.get(key) is True:
                data[key] = {}
            elif data.get(key) is False:
                data.pop(key)
        return data

    @field_validator("color")
    @classmethod
    def _color(cls, value: str | None) -> str | None:
        if value is None or value == "transparent" or HEX_COLOR_RE.match(value):
            return value
        raise ValueError(f'expected "#rrggbb" or "transparent" for `color` but received {value!r}')

    @model_validator(mode="after")
    def _exclusive(self) -> Background:
        if self.remove is not None and self.blur is not None:
            raise ValueError("`remove` and `blur` cannot be used together")
        return self


# ------------------------------------------------------------------------------------------ padding


class Padding(Strict):
    """Padding in CSS order: 1 value = all sides; 2 = vertical horizontal; 4 = top right bottom left."""

    top: str
    right: str
    bottom: str
    left: str

    @classmethod
    def parse(cls, value: Any) -> Padding:
        if not isinstance(value, str):
            raise ValueError(f"expected a string like '10%' or '30px 60px' for `padding` but received {value!r}")
        parts = value.split()
        bad = [p for p in parts if not _LENGTH_RE.match(p)]
        if bad or len(parts) not in (1, 2, 4):
            raise ValueError(
                f"expected 1, 2 or 4 values in px or % (e.g. '10%', '5% 25%', '0px 40px 0px 0px') "
                f"for `padding` but received {value!r}"
            )
        for part in parts:
            pct = parse_percent(part)
            if pct is not None and pct >= 50:
                raise ValueError(f"percentage padding must be below 50% of a side, received {part!r}")
        if len(parts) == 1:
            parts = parts * 4
        elif len(parts) == 2:
            parts = [parts[0], parts[1], parts[0], parts[1]]
        return cls(top=parts[0], right=parts[1], bottom=parts[2], left=parts[3])

    def is_zero(self) -> bool:
        return all(float(_LENGTH_RE.match(p).group(1)) == 0 for p in self.sides())  # type: ignore[union-attr]

    def sides(self) -> tuple[str, str, str, str]:
        return (self.top, self.right, self.bottom, self.left)


# ------------------------------------------------------------------------------ privacy, restorations


class Privacy(Group):
    blur_car_plate: bool = Field(False, description="Detect and blur licence plates.")
    identity_crop: bool = Field(False, description="Crop away everything above the line between nose and mouth.")


class UpscalePhoto(Strict):
    type: Literal["photo"]
    version: Literal["1", "2", "3"]


UpscaleName = Literal["smart_enhance", "smart_resize", "faces", "digital_art", "photo"]


class Restorations(Group):
    upscale: UpscaleName | UpscalePhoto | None = Field(
        None, description="Model used when the image is enlarged; the target size comes from `resizing`."
    )
    decompress: Literal["moderate", "strong", "auto"] | None = Field(None, description="Remove JPEG artefacts.")
    polish: bool = Field(False, description="Redraw details sharper while keeping structure.")


class StyleTransfer(Strict):
    style_reference_image: str = Field(..., min_length=1, max_length=4096)
    prompt: str | None = Field(None, min_length=3, max_length=1024)
    style_strength: float = Field(0.75, ge=0, le=1)
    denoising_strength: float = Field(0.75, ge=0, le=1)
    depth_strength: float = Field(1.0, ge=0, le=1)


class Generative(Strict):
    style_transfer: StyleTransfer | None = None


# ----------------------------------------------------------------------------------------- the whole


class ImageOperations(Group):
    """Everything to do to the image. Every group is optional; ``{}`` re-encodes only."""

    restorations: Restorations | None = Field(None, description="upscale, decompress, polish (AI).")
    resizing: Resizing | None = Field(None, description="width, height, fit.")
    adjustments: Adjustments | None = Field(None, description="hdr, exposure, saturation, contrast, sharpness.")
    background: Background | None = Field(None, description="remove, blur, color.")
    padding: Padding | None = Field(None, description="CSS-order padding string, e.g. '10%' or '30px 60px'.")
    privacy: Privacy | None = Field(None, description="blur_car_plate, identity_crop (AI).")
    generative: Generative | None = Field(None, description="style_transfer (AI).")

    @field_validator("padding", mode="before")
    @classmethod
    def _padding(cls, value: Any) -> Any:
        if isinstance(value, Padding):
            return value
        return Padding.parse(value)

    @model_validator(mode="after")
    def _combinations(self) -> ImageOperations:
        styled = self.generative is not None and self.generative.style_transfer is not None
        if styled and self.background is not None and (self.background.remove or self.background.blur):
            raise ValueError("`generative.style_transfer` cannot be combined with background remove or blur")
        return self

    def ai_operations(self) -> list[str]:
        """Dotted names of the requested operations that need a model."""
        names: list[str] = []
        r = self.restorations
        if r is not None:
            if r.upscale is not None:
                names.append("restorations.upscale")
            if r.decompress is not None:
                names.append("restorations.decompress")
            if r.polish:
                names.append("restorations.polish")
        b = self.background
        if b is not None:
            if b.remove is not None:
                names.append("background.remove")
            if b.blur is not None:
                names.append("background.blur")
        p = self.privacy
        if p is not None:
            if p.blur_car_plate:
                names.append("privacy.blur_car_plate")
            if p.identity_crop:
                names.append("privacy.identity_crop")
        if self.generative and self.generative.style_transfer:
            names.append("generative.style_transfer")
        if self.resizing and self.resizing.fit.type == "outpaint":
            names.append("resizing.fit.outpaint")
        return names
