"""Settings, read once at start-up from ``RETOUCH_*`` variables (and a ``.env`` file) and passed down.

Nothing reads the environment after start-up: the app, the CLI and the workers receive a
:class:`Settings` object, so tests can build several side by side.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["Limits", "Settings"]


def _split_commas(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


@dataclass(frozen=True)
class Limits:
    """The limits the pipeline enforces; a plain value object so workers can receive it pickled."""

    max_input_bytes: int = 100 * 1024 * 1024
    max_input_megapixels: float = 100.0
    max_output_megapixels: float = 100.0


class Settings(BaseSettings):
    """Every setting of the service. Names are part of the operator's surface: keep them stable."""

    # No protected namespace: the RETOUCH_MODEL_* fields are named model_<name>.
    model_config = SettingsConfigDict(
        env_prefix="RETOUCH_", env_file=".env", extra="ignore", populate_by_name=True, protected_namespaces=()
    )

    home: Path = Field(Path(".retouch"), description="Database, local storage, tmp results and keys live here.")
    public_url: str | None = Field(None, description="Base of result_url and tmp_url; default http://{host}:{port}.")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default SQLite under home.")
    fetch_allow_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Hosts, host:port or CIDRs that http(s) fetches may reach although private/loopback.",
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Origins (https://shop.example) whose browser pages may call the API; default none.",
    )
    local_storage_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=list, description="Folders that `local` storages may use; default home/storage."
    )
    key_cache_seconds: float = Field(
        1.0, ge=0, description="How long a replica trusts a key's last check: a revoked key is refused within it."
    )
    rate_limit_per_minute: int = Field(120, ge=0, description="Requests per minute per API key; 0 = off.")
    rate_limit_per_second: int = Field(4, ge=0, description="Sustained requests per second per API key; 0 = off.")
    rate_limit_burst: int = Field(
        20, ge=0, description="Requests a key may send at once before the per-second rate applies (token bucket)."
    )
    max_input_bytes: int = 100 * 1024 * 1024
    max_input_megapixels: float = 100.0
    max_output_megapixels: float = 100.0
    max_json_bytes: int = Field(
        1024 * 1024,
        ge=1024,
        description="Largest JSON body; larger ones get 413 before they are read (uploads: max_input_bytes).",
    )
    allow_overwrite_input: bool = Field(
        False, description="Let a request write its output over one of its own inputs (refused with 422 by default)."
    )
    item_timeout_seconds: float = 120.0
    tmp_retention_hours: float = 24.0
    workers: int = Field(0, description="Worker processes for image work; 0 = one per core.")
    worker_nice: int = Field(5, ge=0, le=19, description="Niceness of image workers: the API process stays responsive.")
    executor: Literal["local", "celery"] = Field(
        "local", description="Where async and batch items run: the embedded pool, or Celery workers (scale-out)."
    )
    broker_url: str | None = None
    fetch_timeout_seconds: float = 30.0
    fetch_max_redirects: int = 5
    fetch_concurrency: int = Field(32, ge=1, description="Downloads of inputs in flight at once, in all.")
    fetch_per_account: int = Field(8, ge=1, description="Downloads in flight at once for one account.")
    fetch_per_host: int = Field(8, ge=1, description="Downloads in flight at once from one origin host or storage.")
    secret_key: str | None = Field(
        None, description="Fernet key that encrypts storage credentials; default: generated under home."
    )
    webhook_max_attempts: int = Field(5, description="Deliveries tried per terminal task state.")
    webhook_backoff_seconds: float = Field(2.0, description="First retry delay; doubles each time.")
    webhook_timeout_seconds: float = Field(10.0, description="Per delivery attempt.")
    task_retention_days: float = Field(30.0, description="Finished tasks older than this are deleted.")
    janitor_interval_seconds: float = Field(600.0, description="How often expired results and tasks are removed.")
    celery_max_inflight: int = Field(
        32, description="Items queued or running on Celery workers at once: about 2-4x the total worker concurrency."
    )
    item_lease_seconds_override: float | None = Field(
        None,
        alias="RETOUCH_ITEM_LEASE_SECONDS",
        description="How long a claimed item may stay silent before it is "
        "handed out again; default 2 x item timeout + 60 s.",
    )
    redis_url: str | None = Field(None, description="Shared rate limits across replicas; default: the broker if Redis.")
    tmp_storage: str | None = Field(
        None, description="storage://name/prefix/ of the account RETOUCH_TMP_STORAGE_ACCOUNT for tmp results."
    )
    tmp_storage_account: str = "default"
    model_threads: int = Field(
        0, description="Intra-op threads per model in each worker process; 0 = all cores (idle threads sleep)."
    )
    # Operator replacements for the packaged model weights (RETOUCH_MODEL_<NAME>; docs/operations.md).
    model_u2netp: Path | None = Field(None, description="u2netp.onnx used by background removal.")
    model_centerface: Path | None = Field(None, description="centerface.onnx used by face blurring.")
    model_plates: Path | None = Field(None, description="A YOLO-style plate detector replacing the OCR text detector.")
    model_ppocr_det: Path | None = Field(None, description="PP-OCR text detector used by plate blurring.")
    model_ppocr_rec: Path | None = Field(None, description="PP-OCR text recogniser used by plate blurring.")
    model_waifu2x: Path | None = Field(
        None,
        description="Folder of the upscaling networks' files: WAIFU2X_*.param/.bin (and spanx2_ch52.param/.bin for "
        "smart_enhance).",
    )
    model_style_predict: Path | None = Field(
        None, description="arbitrary_predict.onnx (style image -> style vector) used by style transfer."
    )
    model_style_transform: Path | None = Field(
        None, description="arbitrary_transform.onnx (content + style vector -> image) used by style transfer."
    )
    log_format: Literal["text", "json"] = Field(
        "text", description="text: one readable line per event; json: one object per line (time, level, ids)."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Level of retouch's loggers.")
    metrics_token: str | None = Field(
        None, description="When set, GET /metrics (and a worker's metrics port) need `Authorization: Bearer <it>`."
    )
    worker_metrics_port: int = Field(
        0,
        ge=0,
        le=65535,
        description="Port on which `retouch worker` serves its own /metrics (on RETOUCH_HOST); 0 = off.",
    )
    otel: bool = Field(
        False,
        description="Export OpenTelemetry spans over OTLP/HTTP (needs the [otel] extra); also on with an endpoint.",
    )
    otel_endpoint: str | None = Field(
        None,
        alias="OTEL_EXPORTER_OTLP_ENDPOINT",
        description="The OTLP/HTTP collector's base URL (http://otel:4318); setting it turns tracing on.",
    )
    host: str = "127.0.0.1"
    port: int = 8000

    @field_validator("fetch_allow_hosts", "local_storage_roots", "cors_origins", mode="before")
    @classmethod
    def _commas(cls, value: object) -> object:
        return _split_commas(value)

    @property
    def resolved_home(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.resolved_home / 'retouch.db'}"

    @property
    def resolved_public_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def model_overrides(self) -> dict[str, str]:
        """RETOUCH_MODEL_<NAME> as {NAME: path}, what ``models.configure`` takes."""
        names = (
            "u2netp",
            "centerface",
            "plates",
            "ppocr_det",
            "ppocr_rec",
            "waifu2x",
            "style_predict",
            "style_transform",
        )
        return {name.upper(): str(path) for name in names if (path := getattr(self, f"model_{name}")) is not None}

    @property
    def tracing_on(self) -> bool:
        return self.otel or bool(self.otel_endpoint)

    @property
    def item_lease_seconds(self) -> float:
        return self.item_lease_seconds_override or self.item_timeout_seconds * 2 + 60

    @property
    def engine_is_shared(self) -> bool:
        return not self.resolved_database_url.startswith("sqlite")

    @property
    def shared_redis_url(self) -> str | None:
        if self.redis_url:
            return self.redis_url
        if self.broker_url and self.broker_url.startswith(("redis://", "rediss://")):
            return self.broker_url
        return None

    @property
    def storage_roots(self) -> list[Path]:
        return [p.expanduser().resolve() for p in self.local_storage_roots] or [self.resolved_home / "storage"]

    @property
    def tmp_dir(self) -> Path:
        return self.resolved_home / "tmp"

    @property
    def limits(self) -> Limits:
        return Limits(
            max_input_bytes=self.max_input_bytes,
            max_input_megapixels=self.max_input_megapixels,
            max_output_megapixels=self.max_output_megapixels,
        )
