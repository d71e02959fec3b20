"""The ``operations`` object of an edit request, validated once at the edge.

Validators normalise the legacy and short forms real clients send (``fit: "crop"``,
``fit: {"crop": "smart"}``, ``remove: true``, ``hdr: 60``, ``null`` for a group) into one canonical
shape, so the pipeline reads a single form and never re-validates.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_serializer,
    model_validator,
)

from retouch.contracts.common import (
    HEX_COLOR_RE,
    MAX_PERCENT,
    MAX_PIXELS,
    Group,
    Length,
    Strict,
    none_is_absent,
    or_short_form,
    parse_length,
)

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
    "Side",
]

Category = Literal["general", "products", "cars"]


# ----------------------------------------------------------------------------------------- resizing


def _parse_dimension(value: Any, field: str) -> Length | None:
    """A side of ``resizing``: whole pixels, a percentage of the input side, or ``"auto"`` (None)."""
    expected = f'expected a whole number of pixels, "auto" or a percentage like "50%" for `{field}`'
    if isinstance(value, bool) or value is None:
        raise ValueError(expected)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int):
        if value < 1:
            raise ValueError(f"`{field}` must be at least 1 pixel, received {value}")
        if value > MAX_PIXELS:
            raise ValueError(f"`{field}` must be at most {MAX_PIXELS} pixels, received {str(value)[:40]}")
        return Length(value, "px")
    if isinstance(value, str):
        text = value.strip()
        if text == "auto":
            return None
        if text.isascii() and text.isdigit():
            return _parse_dimension(int(text) if len(text) <= 12 else MAX_PIXELS + 1, field)
        if text.isascii() and text.endswith("%") and text[:-1].replace(".", "", 1).isdigit():
            length = parse_length(text, field)
            if length.amount <= 0:
                raise ValueError(f"`{field}` must be a positive percentage, received {value!r}")
            return length
    raise ValueError(f"{expected} but received {value!r}"[:300])


def _validate_side(value: Any, info: ValidationInfo) -> Length | None:
    return _parse_dimension(value, info.field_name or "size")


def _side_out(value: Length | None) -> int | str:
    if value is None:
        return "auto"
    return int(value.amount) if value.unit == "px" else str(value)


#: A side of ``resizing``: ``None`` is "auto". Parsed once here; the wire form is kept in the OpenAPI document.
Side = Annotated[
    Length | None,
    PlainValidator(_validate_side),
    PlainSerializer(_side_out),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 1, "maximum": MAX_PIXELS},
                {"type": "string", "pattern": r"^(auto|\d+(\.\d+)?%)$"},
            ]
        }
    ),
]


class Fit(Strict):
    """How the image is fitted into width × height. No mode ever stretches the image."""

    type: Literal["crop", "cover", "bounds", "canvas", "outpaint"] = Field(
        "crop",
        description="crop: cover the box, then cut the overflow; cover: cover the box, no cut; bounds: fit inside; "
        "canvas: fit inside, then fill the rest with background.color; outpaint: fit inside, then continue the "
        "picture into the rest (classically, offline: docs/outpaint.md).",
    )
    crop: Literal["center", "smart"] = Field(
        "center", description="With type crop: where to cut. smart = keep the salient content."
    )
    feathering: str = Field(
        "15%",
        description="With type outpaint: depth of the blend zone inside the picture along each growing edge, as a "
        "share of that edge's extension, e.g. '15%' ('0%': original pixels untouched).",
    )
    outpaint_by: str | None = Field(
        None,
        description="With type outpaint: how much the picture grows, one value for both axes or 'width height', "
        "each px or % of that side ('10%', '5% 15%', '0px 1024px'). With width/height the output keeps their size.",
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
        length = parse_length(value, "feathering", max_percent=100)
        if length.unit != "%":
            raise ValueError(f"expected a percentage like '15%' for `feathering` but received {value!r}")
        return str(length)

    @field_validator("outpaint_by")
    @classmethod
    def _outpaint_by(cls, value: str | None) -> str | None:
        if value is None:
            return value
        parts = value.split()
        if not 1 <= len(parts) <= 2:
            raise ValueError(f"expected one or two px or % values for `outpaint_by` but received {value!r}"[:300])
        return " ".join(str(parse_length(part, "outpaint_by")) for part in parts)


_SIDE_DOC = f'Pixels (1–{MAX_PIXELS}), "auto" or a percentage of the input like "50%" (up to {MAX_PERCENT}%).'


class Resizing(Strict):
    """Target size and fit. One side given: the other side keeps the aspect ratio (see docs/operations.md)."""

    width: Side = Field(None, description=_SIDE_DOC)
    height: Side = Field(None, description=_SIDE_DOC)
    fit: Fit = Field(
        default_factory=Fit,
        description="crop | cover | bounds | canvas | outpaint, or an object.",
        json_schema_extra=or_short_form(
            {"type": "string", "enum": ["crop", "cover", "bounds", "canvas", "outpaint"], "description": "The type."}
        ),
    )

    @model_validator(mode="before")
    @classmethod
    def _nulls(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("width") == "auto" and data.get("height") == "auto":
            raise ValueError('`width` and `height` cannot both be "auto"')
        return none_is_absent(data)

    @model_validator(mode="after")
    def _percent_rules(self) -> Resizing:
        w, h = self.width, self.height
        w_pct = w is not None and w.is_percent
        h_pct = h is not None and h.is_percent
        if (w_pct and h is not None and not h_pct) or (h_pct and w is not None and not w_pct):
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

    hdr: Hdr | None = Field(
        None,
        description="0–100 or {intensity, stitching}: local tone mapping.",
        json_schema_extra=or_short_form(
            {"type": "integer", "minimum": 0, "maximum": 100, "description": "The intensity (0: none)."}
        ),
    )
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
    remove: RemoveOptions | None = Field(
        None,
        description="true or {category, selective, clipping}.",
        json_schema_extra=or_short_form({"type": "boolean", "description": "true: with the defaults."}),
    )
    blur: BlurOptions | None = Field(
        None,
        description="true or {category, selective, type, level}.",
        json_schema_extra=or_short_form({"type": "boolean", "description": "true: with the defaults."}),
    )
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

    top: Length
    right: Length
    bottom: Length
    left: Length

    @classmethod
    def parse(cls, value: Any) -> Padding:
        if not isinstance(value, str):
            raise ValueError(f"expected a string like '10%' or '30px 60px' for `padding` but received {value!r}"[:300])
        parts = value.split()
        if len(parts) not in (1, 2, 4):
            raise ValueError(
                f"expected 1, 2 or 4 values in px or % (e.g. '10%', '5% 25%', '0px 40px 0px 0px') "
                f"for `padding` but received {value!r}"[:300]
            )
        lengths = [parse_length(part, "padding", max_percent=100) for part in parts]
        for length in lengths:
            if length.is_percent and length.amount >= 50:
                raise ValueError(f"percentage padding must be below 50% of a side, received '{length}'")
        if len(lengths) == 1:
            lengths = lengths * 4
        elif len(lengths) == 2:
            lengths = [lengths[0], lengths[1], lengths[0], lengths[1]]
        return cls(top=lengths[0], right=lengths[1], bottom=lengths[2], left=lengths[3])

    @model_serializer
    def _wire_form(self) -> str:
        return str(self)

    def is_zero(self) -> bool:
        return all(side.amount == 0 for side in self.sides())

    def sides(self) -> tuple[Length, Length, Length, Length]:
        return (self.top, self.right, self.bottom, self.left)

    def __str__(self) -> str:
        return " ".join(str(side) for side in self.sides())


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
    padding: Annotated[
        Padding | None,
        WithJsonSchema({"type": "string", "pattern": r"^\d+(\.\d+)?(px|%)( \d+(\.\d+)?(px|%)){0,3}$"}),
    ] = Field(None, description="CSS-order padding string, e.g. '10%' or '30px 60px'; percentages below 50%.")
    privacy: Privacy | None = Field(None, description="blur_car_plate, identity_crop (AI).")
    generative: Generative | None = Field(None, description="style_transfer (AI).")

    @field_validator("padding", mode="before")
    @classmethod
    def _padding(cls, value: Any) -> Any:
        if isinstance(value, Padding):
            return value
        return Padding.parse(value)

    @field_validator("generative")
    @classmethod
    def _combinations(cls, generative: Generative | None, info: ValidationInfo) -> Generative | None:
        # A field validator (background is validated before generative), so the answer names
        # `operations.generative`, not the whole `operations`.
        styled = generative is not None and generative.style_transfer is not None
        background = info.data.get("background")
        if styled and background is not None and (background.remove or background.blur):
            raise ValueError("`generative.style_transfer` cannot be combined with background remove or blur")
        return generative

    def ai_operations(self) -> list[str]:
        """Dotted names of the requested operations that need a model."""
        names: list[str] = []
        r = self.restorations
        if r is not None:
            if r.upscale is not None:
                names.append("restorations.upscale")
                if r.upscale == "smart_enhance":
                    names.append("restorations.upscale.smart_enhance")  # its second network (models.REQUIRED)
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
