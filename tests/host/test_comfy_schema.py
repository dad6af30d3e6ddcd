"""What a real ComfyUI server sees of the plugin: node list, tooltips, model folder, templates, cheap import."""

from __future__ import annotations

import subprocess
import sys

import comfy_host
from ma2_host import ROOT, Host

TAKEN_IDS = {"MatAnyone", "MatAnyone2", "MatAnyone2ModelLoader", "MatAnyone2VideoMatting", "MatAnyoneMatte",
             "SolidColorBatched", "LoadVideoForMatAnyone2"}  # fmt: skip


def test_every_node_is_listed_with_tooltips(host: Host) -> None:
    info = host.object_info
    for node_id in comfy_host.OUR_NODES:
        assert node_id in info, f"{node_id} missing from /object_info (import failed?):\n{host.server.log_tail()}"
        node = info[node_id]
        assert node_id.startswith("MA2") and node_id not in TAKEN_IDS
        assert node["python_module"] == f"custom_nodes.{comfy_host.PLUGIN_NAME}"
        assert node["category"] == "video/matting"
        assert len(node["description"]) > 40
        inputs = {**node["input"]["required"], **node["input"].get("optional", {})}
        for name, spec in inputs.items():
            assert spec[1].get("tooltip"), f"{node_id}.{name} has no tooltip"
        assert node["output_tooltips"] and all(node["output_tooltips"]), f"{node_id} has an output without tooltip"


def test_matte_node_interface(host: Host) -> None:
    node = host.object_info["MA2MatteVideo"]
    assert node["input_order"]["required"] == [
        "model", "images", "mask", "anchor_frame", "erode", "dilate", "warmup", "max_internal_size",
        "long_term_memory",
    ]  # fmt: skip
    assert node["output"] == ["MASK", "IMAGE"] and node["output_name"] == ["alpha", "foreground"]
    required = node["input"]["required"]
    assert all(required[name][1].get("advanced") for name in ("warmup", "max_internal_size", "long_term_memory"))
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
