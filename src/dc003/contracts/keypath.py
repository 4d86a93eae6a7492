"""Resolve a contract key path such as ``model_validation.architecture_validation[parameter_count].range``.

A ``[name]`` segment selects the entry of a list whose check/name/metric/path equals ``name`` — the
same addressing the linter, the diff and the gates declarations use.
"""

from __future__ import annotations

import re
from typing import Any

_SEGMENT = re.compile(r"([^.\[\]]+)|\[([^\]]+)\]")
_ID_FIELDS = ("check", "name", "metric", "path", "id")


def resolve_key(obj: Any, path: str) -> Any:
    node = obj
    for match in _SEGMENT.finditer(path):
        key, selector = match.group(1), match.group(2)
        if key is not None:
            if isinstance(node, dict):
                if key not in node:
                    raise KeyError(path)
                node = node[key]
            elif hasattr(node, key):
                node = getattr(node, key)
            else:
                raise KeyError(path)
        else:
            node = _select(node, selector, path)
    return node


def _select(node: Any, selector: str, path: str) -> Any:
    if isinstance(node, list):
        for entry in node:
            for field in _ID_FIELDS:
                value = entry.get(field) if isinstance(entry, dict) else getattr(entry, field, None)
                if value == selector:
                    return entry
        if selector.isdigit() and int(selector) < len(node):
            return node[int(selector)]
    raise KeyError(path)
