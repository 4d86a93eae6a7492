"""`dc003 params check`: params.yaml against the contracts.

Type and range violations are errors (the typed load fails). Differences from the contract values are
deviations: listed, never fatal, so a run may scale batch sizes to its data while the review sees it.
Knobs for what the contract does not describe at all (fields made with ``params.common.extension``) are
listed as extensions with their run values, so the review sees those too.
"""

from __future__ import annotations

import os
from typing import Any

from dc003.contracts.base import Declared, IntRange
from dc003.params.common import contract_refs, extension_fields


class Deviation(Declared):
    key: str  # params key path, e.g. phase_2.temperature
    value: Any
    contract: str  # contract file
    contract_key: str
    contract_value: Any
    note: str


class Extension(Declared):
    key: str  # params key path, e.g. phase_2.distillation_weight
    value: Any
    note: str  # what the knob adds beyond the contract


class ProfileUse(Declared):
    file: str  # params/<name>.yaml
    applies_when: dict[str, Any]
    overrides: dict[str, Any]  # params key -> the value the profile sets (params.yaml's is replaced)
    in_use: bool  # the current dataset (paths.dataset_dir) recorded this profile


class ParamsReport(Declared):
    params_file: str
    deviations: list[Deviation]
    extensions: list[Extension]
    profiles: list[ProfileUse]


def resolve(obj: Any, dotted: str) -> Any:
    node = obj
    for part in dotted.split("."):
        node = node[part] if isinstance(node, dict) else getattr(node, part)
    return node


def check_params(
    params_path: str | os.PathLike[str],
    dc003_path: str | os.PathLike[str],
    dc002_path: str | os.PathLike[str],
) -> ParamsReport:
    from dc003.contracts import load_dc003
    from dc003.contracts.loading import display_path
    from dc003.params.full import Params, load_params

    params = load_params(params_path)
    contracts: dict[str, Any] = {"dc003": load_dc003(dc003_path)}
    files = {"dc003": display_path(dc003_path), "dc002": display_path(dc002_path)}
    deviations: list[Deviation] = []
    for key, ref in contract_refs(Params):
        which, _, contract_key = ref.partition(":")
        if which not in contracts:
            contracts[which] = _load_dc002(dc002_path)
        value = resolve(params, key)
        expected = resolve(contracts[which], contract_key)
        note = _compare(value, expected)
        if note:
            deviations.append(
                Deviation(
                    key=key,
                    value=value,
                    contract=files[which],
                    contract_key=contract_key,
                    contract_value=str(expected) if isinstance(expected, IntRange) else expected,
                    note=note,
                )
            )
    extensions = [
        Extension(key=key, value=resolve(params, key), note=note) for key, note in extension_fields(Params)
    ]
    return ParamsReport(
        params_file=display_path(params_path),
        deviations=deviations,
        extensions=extensions,
        profiles=_profiles(params, params_path),
    )


def _profiles(params: Any, params_path: str | os.PathLike[str]) -> list[ProfileUse]:
    """Every params profile, validated (file, and its overrides against the params model), and whether the
    current dataset uses it."""
    from pathlib import Path

    from dc003.params import dataset_profile
    from dc003.params.full import apply_profile
    from dc003.params.profiles import load_profile, profile_paths

    root = Path(params_path).resolve().parent
    in_use = dataset_profile(root / params.paths.dataset_dir)
    out = []
    for path in profile_paths(root):
        if not path.is_file():
            continue
        rel = path.relative_to(root).as_posix()
        apply_profile(params, path)  # its overrides must name real keys with valid values
        profile = load_profile(path)
        out.append(
            ProfileUse(
                file=rel,
                applies_when=profile.applies_when.model_dump(),
                overrides=profile.overrides,
                in_use=in_use == rel,
            )
        )
    return out


def _load_dc002(path: str | os.PathLike[str]) -> Any:
    from dc003.contracts import load_dc002

    return load_dc002(path)


def _compare(value: Any, expected: Any) -> str:
    """Empty when the run value honours the contract; else a short note on how it differs."""
    if isinstance(expected, IntRange):
        if value in expected:
            return ""
        return f"outside the contract range {expected}"
    if expected is None or value == expected:
        return ""
    numeric = isinstance(value, int | float) and isinstance(expected, int | float)
    if numeric and not isinstance(value, bool) and expected:
        return f"{value / expected:.3g}x the contract value"
    return "differs from the contract"
