"""dc003: declarative contract validation and a reproducible DVC pipeline for the DC-003 two-tower model."""

from dc003._env import apply_offline_env

# Telemetry must be off before dvc, great_expectations or onnxruntime are imported anywhere in the
# process (onnxruntime 1.32 writes a device id and makes DNS lookups otherwise); every entry point
# imports this package first, so this is the one place it is done.
apply_offline_env()

__version__ = "0.1.0"
