"""UI-format workflows (what the frontend saves) -> API graphs (what `POST /prompt` takes), from `/object_info`.

The conversion follows what the frontend's `graphToPrompt` sends for every input the server knows:

* widget values are matched to the node's widget inputs in `/object_info` order (required, then optional);
  a seed's "control after generate" value follows its widget; upload buttons store one value after all
  other widgets; values missing at the end (a widget added by a newer node version) take the widget's
  default, as the frontend does when it loads an older workflow;
* V3 dynamic inputs: a **DynamicCombo** widget is followed by the widgets of its selected option, named
  `parent.child` (recursively, e.g. `format.codec.encoding`); **Autogrow** inputs are sockets named
  `parent.<template name>`; a **DynamicSlot** is a socket whose nested inputs exist while it is linked;
* links become `[source node id, output slot]`; Reroute nodes are followed to their source, a link from a
  PrimitiveNode keeps the widget's own value; muted nodes and notes are left out.

A graph it cannot convert faithfully raises GraphConversionError naming the node and the problem (unknown
node type, bypassed node, a DynamicCombo value that is not one of its options, more widget values than
widgets, a required input with neither a link, a value nor a default), instead of sending a graph that the
server accepts and a node then fails on.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

SCALAR_WIDGETS = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
DYNAMIC_COMBO = "COMFY_DYNAMICCOMBO_V3"
AUTOGROW = "COMFY_AUTOGROW_V3"
DYNAMIC_SLOT = "COMFY_DYNAMICSLOT_V3"
UPLOAD_FLAGS = ("image_upload", "video_upload", "audio_upload", "file_upload", "animated_image_upload")
FRONTEND_ONLY = {"Note", "MarkdownNote", "Reroute", "PrimitiveNode"}
MUTED, BYPASSED = 2, 4


class GraphConversionError(ValueError):
    """A UI workflow that cannot be turned into the API graph the frontend would send."""


@dataclass(frozen=True)
class _Input:
    name: str  # full name, e.g. "format.codec"
    kind: Any  # the type: a string or, for old-style combos, the list of options
    options: dict[str, Any]
    required: bool

    @property
    def is_widget(self) -> bool:
        if self.options.get("forceInput"):
            return False
        if isinstance(self.kind, list) or self.kind == DYNAMIC_COMBO:
            return True
        return self.kind in SCALAR_WIDGETS or bool(self.options.get("socketless") or self.options.get("widgetType"))

    @property
    def extra_values(self) -> int:
        """Values the frontend stores right after this widget's own (a seed's control-after-generate)."""
        if self.options.get("control_after_generate"):
            return 1
        if self.kind == "INT" and self.name.rsplit(".", 1)[-1] in ("seed", "noise_seed"):
            return 1
        return 0

    @property
    def default(self) -> Any:
        if "default" in self.options:
            return self.options["default"]
        choices = self.kind if isinstance(self.kind, list) else self.options.get("options")
        if self.kind == DYNAMIC_COMBO:
            choices = [o["key"] for o in self.options.get("options", [])]
        return choices[0] if choices and not isinstance(choices[0], dict) else None


def _section_items(
    inputs: dict[str, Any], order: dict[str, list[str]] | None = None
) -> Iterator[tuple[str, Any, bool]]:
    for section in ("required", "optional"):
        specs = inputs.get(section) or {}
        names = (order or {}).get(section) or list(specs)
        for name in names:
            if name in specs:
                yield name, specs[name], section == "required"


def _spec(name: str, spec: Any, required: bool, prefix: str) -> _Input:
    options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    return _Input(f"{prefix}{name}", spec[0], options, required)


class _NodeConverter:
    """Walks one node's inputs in frontend order, consuming its widget values."""

    def __init__(self, node: dict[str, Any], info: dict[str, Any], links: dict[str, list]):
        self.node = node
        self.label = f"node {node['id']} ({node['type']})"
        self.info = info
        self.links = links
        raw = node.get("widgets_values")
        self.by_name = raw if isinstance(raw, dict) else None  # VideoHelperSuite-style values by widget name
        self.values = [] if raw is None or isinstance(raw, dict) else list(raw)
        self.position = 0
        self.inputs: dict[str, Any] = {}

    def convert(self) -> dict[str, Any]:
        top = self.info["input"]
        self._walk(top, self.info.get("input_order"), prefix="")
        extras = sum(
            1
            for _, spec, req in _section_items(top, self.info.get("input_order"))
            if any(_spec("", spec, req, "").options.get(flag) for flag in UPLOAD_FLAGS)
        )
        if self.by_name is None and len(self.values) > self.position + extras:
            raise GraphConversionError(
                f"{self.label}: {len(self.values)} widget values for {self.position} widget(s) (+{extras} upload): "
                "the saved workflow does not match this ComfyUI's node definition"
            )
        return self.inputs

    def _take(self, item: _Input) -> tuple[bool, Any]:
        """(found, value) for a widget: the next saved value, or its default when the values ran out."""
        if self.by_name is not None:
            if item.name in self.by_name:
                return True, self.by_name[item.name]
            return item.default is not None, item.default
        if self.position < len(self.values):
            value = self.values[self.position]
            self.position += 1 + item.extra_values
            return True, value
        self.position += 1 + item.extra_values
        return item.default is not None, item.default

    def _walk(self, inputs: dict[str, Any], order: dict[str, list[str]] | None, prefix: str) -> None:
        for name, spec, required in _section_items(inputs, order):
            item = _spec(name, spec, required, prefix)
            if item.kind == AUTOGROW:
                self._autogrow(item)
            elif item.kind == DYNAMIC_SLOT:
                link = self._link(item.name)
                if link is not None:
                    self.inputs[item.name] = link
                    self._walk(item.options.get("inputs") or {}, None, prefix=f"{item.name}.")
            elif isinstance(item.kind, str) and item.kind.startswith("COMFY_") and item.kind.endswith("_V3") and (
                item.kind != DYNAMIC_COMBO
            ):
                raise GraphConversionError(f"{self.label}: input {item.name!r} has dynamic type {item.kind}, "
                                           "which this converter does not know")  # fmt: skip
            elif item.is_widget:
                found, value = self._take(item)
                link = self._link(item.name)
                if link is not None:
                    self.inputs[item.name] = link
                elif found:
                    self.inputs[item.name] = value
                elif item.required:
                    raise GraphConversionError(f"{self.label}: required widget {item.name!r} has no value")
                if item.kind == DYNAMIC_COMBO and link is None and found:
                    self._dynamic_combo(item, value)
            else:
                link = self._link(item.name)
                if link is not None:
                    self.inputs[item.name] = link
                elif item.required:
                    raise GraphConversionError(f"{self.label}: required input {item.name!r} is not connected")

    def _dynamic_combo(self, item: _Input, key: Any) -> None:
        options = item.options.get("options") or []
        chosen = next((o for o in options if o.get("key") == key), None)
        if chosen is None:
            keys = [o.get("key") for o in options]
            raise GraphConversionError(f"{self.label}: {item.name!r} is {key!r}, not one of its options {keys}")
        self._walk(chosen.get("inputs") or {}, None, prefix=f"{item.name}.")

    def _autogrow(self, item: _Input) -> None:
        template = item.options.get("template") or {}
        if "names" in template:
            names = list(template["names"])
        else:
            names = [f"{template.get('prefix', '')}{i}" for i in range(int(template.get("max", 0)))]
        minimum = int(template.get("min", 0))
        spec = next(iter(_section_items(template.get("input") or {})), None)
        template_required = spec is not None and spec[2]
        for i, child in enumerate(names):
            full = f"{item.name}.{child}"
            link = self._link(full)
            if link is not None:
                self.inputs[full] = link
            elif i < minimum and template_required and item.required:
                raise GraphConversionError(f"{self.label}: required input {full!r} is not connected")

    def _link(self, name: str) -> list | None:
        return self.links.get(name)


def _links_of(workflow: dict[str, Any]) -> dict[int, tuple[int, int, int, str]]:
    """link id -> (origin node id, origin slot, target node id, target slot name or index)."""
    table = {}
    for link in workflow.get("links", []):
        if isinstance(link, dict):  # workflow schema 1
            table[link["id"]] = (link["origin_id"], link["origin_slot"], link["target_id"], link["target_slot"])
        else:  # [id, origin, origin_slot, target, target_slot, type]
            table[link[0]] = (link[1], link[2], link[3], link[4])
    return table


def ui_to_api(workflow: dict[str, Any], object_info: dict[str, Any]) -> dict[str, Any]:
    """The API graph `{id: {"class_type", "inputs"}}` of a UI-format workflow `{nodes, links, ...}`."""
    links = _links_of(workflow)
    nodes = {node["id"]: node for node in workflow["nodes"]}

    def source(link_id: int, seen: frozenset = frozenset()) -> list | None:
        """`[origin id, slot]` of a link, through Reroutes; None for a PrimitiveNode (its value is the widget's)."""
        if link_id not in links:
            raise GraphConversionError(f"an input uses link {link_id}, which the workflow's links do not list")
        origin, slot = links[link_id][:2]
        node = nodes.get(origin)
        if node is None:
            raise GraphConversionError(f"link {link_id} starts at node {origin}, which is not in the workflow")
        if node["type"] == "PrimitiveNode":
            return None
        if node["type"] == "Reroute":
            incoming = next((s.get("link") for s in node.get("inputs", []) if s.get("link") is not None), None)
            if incoming is None or link_id in seen:
                return None
            return source(incoming, seen | {link_id})
        if node.get("mode", 0) == MUTED:
            return None
        return [str(origin), slot]

    graph: dict[str, Any] = {}
    for node in workflow["nodes"]:
        kind = node["type"]
        if node.get("mode", 0) == MUTED or kind in FRONTEND_ONLY:
            continue
        if node.get("mode", 0) == BYPASSED:
            raise GraphConversionError(f"node {node['id']} ({kind}) is bypassed; bypassing is not supported")
        info = object_info.get(kind)
        if info is None:
            raise GraphConversionError(f"node {node['id']}: type {kind!r} is not known to this ComfyUI "
                                       "(a missing custom node, or a subgraph)")  # fmt: skip
        linked = {}
        for slot in node.get("inputs", []):
            if slot.get("link") is not None:
                origin = source(slot["link"])
                if origin is not None:
                    linked[slot["name"]] = origin
        inputs = _NodeConverter(node, info, linked).convert()
        title = node.get("title") or info.get("display_name") or kind
        graph[str(node["id"])] = {"class_type": kind, "inputs": inputs, "_meta": {"title": title}}
    return graph
