"""The HTTP API's settings (FIRSTSEEN_API_*): the core's plus keys, address, upload and admission limits, retention."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from firstseen.settings import Settings, split_list

# Comma-separated in the environment (FIRSTSEEN_API_READ_KEYS=k1,k2), so no JSON quoting.
KeyList = Annotated[list[SecretStr], NoDecode]


class ApiSettings(Settings):
    # HTTP API (search_api/). Without keys the API is open, so `firstseen serve` binds loopback only.
    api_read_keys: KeyList = Field(default_factory=list)  # search and videos
    api_admin_keys: KeyList = Field(default_factory=list)  # also ingest and remove
    api_host: str = "127.0.0.1"
    api_port: int = Field(8000, ge=1, le=65535)
    api_max_upload_mb: float = Field(512.0, gt=0)  # uploads stream to disk and stop at this size
    api_upload_dir: Path | None = None  # temporary uploads (default: the system's temp folder)
    api_max_concurrent_searches: int = Field(2, ge=1, le=64)
    api_max_queued_searches: int = Field(8, ge=0, le=10_000)  # beyond these: 429 with Retry-After
    # Searches are kept (result, upload facts, the few query frames an evidence pack shows; never
    # the upload) in <data_dir>/searches for this long and up to this many, then purged.
    api_search_retention_h: float = Field(168.0, gt=0)
    api_search_max_count: int = Field(1000, ge=1)
    api_reload_interval_s: float = Field(2.0, gt=0)  # how often the server looks for a new checkpoint
    # Relative manifest paths sent to POST /v1/ingest resolve against this folder; when set,
    # every path must lie inside it, so an admin key cannot point the indexer at any file.
    api_ingest_root: Path | None = None

    @field_validator("api_read_keys", "api_admin_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        return split_list(value)

    @model_validator(mode="after")
    def _long_keys(self) -> ApiSettings:
        # Checked on the model, not the field: a field error would echo the raw key.
        if any(len(k.get_secret_value()) < 16 for k in self.api_read_keys + self.api_admin_keys):
            raise ValueError("API keys must be at least 16 characters long")
        return self

    @property
    def auth_required(self) -> bool:
        return bool(self.api_read_keys or self.api_admin_keys)


def get_api_settings(**overrides: Any) -> ApiSettings:
    """The API's settings from the environment, with explicit overrides (CLI flags) on top."""
    return ApiSettings(**{k: v for k, v in overrides.items() if v is not None})
