"""The example workflows run in a real ComfyUI and give what matanyone2_core gives in-process."""

from __future__ import annotations

import io

import av
import comfy_host
import comfy_samples
import numpy as np
import pytest
import requests
import torch
from comfy_workflows import MATTE_FIRST_FRAME, REPROMPT_KEYFRAMES
from ma2_host import FRAMES, HEIGHT, WIDTH, Host
from PIL import Image


def _matte_inputs(graph: dict) -> dict:
    return next(n["inputs"] for n in graph.values() if n["class_type"] == "MA2MatteVideo")


PROBE = "ma2_probe"


def _with_alpha_probe(graph: dict) -> dict:
    """The graph plus a test-only tap that saves MA2MatteVideo's alpha as PNGs (node id PROBE)."""
    matte_id = next(k for k, n in graph.items() if n["class_type"] == "MA2MatteVideo")
    graph[f"{PROBE}_image"] = {"class_type": "MaskToImage", "inputs": {"mask": [matte_id, 0]}}
    graph[PROBE] = {
        "class_type": "SaveImage",
        "inputs": {"images": [f"{PROBE}_image", 0], "filename_prefix": "probe/a"},
    }
    return graph


def _saved_alpha(host: Host, result: comfy_host.RunResult, save_id: str = PROBE) -> torch.Tensor:
    """The alpha frames written by a SaveImage node, as [T,H,W] in 0..1 (8-bit)."""
    files = result.output_files(save_id)
    frames = [np.asarray(Image.open(io.BytesIO(host.server.view(item))).convert("L")) for item in files]
    return torch.from_numpy(np.stack(frames)).float() / 255.0


def _saved_videos(host: Host, result: comfy_host.RunResult, graph: dict) -> list[tuple[int, int, int]]:
    """(frames, height, width) of every mp4 the workflow's SaveVideo nodes wrote."""
    shapes = []
    for save_id in [k for k, n in graph.items() if n["class_type"] == "SaveVideo"]:
        items = [i for i in result.output_files(save_id) if i["filename"].endswith(".mp4")]
        assert items, f"no mp4 from SaveVideo {save_id}: {result.history.get('outputs')}"
        with av.open(io.BytesIO(host.server.view(items[0]))) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        shapes.append((len(frames), *frames[0].shape[:2]))
    return shapes


def _reference(host: Host, model, graph: dict) -> torch.Tensor:
    from matanyone2_core import matte_video

    inputs = _matte_inputs(graph)
    frames = comfy_samples.read_video(host.base / "input" / comfy_samples.CLIP_FILE)
    assert torch.equal(frames, host.sample.frames)  # lossless input: the workflow sees the generated frames
    keyframes = None
    uses_keyframes = any(n["inputs"].get("file") == comfy_samples.KEYFRAME_MASKS_FILE for n in graph.values())
    if uses_keyframes:
        masks = comfy_samples.read_video(host.base / "input" / comfy_samples.KEYFRAME_MASKS_FILE)[..., 0]
        first = masks[0]
        keyframes = {i: masks[i] for i in range(1, masks.shape[0]) if float(masks[i].max()) > 1 / 255}
        assert sorted(keyframes) == host.sample.keyframes[1:]
    else:
        first = host.sample.first_mask
    return matte_video(
        model, frames, first, warmup=inputs["warmup"], erode=inputs["erode"], dilate=inputs["dilate"],
        max_internal_size=inputs["max_internal_size"], long_term=inputs["long_term_memory"], keyframes=keyframes,
        anchor=inputs["anchor_frame"], keyframe_mode=inputs.get("keyframe_mode", "reprompt"),
        blend=inputs.get("blend", "quality"),
    )  # fmt: skip


def _matte_video_examples() -> list[str]:
    """The examples built on Matte Video (the file-streaming one has its own test, test_comfy_video_file)."""
    return [p.stem for p in comfy_host.example_workflows() if '"MA2MatteVideo"' in p.read_text()]


@pytest.mark.parametrize("stem", _matte_video_examples())
def test_example_workflow_runs_and_matches_core(host: Host, reference_model, stem: str) -> None:
    graph = _with_alpha_probe(host.example_graph(stem))
    result = host.server.run(graph, timeout=240)
    assert result.status == "success", result.error or host.server.log_tail()

    matte_id = next(k for k, n in graph.items() if n["class_type"] == "MA2MatteVideo")
    progress = [m for m in result.of_type("progress") if m.get("node") == matte_id]
    steps = FRAMES * (2 if graph[matte_id]["inputs"].get("foreground_colors", "estimated") == "estimated" else 1)
    assert [m["value"] for m in progress][-1] == steps and {m["max"] for m in progress} == {steps}
    values = [m["value"] for m in progress]
    assert values == sorted(set(values))  # strictly increasing
    throttled = "PROGRESS_THROTTLE" in (host.spec.comfy_dir / "comfy" / "utils.py").read_text()
    if not throttled:  # 0.33's ProgressBar drops updates closer than its interval; 0.3.75 sends every one
        assert len(progress) >= steps  # one update per frame (matting, then colour estimation)

    # Every output of the workflow itself: alpha PNG sequences and mp4 videos of the clip's size.
    for save_id in [k for k, n in graph.items() if n["class_type"] == "SaveImage"]:
        saved = _saved_alpha(host, result, save_id)
        assert saved.shape == (FRAMES, HEIGHT, WIDTH)
        assert 0.0 <= float(saved.min()) and float(saved.max()) <= 1.0 and float(saved.std()) > 0
    assert _saved_videos(host, result, graph) and set(_saved_videos(host, result, graph)) == {(FRAMES, HEIGHT, WIDTH)}

    alpha = _saved_alpha(host, result)
    for save_id in [k for k, n in graph.items() if n["class_type"] == "SaveImage"]:
        images = [Image.open(io.BytesIO(host.server.view(item))) for item in result.output_files(save_id)]
        if images[0].mode == "RGBA":  # transparent PNGs: their alpha channel is the matte
            channel = torch.from_numpy(np.stack([np.asarray(i.getchannel("A")) for i in images])).float() / 255
            assert float((channel - alpha).abs().max()) <= 1 / 255 + 1e-6
    if "objects" in _matte_inputs(graph):  # seeds from SAM 2: compared in test_comfy_segmentation
        return
    expected = _reference(host, reference_model, graph)
    # SaveImage truncates 255*alpha to 8 bits; the server's float alpha must round the same way.
    assert float((alpha - expected).abs().max()) <= 1 / 255 + 1e-6
    same = torch.floor(expected.clamp(0, 1) * 255.0) == torch.round(alpha * 255.0)
    assert float(same.float().mean()) > 0.999


def test_anchor_in_the_middle_matches_core(host: Host, reference_model) -> None:
    """A mask for a middle frame: matting runs backward and forward from it, as in the core."""
    graph = _with_alpha_probe(host.example_graph(MATTE_FIRST_FRAME, anchor_frame=FRAMES // 2))
    result = host.server.run(graph, timeout=240)
    assert result.status == "success", result.error
    expected = _reference(host, reference_model, graph)
    assert float((_saved_alpha(host, result) - expected).abs().max()) <= 1 / 255 + 1e-6


def test_second_run_reuses_the_loaded_model(host: Host) -> None:
    marker = "loading matanyone weights from"
    graph = host.example_graph(MATTE_FIRST_FRAME, warmup=2)
    before = host.server.log_text().count(marker)
    assert host.server.run(graph, timeout=240).status == "success"
    assert host.server.run(graph, timeout=240).status == "success"  # --cache-none: every node runs again
    reads = [line for line in host.server.log_text().splitlines() if marker in line and "(fp32," in line]
    assert len(reads) == 1, f"fp32 weights read {len(reads)} times (before: {before})"
    assert str(host.checkpoint) in reads[0]


def test_comfyui_offloads_and_reloads_the_model(host: Host) -> None:
    """ComfyUI's model management owns the network: after an unload it loads it again by itself,
    from memory (the weights file is not read again)."""
    load_request = "Requested to load ManagedMatAnyone2"
    graph = host.example_graph(MATTE_FIRST_FRAME)
    assert host.server.run(graph, timeout=240).status == "success"
    before = host.server.log_text().count(load_request)
    requests.post(f"{host.server.url}/free", json={"unload_models": True}, timeout=10).raise_for_status()
    # The flag is applied when the worker wakes up (at the latest after the next prompt).
    for _ in range(2):
        assert host.server.run(graph, timeout=240).status == "success"
    log = host.server.log_text()
    assert log.count(load_request) > before, "the model was not loaded again after the unload"
    reads = [line for line in log.splitlines() if "loading matanyone weights from" in line and "(fp32," in line]
    assert len(reads) == 1


def test_reduced_precision_is_close_to_fp32(host: Host) -> None:
    runs = {}
    for precision in ("fp32", "bf16"):
        graph = _with_alpha_probe(host.example_graph(MATTE_FIRST_FRAME))
        next(n for n in graph.values() if n["class_type"] == "MA2LoadModel")["inputs"]["precision"] = precision
        result = host.server.run(graph, timeout=240)
        assert result.status == "success", result.error
        runs[precision] = _saved_alpha(host, result)
    difference = (runs["fp32"] - runs["bf16"]).abs()
    assert 0 < float(difference.max()) < 0.1  # a separate bf16 network, not the cached fp32 one
    assert "(bf16," in host.server.log_text()


def test_keyframe_workflow_really_uses_the_keyframes(host: Host) -> None:
    """Dropping the later keyframe changes the alpha from that frame on (and not before it)."""
    with_keys = host.server.run(_with_alpha_probe(host.example_graph(REPROMPT_KEYFRAMES)), timeout=240)
    without = host.server.run(_with_alpha_probe(host.example_graph(MATTE_FIRST_FRAME)), timeout=240)
    assert with_keys.status == without.status == "success"
    a = _saved_alpha(host, with_keys)
    b = _saved_alpha(host, without)
    k = host.sample.keyframes[1]
    assert torch.equal(a[:k], b[:k])
    assert float((a[k:] - b[k:]).abs().mean()) > 1e-3


def test_keyframes_as_anchors_match_core_and_fix_the_frames_before(host: Host, reference_model) -> None:
    """keyframe_mode=anchors (quality blend, analytic evaluator) gives the core's anchors-mode alphas, and unlike
    re-prompting it changes the frames before the later keyframe."""
    graph = _with_alpha_probe(host.example_graph(REPROMPT_KEYFRAMES, keyframe_mode="anchors", blend="quality"))
    result = host.server.run(graph, timeout=240)
    assert result.status == "success", result.error or host.server.log_tail()
    alpha = _saved_alpha(host, result)
    expected = _reference(host, reference_model, graph)
    assert float((alpha - expected).abs().max()) <= 1 / 255 + 1e-6
    reprompt = _saved_alpha(host, host.server.run(_with_alpha_probe(host.example_graph(REPROMPT_KEYFRAMES)),
                                                  timeout=240))  # fmt: skip
    k = host.sample.keyframes[1]
    assert float((alpha[1:k] - reprompt[1:k]).abs().mean()) > 1e-3
