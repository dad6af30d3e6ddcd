"""Matte Video File in a real ComfyUI: a VIDEO from core Load Video (lossless, with audio) matted from a middle
anchor with a keyframe before it (backward pass by seeking) gives matte_video's alphas within 1/255, writes both
videos to the output folder with the audio carried over, returns VIDEOs core nodes take, and names bad input."""

from __future__ import annotations

import io
from fractions import Fraction

import av
import comfy_samples
import numpy as np
import torch
from comfy_workflows import LONG_VIDEO, MATTE_FIRST_FRAME
from ma2_host import FAST, FRAMES, HEIGHT, WIDTH, Host

from matanyone2_core.io import to_uint8
from matanyone2_core.streaming import AudioTrack, VideoSink

CLIP = "ma2_stream_clip.mov"
SAMPLE_RATE = 16000
ANCHOR, KEYFRAME = 4, 1


def _write_clip_with_audio(host: Host) -> None:
    path = host.base / "input" / CLIP
    if path.exists():
        return
    seconds = FRAMES / comfy_samples.FPS
    t = np.arange(int(SAMPLE_RATE * seconds)) / SAMPLE_RATE
    tone = (0.3 * np.sin(2 * np.pi * 440 * t))[None].astype(np.float32)
    sink = VideoSink(path, fps=Fraction(comfy_samples.FPS), size=(HEIGHT, WIDTH), codec="png",
                     audio=AudioTrack(samples=tone, sample_rate=SAMPLE_RATE))  # fmt: skip
    for frame in to_uint8(host.sample.frames):
        sink.write(frame)
    sink.close()


def _graph(host: Host, **overrides) -> dict:
    example = host.example_graph(MATTE_FIRST_FRAME)
    loader = next(n for n in example.values() if n["class_type"] == "MA2LoadModel")
    inputs = {"model": ["2", 0], "video": ["1", 0], "mask": ["3", 0], "anchor_frame": ANCHOR, "erode": 3,
              "dilate": 3, "codec": "png", "filename_prefix": "ma2_stream/test", "foreground_colors": "frame",
              "warmup": FAST["warmup"], "max_internal_size": -1, "long_term_memory": False, "png_sequence": False,
              "memory_read": "topk", "encode_batch": 1, "compile": False,
              "subject_crop": False,
              "keyframe_masks": ["3", 0], "keyframe_frames": str(KEYFRAME), **overrides}  # fmt: skip
    return {
        "1": {"class_type": "LoadVideo", "inputs": {"file": CLIP}},
        "2": loader,
        "3": {"class_type": "LoadImageMask", "inputs": {"image": comfy_samples.FIRST_MASK_FILE, "channel": "red"}},
        "4": {"class_type": "MA2MatteVideoFile", "inputs": inputs},
        "5": {"class_type": "GetVideoComponents", "inputs": {"video": ["4", 0]}},
        "6": {"class_type": "PreviewImage", "inputs": {"images": ["5", 0]}},
    }


def _decode(data: bytes) -> tuple[np.ndarray, list[str]]:
    """Frames (as stored: grey, RGB or RGBA) and the stream types of a video file."""
    with av.open(io.BytesIO(data)) as container:
        kinds = [s.type for s in container.streams]
        stream = container.streams.video[0]
        fmt = {"gray": "gray", "rgba": "rgba"}.get(stream.codec_context.pix_fmt, "rgb24")
        frames = np.stack([f.to_ndarray(format=fmt) for f in container.decode(stream)])
    return frames, kinds


def test_streamed_video_matches_core_and_carries_audio(host: Host, reference_model) -> None:
    from matanyone2_core import matte_video

    _write_clip_with_audio(host)
    graph = _graph(host)
    result = host.server.run(graph, timeout=300)
    assert result.status == "success", result.error or host.server.log_tail()
    files = result.output_files("4")
    assert sorted(f["filename"].rsplit("_", 1)[1] for f in files) == ["alpha.mov", "foreground.mov"]
    by_kind = {f["filename"].rsplit("_", 1)[1]: host.server.view(f) for f in files}
    alpha, kinds = _decode(by_kind["alpha.mov"])
    assert kinds == ["video"] and alpha.shape == (FRAMES, HEIGHT, WIDTH)
    foreground, kinds = _decode(by_kind["foreground.mov"])
    assert kinds == ["video", "audio"] and foreground.shape == (FRAMES, HEIGHT, WIDTH, 4)
    assert np.array_equal(foreground[..., 3], alpha)  # RGBA: the straight colours with the alpha
    assert np.array_equal(foreground[..., :3], to_uint8(host.sample.frames))  # foreground_colors=frame

    mask = host.sample.first_mask
    expected = matte_video(reference_model, host.sample.frames, mask, anchor=ANCHOR, keyframes={KEYFRAME: mask},
                           warmup=FAST["warmup"], erode=3, dilate=3)  # fmt: skip
    assert float((torch.from_numpy(alpha).float() / 255 - expected).abs().max()) <= 1 / 255
    progress = [m for m in result.of_type("progress") if m.get("node") == "4"]
    assert progress and {m["max"] for m in progress} == {FRAMES + 1}
    assert result.output_files("6")  # the VIDEO output feeds core Get Video Components

    with av.open(io.BytesIO(by_kind["foreground.mov"])) as container:
        audio = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(audio))
    assert abs(samples / audio.codec_context.sample_rate - FRAMES / comfy_samples.FPS) < 0.15


def test_h264_and_png_sequence(host: Host) -> None:
    _write_clip_with_audio(host)
    result = host.server.run(_graph(host, codec="h264", png_sequence=True, anchor_frame=0, keyframe_frames="5",
                                    filename_prefix="ma2_stream/h264", memory_read="full", encode_batch=3,
                                    subject_crop=True),
                             timeout=300)  # fmt: skip
    assert result.status == "success", result.error or host.server.log_tail()
    files = {f["filename"].rsplit("_", 1)[1]: f for f in result.output_files("4")}
    assert sorted(files) == ["alpha.mp4", "foreground.mp4"]
    frames, kinds = _decode(host.server.view(files["foreground.mp4"]))
    assert kinds == ["video", "audio"] and frames.shape == (FRAMES, HEIGHT, WIDTH, 3)
    folder = host.base / "output" / files["alpha.mp4"]["subfolder"]
    stem = files["alpha.mp4"]["filename"][: -len("_alpha.mp4")]
    assert len(list((folder / f"{stem}_png" / "pha").glob("*.png"))) == FRAMES
    assert len(list((folder / f"{stem}_png" / "fgr").glob("*.png"))) == FRAMES


def test_bad_keyframe_list_is_named(host: Host) -> None:
    _write_clip_with_audio(host)
    result = host.server.run(_graph(host, keyframe_frames="1, 2"), timeout=120)
    assert result.status == "error" and result.error["node_type"] == "MA2MatteVideoFile"
    assert "keyframe_frames" in result.error["exception_message"]
    result = host.server.run(_graph(host, anchor_frame=FRAMES + 3), timeout=120)
    assert result.status == "error" and "anchor" in result.error["exception_message"]


def test_long_video_example_runs_and_matches_core(host: Host, reference_model) -> None:
    """The example workflow as saved (H.264 outputs), its alpha decoded back within H.264's loss of matte_video."""
    from matanyone2_core import matte_video

    graph = host.example_graph(LONG_VIDEO)
    node = next(k for k, n in graph.items() if n["class_type"] == "MA2MatteVideoFile")
    graph[node]["inputs"].update(warmup=FAST["warmup"], filename_prefix="ma2_stream/example")
    result = host.server.run(graph, timeout=300)
    assert result.status == "success", result.error or host.server.log_tail()
    files = {f["filename"].rsplit("_", 1)[1]: f for f in result.output_files(node)}
    assert sorted(files) == ["alpha.mp4", "foreground.mp4"]
    alpha, kinds = _decode(host.server.view(files["alpha.mp4"]))
    assert kinds == ["video"] and alpha.shape == (FRAMES, HEIGHT, WIDTH, 3)
    inputs = graph[node]["inputs"]
    expected = matte_video(reference_model, host.sample.frames, host.sample.first_mask, warmup=FAST["warmup"],
                           erode=inputs["erode"], dilate=inputs["dilate"], long_term=inputs["long_term_memory"])
    decoded = torch.from_numpy(alpha[..., 0]).float() / 255
    assert float((decoded - expected).abs().mean()) < 0.02  # H.264 (CRF 16, 4:2:0) is lossy: a mean bound
