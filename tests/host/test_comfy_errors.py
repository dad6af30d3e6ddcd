"""Bad inputs reach the user as execution_error with our message; /interrupt stops a long run."""

from __future__ import annotations

import threading
import time

import comfy_samples
import numpy as np
import pytest
import torch
from comfy_workflows import MATTE_FIRST_FRAME, REPROMPT_KEYFRAMES
from ma2_host import FRAMES, HEIGHT, WIDTH, Host
from PIL import Image


def _node_id(graph: dict, class_type: str) -> str:
    return next(k for k, n in graph.items() if n["class_type"] == class_type)


def _write_mask(host: Host, name: str, mask: np.ndarray) -> str:
    Image.fromarray(np.repeat(mask[..., None], 3, axis=-1)).save(host.base / "input" / name)
    return name


def _expect_error(host: Host, graph: dict, *needles: str) -> None:
    result = host.server.run(graph, timeout=240)
    assert result.status == "error", f"expected an error, got {result.status}"
    error = result.error
    assert error["node_type"] == "MA2MatteVideo"
    assert error["exception_type"].endswith("ValueError")
    for needle in needles:
        assert needle in error["exception_message"], error["exception_message"]
    assert not result.history.get("outputs"), "a refused input must not leave outputs behind"


def test_mask_of_another_size(host: Host) -> None:
    graph = host.example_graph(MATTE_FIRST_FRAME)
    mask = np.zeros((HEIGHT + 8, WIDTH), dtype=np.uint8)
    mask[20:60, 30:90] = 255
    graph[_node_id(graph, "LoadImageMask")]["inputs"]["image"] = _write_mask(host, "ma2_big_mask.png", mask)
    _expect_error(host, graph, "mask must be [H,W]", f"[{HEIGHT}, {WIDTH}]", f"[{HEIGHT + 8}, {WIDTH}]")


def test_empty_mask(host: Host) -> None:
    graph = host.example_graph(MATTE_FIRST_FRAME)
    empty = _write_mask(host, "ma2_empty_mask.png", np.zeros((HEIGHT, WIDTH), dtype=np.uint8))
    graph[_node_id(graph, "LoadImageMask")]["inputs"]["image"] = empty
    _expect_error(host, graph, "mask is empty")


def test_anchor_out_of_range(host: Host) -> None:
    graph = host.example_graph(MATTE_FIRST_FRAME, anchor_frame=FRAMES + 3)
    _expect_error(host, graph, f"anchor_frame {FRAMES + 3} is out of range", f"{FRAMES} frames")


def _damaged(host: Host, scale: float, nan_frame: int = -1) -> dict:
    """The first example with the test pack's MA2ProbeDamageImages between the frames and the matting node."""
    graph = host.example_graph(MATTE_FIRST_FRAME)
    matte = graph[_node_id(graph, "MA2MatteVideo")]["inputs"]
    graph["damage"] = {"class_type": "MA2ProbeDamageImages",
                       "inputs": {"images": matte["images"], "scale": scale, "nan_frame": nan_frame}}  # fmt: skip
    matte["images"] = ["damage", 0]
    return graph


def test_frames_outside_0_1(host: Host) -> None:
    _expect_error(host, _damaged(host, 255.0), "images: frame 0 has values in", "outside 0..1", "divide by 255")
    _expect_error(host, _damaged(host, -1.0), "images: frame 0", "outside 0..1")


def test_frame_with_nan(host: Host) -> None:
    _expect_error(host, _damaged(host, 1.0, nan_frame=5), "images: frame 5 contains NaN or infinite values")


def test_kernel_larger_than_the_frame(host: Host) -> None:
    graph = host.example_graph(MATTE_FIRST_FRAME, erode=100)
    _expect_error(host, graph, f"erode kernel 100 is larger than the frame ({HEIGHT}x{WIDTH} HxW)")


def test_mask_batch_of_wrong_length(host: Host) -> None:
    masks = (host.sample.keyframe_masks[: FRAMES - 2] * 255).round().to(torch.uint8).numpy()
    comfy_samples.write_video(host.base / "input" / "ma2_short_masks.mp4", np.repeat(masks[..., None], 3, axis=-1))
    graph = host.example_graph(REPROMPT_KEYFRAMES)
    loaders = [k for k, n in graph.items() if n["class_type"] == "LoadVideo"]
    mask_loader = next(k for k in loaders if graph[k]["inputs"]["file"] == comfy_samples.KEYFRAME_MASKS_FILE)
    graph[mask_loader]["inputs"]["file"] = "ma2_short_masks.mp4"
    _expect_error(host, graph, f"mask batch has {FRAMES - 2} frames", f"images has {FRAMES}")


def test_anchor_without_keyframe_mask(host: Host) -> None:
    graph = host.example_graph(REPROMPT_KEYFRAMES, anchor_frame=1)
    _expect_error(host, graph, "anchor_frame 1 has an empty mask", str(host.sample.keyframes))


@pytest.fixture(scope="module")
def long_clip(host: Host) -> str:
    """The sample clip repeated to 64 frames, so a run lasts long enough to be interrupted."""
    frames = (host.sample.frames.repeat(8, 1, 1, 1) * 255).round().to(torch.uint8).numpy()
    comfy_samples.write_video(host.base / "input" / "ma2_long_clip.mp4", frames)
    return "ma2_long_clip.mp4"


def test_interrupt_stops_within_a_frame(host: Host, long_clip: str) -> None:
    graph = host.example_graph(MATTE_FIRST_FRAME, warmup=1)
    clip_loader = next(k for k, n in graph.items() if n["class_type"] == "LoadVideo")
    graph[clip_loader]["inputs"]["file"] = long_clip
    matte_id = _node_id(graph, "MA2MatteVideo")
    sent: dict[str, float] = {}

    def on_message(message: dict) -> None:
        data = message.get("data") or {}
        if message["type"] == "progress" and data.get("node") == matte_id and data["value"] >= 2 and not sent:
            sent["at"] = time.monotonic()
            sent["value"] = data["value"]
            threading.Thread(target=host.server.interrupt).start()

    result = host.server.run(graph, timeout=240, on_message=on_message)
    assert sent, f"the matting node never reported progress: {result.status} {result.error}"
    assert result.status == "interrupted", result.error
    assert result.of_type("execution_interrupted")[0]["node_type"] == "MA2MatteVideo"
    last = max(m["value"] for m in result.of_type("progress") if m.get("node") == matte_id)
    assert last <= sent["value"] + 2 < 64, "matting went on after the interrupt"
    # The server is healthy afterwards: the next run completes.
    assert host.server.run(host.example_graph(MATTE_FIRST_FRAME), timeout=240).status == "success"


def test_missing_weights_say_where_to_put_them(host: Host) -> None:
    """With the file gone and download_if_missing off, the loader names the target path and the URL."""
    from matanyone2_core import OFFICIAL_WEIGHTS_URL

    graph = host.example_graph(MATTE_FIRST_FRAME)
    graph[_node_id(graph, "MA2LoadModel")]["inputs"]["download_if_missing"] = False
    parked = host.checkpoint.with_name("parked.bin")
    host.checkpoint.rename(parked)
    try:
        result = host.server.run(graph, timeout=120)
    finally:
        parked.rename(host.checkpoint)
    assert result.status == "error" and result.error["node_type"] == "MA2LoadModel"
    message = result.error["exception_message"]
    assert str(host.checkpoint) in message and OFFICIAL_WEIGHTS_URL in message and "download_if_missing" in message
