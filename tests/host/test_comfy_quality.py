"""The quality nodes in a real ComfyUI: the quality-guided fusion example gives what the core pipeline gives
in-process (video branch, thresholded segmentation, image branch, both judged, fused, keyframes suggested),
and bad inputs are clear errors."""

from __future__ import annotations

import io
import json

import comfy_samples
import numpy as np
import torch
from comfy_workflows import QUALITY_FUSION
from ma2_host import FRAMES, HEIGHT, LEARNED_EVALUATOR, WIDTH, Host
from PIL import Image


def _node(graph: dict, class_type: str) -> str:
    return next(k for k, n in graph.items() if n["class_type"] == class_type)


def _saved_masks(host: Host, result, node_id: str) -> torch.Tensor:
    files = result.output_files(node_id)
    frames = [np.asarray(Image.open(io.BytesIO(host.server.view(f))).convert("L")) for f in files]
    return torch.from_numpy(np.stack(frames)).float() / 255.0


def _text(result, node_id: str) -> str:
    return "".join(result.history["outputs"][node_id]["text"])


def test_fusion_workflow_equals_the_core_pipeline(host: Host, reference_model) -> None:
    from matanyone2_core import matte_video
    from matanyone2_core.quality import evaluate_matte, frame_scores, fuse_mattes, matte_frames, suggest_keyframes

    graph = host.example_graph(QUALITY_FUSION)
    evaluate_video = next(k for k, n in graph.items() if n["class_type"] == "MA2EvaluateMatte"
                          and n["inputs"]["alpha"][0] == _node(graph, "MA2MatteVideo"))  # fmt: skip
    suggest = _node(graph, "MA2SuggestKeyframes")
    graph["t_scores"] = {"class_type": "PreviewAny", "inputs": {"source": [evaluate_video, 2]}}
    graph["t_indices"] = {"class_type": "PreviewAny", "inputs": {"source": [suggest, 0]}}
    result = host.server.run(graph, timeout=300)
    assert result.status == "success", result.error or host.server.log_tail()

    matte = graph[_node(graph, "MA2MatteVideo")]["inputs"]
    frames_node = graph[_node(graph, "MA2MatteFrames")]["inputs"]
    fuse = graph[_node(graph, "MA2FuseMattes")]["inputs"]
    frames = comfy_samples.read_video(host.base / "input" / comfy_samples.CLIP_FILE)
    video = matte_video(reference_model, frames, host.sample.first_mask, warmup=matte["warmup"],
                        erode=matte["erode"], dilate=matte["dilate"])  # fmt: skip
    seg = (video > 0.5).float()  # core ThresholdMask
    image = matte_frames(reference_model, frames, seg, warmup=frames_node["warmup"], erode=frames_node["erode"],
                         dilate=frames_node["dilate"])  # fmt: skip
    err_video, err_image = evaluate_matte(frames, video, seg), evaluate_matte(frames, image, seg)
    fused = fuse_mattes(video, image, err_video, err_image, binary=fuse["mode"] == "binary")

    saved = _saved_masks(host, result, _node(graph, "SaveImage"))  # the fused alpha, 8 bits
    assert saved.shape == (FRAMES, HEIGHT, WIDTH)
    assert float((saved - fused).abs().max()) <= 2 / 255
    assert float((torch.floor(fused * 255) == torch.round(saved * 255)).float().mean()) > 0.995
    scores = json.loads(_text(result, "t_scores"))
    assert np.allclose(scores, frame_scores(err_video).numpy(), atol=1e-4)
    suggested = suggest_keyframes(err_video, count=graph[suggest]["inputs"]["count"],
                                  min_gap=graph[suggest]["inputs"]["min_gap"])  # fmt: skip
    assert _text(result, "t_indices") == ", ".join(str(i) for i in suggested)
    # The heat maps and the keyframe strip reached their preview nodes.
    previews = [k for k, n in graph.items() if n["class_type"] == "PreviewImage"]
    assert all(result.output_files(k) for k in previews)


def test_quality_nodes_name_the_bad_input(host: Host) -> None:
    graph = {
        "1": {"class_type": "LoadVideo", "inputs": {"file": comfy_samples.CLIP_FILE}},
        "2": {"class_type": "GetVideoComponents", "inputs": {"video": ["1", 0]}},
        "3": {"class_type": "LoadImageMask", "inputs": {"image": comfy_samples.BACKGROUND_FILE, "channel": "red"}},
        "4": {"class_type": "LoadImageMask", "inputs": {"image": comfy_samples.FIRST_MASK_FILE, "channel": "red"}},
        "5": {"class_type": "MA2EvaluateMatte", "inputs": {"images": ["2", 0], "alpha": ["4", 0],
                                                           "segmentation": ["3", 0], "heatmap_opacity": 0.7}},
        "6": {"class_type": "PreviewImage", "inputs": {"images": ["5", 1]}},
    }  # fmt: skip
    result = host.server.run(graph, timeout=120)
    assert result.status == "error" and result.error["node_type"] == "MA2EvaluateMatte"
    message = result.error["exception_message"]
    assert "segmentation must be [T,H,W]" in message and f"[{HEIGHT}, {WIDTH}]" in message

    graph["5"] = {"class_type": "MA2FuseMattes", "inputs": {"alpha_video": ["4", 0], "alpha_image": ["3", 0],
                                                            "error_video": ["4", 0], "error_image": ["4", 0],
                                                            "mode": "soft", "sigma": -1.0, "threshold": 0.5}}
    graph["6"] = {"class_type": "MaskToImage", "inputs": {"mask": ["5", 0]}}
    graph["7"] = {"class_type": "PreviewImage", "inputs": {"images": ["6", 0]}}  # fmt: skip
    result = host.server.run(graph, timeout=120)
    assert result.status == "error" and result.error["node_type"] == "MA2FuseMattes"
    assert "alpha_image must be [T,H,W]" in result.error["exception_message"]


def test_a_learned_evaluator_file_can_be_chosen(host: Host) -> None:
    """models/matanyone_evaluator files are listed next to 'analytic' and give what load_evaluator gives."""
    from matanyone2_core.quality import evaluate_matte
    from matanyone2_core.quality.mqe import load_evaluator

    choices = host.object_info["MA2LoadEvaluator"]["input"]["required"]["evaluator"][1]["options"]
    assert choices[0] == "analytic" and LEARNED_EVALUATOR in choices
    graph = {
        "1": {"class_type": "LoadVideo", "inputs": {"file": comfy_samples.CLIP_FILE}},
        "2": {"class_type": "GetVideoComponents", "inputs": {"video": ["1", 0]}},
        "3": {"class_type": "LoadImageMask", "inputs": {"image": comfy_samples.FIRST_MASK_FILE, "channel": "red"}},
        "4": {"class_type": "MA2LoadEvaluator", "inputs": {"evaluator": LEARNED_EVALUATOR, "device": "auto"}},
        "5": {"class_type": "MA2EvaluateMatte", "inputs": {"images": ["2", 0], "alpha": ["3", 0],
                                                           "segmentation": ["3", 0], "evaluator": ["4", 0],
                                                           "heatmap_opacity": 0.7}},
        "6": {"class_type": "MaskToImage", "inputs": {"mask": ["5", 0]}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "t/learned_error"}},
    }  # fmt: skip
    result = host.server.run(graph, timeout=300)
    assert result.status == "success", result.error or host.server.log_tail()
    frames = comfy_samples.read_video(host.base / "input" / comfy_samples.CLIP_FILE)
    evaluator = load_evaluator(host.base / "models" / "matanyone_evaluator" / LEARNED_EVALUATOR)
    expected = evaluate_matte(frames, host.sample.first_mask, host.sample.first_mask, evaluator=evaluator)
    saved = _saved_masks(host, result, "7")
    assert saved.shape == (FRAMES, HEIGHT, WIDTH)
    assert float((saved - expected).abs().max()) <= 1 / 255 + 1e-5
