"""Offline, no-telemetry environment defaults shared by the CLI, the pipeline stages and the tests."""

from __future__ import annotations

import os

OFFLINE_ENV: dict[str, str] = {
    "DVC_NO_ANALYTICS": "1",
    "GX_ANALYTICS_ENABLED": "false",
    "ORT_DISABLE_TELEMETRY": "1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def apply_offline_env() -> None:
    """Set the offline defaults without overriding what the caller exported explicitly."""
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
