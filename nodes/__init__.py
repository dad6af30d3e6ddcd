"""The ComfyUI face of MatAnyone 2: the node list of the extension (thin nodes over matanyone2_core)."""

from __future__ import annotations

from comfy_api.latest import ComfyExtension, io

from .compositing import MA2Composite
from .loaders import MA2LoadModel
from .matting import MA2MatteVideo
from .models import register_model_folder
from .quality import QUALITY_NODES
from .replacements import register_renames

NODES: list[type[io.ComfyNode]] = [MA2LoadModel, MA2MatteVideo, MA2Composite, *QUALITY_NODES]


class MatAnyone2Extension(ComfyExtension):
    async def on_load(self) -> None:
        await register_renames()

    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return list(NODES)


register_model_folder()
