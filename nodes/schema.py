"""Schema helpers that keep our node definitions portable across ComfyUI versions.

`advanced=` on inputs and `search_aliases=` on schemas exist only in newer ComfyUI releases; on older
ones (0.3.x) the flag travels in the input's extra dict and the aliases are dropped, so the same node
definitions load everywhere.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

from comfy_api.latest import io


def _accepts(func: Any, name: str) -> bool:
    try:
        return name in inspect.signature(func).parameters
    except (TypeError, ValueError):
        return False


def advanced(input_cls: type[io.Input], *args: Any, **kwargs: Any) -> io.Input:
    """Build an input marked as an expert setting (collapsed by frontends that support it)."""
    if _accepts(input_cls.__init__, "advanced"):
        return input_cls(*args, advanced=True, **kwargs)
    made = input_cls(*args, **kwargs)
    made.extra_dict = {**(getattr(made, "extra_dict", None) or {}), "advanced": True}
    return made


def schema(*, search_aliases: list[str] | None = None, **kwargs: Any) -> io.Schema:
    """`io.Schema(...)`, passing `search_aliases` only where this ComfyUI knows the field."""
    fields = {f.name for f in dataclasses.fields(io.Schema)}
    if search_aliases and "search_aliases" in fields:
        kwargs["search_aliases"] = search_aliases
    return io.Schema(**kwargs)
