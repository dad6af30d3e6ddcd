"""Clicks to masks (SAM 2), several people matted in one pass, and core SAM 3 track data as seeds, in a real
ComfyUI: each node gives what matanyone2_core gives in-process on the same weights and inputs."""

from __future__ import annotations

import io

import comfy_samples
import numpy as np
import pytest
import torch
from comfy_workflows import TWO_PEOPLE, TWO_PEOPLE_CLICKS
from ma2_host import FRAMES, HEIGHT, SAM2_TEST_SIZE, WIDTH, Host
from PIL import Image

SAM2_LOADER = {"model_name": "sam2.1_hiera_tiny.pt", "download_if_missing": False, "device": "auto",
               "precision": "fp32", "image_size": SAM2_TEST_SIZE}  # fmt: skip


def _node(graph: dict, class_type: str) -> str:
    return next(k for k, n in graph.items() if n["class_type"] == class_type)


def _saved(host: Host, result, node_id: str) -> torch.Tensor:
    files = result.output_files(node_id)
    frames = [np.asarray(Image.open(io.BytesIO(host.server.view(f))).convert("L")) for f in files]
    return torch.from_numpy(np.stack(frames)).float() / 255.0


def _tap(graph: dict, mask: list, name: str) -> None:
    graph[f"{name}_img"] = {"class_type": "MaskToImage", "inputs": {"mask": mask}}
    graph[name] = {"class_type": "SaveImage", "inputs": {"images": [f"{name}_img", 0], "filename_prefix": f"t/{name}"}}


@pytest.fixture(scope="module")
def segmenter(host: Host):
    if host.sam2_checkpoint is None:
        pytest.skip("the sam2 package is not installed")
    from matanyone2_core.segmentation.sam2_backend import load_sam2

    return load_sam2(host.sam2_checkpoint, image_size=SAM2_TEST_SIZE)


def test_clicks_to_two_people_equals_the_core(host: Host, reference_model, segmenter) -> None:
    from matanyone2_core import matte_objects
    from matanyone2_core.segmentation import build_prompts

    graph = host.example_graph(TWO_PEOPLE)
    points = _node(graph, "MA2MaskFromPoints")
    _tap(graph, [points, 2], "t_seeds")
    result = host.server.run(graph, timeout=600)
    assert result.status == "success", result.error or host.server.log_tail()

    frames = comfy_samples.read_video(host.base / "input" / comfy_samples.CLIP_FILE)
    seeds = segmenter.segment_image(frames[0], build_prompts(TWO_PEOPLE_CLICKS, None, None, size=(HEIGHT, WIDTH)))
    assert seeds.shape == (2, HEIGHT, WIDTH)
    assert torch.equal(_saved(host, result, "t_seeds"), seeds)  # 0/1 masks survive 8 bits exactly
    matte = graph[_node(graph, "MA2MatteVideo")]["inputs"]
    expected = matte_objects(reference_model, frames, seeds, warmup=matte["warmup"], erode=matte["erode"],
                             dilate=matte["dilate"])  # fmt: skip
    saves = sorted(k for k, n in graph.items() if n["class_type"] == "SaveImage"
                   and "person" in n["inputs"]["filename_prefix"])  # fmt: skip
    for index, save in enumerate(saves):  # person0, person1
        person = _saved(host, result, save)
        assert person.shape == (FRAMES, HEIGHT, WIDTH)
        assert float((person - expected[index]).abs().max()) <= 1 / 255 + 1e-6, f"object {index}"
    assert not torch.equal(expected[0], expected[1])


def test_segment_video_tracks_every_object_through_the_clip(host: Host, segmenter) -> None:
    from matanyone2_core.segmentation import build_prompts

    graph = {
        "1": {"class_type": "LoadVideo", "inputs": {"file": comfy_samples.CLIP_FILE}},
        "2": {"class_type": "GetVideoComponents", "inputs": {"video": ["1", 0]}},
        "3": {"class_type": "MA2LoadSAM2", "inputs": SAM2_LOADER},
        "4": {"class_type": "MA2SegmentVideo", "inputs": {"sam2": ["3", 0], "images": ["2", 0], "frame_index": 3,
                                                          "positive_points": "64,70\n\n64,30", "negative_points": ""}},
        "6": {"class_type": "MA2SelectObject", "inputs": {"objects": ["4", 0], "index": 1}},
    }  # fmt: skip
    _tap(graph, ["4", 1], "t_union")
    _tap(graph, ["6", 0], "t_second")
    result = host.server.run(graph, timeout=600)
    assert result.status == "success", result.error or host.server.log_tail()
    frames = comfy_samples.read_video(host.base / "input" / comfy_samples.CLIP_FILE)
    prompts = build_prompts("64,70\n\n64,30", None, None, size=(HEIGHT, WIDTH))
    expected = segmenter.segment_video(frames, prompts, frame_index=3)
    assert expected.shape == (2, FRAMES, HEIGHT, WIDTH)
    assert torch.equal(_saved(host, result, "t_second"), expected[1])
    assert torch.equal(_saved(host, result, "t_union"), expected.amax(0))


def test_bad_prompts_and_seeds_are_clear_errors(host: Host, segmenter) -> None:
    base = {
        "1": {"class_type": "LoadVideo", "inputs": {"file": comfy_samples.CLIP_FILE}},
        "2": {"class_type": "GetVideoComponents", "inputs": {"video": ["1", 0]}},
        "3": {"class_type": "MA2LoadSAM2", "inputs": SAM2_LOADER},
    }  # fmt: skip
    for points, needle in (('[{"x": 3, "y": }]', "positive_points: malformed JSON"),
                           (f"{WIDTH + 5},3", "lies outside the image"), ("", "empty prompt")):  # fmt: skip
        graph = dict(base)
        graph["4"] = {"class_type": "MA2MaskFromPoints", "inputs": {"sam2": ["3", 0], "images": ["2", 0],
                                                                    "frame_index": 0, "positive_points": points,
                                                                    "negative_points": ""}}  # fmt: skip
        _tap(graph, ["4", 1], "t_bad")
        result = host.server.run(graph, timeout=300)
        assert result.status == "error" and result.error["node_type"] == "MA2MaskFromPoints", points
        assert needle in result.error["exception_message"], result.error["exception_message"]


def test_objects_from_masks_and_mask_or_objects_not_both(host: Host, reference_model) -> None:
    from matanyone2_core import matte_objects

    graph = host.example_graph("matanyone2_matte_video_first_frame_mask")
    matte = _node(graph, "MA2MatteVideo")
    mask_node = graph[matte]["inputs"]["mask"]
    # Two objects on frame 0: the sample mask and its left half, batched into one MASK [2,H,W].
    graph["left"] = {"class_type": "CropMask", "inputs": {"mask": mask_node, "x": 0, "y": 0, "width": WIDTH // 2,
                                                          "height": HEIGHT}}
    graph["pad"] = {"class_type": "SolidMask", "inputs": {"value": 0.0, "width": WIDTH, "height": HEIGHT}}
    graph["left_full"] = {"class_type": "MaskComposite", "inputs": {"destination": ["pad", 0], "source": ["left", 0],
                                                                    "x": 0, "y": 0, "operation": "add"}}
    graph["batch"] = {"class_type": "ImageBatch", "inputs": {"image1": ["img_a", 0], "image2": ["img_b", 0]}}
    graph["img_a"] = {"class_type": "MaskToImage", "inputs": {"mask": mask_node}}
    graph["img_b"] = {"class_type": "MaskToImage", "inputs": {"mask": ["left_full", 0]}}
    graph["masks"] = {"class_type": "ImageToMask", "inputs": {"image": ["batch", 0], "channel": "red"}}
    graph["objs"] = {"class_type": "MA2ObjectsFromMasks", "inputs": {"masks": ["masks", 0], "frame_index": 0}}
    graph[matte]["inputs"]["objects"] = ["objs", 0]
    result = host.server.run(graph, timeout=300)
    assert result.status == "error" and "give exactly one of mask" in result.error["exception_message"]

    del graph[matte]["inputs"]["mask"]
    graph["pick"] = {"class_type": "MA2SelectObject", "inputs": {"objects": [matte, 3], "index": 1}}
    _tap(graph, ["pick", 0], "t_left")
    _tap(graph, [matte, 0], "t_union")
    result = host.server.run(graph, timeout=300)
    assert result.status == "success", result.error
    frames = comfy_samples.read_video(host.base / "input" / comfy_samples.CLIP_FILE)
    first = host.sample.first_mask
    left = torch.zeros_like(first)
    left[:, : WIDTH // 2] = first[:, : WIDTH // 2]
    inputs = graph[matte]["inputs"]
    expected = matte_objects(reference_model, frames, torch.stack([first, left]), warmup=inputs["warmup"],
                             erode=inputs["erode"], dilate=inputs["dilate"])  # fmt: skip
    assert float((_saved(host, result, "t_left") - expected[1]).abs().max()) <= 1 / 255 + 1e-6
    assert float((_saved(host, result, "t_union") - expected.amax(0)).abs().max()) <= 1 / 255 + 1e-6


def test_core_sam3_track_data_seeds_matting(host: Host, reference_model) -> None:
    """Track data packed by the core's own code (test pack): our reader equals core SAM3 Track to Mask, and the
    objects it gives matte as matte_objects does on the same seeds."""
    if "MA2ProbeSAM3TrackData" not in host.object_info:
        pytest.skip(f"ComfyUI {host.spec.version} has no core SAM 3")
    from matanyone2_core import matte_objects

    graph = host.example_graph("matanyone2_reprompt_with_keyframe_masks")
    matte = _node(graph, "MA2MatteVideo")
    keyframes = graph[matte]["inputs"].pop("mask")  # the keyframe-mask video: [T,H,W]
    graph["inv"] = {"class_type": "InvertMask", "inputs": {"mask": keyframes}}
    graph["track"] = {"class_type": "MA2ProbeSAM3TrackData", "inputs": {"object0": keyframes, "object1": ["inv", 0],
                                                                         "internal_height": 48, "internal_width": 64}}
    graph["objs"] = {"class_type": "MA2ObjectsFromSAM3", "inputs": {"track_data": ["track", 0],
                                                                    "object_indices": "1, 0"}}
    # One object each way (a union of complementary objects would differ: the core ORs before resizing).
    graph["core_union"] = {"class_type": "SAM3_TrackToMask", "inputs": {"track_data": ["track", 0],
                                                                         "object_indices": "0"}}
    graph["ours_union"] = {"class_type": "MA2SelectObject", "inputs": {"objects": ["objs", 0], "index": 1}}
    graph[matte]["inputs"]["objects"] = ["objs", 0]
    graph["pick0"] = {"class_type": "MA2SelectObject", "inputs": {"objects": [matte, 3], "index": 0}}
    _tap(graph, ["core_union", 0], "t_core")
    _tap(graph, ["ours_union", 0], "t_ours")
    _tap(graph, ["pick0", 0], "t_alpha0")
    result = host.server.run(graph, timeout=300)
    assert result.status == "success", result.error or host.server.log_tail()
    assert float((_saved(host, result, "t_ours") - _saved(host, result, "t_core")).abs().max()) <= 1 / 255

    from matanyone2_core.segmentation import objects_from_track_data

    masks = comfy_samples.read_video(host.base / "input" / comfy_samples.KEYFRAME_MASKS_FILE)[..., 0]
    small = torch.nn.functional.interpolate(torch.stack([masks, 1 - masks], 1), size=(48, 64), mode="nearest") > 0.5
    rows = small.reshape(*small.shape[:-1], 8, 8).to(torch.int64)
    packed = sum(rows[..., i] << i for i in range(8)).to(torch.uint8)
    seeds = objects_from_track_data({"packed_masks": packed, "orig_size": (HEIGHT, WIDTH)}, objects=[1, 0],
                                    frames=[0]).at(0)  # fmt: skip
    inputs = graph[matte]["inputs"]
    expected = matte_objects(reference_model, comfy_samples.read_video(host.base / "input" / comfy_samples.CLIP_FILE),
                             seeds, warmup=inputs["warmup"], erode=inputs["erode"], dilate=inputs["dilate"])
    assert float((_saved(host, result, "t_alpha0") - expected[0]).abs().max()) <= 1 / 255 + 1e-6
