"""The nightly scheduler's settings: the core's settings plus the time of the night's run (FIRSTSEEN_NIGHTLY_AT)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from firstseen.settings import Settings


class NightlySettings(Settings):
    nightly_at: str = Field("02:00", pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")  # local time (TZ)


def get_nightly_settings(**overrides: Any) -> NightlySettings:
    return NightlySettings(**{k: v for k, v in overrides.items() if v is not None})
