"""Shared pieces of the params models: the link from a run knob to the contract value it may deviate from."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field

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


# the top-level ``seed``: one non-negative integer every stochastic stage derives its streams from
Seed = Annotated[int, Field(ge=0)]


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
    resume_dir: str  # an interrupted phase resumes from here (scratch, never a DVC output)
    checkpoints_dir: str
    metrics_dir: str
    plots_dir: str
    reports_dir: str
    artifacts_dir: str
    # the incremental update's whole output (stage update; GTO artifact two-tower-update): checkpoints,
    # metrics, reports, plots and artifacts laid out as in the project root
    update_dir: str


def _fields(model: type[BaseModel], marker: str, prefix: str = "") -> list[tuple[str, str]]:
    """(params key path, the field's ``marker`` value) for every field, nested ones too, that carries it."""
    found: list[tuple[str, str]] = []
    for name, field in model.model_fields.items():
        path = f"{prefix}.{name}" if prefix else name
        extra = field.json_schema_extra
        if isinstance(extra, dict) and isinstance(extra.get(marker), str):
            found.append((path, str(extra[marker])))
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found.extend(_fields(annotation, marker, path))
    return found


def contract_refs(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str]]:
    """(params key path, "dcNNN:contract key path") for every field that mirrors a contract value."""
    return _fields(model, "contract", prefix)


def extension_fields(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str]]:
    """(params key path, note) for every field that switches on something the contract does not describe."""
    return _fields(model, "extension", prefix)
