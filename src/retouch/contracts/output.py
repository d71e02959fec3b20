"""The ``output`` object: format with its compression options, metadata, destination."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from retouch.contracts.common import Lenient, Strict, or_short_form, storage_uri_problem
from retouch.formats import output_format_for

__all__ = ["ColorSpace", "EncodeSpec", "Metadata", "OutputFormat", "OutputOptions"]

FormatName = Literal["jpeg", "png", "webp", "avif", "tiff"]


_DEFAULT_QUALITY = {"jpeg": 85, "webp": 75, "avif": 50, "tiff": 75}


@dataclass(frozen=True)
class EncodeSpec:
    """Everything the encoder needs, resolved from the wire form (defaults applied)."""

    format: str
    quality: int
    lossless: bool
    progressive: bool
    png_compression: str  # fast | best | optimal


class Compression(Lenient):
    type: Literal["lossy", "lossless"]
    quality: int | None = Field(None, ge=1, le=100, description="1–100, lossy only.")


class OutputFormat(Lenient):
    """A format and its options. Unknown keys are ignored: real clients send e.g. {"type": "png", "quality": 85}."""

    type: FormatName = Field("jpeg", description="jpeg | png | webp | avif | tiff.")
    quality: int | None = Field(None, ge=1, le=100, description="jpeg: 1–100 (85).")
    progressive: bool | None = Field(None, description="jpeg: progressive scan (default true).")
    compression: str | Compression | None = Field(
        None,
        description="png: fast | best | optimal (optimal). webp/avif/tiff: lossy | lossless | "
        "{type: lossy, quality} | {type: lossless}.",
    )

    @model_validator(mode="before")
    @classmethod
    def _short(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"type": data}
        return data

    @field_validator("compression")
    @classmethod
    def _compression_fits_type(cls, c: str | Compression | None, info: ValidationInfo) -> str | Compression | None:
        # A field validator, not a model one: the error is then reported at `output.format.compression`.
        kind = info.data.get("type")
        if kind == "png":
            if c is not None and c not in ("fast", "best", "optimal"):
                raise ValueError(f"png compression must be fast, best or optimal, received {_show(c)}")
        elif kind in ("webp", "avif", "tiff") and isinstance(c, str) and c not in ("lossy", "lossless"):
            raise ValueError(f"{kind} compression must be lossy or lossless, received {c!r}")
        return c

    def spec(self) -> EncodeSpec:
        c = self.compression
        quality = _DEFAULT_QUALITY.get(self.type, 85)
        lossless = self.type == "tiff"
        if self.type == "jpeg":
            quality = self.quality or quality
        elif isinstance(c, Compression):
            lossless = c.type == "lossless"
            quality = c.quality or quality
        elif isinstance(c, str) and self.type != "png":
            lossless = c == "lossless"
        return EncodeSpec(
            format=self.type,
            quality=quality,
            lossless=lossless,
            progressive=self.progressive if self.progressive is not None else True,
            png_compression=c if isinstance(c, str) and self.type == "png" else "optimal",
        )


def _show(value: object) -> str:
    return repr(value.model_dump() if isinstance(value, Compression) else value)


CmykProfile = Literal["ISO_Coated", "ISO_Uncoated", "USWeb_Coated", "USWeb_Uncoated"]


class ColorSpace(Strict):
    type: Literal["RGB", "CMYK"]
    color_profile: CmykProfile = Field("USWeb_Coated", description="CMYK only: the named press profile.")

    @model_validator(mode="before")
    @classmethod
    def _short(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"type": data}
        return data


class Metadata(Strict):
    dpi: int | None = Field(None, ge=1, le=100_000, description="Resolution written into the file.")
    color_space: ColorSpace | None = Field(
        None,
        description='"RGB" | "CMYK" | {type: "CMYK", color_profile}.',
        json_schema_extra=or_short_form({"type": "string", "enum": ["RGB", "CMYK"], "description": "The type."}),
    )


class OutputOptions(Strict):
    """Where and how to write the result. A bare string is a destination."""

    destination: str | None = Field(
        None,
        min_length=1,
        max_length=4096,
        description="storage://name/folder/ or storage://name/path/file.ext; omitted: a 24 h tmp_url.",
    )
    format: OutputFormat = Field(
        default_factory=OutputFormat,
        description='Default "jpeg".',
        json_schema_extra=or_short_form(
            {"type": "string", "enum": ["jpeg", "png", "webp", "avif", "tiff"], "description": "The type."}
        ),
    )
    metadata: Metadata | None = Field(None, description="dpi, color_space.")

    @model_validator(mode="before")
    @classmethod
    def _short(cls, data: Any) -> Any:
        if isinstance(data, str):
            data = {"destination": data}
        if isinstance(data, dict):
            data = {k: v for k, v in data.items() if v is not None}
            dest = data.get("destination")
            if "format" not in data and isinstance(dest, str) and not dest.endswith("/"):
                # A full file path without a format: its extension says what the user wants
                # (".../x.png" must not receive JPEG bytes). Unknown extensions keep the jpeg default.
                fmt = output_format_for(dest)
                if fmt:
                    data["format"] = fmt
        return data

    @field_validator("metadata")
    @classmethod
    def _cmyk_needs_a_cmyk_format(cls, metadata: Metadata | None, info: ValidationInfo) -> Metadata | None:
        # A field validator (format is validated before metadata): the error is reported at `output.metadata`,
        # where the CMYK request is, not at `output` as a whole.
        cs = metadata.color_space if metadata else None
        fmt = info.data.get("format")
        if cs is not None and cs.type == "CMYK" and fmt is not None and fmt.type not in ("jpeg", "tiff"):
            raise ValueError(f"color_space CMYK needs format jpeg or tiff; {fmt.type} has no CMYK mode")
        return metadata

    @field_validator("destination")
    @classmethod
    def _destination(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("storage://",)):
            raise ValueError(f"expected a storage://name/path destination but received {value!r}"[:300])
        problem = storage_uri_problem(value) if value is not None else None
        if problem is not None:
            raise ValueError(f"{problem} (`destination`: {_show(value)[:200]})")
        return value
