"""What a real ComfyUI server sees of the plugin: node list, tooltips, model folder, templates, cheap import."""

from __future__ import annotations

import io
import subprocess
import sys

import comfy_host
import numpy as np
from ma2_host import ROOT, Host
from PIL import Image

TAKEN_IDS = {"MatAnyone", "MatAnyone2", "MatAnyone2ModelLoader", "MatAnyone2VideoMatting", "MatAnyoneMatte",
             "SolidColorBatched", "LoadVideoForMatAnyone2"}  # fmt: skip


def test_every_node_is_listed_with_tooltips(host: Host) -> None:
    info = host.object_info
    for node_id in comfy_host.OUR_NODES:
        assert node_id in info, f"{node_id} missing from /object_info (import failed?):\n{host.server.log_tail()}"
        node = info[node_id]
        assert node_id.startswith("MA2") and node_id not in TAKEN_IDS
        assert node["python_module"] == f"custom_nodes.{comfy_host.PLUGIN_NAME}"
        assert node["category"].startswith("video/matting")
        assert len(node["description"]) > 40
        inputs = {**node["input"]["required"], **node["input"].get("optional", {})}
        for name, spec in inputs.items():
            assert spec[1].get("tooltip"), f"{node_id}.{name} has no tooltip"
        assert node["output_tooltips"] and all(node["output_tooltips"]), f"{node_id} has an output without tooltip"


def test_matte_node_interface(host: Host) -> None:
    node = host.object_info["MA2MatteVideo"]
    # Widgets keep their saved order (new ones last); the seed sockets are optional: mask or objects.
    assert node["input_order"]["required"] == [
        "model", "images", "anchor_frame", "erode", "dilate", "warmup", "max_internal_size", "long_term_memory",
        "foreground_colors", "keyframe_mode", "blend", "memory_read", "encode_batch", "compile",
    ]  # fmt: skip
    assert node["input_order"]["optional"] == ["mask", "objects", "evaluator"]
    assert node["output"] == ["MASK", "IMAGE", "IMAGE", "MA2_OBJECTS"]
    assert node["output_name"] == ["alpha", "foreground", "foreground_straight", "object_alphas"]
    required = node["input"]["required"]
    assert all(required[name][1].get("advanced")
               for name in ("warmup", "max_internal_size", "long_term_memory", "foreground_colors", "keyframe_mode",
                            "blend", "memory_read", "encode_batch", "compile"))  # fmt: skip
    assert required["foreground_colors"][1]["default"] == "estimated"
    assert required["keyframe_mode"][1]["default"] == "reprompt" and required["blend"][1]["default"] == "quality"
    loader = host.object_info["MA2LoadModel"]["input"]["required"]
    assert loader["precision"][1]["options"] == ["fp32", "fp16", "bf16"] and loader["precision"][1]["default"] == "fp32"
    assert "matanyone2.pth" in loader["model_name"][1]["options"]


def test_model_folder_is_registered(host: Host) -> None:
    assert host.server.get_json("/models/matanyone") == ["matanyone2.pth"]


def test_example_workflows_are_templates(host: Host) -> None:
    templates = host.server.get_json("/workflow_templates")
    stems = sorted(p.stem for p in comfy_host.example_workflows())
    assert len(stems) >= 2
    assert sorted(templates[comfy_host.PLUGIN_NAME]) == stems
    for stem in stems:
        assert (comfy_host.WORKFLOWS_DIR / f"{stem}.jpg").is_file(), f"{stem} has no thumbnail"


def test_importing_the_package_is_cheap() -> None:
    code = (
        "import importlib.util, inspect, sys\n"
        f"spec = importlib.util.spec_from_file_location('ma2pkg', {str(ROOT / '__init__.py')!r},"
        f" submodule_search_locations=[{str(ROOT)!r}])\n"
        "mod = importlib.util.module_from_spec(spec); sys.modules['ma2pkg'] = mod; spec.loader.exec_module(mod)\n"
        "assert inspect.iscoroutinefunction(mod.comfy_entrypoint)\n"
        "heavy = [m for m in ('torch', 'comfy', 'comfy_api', 'ma2pkg.nodes') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def _host_has(host: Host, io_type: str) -> bool:
    """Whether any node of this host declares an input of `io_type` (e.g. COLOR on 0.33)."""
    return any(
        spec[0] == io_type
        for node in host.object_info.values()
        for section in ("required", "optional")
        for spec in (node["input"].get(section) or {}).values()
    )


def test_newer_schema_features_where_the_host_has_them(host: Host) -> None:
    """Colour picker and Essentials entry on hosts that offer them, the plain fallbacks elsewhere."""
    composite = host.object_info["MA2Composite"]["input"]["required"]["background_color"]
    assert composite[0] == ("COLOR" if _host_has(host, "COLOR") else "STRING")
    assert composite[1]["default"] == "#00B140"
    core_has_essentials = any(node.get("essentials_category") for node in host.object_info.values())
    assert host.object_info["MA2MatteVideo"].get("essentials_category") == (
        "Video Tools" if core_has_essentials else None
    )
    advanced = host.object_info["MA2MatteVideo"]["input"]["required"]["warmup"][1]
    assert advanced.get("advanced") is True


def test_the_model_goes_through_the_hosts_core_patcher(host: Host) -> None:
    """0.33 has CoreModelPatcher (dynamic VRAM on NVIDIA GPUs; ModelPatcher on a CPU); 0.3.75 only ModelPatcher."""
    from comfy_workflows import MATTE_FIRST_FRAME

    assert host.server.run(host.example_graph(MATTE_FIRST_FRAME), timeout=240).status == "success"
    has_core = "CoreModelPatcher" in (host.spec.comfy_dir / "comfy" / "model_patcher.py").read_text()
    expected = "CoreModelPatcher" if has_core else "ModelPatcher"
    assert f"model managed by ModelPatcher (comfy.model_patcher.{expected})" in host.server.log_text()


def test_renamed_node_ids_keep_working(host: Host) -> None:
    """A rename registered through nodes/replacements.py (by the test pack) maps old ids and inputs to ours."""
    import comfy_samples
    import requests

    if requests.get(f"{host.server.url}/node_replacements", timeout=10).status_code != 200:
        assert host.spec.version_tuple < (0, 33), "a 0.33+ host must offer node replacement"
        return
    table = host.server.get_json("/node_replacements")
    assert table["MA2TestRenamedComposite"][0]["new_node_id"] == "MA2Composite"

    def graph(kind: str, inputs: dict) -> dict:
        return {
            "1": {"class_type": "LoadImage", "inputs": {"image": comfy_samples.BACKGROUND_FILE}},
            "2": {"class_type": "LoadImageMask", "inputs": {"image": comfy_samples.FIRST_MASK_FILE, "channel": "red"}},
            "3": {"class_type": "ImageScale", "inputs": {"image": ["1", 0], "upscale_method": "nearest-exact",
                                                          "width": 128, "height": 96, "crop": "disabled"}},
            "4": {"class_type": kind, "inputs": inputs},
            "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": f"rename/{kind}"}},
        }  # fmt: skip

    old = graph("MA2TestRenamedComposite", {"fg": ["3", 0], "matte": ["2", 0], "colour": "#102030",
                                            "fit": "cover", "mode": "straight"})  # fmt: skip
    new = graph("MA2Composite", {"foreground": ["3", 0], "alpha": ["2", 0], "background_color": "#102030",
                                 "background_fit": "cover", "foreground_mode": "straight"})  # fmt: skip
    results = [host.server.run(g, timeout=120) for g in (old, new)]
    assert [r.status for r in results] == ["success", "success"], [r.error for r in results]
    # Decoded pixels: the PNGs' embedded prompts differ by the node id.
    images = [np.asarray(Image.open(io.BytesIO(host.server.view(r.output_files("5")[0])))) for r in results]
    assert images[0].shape == (96, 128, 3) and np.array_equal(images[0], images[1])
