"""MA2Composite in a real ComfyUI: colour and image backgrounds, broadcasting, resize rules, mismatch errors."""

from __future__ import annotations

import io

import comfy_samples
import numpy as np
import torch
from ma2_host import FRAMES, HEIGHT, WIDTH, Host
from PIL import Image


def _graph(**composite: object) -> dict:
    """Original frames (straight) + the first-frame mask as alpha for every frame -> SaveImage."""
    inputs = {"foreground": ["2", 0], "alpha": ["3", 0], "background_color": "#00B140", "background_fit": "cover",
              "foreground_mode": "straight", **composite}  # fmt: skip
    return {
        "1": {"class_type": "LoadVideo", "inputs": {"file": comfy_samples.CLIP_FILE}},
        "2": {"class_type": "GetVideoComponents", "inputs": {"video": ["1", 0]}},
        "3": {"class_type": "LoadImageMask", "inputs": {"image": comfy_samples.FIRST_MASK_FILE, "channel": "red"}},
        "4": {"class_type": "MA2Composite", "inputs": inputs},
        "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "test/composite"}},
    }


def _saved(host: Host, result) -> torch.Tensor:
    files = result.output_files("5")
    images = [np.asarray(Image.open(io.BytesIO(host.server.view(f))).convert("RGB")) for f in files]
    return torch.from_numpy(np.stack(images)).float() / 255.0


def _run(host: Host, graph: dict) -> torch.Tensor:
    result = host.server.run(graph, timeout=120)
    assert result.status == "success", result.error
    return _saved(host, result)


def _expected(host: Host, background: torch.Tensor) -> torch.Tensor:
    a = host.sample.first_mask[None, :, :, None]
    return host.sample.frames * a + background * (1 - a)


def test_colour_background(host: Host) -> None:
    out = _run(host, _graph())
    green = torch.tensor([0x00, 0xB1, 0x40]) / 255.0
    assert out.shape == (FRAMES, HEIGHT, WIDTH, 3)
    assert float((out - _expected(host, green)).abs().max()) <= 1 / 255 + 1e-6


def test_single_background_image_is_broadcast_and_covered(host: Host) -> None:
    # A 2x larger background: "cover" scales it down to exactly the frame (same aspect ratio).
    bg = np.zeros((2 * HEIGHT, 2 * WIDTH, 3), dtype=np.uint8)
    bg[:, :WIDTH] = (200, 30, 30)
    bg[:, WIDTH:] = (30, 30, 200)
    Image.fromarray(bg).save(host.base / "input" / "ma2_background.png")
    graph = _graph(background=["6", 0])
    graph["6"] = {"class_type": "LoadImage", "inputs": {"image": "ma2_background.png"}}
    out = _run(host, graph)
    a = host.sample.first_mask
    outside = a == 0
    left, right = out[:, :, : WIDTH // 2 - 2], out[:, :, WIDTH // 2 + 2 :]
    assert torch.allclose(left[:, outside[:, : WIDTH // 2 - 2]], torch.tensor([200, 30, 30]) / 255.0, atol=2 / 255)
    assert torch.allclose(right[:, outside[:, WIDTH // 2 + 2 :]], torch.tensor([30, 30, 200]) / 255.0, atol=2 / 255)


def test_background_of_another_size_is_refused_with_fit_error(host: Host) -> None:
    Image.fromarray(np.zeros((HEIGHT + 4, WIDTH, 3), dtype=np.uint8)).save(host.base / "input" / "ma2_bg_odd.png")
    graph = _graph(background=["6", 0], background_fit="error")
    graph["6"] = {"class_type": "LoadImage", "inputs": {"image": "ma2_bg_odd.png"}}
    result = host.server.run(graph, timeout=120)
    assert result.status == "error" and result.error["node_type"] == "MA2Composite"
    assert f"{HEIGHT + 4}x{WIDTH}" in result.error["exception_message"]


def test_background_batch_of_wrong_length(host: Host) -> None:
    graph = _graph(background=["6", 0])
    graph["6"] = {"class_type": "ImageFromBatch", "inputs": {"image": ["2", 0], "batch_index": 0, "length": 3}}
    result = host.server.run(graph, timeout=120)
    assert result.status == "error"
    assert f"background batch has 3 images but foreground has {FRAMES} frames" in result.error["exception_message"]


def test_premultiplied_foreground_equals_straight_frames(host: Host) -> None:
    straight = _run(host, _graph(background_color="#102030"))
    graph = _graph(background_color="#102030", foreground_mode="premultiplied", foreground=["7", 0])
    graph["7"] = {
        "class_type": "ImageCompositeMasked",
        "inputs": {
            "destination": ["8", 0],
            "source": ["2", 0],
            "x": 0,
            "y": 0,
            "resize_source": False,
            "mask": ["3", 0],
        },
    }
    graph["8"] = {"class_type": "EmptyImage", "inputs": {"width": WIDTH, "height": HEIGHT, "batch_size": FRAMES,
                                                         "color": 0}}  # fmt: skip
    premultiplied = _run(host, graph)
    assert float((straight - premultiplied).abs().max()) <= 1 / 255 + 1e-6
