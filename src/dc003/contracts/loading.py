"""Load YAML declarations into typed models, turning every problem into one clear line.

``contracts/dc003.yaml: phases.phase_2.infonce.temperature: must be > 0 (got -0.1)``
"""

from __future__ import annotations

import difflib
import os
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from dc003.errors import Dc003Error

M = TypeVar("M", bound=BaseModel)


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys (PyYAML silently keeps the last one)."""


def _construct_mapping(
    loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False
) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first at line {seen[key] + 1})", key_node.start_mark
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def display_path(path: str | os.PathLike[str]) -> str:
    """The path as the user would type it: relative to the working directory when inside it."""
    p = Path(path)
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def read_yaml(path: str | os.PathLike[str]) -> Any:
    name = display_path(path)
    p = Path(path)
    if not p.is_file():
        raise Dc003Error(f"{name}: file not found")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise Dc003Error(f"{name}: cannot read file ({exc})") from exc
    return parse_yaml(text, name)


def parse_yaml(text: str, name: str) -> Any:
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f"line {mark.line + 1}: " if mark is not None else ""
        raise Dc003Error(f"{name}: {line}invalid YAML: {exc.problem or exc}") from exc
    except yaml.YAMLError as exc:
        raise Dc003Error(f"{name}: invalid YAML: {exc}") from exc


def load_model(model: type[M], path: str | os.PathLike[str]) -> M:
    """Read ``path`` and validate it as ``model``; raise Dc003Error with one line per problem."""
    return validate_data(model, read_yaml(path), display_path(path))


def validate_data(model: type[M], data: Any, name: str) -> M:
    if data is None:
        raise Dc003Error(f"{name}: file is empty")
    if not isinstance(data, dict):
        raise Dc003Error(f"{name}: top level must be a mapping (got {type(data).__name__})")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise Dc003Error("\n".join(format_errors(exc, model, name))) from exc


def key_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def format_errors(exc: ValidationError, model: type[BaseModel], name: str) -> list[str]:
    errors = exc.errors(include_url=False)
    # A typo'd key shows up twice: as an unknown key and as the missing one it was meant to be.
    extras = {tuple(e["loc"]) for e in errors if e["type"] == "extra_forbidden"}
    lines: list[str] = []
    for err in errors:
        loc = _clean_loc(tuple(err["loc"]))
        if err["type"] == "missing" and any(x[:-1] == loc[:-1] for x in extras):
            continue
        lines.append(f"{name}: {key_path(loc)}: {_rule(err, model, loc)}")
    return lines or [f"{name}: {exc}"]


def _clean_loc(loc: tuple[Any, ...]) -> tuple[int | str, ...]:
    # pydantic inserts validator names (e.g. 'function-after[...]') into locations of unions
    return tuple(p for p in loc if not (isinstance(p, str) and ("[" in p and "]" in p)))


def _num(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _got(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _rule(err: Any, model: type[BaseModel], loc: tuple[int | str, ...]) -> str:
    kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    bounds = {
        "greater_than": ("gt", ">"),
        "greater_than_equal": ("ge", ">="),
        "less_than": ("lt", "<"),
        "less_than_equal": ("le", "<="),
    }
    if kind in bounds:
        key, op = bounds[kind]
        return f"must be {op} {_num(ctx.get(key))} (got {_got(value)})"
    if kind == "extra_forbidden":
        allowed = _allowed_keys(model, loc[:-1])
        hint = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        suffix = f" (did you mean '{hint[0]}'?)" if hint else ""
        return f"unknown key{suffix}"
    if kind == "missing":
        return "required key is missing"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')} (got {_got(value)})"
    if kind in {"int_parsing", "int_type", "int_from_float"}:
        return f"must be an integer (got {_got(value)})"
    if kind in {"float_parsing", "float_type"}:
        return f"must be a number (got {_got(value)})"
    if kind in {"bool_parsing", "bool_type"}:
        return f"must be true or false (got {_got(value)})"
    if kind in {"string_type"}:
        return f"must be a string (got {_got(value)})"
    if kind == "string_pattern_mismatch":
        return f"must match {ctx.get('pattern')} (got {_got(value)})"
    if kind in {"dict_type", "model_type", "model_attributes_type"}:
        return f"must be a mapping (got {_got(value)})"
    if kind in {"list_type", "tuple_type"}:
        return f"must be a list (got {_got(value)})"
    if kind in {"too_short", "too_long"}:
        return str(err["msg"]).lower()
    msg = str(err["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    return msg


def _allowed_keys(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """Field names of the model found at ``loc`` (best effort, for 'did you mean' hints)."""
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if isinstance(part, int):
            args = typing.get_args(current)
            current = args[0] if args else None
        elif isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(part)
            current = field.annotation if field else None
        elif typing.get_origin(current) is dict:
            current = typing.get_args(current)[1]
        else:
            return []
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _unwrap(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                return arg
        return tp
    if origin is typing.Annotated:
        return typing.get_args(tp)[0]
    return tp
