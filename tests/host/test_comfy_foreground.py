"""True foreground colours in a real ComfyUI: Matte Video's foreground outputs, the RGBA frames of the first
example, and Estimate Foreground on any IMAGE + MASK, each equal to matanyone2_core.estimate_foreground."""

from __future__ import annotations

import io

import comfy_samples
import numpy as np
import torch
from comfy_workflows import MATTE_FIRST_FRAME
from ma2_host import FRAMES, HEIGHT, WIDTH, Host
from PIL import Image


def _node(graph: dict, class_type: str) -> str:
    return next(k for k, n in graph.items() if n["class_type"] == class_type)


def _saved(host: Host, result, node_id: str, mode: str = "RGB") -> torch.Tensor:
    files = result.output_files(node_id)
    frames = [np.asarray(Image.open(io.BytesIO(host.server.view(f))).convert(mode)) for f in files]
    return torch.from_numpy(np.stack(frames)).float() / 255.0


def _tap(graph: dict, source: list, name: str) -> None:
    graph[name] = {"class_type": "SaveImage", "inputs": {"images": source, "filename_prefix": f"tap/{name}"}}


def test_matte_video_foreground_outputs_and_rgba_frames(host: Host, reference_model) -> None:
    from matanyone2_core import estimate_foreground, matte_video

    graph = host.example_graph(MATTE_FIRST_FRAME)
    matte = _node(graph, "MA2MatteVideo")
    _tap(graph, [matte, 1], "t_premultiplied")
    _tap(graph, [matte, 2], "t_straight")
    result = host.server.run(graph, timeout=300)
    assert result.status == "success", result.error

    inputs = graph[matte]["inputs"]
    frames = comfy_samples.read_video(host.base / "input" / comfy_samples.CLIP_FILE)
    alpha = matte_video(reference_model, frames, host.sample.first_mask, warmup=inputs["warmup"],
                        erode=inputs["erode"], dilate=inputs["dilate"])  # fmt: skip
    straight = estimate_foreground(frames, alpha)
    saved_straight = _saved(host, result, "t_straight")
    assert saved_straight.shape == (FRAMES, HEIGHT, WIDTH, 3)
    assert float((saved_straight - straight).abs().max()) <= 2 / 255
    saved_pre = _saved(host, result, "t_premultiplied")
    assert float((saved_pre - straight * alpha[..., None]).abs().max()) <= 2 / 255
    # The example's transparent PNGs carry the estimated colours, not the frame's.
    rgba_save = next(k for k, n in graph.items() if n["class_type"] == "SaveImage"
                     and n["inputs"]["filename_prefix"].endswith("rgba"))  # fmt: skip
    rgba = _saved(host, result, rgba_save, "RGBA")
    assert float((rgba[..., :3] - straight).abs().max()) <= 2 / 255
    band = (alpha > 0.05) & (alpha < 0.95)
    assert float((straight - frames).abs().amax(-1)[band].mean()) > 1 / 255  # the colours did change there

    graph = host.example_graph(MATTE_FIRST_FRAME, foreground_colors="frame")
    _tap(graph, [_node(graph, "MA2MatteVideo"), 1], "t_frame")
    result = host.server.run(graph, timeout=300)
    assert result.status == "success", result.error
    assert float((_saved(host, result, "t_frame") - frames * alpha[..., None]).abs().max()) <= 2 / 255


def test_estimate_foreground_node_on_any_image_and_mask(host: Host) -> None:
    from matanyone2_core import estimate_foreground

    graph = {
        "1": {"class_type": "LoadVideo", "inputs": {"file": comfy_samples.CLIP_FILE}},
        "2": {"class_type": "GetVideoComponents", "inputs": {"video": ["1", 0]}},
        "3": {"class_type": "LoadImageMask", "inputs": {"image": comfy_samples.FIRST_MASK_FILE, "channel": "red"}},
        "4": {"class_type": "MA2EstimateForeground", "inputs": {"images": ["2", 0], "alpha": ["3", 0],
                                                                "fine_iterations": 3}},
    }  # fmt: skip
    for slot, name in enumerate(("fg", "pre", "bg")):
        _tap(graph, ["4", slot], name)
    result = host.server.run(graph, timeout=300)
    assert result.status == "success", result.error
    frames = comfy_samples.read_video(host.base / "input" / comfy_samples.CLIP_FILE)
    alpha = host.sample.first_mask
    fg, bg = estimate_foreground(frames, alpha, big_iterations=3, return_background=True)
    for name, expected in (("fg", fg), ("pre", fg * alpha[..., None]), ("bg", bg)):
        assert float((_saved(host, result, name) - expected).abs().max()) <= 2 / 255, name

    graph["4"]["inputs"]["alpha"] = ["5", 0]
    graph["5"] = {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": WIDTH + 4, "height": HEIGHT}}
    result = host.server.run(graph, timeout=120)
    assert result.status == "error" and result.error["node_type"] == "MA2EstimateForeground"
    assert "alpha" in result.error["exception_message"]
