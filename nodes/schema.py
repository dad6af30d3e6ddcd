"""Schema helpers that keep our node definitions portable across ComfyUI versions.

Newer ComfyUI releases (0.33: `advanced=` inputs, `search_aliases`, `essentials_category`, the `Color`
widget) offer more than 0.3.75; these helpers use a feature where the host has it and degrade to what the
older host understands, so the same node definitions load everywhere:

* `advanced=True` travels in the input's extra dict on hosts without the flag (the frontend ignores it);
* `search_aliases` and `essentials_category` are dropped where the schema has no such field;
* `color_input` is a colour picker where the host has `io.Color`, else a text field; both store the same
  `#RRGGBB` string, so saved workflows load on either.
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


def color_input(name: str, *, default: str, tooltip: str) -> io.Input:
    """A `#RRGGBB` colour widget: ComfyUI's colour picker where available, else a text field."""
    color = getattr(io, "Color", None)
    if color is not None:
        return color.Input(name, default=default, tooltip=tooltip)
    return io.String.Input(name, default=default, tooltip=tooltip)


def schema(
    *, search_aliases: list[str] | None = None, essentials_category: str | None = None, **kwargs: Any
) -> io.Schema:
    """`io.Schema(...)`, passing the newer fields only where this ComfyUI knows them."""
    fields = {f.name for f in dataclasses.fields(io.Schema)}
    if search_aliases and "search_aliases" in fields:
        kwargs["search_aliases"] = search_aliases
    if essentials_category and "essentials_category" in fields:
        kwargs["essentials_category"] = essentials_category
    return io.Schema(**kwargs)
