"""Shared pieces of the params models: the link from a run knob to the contract value it may deviate from."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from dc003.contracts.base import Declared


def contract_ref(ref: str, **constraints: Any) -> Any:
    """A params field whose contract value lives at ``ref`` (``dc003:<key path>`` or ``dc002:<key path>``).

    ``dc003 params check`` compares the run value with the contract value and lists any difference as a
    deviation. Range constraints (gt, ge, ...) are hard rules: violating them is an error.
    """
    contract, _, path = ref.partition(":")
    if contract not in {"dc002", "dc003"} or not path:
        raise ValueError(f"bad contract reference {ref!r}")
    return Field(json_schema_extra={"contract": ref}, **constraints)


def extension(note: str, **constraints: Any) -> Any:
    """A params field that switches on something the contract does not describe (``note`` says what).

    ``dc003 params check`` lists every such field with its run value as an extension beyond the contract, so
    a review of params.yaml sees what a run adds, not only where it differs from a contract value.
    """
    return Field(json_schema_extra={"extension": note}, **constraints)


class Section(Declared):
    """Base of every params.yaml section."""


class PathsParams(Section):
    """Every directory a stage reads or writes, written once; dvc.yaml refers to these as ${paths.*}."""

    raw_dir: str
    dataset_dir: str
    validation_dir: str
    text_embed_dir: str
    text_cache_dir: str
    phases_dir: str
    checkpoints_dir: str
    metrics_dir: str
    plots_dir: str
    reports_dir: str
    artifacts_dir: str
