"""Matte quality nodes: judge an alpha without ground truth, fuse a video and an image matte where each is
reliable, the per-frame image branch, and where to add a keyframe (thin nodes over matanyone2_core.quality)."""

from __future__ import annotations

import json
import logging
import os

import comfy.model_management as mm
import comfy.utils
import folder_paths
import torch
from comfy_api.latest import io

from ..matanyone2_core.quality import (
    AnalyticEvaluator,
    error_heatmap,
    evaluate_matte,
    frame_scores,
    frame_strip,
    fuse_mattes,
    fusion_map,
    matte_frames,
    suggest_keyframes,
)
from ..matanyone2_core.quality.evaluate import check_mattes
from .models import MattingModel
from .schema import advanced, schema
from .types import MA2Evaluator, MA2Model

log = logging.getLogger(__name__)

CATEGORY = "video/matting/quality"


def _images(images: torch.Tensor, name: str = "images") -> torch.Tensor:
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[-1] < 3:
        shape = list(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"{name} must be an IMAGE batch [T,H,W,3], got {shape}")
    return images[..., :3].detach().to(device="cpu", dtype=torch.float32)


def _masks(mask: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(mask, torch.Tensor) or mask.ndim not in (2, 3):
        shape = list(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ValueError(f"{name} must be a MASK [T,H,W] (or one [H,W]), got {shape}")
    mask = mask.detach().to(device="cpu", dtype=torch.float32)
    return mask[None] if mask.ndim == 2 else mask


def _progress(total: int):
    bar = comfy.utils.ProgressBar(total)
    return lambda done, all_: bar.update_absolute(done, all_)


EVALUATOR_FOLDER = "matanyone_evaluator"


def register_evaluator_folder() -> None:
    """Register `models/matanyone_evaluator` for learned evaluator files (extra_model_paths key of that name)."""
    folder_paths.add_model_folder_path(EVALUATOR_FOLDER, os.path.join(folder_paths.models_dir, EVALUATOR_FOLDER))
    paths, extensions = folder_paths.folder_names_and_paths[EVALUATOR_FOLDER]
    folder_paths.folder_names_and_paths[EVALUATOR_FOLDER] = (paths, set(extensions) | {".safetensors"})


def evaluator_choices() -> list[str]:
    """'analytic' (no weights) first, then the learned evaluator files in models/matanyone_evaluator."""
    return ["analytic", *folder_paths.get_filename_list(EVALUATOR_FOLDER)]


_learned: dict[tuple, object] = {}


def _load_learned(name: str, device: str):
    """A learned evaluator file, loaded once per file state and device (cached)."""
    path = folder_paths.get_full_path(EVALUATOR_FOLDER, name)
    if path is None:
        raise FileNotFoundError(f"evaluator '{name}' not found in {folder_paths.get_folder_paths(EVALUATOR_FOLDER)}")
    stat = os.stat(path)
    key = (os.path.realpath(path), stat.st_size, stat.st_mtime_ns, device)
    if key not in _learned:
        from ..matanyone2_core.quality.mqe import load_evaluator

        _learned.clear()  # one learned evaluator in memory at a time
        log.info("MatAnyone 2: loading evaluator %s (%s)", path, device)
        _learned[key] = load_evaluator(path, device=device)
    return _learned[key]


class MA2LoadEvaluator(io.ComfyNode):
    """The matte evaluator used by MatAnyone 2 Evaluate Matte: analytic (no weights) or a learned file."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            node_id="MA2LoadEvaluator",
            display_name="Load MatAnyone 2 Matte Evaluator",
            category=CATEGORY,
            description=(
                "Chooses the evaluator that judges mattes without ground truth. 'analytic' needs no weights: a "
                "semantic check against the segmentation (holes, blobs, wrong objects) and a colour-model check "
                "of the boundary (hard, shifted or jittering edges). Learned evaluators (DINOv3 + DPT, trained "
                "with `python -m matanyone2_core train-evaluator`) are .safetensors files in "
                "models/matanyone_evaluator. Leave Evaluate Matte's evaluator input empty for 'analytic'."
            ),
            search_aliases=["matte quality", "mqe", "quality evaluator", "alpha error"],
            inputs=[
                io.Combo.Input("evaluator", options=evaluator_choices(), default="analytic",
                               tooltip="analytic: the weight-free evaluator; a file: a learned evaluator."),
                advanced(io.Combo.Input, "device", options=["auto", "cpu"], default="auto",
                         tooltip="auto: ComfyUI's compute device (GPU when there is one); cpu: always the CPU."),
            ],
            outputs=[MA2Evaluator.Output(display_name="evaluator", tooltip="A matte evaluator.")],
        )

    @classmethod
    def fingerprint_inputs(cls, evaluator: str = "analytic", **_: object) -> str:
        path = None if evaluator == "analytic" else folder_paths.get_full_path(EVALUATOR_FOLDER, evaluator)
        if path is None:
            return evaluator
        stat = os.stat(path)
        return f"{path}:{stat.st_size}:{stat.st_mtime_ns}"

    @classmethod
    def execute(cls, evaluator: str = "analytic", device: str = "auto") -> io.NodeOutput:
        if device not in ("auto", "cpu"):
            raise ValueError(f"device must be auto or cpu, got {device!r}")
        target = "cpu" if device == "cpu" else str(mm.get_torch_device())
        if evaluator == "analytic":
            return io.NodeOutput(AnalyticEvaluator(device=target))
        return io.NodeOutput(_load_learned(evaluator, target))


class MA2EvaluateMatte(io.ComfyNode):
    """Per-pixel probability that an alpha is wrong, per-frame scores and a heat map to look at."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            node_id="MA2EvaluateMatte",
            display_name="MatAnyone 2 Evaluate Matte",
            category=CATEGORY,
            description=(
                "Judges an alpha matte without ground truth: for every pixel the probability that the alpha is "
                "wrong, from the frames, the alpha and a segmentation of the subject (e.g. the alpha "
                "thresholded, SAM masks, any mask node). Returns the error map, a heat map over the frames "
                "(yellow to red = suspicious to surely wrong) and the mean error of every frame."
            ),
            search_aliases=["matte quality", "alpha error map", "evaluate alpha", "mqe", "quality heat map"],
            inputs=[
                io.Image.Input("images", tooltip="The frames the alpha belongs to [T,H,W,3]."),
                io.Mask.Input("alpha", tooltip="The alpha matte to judge [T,H,W] (1 = subject)."),
                io.Mask.Input(
                    "segmentation",
                    tooltip="A segmentation of the subject, one mask per frame [T,H,W] or one for all: where "
                    "the subject is (its edges need not be precise).",
                ),
                MA2Evaluator.Input("evaluator", optional=True,
                                   tooltip="From Load Matte Evaluator; empty = the analytic evaluator."),  # fmt: skip
                advanced(io.Float.Input, "heatmap_opacity", default=0.7, min=0.0, max=1.0, step=0.05,
                         tooltip="How strongly the heat map covers suspicious pixels."),  # fmt: skip
            ],
            outputs=[
                io.Mask.Output(display_name="error", tooltip="Probability that the alpha is wrong [T,H,W] (0..1)."),
                io.Image.Output(display_name="heatmap", tooltip="The frames with the error painted over them."),
                io.String.Output(display_name="scores", tooltip="Mean error of every frame, as a JSON list."),
                io.Float.Output(display_name="mean_error", tooltip="Mean error over the whole clip (0..1)."),
            ],
        )

    @classmethod
    def execute(
        cls,
        images: torch.Tensor,
        alpha: torch.Tensor,
        segmentation: torch.Tensor,
        evaluator=None,
        heatmap_opacity: float = 0.7,
    ) -> io.NodeOutput:
        frames = _images(images)
        count, size = frames.shape[0], tuple(frames.shape[1:3])
        alpha = check_mattes(_masks(alpha, "alpha"), count, size, name="alpha")
        segmentation = check_mattes(_masks(segmentation, "segmentation"), count, size, name="segmentation")
        error = evaluate_matte(
            frames, alpha, segmentation,
            evaluator=evaluator or AnalyticEvaluator(device=str(mm.get_torch_device())),
            progress=_progress(frames.shape[0]), check_interrupt=mm.throw_exception_if_processing_interrupted,
        )  # fmt: skip
        scores = frame_scores(error)
        heat = error_heatmap(frames, error, opacity=heatmap_opacity)
        out = mm.intermediate_device()
        text = json.dumps([round(float(s), 5) for s in scores])
        return io.NodeOutput(error.to(out), heat.to(out), text, float(scores.mean()))


class MA2FuseMattes(io.ComfyNode):
    """Dual-branch fusion: the image matte where it is reliable and the video matte is not."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            node_id="MA2FuseMattes",
            display_name="MatAnyone 2 Fuse Mattes",
            category=CATEGORY,
            description=(
                "Fuses a temporally stable video matte with a sharper per-frame (image) matte, guided by their "
                "error maps: the image matte is taken where it is reliable and the video matte is not "
                "(M = (1 - error_image) * error_video, feathered with a Gaussian), the video matte elsewhere."
            ),
            search_aliases=["dual branch fusion", "combine mattes", "merge alpha", "fuse alpha"],
            inputs=[
                io.Mask.Input("alpha_video", tooltip="The video branch, e.g. MatAnyone 2 Matte Video's alpha."),
                io.Mask.Input("alpha_image", tooltip="The image branch, e.g. MatAnyone 2 Matte Frames' alpha."),
                io.Mask.Input("error_video", tooltip="Evaluate Matte's error map of the video branch."),
                io.Mask.Input("error_image", tooltip="Evaluate Matte's error map of the image branch."),
                io.Combo.Input("mode", options=["soft", "binary"], default="soft",
                               tooltip="soft: M = (1 - error_image) * error_video; binary: the paper's rule on the "
                               "reliable maps (image reliable and video not)."),  # fmt: skip
                io.Float.Input("sigma", default=-1.0, min=-1.0, max=100.0, step=0.5,
                               tooltip="Feathering of the fusion map in pixels; -1 = 0.5 % of the short side."),
                advanced(io.Float.Input, "threshold", default=0.5, min=0.01, max=1.0, step=0.01,
                         tooltip="Binary mode: an error below this counts as reliable."),  # fmt: skip
            ],
            outputs=[
                io.Mask.Output(display_name="alpha", tooltip="The fused alpha [T,H,W]."),
                io.Mask.Output(display_name="fusion_map", tooltip="Where the image branch was taken (0..1)."),
            ],
        )

    @classmethod
    def execute(
        cls,
        alpha_video: torch.Tensor,
        alpha_image: torch.Tensor,
        error_video: torch.Tensor,
        error_image: torch.Tensor,
        mode: str = "soft",
        sigma: float = -1.0,
        threshold: float = 0.5,
    ) -> io.NodeOutput:
        if mode not in ("soft", "binary"):
            raise ValueError(f"mode must be soft or binary, got {mode!r}")
        options = {"sigma": None if sigma < 0 else sigma, "binary": mode == "binary", "threshold": threshold}
        video = _masks(alpha_video, "alpha_video")
        errors = _masks(error_video, "error_video"), _masks(error_image, "error_image")
        fused = fuse_mattes(video, _masks(alpha_image, "alpha_image"), *errors, **options)
        used = fusion_map(*errors, **options)
        out = mm.intermediate_device()
        return io.NodeOutput(fused.to(out), used.to(out))


class MA2MatteFrames(io.ComfyNode):
    """The image branch: every frame matted on its own from its own mask (no memory between frames)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            node_id="MA2MatteFrames",
            display_name="MatAnyone 2 Matte Frames",
            category=CATEGORY,
            description=(
                "Mattes every frame independently from its own segmentation mask with the MatAnyone 2 network "
                "(a one-frame run with warm-up per frame): sharp where the masks are good, but free to "
                "flicker. The image branch of dual-branch fusion; frames with an empty mask get alpha 0."
            ),
            search_aliases=["image matting", "per frame matte", "image branch"],
            inputs=[
                MA2Model.Input("model", tooltip="A MatAnyone 2 network from Load MatAnyone 2 Model."),
                io.Image.Input("images", tooltip="The frames [T,H,W,3]."),
                io.Mask.Input("segmentation", tooltip="One mask per frame [T,H,W] (or one for all frames)."),
                io.Int.Input("erode", default=10, min=0, max=100, tooltip="Erosion kernel (pixels) for the masks."),
                io.Int.Input("dilate", default=10, min=0, max=100, tooltip="Dilation kernel (pixels) for the masks."),
                advanced(io.Int.Input, "warmup", default=10, min=0, max=100,
                         tooltip="Refinement passes per frame; the cost per frame grows with it."),  # fmt: skip
                advanced(io.Int.Input, "max_internal_size", default=-1, min=-1, max=8192,
                         tooltip="Process frames whose shorter side exceeds this at this size; -1 = full size."),
            ],
            outputs=[io.Mask.Output(display_name="alpha", tooltip="Per-frame alpha mattes [T,H,W].")],
        )

    @classmethod
    def execute(
        cls,
        model: MattingModel,
        images: torch.Tensor,
        segmentation: torch.Tensor,
        erode: int = 10,
        dilate: int = 10,
        warmup: int = 10,
        max_internal_size: int = -1,
    ) -> io.NodeOutput:
        frames = _images(images)
        try:
            alpha = matte_frames(
                model.network(), frames, _masks(segmentation, "segmentation"), warmup=warmup, erode=erode,
                dilate=dilate, max_internal_size=max_internal_size, progress=_progress(frames.shape[0]),
                check_interrupt=mm.throw_exception_if_processing_interrupted,
            )  # fmt: skip
        finally:
            mm.soft_empty_cache()
        return io.NodeOutput(alpha.to(mm.intermediate_device()))


class MA2SuggestKeyframes(io.ComfyNode):
    """The frames where a keyframe mask pays off most, from an error map."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            node_id="MA2SuggestKeyframes",
            display_name="MatAnyone 2 Suggest Keyframes",
            category=CATEGORY,
            description=(
                "Ranks the frames by their mean error (from Evaluate Matte) and suggests the worst ones, at "
                "least min_gap frames apart: paint a correction mask on those frames and feed it to Matte "
                "Video as keyframes. Shows the suggested frames side by side."
            ),
            search_aliases=["keyframe suggestion", "where to reprompt", "worst frames"],
            inputs=[
                io.Mask.Input("error", tooltip="An error map [T,H,W] from MatAnyone 2 Evaluate Matte."),
                io.Image.Input("images", tooltip="Frames (or Evaluate Matte's heat map) for the preview strip."),
                io.Int.Input("count", default=3, min=1, max=64, tooltip="How many frames to suggest."),
                io.Int.Input("min_gap", default=10, min=0, max=10_000,
                             tooltip="Suggested frames are at least this many frames apart."),  # fmt: skip
            ],
            outputs=[
                io.String.Output(display_name="indices", tooltip="Suggested frame indices, worst first (e.g. 41, 7)."),
                io.Int.Output(display_name="worst_frame", tooltip="The index of the worst frame."),
                io.Image.Output(display_name="preview", tooltip="The suggested frames side by side, worst first."),
            ],
        )

    @classmethod
    def execute(cls, error: torch.Tensor, images: torch.Tensor, count: int = 3, min_gap: int = 10) -> io.NodeOutput:
        error = _masks(error, "error")
        frames = _images(images)
        if frames.shape[:3] != error.shape:
            raise ValueError(f"images is {list(frames.shape[:3])} (TxHxW) but error is {list(error.shape)}")
        indices = suggest_keyframes(error, count=count, min_gap=min_gap)
        preview = frame_strip(frames, indices, height=min(256, frames.shape[1]))
        worst = indices[0] if indices else 0
        return io.NodeOutput(", ".join(str(i) for i in indices), worst, preview.to(mm.intermediate_device()))


QUALITY_NODES: list[type[io.ComfyNode]] = [
    MA2LoadEvaluator, MA2EvaluateMatte, MA2FuseMattes, MA2MatteFrames, MA2SuggestKeyframes,
]  # fmt: skip
