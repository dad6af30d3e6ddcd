"""UI -> API conversion (scripts/comfy_graph.py) on hand-made node definitions in the /object_info format.

The host tests check the same converter against the real frontends' graphToPrompt and the real servers;
these cases pin down each rule, including the graphs it must refuse.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

from comfy_graph import GraphConversionError, ui_to_api  # noqa: E402

INFO = {
    "Loader": {
        "input": {"required": {"file": [["a.png", "b.png"], {"image_upload": True}]}},
        "input_order": {"required": ["file"]},
    },
    "Sampler": {
        "input": {
            "required": {
                "image": ["IMAGE", {}],
                "seed": ["INT", {"default": 0, "control_after_generate": True}],
                "steps": ["INT", {"default": 20}],
            },
            "optional": {"note": ["STRING", {"default": "n"}], "strength": ["FLOAT", {"forceInput": True}]},
        },
        "input_order": {"required": ["image", "seed", "steps"], "optional": ["note", "strength"]},
    },
    "Saver": {
        "input": {
            "required": {
                "image": ["IMAGE", {}],
                "format": ["COMFY_DYNAMICCOMBO_V3", {"options": [
                    {"key": "png", "inputs": {"required": {}}},
                    {"key": "mp4", "inputs": {
                        "required": {"codec": ["COMFY_DYNAMICCOMBO_V3", {"options": [
                            {"key": "auto", "inputs": {"required": {}}},
                            {"key": "h264", "inputs": {"required": {"crf": ["FLOAT", {"default": 23.0}]}}},
                        ]}]},
                        "optional": {"fast": ["BOOLEAN", {"default": False}]},
                    }},
                ]}],  # fmt: skip
                "colour": ["COLOR", {"default": "#ffffff", "socketless": True}],
            },
            "optional": {"extras": ["COMFY_AUTOGROW_V3", {"template": {
                "input": {"optional": {"item": ["IMAGE", {}]}}, "names": ["left", "right"], "min": 0}}]},
        },  # fmt: skip
        "input_order": {"required": ["image", "format", "colour"], "optional": ["extras"]},
    },
}


def _node(node_id, kind, values=None, inputs=(), mode=0, **extra):
    return {"id": node_id, "type": kind, "mode": mode, "widgets_values": values,
            "inputs": [{"name": n, "link": link} for n, link in inputs], **extra}  # fmt: skip


def _workflow(*nodes, links=()):
    return {"nodes": list(nodes), "links": [list(link) for link in links]}


def test_widgets_in_order_with_seed_control_upload_and_links():
    wf = _workflow(
        _node(1, "Loader", ["b.png", "image"]),
        _node(2, "Sampler", [7, "fixed", 30, "hello"], [("image", 1), ("strength", None)]),
        links=[(1, 1, 0, 2, 0, "IMAGE")],
    )
    graph = ui_to_api(wf, INFO)
    assert graph["1"]["inputs"] == {"file": "b.png"}
    assert graph["2"]["inputs"] == {"image": ["1", 0], "seed": 7, "steps": 30, "note": "hello"}
    assert graph["2"]["_meta"] == {"title": "Sampler"}


def test_dynamic_combo_nested_widgets_follow_their_parent():
    wf = _workflow(_node(1, "Loader", ["a.png"]), _node(2, "Saver", ["mp4", "h264", 18.0, True, "#00ff00"],
                                                         [("image", 1)]), links=[(1, 1, 0, 2, 0, "IMAGE")])  # fmt: skip
    assert ui_to_api(wf, INFO)["2"]["inputs"] == {
        "image": ["1", 0], "format": "mp4", "format.codec": "h264", "format.codec.crf": 18.0,
        "format.fast": True, "colour": "#00ff00",
    }  # fmt: skip


def test_values_missing_at_the_end_take_defaults_like_the_frontend():
    wf = _workflow(_node(1, "Loader", ["a.png"]), _node(2, "Saver", ["mp4"], [("image", 1)]),
                   links=[(1, 1, 0, 2, 0, "IMAGE")])  # fmt: skip
    assert ui_to_api(wf, INFO)["2"]["inputs"] == {
        "image": ["1", 0], "format": "mp4", "format.codec": "auto", "format.fast": False, "colour": "#ffffff",
    }  # fmt: skip


def test_autogrow_sockets_are_named_after_the_template():
    wf = _workflow(
        _node(1, "Loader", ["a.png"]),
        _node(2, "Saver", ["png", "#000000"], [("image", 1), ("extras.right", 2)]),
        links=[(1, 1, 0, 2, 0, "IMAGE"), (2, 1, 0, 2, 3, "IMAGE")],
    )
    assert ui_to_api(wf, INFO)["2"]["inputs"] == {"image": ["1", 0], "format": "png", "colour": "#000000",
                                                  "extras.right": ["1", 0]}  # fmt: skip


def test_reroutes_primitives_schema_1_links_and_values_by_name():
    wf = {
        "nodes": [
            _node(1, "Loader", {"file": "b.png"}),
            _node(5, "Reroute", None, [("", 1)]),
            _node(6, "PrimitiveNode", [12]),
            _node(2, "Sampler", [3, "fixed", 12], [("image", 2), ("steps", 3)]),
            _node(7, "Note", ["text"]),
        ],
        "links": [
            {"id": 1, "origin_id": 1, "origin_slot": 0, "target_id": 5, "target_slot": 0, "type": "IMAGE"},
            {"id": 2, "origin_id": 5, "origin_slot": 0, "target_id": 2, "target_slot": 0, "type": "IMAGE"},
            {"id": 3, "origin_id": 6, "origin_slot": 0, "target_id": 2, "target_slot": 2, "type": "INT"},
        ],
    }
    graph = ui_to_api(wf, INFO)
    assert sorted(graph) == ["1", "2"]
    assert graph["1"]["inputs"] == {"file": "b.png"}
    assert graph["2"]["inputs"] == {"image": ["1", 0], "seed": 3, "steps": 12, "note": "n"}


def test_muted_nodes_are_left_out():
    wf = _workflow(_node(1, "Loader", ["a.png"]), _node(2, "Sampler", [1, "fixed", 2], [("image", 1)], mode=2),
                   links=[(1, 1, 0, 2, 0, "IMAGE")])  # fmt: skip
    assert list(ui_to_api(wf, INFO)) == ["1"]


@pytest.mark.parametrize(
    "workflow, message",
    [
        (_workflow(_node(1, "Nope", [])), "type 'Nope' is not known"),
        (_workflow(_node(1, "Loader", ["a.png"], mode=4)), "bypassed"),
        (_workflow(_node(1, "Loader", ["a.png", "image", "extra"])), "3 widget values for 1 widget"),
        (_workflow(_node(1, "Loader", ["a.png"]), _node(2, "Saver", ["gif"], [("image", 1)]),
                   links=[(1, 1, 0, 2, 0, "IMAGE")]), "'format' is 'gif', not one of its options"),  # fmt: skip
        (_workflow(_node(2, "Sampler", [1, "fixed", 2])), "required input 'image' is not connected"),
        (_workflow(_node(2, "Sampler", [1, "fixed", 2], [("image", 9)])), "link 9"),
    ],
)
def test_graphs_it_cannot_convert_are_refused(workflow, message):
    with pytest.raises(GraphConversionError, match=message):
        ui_to_api(workflow, INFO)


def test_unknown_dynamic_input_kinds_are_refused():
    info = {"Future": {"input": {"required": {"x": ["COMFY_SOMETHINGNEW_V3", {}]}}}}
    with pytest.raises(GraphConversionError, match="dynamic type COMFY_SOMETHINGNEW_V3"):
        ui_to_api(_workflow(_node(1, "Future", [])), info)


def test_a_required_widget_without_value_or_default_is_refused():
    info = {"Bare": {"input": {"required": {"name": ["STRING", {}]}}}}
    with pytest.raises(GraphConversionError, match="required widget 'name' has no value"):
        ui_to_api(_workflow(_node(1, "Bare", [])), info)
