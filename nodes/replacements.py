"""Node replacements: when a node of this pack is renamed, its old id keeps saved workflows loading and running.

Hosts with node replacement (ComfyUI 0.33+) get every entry of `RENAMED_NODES` registered at start-up: the
server rewrites a queued prompt's old node ids to the new ones (with the input and output mappings), and the
frontend offers the replacement when it opens a workflow with the old id. Older hosts register nothing.

No node has been renamed yet, so the list is empty; a rename adds one entry, e.g.
`NodeRename("MA2OldName", "MA2NewName", old_widgets=("a", "b"), inputs={"new_a": "a"})`.
This module imports only `comfy_api`, so a test pack can load it by path to exercise the mechanism.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NodeRename:
    """An old node id that now lives on as `new_id`.

    `old_widgets`: the old node's widget input ids in saved order (workflows store widget values by position);
    `inputs`: new input id -> old input id; `set_values`: new input id -> fixed value;
    `outputs`: old output index -> new output index.
    """

    old_id: str
    new_id: str
    old_widgets: tuple[str, ...] = ()
    inputs: Mapping[str, str] = field(default_factory=dict)
    set_values: Mapping[str, Any] = field(default_factory=dict)
    outputs: Mapping[int, int] = field(default_factory=dict)


#: Every rename of a node of this pack, oldest first.
RENAMED_NODES: tuple[NodeRename, ...] = ()


def node_replace(rename: NodeRename) -> Any:
    """The host's `io.NodeReplace` for one rename."""
    from comfy_api.latest import io

    input_mapping = [{"new_id": new, "old_id": old} for new, old in rename.inputs.items()]
    input_mapping += [{"new_id": new, "set_value": value} for new, value in rename.set_values.items()]
    output_mapping = [{"new_idx": new, "old_idx": old} for old, new in rename.outputs.items()]
    return io.NodeReplace(
        new_node_id=rename.new_id,
        old_node_id=rename.old_id,
        old_widget_ids=list(rename.old_widgets) or None,
        input_mapping=input_mapping or None,
        output_mapping=output_mapping or None,
    )


def supports_node_replacement() -> bool:
    from comfy_api import latest

    return hasattr(latest, "ComfyAPI") and hasattr(latest.io, "NodeReplace")


async def register_renames(renames: Iterable[NodeRename] = RENAMED_NODES) -> int:
    """Register the renames with the host; returns how many were registered (0 on hosts without the feature)."""
    renames = list(renames)
    if not renames or not supports_node_replacement():
        return 0
    from comfy_api.latest import ComfyAPI

    api = ComfyAPI()
    for rename in renames:
        await api.node_replacement.register(node_replace(rename))
    log.info("MatAnyone 2: registered %d node replacement(s)", len(renames))
    return len(renames)
