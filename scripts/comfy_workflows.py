"""The example workflows: their API graphs, and their export to UI JSON + a thumbnail through the real frontend.

    python scripts/comfy_workflows.py        # rewrites workflows/*.json and workflows/*.jpg

Needs the test environment (MA2_ENV_DIR / COMFYUI_DIR) and /usr/bin/chromium. The JSON files are what
ComfyUI's template browser lists; the tests convert them back to API graphs and run them.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import comfy_browser  # noqa: E402
import comfy_host  # noqa: E402
import comfy_samples  # noqa: E402

MATTE_FIRST_FRAME = "matanyone2_matte_video_first_frame_mask"
REPROMPT_KEYFRAMES = "matanyone2_reprompt_with_keyframe_masks"
REPLACE_BACKGROUND = "matanyone2_replace_background"
QUALITY_FUSION = "matanyone2_quality_guided_fusion"
TWO_PEOPLE = "matanyone2_clicks_to_two_people"
LONG_VIDEO = "matanyone2_long_video_file"
#: Clicks of the example on the sample clip (one object per group): the figure's body, and its head.
TWO_PEOPLE_CLICKS = "64,70\n\n64,30"


def _loader(download: bool = True) -> dict[str, Any]:
    return {
        "class_type": "MA2LoadModel",
        "inputs": {
            "model_name": "matanyone2.pth",
            "download_if_missing": download,
            "device": "auto",
            "precision": "fp32",
        },
    }


def _matte(images: list, mask: list, model: list) -> dict[str, Any]:
    return {
        "class_type": "MA2MatteVideo",
        "inputs": {
            "model": model, "images": images, "mask": mask, "anchor_frame": 0, "erode": 4, "dilate": 4,
            "warmup": 10, "max_internal_size": -1, "long_term_memory": False, "foreground_colors": "estimated",
        },
    }  # fmt: skip


def matte_first_frame_graph() -> tuple[dict[str, Any], dict[str, tuple[int, int]]]:
    """Video + first-frame mask image -> foreground video (mp4), alpha PNGs and transparent RGBA PNGs."""
    graph = {
        "1": {"class_type": "LoadVideo", "inputs": {"file": comfy_samples.CLIP_FILE}},
        "2": {"class_type": "GetVideoComponents", "inputs": {"video": ["1", 0]}},
        "3": {"class_type": "LoadImageMask", "inputs": {"image": comfy_samples.FIRST_MASK_FILE, "channel": "red"}},
        "4": _loader(),
        "5": _matte(["2", 0], ["3", 0], ["4", 0]),
        "6": {"class_type": "CreateVideo", "inputs": {"images": ["5", 1], "fps": ["2", 2], "audio": ["2", 1]}},
        "7": {
            "class_type": "SaveVideo",
            "inputs": {"video": ["6", 0], "filename_prefix": "matanyone2/foreground", "format": "mp4", "codec": "h264"},
        },
        "8": {"class_type": "MaskToImage", "inputs": {"mask": ["5", 0]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "matanyone2/alpha"}},
        # Transparent PNGs with the estimated (straight) foreground colours: core Join Image with Alpha expects
        # an inverted mask (1 = transparent).
        "10": {"class_type": "InvertMask", "inputs": {"mask": ["5", 0]}},
        "11": {"class_type": "JoinImageWithAlpha", "inputs": {"image": ["5", 2], "alpha": ["10", 0]}},
        "12": {"class_type": "SaveImage", "inputs": {"images": ["11", 0], "filename_prefix": "matanyone2/rgba"}},
    }
    layout = {
        "1": (40, 60), "2": (360, 60), "3": (40, 300), "4": (40, 640), "5": (700, 200),
        "6": (1080, 60), "7": (1400, 60), "8": (1080, 300), "9": (1400, 300), "10": (1080, 560),
        "11": (1400, 560), "12": (1720, 560),
    }  # fmt: skip
    return graph, layout


def reprompt_keyframes_graph() -> tuple[dict[str, Any], dict[str, tuple[int, int]]]:
    """Video + a mask video whose non-black frames are keyframes -> green-screen video and alpha frames."""
    graph = {
        "1": {"class_type": "LoadVideo", "inputs": {"file": comfy_samples.CLIP_FILE}},
        "2": {"class_type": "GetVideoComponents", "inputs": {"video": ["1", 0]}},
        "3": {"class_type": "LoadVideo", "inputs": {"file": comfy_samples.KEYFRAME_MASKS_FILE}},
        "4": {"class_type": "GetVideoComponents", "inputs": {"video": ["3", 0]}},
        "5": {"class_type": "ImageToMask", "inputs": {"image": ["4", 0], "channel": "red"}},
        "6": _loader(),
        "7": _matte(["2", 0], ["5", 0], ["6", 0]),
        "8": {
            "class_type": "MA2Composite",
            "inputs": {
                "foreground": ["7", 1],
                "alpha": ["7", 0],
                "background_color": "#00B140",
                "background_fit": "cover",
                "foreground_mode": "premultiplied",
            },
        },  # fmt: skip
        "9": {"class_type": "CreateVideo", "inputs": {"images": ["8", 0], "fps": ["2", 2], "audio": ["2", 1]}},
        "10": {
            "class_type": "SaveVideo",
            "inputs": {
                "video": ["9", 0],
                "filename_prefix": "matanyone2/green_screen",
                "format": "mp4",
                "codec": "h264",
            },
        },
        "11": {"class_type": "MaskToImage", "inputs": {"mask": ["7", 0]}},
        "12": {
            "class_type": "SaveImage",
            "inputs": {"images": ["11", 0], "filename_prefix": "matanyone2/keyframes_alpha"},
        },
    }
    layout = {
        "1": (40, 60), "2": (360, 60), "3": (40, 300), "4": (360, 300), "5": (360, 500), "6": (40, 640),
        "7": (700, 200), "8": (1080, 60), "9": (1400, 60), "10": (1720, 60), "11": (1080, 420), "12": (1400, 420),
    }  # fmt: skip
    return graph, layout


def replace_background_graph() -> tuple[dict[str, Any], dict[str, tuple[int, int]]]:
    """Video + first-frame mask -> the subject over a new background image (scaled to cover) as mp4."""
    graph = {
        "1": {"class_type": "LoadVideo", "inputs": {"file": comfy_samples.CLIP_FILE}},
        "2": {"class_type": "GetVideoComponents", "inputs": {"video": ["1", 0]}},
        "3": {"class_type": "LoadImageMask", "inputs": {"image": comfy_samples.FIRST_MASK_FILE, "channel": "red"}},
        "4": _loader(),
        "5": _matte(["2", 0], ["3", 0], ["4", 0]),
        "6": {"class_type": "LoadImage", "inputs": {"image": comfy_samples.BACKGROUND_FILE}},
        "7": {
            "class_type": "MA2Composite",
            "inputs": {
                "foreground": ["5", 1],
                "alpha": ["5", 0],
                "background_color": "#000000",
                "background": ["6", 0],
                "background_fit": "cover",
                "foreground_mode": "premultiplied",
            },
        },  # fmt: skip
        "8": {"class_type": "CreateVideo", "inputs": {"images": ["7", 0], "fps": ["2", 2], "audio": ["2", 1]}},
        "9": {
            "class_type": "SaveVideo",
            "inputs": {
                "video": ["8", 0],
                "filename_prefix": "matanyone2/new_background",
                "format": "mp4",
                "codec": "h264",
            },
        },
    }
    layout = {
        "1": (40, 60), "2": (360, 60), "3": (40, 300), "4": (40, 640), "5": (700, 200), "6": (700, 560),
        "7": (1080, 200), "8": (1400, 200), "9": (1720, 200),
    }  # fmt: skip
    return graph, layout


def quality_fusion_graph() -> tuple[dict[str, Any], dict[str, tuple[int, int]]]:
    """Video branch + per-frame image branch, both judged by the evaluator (heat maps previewed), fused where
    each is reliable, composited over green; the keyframe suggestion shows the worst frames of the video branch."""
    graph = {
        "1": {"class_type": "LoadVideo", "inputs": {"file": comfy_samples.CLIP_FILE}},
        "2": {"class_type": "GetVideoComponents", "inputs": {"video": ["1", 0]}},
        "3": {"class_type": "LoadImageMask", "inputs": {"image": comfy_samples.FIRST_MASK_FILE, "channel": "red"}},
        "4": _loader(),
        "5": _matte(["2", 0], ["3", 0], ["4", 0]),
        # Per-frame segmentation for the image branch and the evaluator: here the video branch thresholded
        # (any mask node, e.g. SAM, fits).
        "6": {"class_type": "ThresholdMask", "inputs": {"mask": ["5", 0], "value": 0.5}},
        "7": {"class_type": "MA2MatteFrames", "inputs": {"model": ["4", 0], "images": ["2", 0],
                                                         "segmentation": ["6", 0], "erode": 4, "dilate": 4,
                                                         "warmup": 10, "max_internal_size": -1}},
        "8": {"class_type": "MA2LoadEvaluator", "inputs": {"evaluator": "analytic", "device": "auto"}},
        "9": {"class_type": "MA2EvaluateMatte", "inputs": {"images": ["2", 0], "alpha": ["5", 0],
                                                           "segmentation": ["6", 0], "evaluator": ["8", 0],
                                                           "heatmap_opacity": 0.7}},
        "10": {"class_type": "MA2EvaluateMatte", "inputs": {"images": ["2", 0], "alpha": ["7", 0],
                                                            "segmentation": ["6", 0], "evaluator": ["8", 0],
                                                            "heatmap_opacity": 0.7}},
        "11": {"class_type": "PreviewImage", "inputs": {"images": ["9", 1]}},
        "12": {"class_type": "PreviewImage", "inputs": {"images": ["10", 1]}},
        "13": {"class_type": "MA2FuseMattes", "inputs": {"alpha_video": ["5", 0], "alpha_image": ["7", 0],
                                                         "error_video": ["9", 0], "error_image": ["10", 0],
                                                         "mode": "soft", "sigma": -1.0, "threshold": 0.5}},
        "14": {"class_type": "MA2SuggestKeyframes", "inputs": {"error": ["9", 0], "images": ["9", 1], "count": 3,
                                                               "min_gap": 2}},
        "15": {"class_type": "PreviewImage", "inputs": {"images": ["14", 2]}},
        "16": {"class_type": "MA2Composite", "inputs": {"foreground": ["2", 0], "alpha": ["13", 0],
                                                        "background_color": "#00B140", "background_fit": "cover",
                                                        "foreground_mode": "straight"}},
        "17": {"class_type": "CreateVideo", "inputs": {"images": ["16", 0], "fps": ["2", 2], "audio": ["2", 1]}},
        "18": {"class_type": "SaveVideo", "inputs": {"video": ["17", 0], "filename_prefix": "matanyone2/fused",
                                                     "format": "mp4", "codec": "h264"}},
        "19": {"class_type": "MaskToImage", "inputs": {"mask": ["13", 0]}},
        "20": {"class_type": "SaveImage", "inputs": {"images": ["19", 0], "filename_prefix": "matanyone2/fused_alpha"}},
    }  # fmt: skip
    layout = {
        "1": (20, 20), "3": (20, 180), "4": (20, 560), "2": (350, 20), "5": (350, 160), "6": (350, 470),
        "7": (350, 580), "8": (690, 20), "9": (690, 150), "10": (690, 420), "11": (1030, 20), "12": (1030, 300),
        "13": (1030, 560), "14": (1370, 20), "15": (1370, 210), "16": (1370, 470), "17": (1710, 470),
        "18": (1710, 620), "19": (1710, 20), "20": (1710, 130),
    }  # fmt: skip
    return graph, layout


def two_people_graph() -> tuple[dict[str, Any], dict[str, tuple[int, int]]]:
    """Clicks on a frame -> SAM 2 masks, one per object -> both matted in one pass -> each person's alpha saved,
    and both composited over a new background."""
    matte = _matte(["2", 0], None, ["4", 0])
    del matte["inputs"]["mask"]
    matte["inputs"]["objects"] = ["6", 0]
    graph = {
        "1": {"class_type": "LoadVideo", "inputs": {"file": comfy_samples.CLIP_FILE}},
        "2": {"class_type": "GetVideoComponents", "inputs": {"video": ["1", 0]}},
        "3": {"class_type": "MA2LoadSAM2", "inputs": {"model_name": "sam2.1_hiera_tiny.pt", "download_if_missing": True,
                                                      "device": "auto", "precision": "fp32", "image_size": 1024}},
        "4": _loader(),
        "6": {"class_type": "MA2MaskFromPoints", "inputs": {"sam2": ["3", 0], "images": ["2", 0], "frame_index": 0,
                                                            "positive_points": TWO_PEOPLE_CLICKS,
                                                            "negative_points": ""}},
        "7": {"class_type": "PreviewImage", "inputs": {"images": ["8", 0]}},
        "8": {"class_type": "MaskToImage", "inputs": {"mask": ["6", 1]}},
        "5": matte,
        "9": {"class_type": "MA2SelectObject", "inputs": {"objects": ["5", 3], "index": 0}},
        "10": {"class_type": "MA2SelectObject", "inputs": {"objects": ["5", 3], "index": 1}},
        "11": {"class_type": "MaskToImage", "inputs": {"mask": ["9", 0]}},
        "12": {"class_type": "SaveImage", "inputs": {"images": ["11", 0],
                                                     "filename_prefix": "matanyone2/person0_alpha"}},
        "13": {"class_type": "MaskToImage", "inputs": {"mask": ["10", 0]}},
        "14": {"class_type": "SaveImage", "inputs": {"images": ["13", 0],
                                                     "filename_prefix": "matanyone2/person1_alpha"}},
        "15": {"class_type": "LoadImage", "inputs": {"image": comfy_samples.BACKGROUND_FILE}},
        "16": {"class_type": "MA2Composite", "inputs": {"foreground": ["5", 1], "alpha": ["5", 0],
                                                        "background_color": "#000000", "background": ["15", 0],
                                                        "background_fit": "cover", "foreground_mode": "premultiplied"}},
        "17": {"class_type": "CreateVideo", "inputs": {"images": ["16", 0], "fps": ["2", 2], "audio": ["2", 1]}},
        "18": {"class_type": "SaveVideo", "inputs": {"video": ["17", 0], "filename_prefix": "matanyone2/two_people",
                                                     "format": "mp4", "codec": "h264"}},
    }  # fmt: skip
    layout = {
        "1": (20, 20), "2": (350, 20), "3": (20, 180), "4": (20, 480), "6": (350, 180), "8": (350, 660),
        "7": (350, 740), "5": (760, 180), "9": (1100, 20), "10": (1100, 160), "11": (1440, 20), "12": (1780, 20),
        "13": (1440, 160), "14": (1780, 160), "15": (760, 560), "16": (1100, 340), "17": (1440, 340),
        "18": (1780, 340),
    }  # fmt: skip
    return graph, layout


#: Page area used for thumbnails: clear of the side bar, tabs, banner and floating tool bars.
THUMBNAIL_REGION = (70, 140, 1320, 660)

def long_video_graph() -> tuple[dict[str, Any], dict[str, tuple[int, int]]]:
    """A video of any length, matted as it is decoded: alpha and foreground videos (with the audio) saved as it
    goes, host memory independent of the length."""
    graph = {
        "1": {"class_type": "LoadVideo", "inputs": {"file": comfy_samples.CLIP_FILE}},
        "2": {"class_type": "LoadImageMask", "inputs": {"image": comfy_samples.FIRST_MASK_FILE, "channel": "red"}},
        "3": _loader(),
        "4": {
            "class_type": "MA2MatteVideoFile",
            "inputs": {
                "model": ["3", 0], "video": ["1", 0], "mask": ["2", 0], "anchor_frame": 0, "erode": 4, "dilate": 4,
                "codec": "h264", "filename_prefix": "matanyone2/long_video", "foreground_colors": "estimated",
                "warmup": 10, "max_internal_size": 0, "long_term_memory": True, "png_sequence": False,
                "memory_read": "topk", "encode_batch": 1, "compile": False, "subject_crop": False,
                "keyframe_frames": "",
            },
        },
    }  # fmt: skip
    layout = {"1": (40, 60), "2": (40, 300), "3": (40, 800), "4": (460, 200)}
    return graph, layout


EXAMPLES = {
    MATTE_FIRST_FRAME: matte_first_frame_graph,
    REPROMPT_KEYFRAMES: reprompt_keyframes_graph,
    REPLACE_BACKGROUND: replace_background_graph,
    QUALITY_FUSION: quality_fusion_graph,
    TWO_PEOPLE: two_people_graph,
    LONG_VIDEO: long_video_graph,
}


def export_examples(out_dir: Path = comfy_host.WORKFLOWS_DIR) -> list[Path]:
    """Load each API graph in the real frontend, lay it out, export UI JSON and a .jpg thumbnail."""
    # The oldest host's frontend writes the files: newer frontends migrate older saves (a 0.33 SaveVideo reads
    # 0.3.75's [prefix, format, codec] correctly), while 0.3.75 cannot read 0.33's dynamic widgets.
    hosts = comfy_host.configured_hosts()
    if not hosts:
        raise SystemExit("no ComfyUI host: run through scripts/activate_env.sh (sets MA2_HOSTS)")
    host = hosts[0]
    written: list[Path] = []
    with tempfile.TemporaryDirectory() as tmp:
        base = comfy_host.prepare_base(Path(tmp) / "base")
        try:  # the input files only give the loader widgets something to preview
            comfy_samples.write_sample_inputs(base / "input", 96, 128, 6)
        except (ImportError, NotImplementedError):
            pass
        with comfy_host.ComfyServer(host, base) as server:
            with comfy_browser.open_app(server.url, Path(tmp) / "profile") as page:
                comfy_browser.wait_for_node_types(page, list(comfy_host.OUR_NODES))
                for stem, build in EXAMPLES.items():
                    graph, layout = build()
                    # A fresh page per example: node ids repeat across examples, and the app would draw the
                    # previous graph's image previews on the new nodes.
                    page.reload(wait_until="domcontentloaded")
                    page.wait_for_function("() => window.app && window.app.graph", timeout=60_000)
                    comfy_browser.wait_for_node_types(page, list(comfy_host.OUR_NODES))
                    page.evaluate("() => app.graph.clear()")
                    comfy_browser.load_api_graph(page, graph, stem)
                    page.evaluate(
                        "(l) => { for (const [id, p] of Object.entries(l)) app.graph.getNodeById(Number(id)).pos = p;"
                        " app.graph.setDirtyCanvas(true, true); }",
                        {k: list(v) for k, v in layout.items()},
                    )
                    # A fixed view in the saved file, whatever the previous screenshot left behind.
                    page.evaluate("() => { const d = app.canvas.ds; d.scale = 1; d.offset[0] = 0; d.offset[1] = 0; }")
                    workflow = comfy_browser.export_ui_workflow(page)
                    (out_dir / f"{stem}.json").write_text(json.dumps(workflow, indent=2) + "\n")
                    comfy_browser.fit_view(page, THUMBNAIL_REGION)
                    x, y, w, h = THUMBNAIL_REGION
                    clip = {"x": x, "y": y, "width": w, "height": h}
                    page.screenshot(path=str(out_dir / f"{stem}.jpg"), type="jpeg", quality=85, clip=clip)
                    written += [out_dir / f"{stem}.json", out_dir / f"{stem}.jpg"]
    return written


if __name__ == "__main__":
    for path in export_examples():
        print(path)
