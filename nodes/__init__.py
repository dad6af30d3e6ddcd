"""The ComfyUI face of MatAnyone 2: the node list of the extension (thin nodes over matanyone2_core)."""

from __future__ import annotations

from comfy_api.latest import ComfyExtension, io

from .compositing import MA2Composite
from .foreground import MA2EstimateForeground
from .loaders import MA2LoadModel
from .matting import MA2MatteVideo
from .models import register_model_folder
from .objects import OBJECT_NODES
from .quality import QUALITY_NODES, register_evaluator_folder
from .replacements import register_renames
from .segmentation import SEGMENTATION_NODES, register_sam2_folder
from .video_file import MA2MatteVideoFile

NODES: list[type[io.ComfyNode]] = [
    MA2LoadModel, MA2MatteVideo, MA2MatteVideoFile, MA2Composite, MA2EstimateForeground, *QUALITY_NODES,
    *SEGMENTATION_NODES, *OBJECT_NODES,
]  # fmt: skip


class MatAnyone2Extension(ComfyExtension):
    async def on_load(self) -> None:
        await register_renames()

    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return list(NODES)


register_model_folder()
register_sam2_folder()
register_evaluator_folder()
