"""MA2MatteVideoFile: a VIDEO (e.g. from Load Video) matted as it is decoded and encoded as it goes, so a clip
of any length never sits in memory; VIDEO outputs, saved to the output folder."""

from __future__ import annotations

import io as bytes_io
from typing import Any

import comfy.model_management as mm
import comfy.utils
import folder_paths
import torch
from comfy_api.latest import InputImpl, io, ui

from ..matanyone2_core.engine.options import MattingOptions
from ..matanyone2_core.streaming import (
    FOREGROUND_COLORS,
    VIDEO_CODECS,
    AudioTrack,
    TensorSource,
    VideoFileSource,
    matte_to_files,
)
from .matting import speed_inputs
from .models import MattingModel
from .schema import advanced, schema
from .types import MA2Model


def parse_frame_list(text: str, *, name: str) -> list[int]:
    """`"40, 90"` -> [40, 90]: frame indices separated by commas, semicolons or spaces."""
    indices = []
    for token in str(text).replace(";", ",").replace(" ", ",").split(","):
        if not token:
            continue
        if not token.isdigit():
            raise ValueError(f"{name}: {token!r} is not a frame index (expected e.g. '40, 90')")
        indices.append(int(token))
    return indices


def _keyframes(masks: torch.Tensor | None, frames_text: str, size: tuple[int, int]) -> dict[int, torch.Tensor]:
    indices = parse_frame_list(frames_text, name="keyframe_frames")
    if masks is None:
        if indices:
            raise ValueError("keyframe_frames lists frames but keyframe_masks is not connected")
        return {}
    masks = masks if masks.ndim == 3 else masks[None]
    if len(indices) != masks.shape[0]:
        raise ValueError(f"keyframe_masks holds {masks.shape[0]} mask(s) but keyframe_frames lists {len(indices)} "
                         f"frame(s) ({frames_text!r}): give one frame index per mask, in order")  # fmt: skip
    if len(set(indices)) != len(indices):
        raise ValueError(f"keyframe_frames lists a frame twice: {indices}")
    if tuple(masks.shape[1:]) != tuple(size):
        raise ValueError(f"keyframe_masks are {masks.shape[1]}x{masks.shape[2]} (HxW) but the video is "
                         f"{size[0]}x{size[1]}")  # fmt: skip
    return {i: masks[k].float().cpu() for k, i in enumerate(indices)}


def open_video(video: Any) -> tuple[Any, AudioTrack | None]:
    """A frame source and its audio for a ComfyUI VIDEO: a file (decoded lazily, its trim window kept) or
    components already in memory."""
    source = video.get_stream_source() if hasattr(video, "get_stream_source") else None
    if source is None:
        components = video.get_components()
        audio = None
        if components.audio is not None:
            waveform = components.audio["waveform"]
            audio = AudioTrack(samples=waveform[0].float().cpu().numpy(), sample_rate=components.audio["sample_rate"])
        return TensorSource(components.images, fps=float(components.frame_rate)), audio
    start, duration = video.get_active_trim_window() if hasattr(video, "get_active_trim_window") else (0.0, 0.0)
    if isinstance(source, bytes_io.BytesIO):
        data = source.getvalue()
        frames = VideoFileSource(bytes_io.BytesIO(data), start_time=start, duration=duration)
        audio = AudioTrack.from_file(bytes_io.BytesIO(data), window=frames.window)
    else:
        frames = VideoFileSource(source, start_time=start, duration=duration)
        audio = AudioTrack.from_file(source, window=frames.window)
    return frames, audio


class MA2MatteVideoFile(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            node_id="MA2MatteVideoFile",
            display_name="MatAnyone 2 Matte Video File",
            category="video/matting",
            essentials_category="Video Tools",
            description=(
                "Video matting for long clips: the VIDEO is decoded, matted and encoded one frame at a time, so "
                "memory does not grow with its length (minutes of 1080p or 4K). Writes an alpha video and a "
                "foreground video (with the source's audio) to the output folder and returns both as VIDEO."
            ),
            search_aliases=["matanyone", "video matting", "long video", "stream", "remove background video", "alpha"],
            inputs=[
                MA2Model.Input("model", tooltip="A MatAnyone 2 network from Load MatAnyone 2 Model."),
                io.Video.Input("video", tooltip="The clip, a VIDEO (e.g. from Load Video); read lazily from its file."),
                io.Mask.Input("mask", tooltip="The subject's mask on anchor_frame (white = subject), the video's HxW."),
                io.Int.Input("anchor_frame", default=0, min=0, max=10_000_000,
                             tooltip="The frame the mask belongs to. Frames before it are matted backward from it "
                             "(read back by seeking, their alphas kept in a temporary file)."),  # fmt: skip
                io.Int.Input("erode", default=10, min=0, max=100,
                             tooltip="Erosion kernel (pixels) for the seed masks; about 4 at 512x288, 15 at 1080p."),
                io.Int.Input("dilate", default=10, min=0, max=100,
                             tooltip="Dilation kernel (pixels) for the seed masks; scale with the resolution."),
                io.Combo.Input("codec", options=list(VIDEO_CODECS), default="h264",
                               tooltip="h264: .mp4, small, plays everywhere (lossy; foreground premultiplied on "
                               "black). png: .mov, lossless (foreground RGBA). prores4444: .mov with alpha, for "
                               "compositing applications."),  # fmt: skip
                io.String.Input("filename_prefix", default="matanyone2/video",
                                tooltip="Output files: <prefix>_NNNNN_alpha and _foreground in the output folder."),
                advanced(io.Combo.Input, "foreground_colors", options=list(FOREGROUND_COLORS), default="estimated",
                         tooltip="estimated: the subject's true colours solved from frame and alpha (no halo of "
                         "the old background); frame: the frame's own colours."),  # fmt: skip
                advanced(io.Int.Input, "warmup", default=10, min=0, max=100,
                         tooltip="Refinement passes on the anchor frame before propagation."),
                advanced(io.Int.Input, "max_internal_size", default=0, min=-1, max=8192,
                         tooltip="Matte at this shorter side (alpha scaled back). 0 (default) = auto: full "
                         "resolution when it fits the free GPU memory, else the largest size that does (logged); "
                         "-1 always full resolution (exact)."),  # fmt: skip
                advanced(io.Boolean.Input, "long_term_memory", default=True,
                         tooltip="Compact long-term memory: better consistency on long clips, bounded memory."),
                advanced(io.Boolean.Input, "png_sequence", default=False,
                         tooltip="Also write PNG sequences <prefix>_NNNNN_png/pha (alpha) and fgr (RGBA)."),
                *speed_inputs(),
                advanced(io.Boolean.Input, "subject_crop", default=False,
                         tooltip="Find the box the subject stays in with a quick low-resolution pass, then matte "
                         "only that box at full resolution (less memory and time for a small subject in 4K; the "
                         "alpha outside the box is 0)."),  # fmt: skip
                io.Mask.Input("keyframe_masks", optional=True,
                              tooltip="Correction masks for later (or earlier) frames, a MASK batch; their frame "
                              "indices in keyframe_frames, in the same order."),  # fmt: skip
                io.String.Input("keyframe_frames", default="", optional=True,
                                tooltip="The frame index of each keyframe mask, e.g. '120, 480'."),
            ],
            outputs=[
                io.Video.Output(display_name="alpha_video", tooltip="The alpha matte as a grey video."),
                io.Video.Output(display_name="foreground_video",
                                tooltip="The foreground (premultiplied for h264, RGBA otherwise), with audio."),
                io.Int.Output(display_name="frames", tooltip="Number of frames matted."),
            ],
            is_output_node=True,
        )

    @classmethod
    def execute(
        cls,
        model: MattingModel,
        video: Any,
        mask: torch.Tensor,
        anchor_frame: int = 0,
        erode: int = 10,
        dilate: int = 10,
        codec: str = "h264",
        filename_prefix: str = "matanyone2/video",
        foreground_colors: str = "estimated",
        warmup: int = 10,
        max_internal_size: int = 0,
        long_term_memory: bool = True,
        png_sequence: bool = False,
        memory_read: str = "topk",
        encode_batch: int = 1,
        compile: bool = False,
        subject_crop: bool = False,
        keyframe_masks: torch.Tensor | None = None,
        keyframe_frames: str = "",
    ) -> io.NodeOutput:
        if codec not in VIDEO_CODECS:
            raise ValueError(f"codec must be one of {list(VIDEO_CODECS)}, got {codec!r}")
        if foreground_colors not in FOREGROUND_COLORS:
            raise ValueError(f"foreground_colors must be one of {FOREGROUND_COLORS}, got {foreground_colors!r}")
        source, audio = open_video(video)
        try:
            height, width = source.size
            first = mask.float().cpu()
            first = first[0] if first.ndim == 3 and first.shape[0] == 1 else first
            keyframes = _keyframes(keyframe_masks, keyframe_frames, (height, width))
            options = MattingOptions(warmup=warmup, erode=erode, dilate=dilate, max_internal_size=max_internal_size,
                                     long_term=long_term_memory, memory_read=memory_read,
                                     encode_batch=encode_batch, compile=compile)  # fmt: skip
            folder, name, counter, subfolder, _ = folder_paths.get_save_image_path(
                filename_prefix, folder_paths.get_output_directory(), width, height
            )
            stem = f"{name}_{counter:05}"
            bar = comfy.utils.ProgressBar((source.count + (1 if anchor_frame > 0 else 0)) * (2 if subject_crop else 1))
            try:
                result = matte_to_files(
                    model.network(), source, first, folder, stem, codec=codec, foreground_colors=foreground_colors,
                    png_sequence=png_sequence, audio=audio, anchor=anchor_frame, keyframes=keyframes, options=options,
                    subject_crop=subject_crop,
                    device=model.device, progress=lambda done, total: bar.update_absolute(done, total),
                    check_interrupt=mm.throw_exception_if_processing_interrupted,
                )  # fmt: skip
            finally:
                mm.soft_empty_cache()
        finally:
            source.close()
        saved = [ui.SavedResult(p.name, subfolder, io.FolderType.output)
                 for p in (result.foreground_video, result.alpha_video)]  # fmt: skip
        return io.NodeOutput(
            InputImpl.VideoFromFile(str(result.alpha_video)),
            InputImpl.VideoFromFile(str(result.foreground_video)),
            result.frames,
            ui=ui.PreviewVideo(saved),
        )
