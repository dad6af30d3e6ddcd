"""A test-only ComfyUI pack linked next to ours in the host tests' base folders (never shipped with the pack).

* `MA2ProbeDynamicInputs`: a node with every V3 dynamic input kind (a DynamicCombo with a nested DynamicCombo,
  an Autogrow, a DynamicSlot) that writes what the server handed it to `output/ma2_probe/<label>.json`, so the
  tests can check the UI -> API conversion against both the real frontend and the real server. Only on hosts
  that have those input kinds.
* `MA2ProbeDamageImages`: out-of-range and NaN frames, as a faulty upstream node would make them.
* `MA2ProbeSAM3TrackData`: core SAM 3 track data packed by the core's own code from given masks (hosts with
  core SAM 3 only).
* `MA2TestRenamedComposite`: registered through the pack's own `nodes/replacements.py` (loaded by path) as a
  rename of `MA2Composite`, so the tests can check that renamed node ids keep working.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import folder_paths
import torch
from comfy_api.latest import ComfyExtension, io

try:  # 0.33 defines DynamicSlot but does not export it from comfy_api.latest.io
    from comfy_api.latest import _io as io_internal
except ImportError:
    io_internal = io
DynamicSlot = getattr(io, "DynamicSlot", None) or getattr(io_internal, "DynamicSlot", None)
HAS_DYNAMIC = hasattr(io, "DynamicCombo") and hasattr(io, "Autogrow") and DynamicSlot is not None
# The base folder's custom_nodes (this file is loaded through its link there, so no resolve()).
CUSTOM_NODES = Path(os.path.abspath(__file__)).parent.parent


def _describe(value):
    if isinstance(value, torch.Tensor):
        return {"tensor": list(value.shape)}
    if isinstance(value, dict):
        return {k: _describe(v) for k, v in value.items()}
    return value


class MA2ProbeDynamicInputs(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        inner = io.DynamicCombo.Input("inner", options=[
            io.DynamicCombo.Option("a", []),
            io.DynamicCombo.Option("b", [io.Int.Input("depth", default=7, min=0, max=99)]),
        ])  # fmt: skip
        return io.Schema(
            node_id="MA2ProbeDynamicInputs",
            category="testing",
            is_output_node=True,
            inputs=[
                io.Int.Input("before", default=3, min=0, max=99),
                io.DynamicCombo.Input("mode", options=[
                    io.DynamicCombo.Option("plain", []),
                    io.DynamicCombo.Option("scaled", [io.Float.Input("factor", default=2.0), inner]),
                ]),  # fmt: skip
                io.Autogrow.Input(
                    "images", template=io.Autogrow.TemplatePrefix(io.Image.Input("image"), prefix="image", min=1, max=4)
                ),
                DynamicSlot.Input(
                    slot=io.Mask.Input("mask", optional=True), inputs=[io.Float.Input("strength", default=0.5)]
                ),
                io.String.Input("label", default="probe"),
            ],
            outputs=[],
        )

    @classmethod
    def execute(cls, **kwargs) -> io.NodeOutput:
        folder = Path(folder_paths.get_output_directory()) / "ma2_probe"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{kwargs.get('label', 'probe')}.json").write_text(json.dumps(_describe(kwargs), sort_keys=True))
        return io.NodeOutput()


class MA2ProbeDamageImages(io.ComfyNode):
    """Images scaled by `scale` (no clamp) with one frame set to NaN: the bad input real graphs can produce."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MA2ProbeDamageImages",
            category="testing",
            inputs=[
                io.Image.Input("images"),
                io.Float.Input("scale", default=1.0, min=-1000.0, max=1000.0),
                io.Int.Input("nan_frame", default=-1, min=-1, max=10_000),
            ],
            outputs=[io.Image.Output()],
        )

    @classmethod
    def execute(cls, images: torch.Tensor, scale: float, nan_frame: int) -> io.NodeOutput:
        out = images * scale
        if 0 <= nan_frame < out.shape[0]:
            out[nan_frame, 0, 0, 0] = float("nan")
        return io.NodeOutput(out)


class MA2ProbeSAM3TrackData(io.ComfyNode):
    """SAM3_TRACK_DATA made with the core tracker's own packing from given masks (no SAM 3 weights needed):
    each mask batch [T,H,W] is one object, resized (nearest) to the tracker's internal size and packed."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MA2ProbeSAM3TrackData",
            category="testing",
            inputs=[
                io.Mask.Input("object0"),
                io.Mask.Input("object1"),
                io.Int.Input("internal_height", default=64, min=8, max=1024),
                io.Int.Input("internal_width", default=80, min=8, max=1024, step=8),
            ],
            outputs=[io.Custom("SAM3_TRACK_DATA").Output()],
        )

    @classmethod
    def execute(cls, object0, object1, internal_height: int, internal_width: int) -> io.NodeOutput:
        from comfy.ldm.sam3.tracker import pack_masks

        masks = torch.stack([object0, object1], dim=1)  # [T, N, H, W]
        small = torch.nn.functional.interpolate(masks, size=(internal_height, internal_width), mode="nearest")
        data = {"packed_masks": pack_masks(small - 0.5), "n_frames": masks.shape[0], "scores": [1.0, 1.0],
                "orig_size": tuple(masks.shape[-2:])}  # fmt: skip
        return io.NodeOutput(data)


def _our_replacements():
    """The pack's nodes/replacements.py, loaded by path (the pack's folder name is not importable)."""
    path = next(CUSTOM_NODES.glob("*/nodes/replacements.py"))
    spec = importlib.util.spec_from_file_location("ma2_replacements_under_test", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


class ProbeExtension(ComfyExtension):
    async def on_load(self) -> None:
        replacements = _our_replacements()
        rename = replacements.NodeRename(
            old_id="MA2TestRenamedComposite",
            new_id="MA2Composite",
            old_widgets=("colour", "fit", "mode"),
            inputs={"foreground": "fg", "alpha": "matte", "background_color": "colour",
                    "background_fit": "fit", "foreground_mode": "mode"},  # fmt: skip
        )
        await replacements.register_renames([rename])

    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        nodes = [MA2ProbeDamageImages, *([MA2ProbeDynamicInputs] if HAS_DYNAMIC else [])]
        if importlib.util.find_spec("comfy.ldm.sam3") is not None:  # core SAM 3 (ComfyUI 0.19.5 and newer)
            nodes.append(MA2ProbeSAM3TrackData)
        return nodes


async def comfy_entrypoint() -> ProbeExtension:
    return ProbeExtension()
