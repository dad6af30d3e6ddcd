"""V3 dynamic inputs (DynamicCombo, Autogrow, DynamicSlot) through our UI -> API conversion, checked against the
real frontend's graphToPrompt and against what the real server hands a node (the test pack's probe node)."""

from __future__ import annotations

import json

import comfy_browser
import comfy_graph
import comfy_samples
import pytest
from ma2_host import Host

PROBE = "MA2ProbeDynamicInputs"


def _probe_output(host: Host, label: str) -> dict:
    return json.loads((host.base / "output" / "ma2_probe" / f"{label}.json").read_text())


@pytest.fixture()
def probe_host(host: Host) -> Host:
    if PROBE not in host.object_info:
        pytest.skip(f"ComfyUI {host.spec.version} has no V3 dynamic inputs")
    return host


@pytest.mark.skipif(not comfy_browser.chromium_available(), reason="no /usr/bin/chromium")
def test_dynamic_combo_and_autogrow_convert_as_the_frontend_does(probe_host: Host, tmp_path) -> None:
    host = probe_host
    with comfy_browser.open_app(host.server.url, tmp_path / "chromium") as page:
        comfy_browser.wait_for_node_types(page, [PROBE])
        built = page.evaluate(
            """async ([probe, image]) => {
              app.graph.clear();
              const img = LiteGraph.createNode('LoadImage'); img.pos = [0, 0]; app.graph.add(img);
              img.widgets.find(w => w.name === 'image').value = image;
              const p = LiteGraph.createNode(probe); p.pos = [450, 0]; app.graph.add(p);
              const set = (name, v) => { const w = p.widgets.find(w => w.name === name); w.value = v;
                                         if (w.callback) w.callback(v); };
              set('mode', 'scaled'); set('mode.inner', 'b');  // each choice adds its option's widgets
              set('before', 5); set('mode.factor', 1.5); set('mode.inner.depth', 11); set('label', 'frontend');
              img.connect(0, p, p.findInputSlot('images.image0'));
              return {ui: JSON.stringify(app.graph.serialize()),
                      api: JSON.stringify((await app.graphToPrompt()).output), id: p.id};
            }""",
            [PROBE, comfy_samples.BACKGROUND_FILE],
        )
    ui, frontend, probe_id = json.loads(built["ui"]), json.loads(built["api"]), str(built["id"])
    ours = comfy_graph.ui_to_api(ui, host.object_info)
    assert ours[probe_id]["inputs"] == {k: v for k, v in frontend[probe_id]["inputs"].items()}
    assert ours[probe_id]["inputs"]["mode.inner.depth"] == 11

    result = host.server.run(ours, timeout=120)
    assert result.status == "success", result.error
    received = _probe_output(host, "frontend")
    assert received["mode"] == {"mode": "scaled", "factor": 1.5, "inner": {"inner": "b", "depth": 11}}
    assert received["before"] == 5 and list(received["images"]) == ["image0"]


def _slot_workflow(values: list) -> dict:
    """LoadImage -> probe.images.image0, LoadImageMask -> probe.mask (a DynamicSlot), as a UI workflow."""
    return {
        "nodes": [
            {"id": 1, "type": "LoadImage", "mode": 0, "inputs": [], "widgets_values": [comfy_samples.BACKGROUND_FILE,
                                                                                       "image"]},
            {"id": 2, "type": "LoadImageMask", "mode": 0, "inputs": [],
             "widgets_values": [comfy_samples.FIRST_MASK_FILE, "red", "image"]},
            {"id": 3, "type": PROBE, "mode": 0, "widgets_values": values,
             "inputs": [{"name": "images.image0", "link": 1}, {"name": "mask", "link": 2}]},
        ],
        "links": [[1, 1, 0, 3, 0, "IMAGE"], [2, 2, 0, 3, 1, "MASK"]],
    }  # fmt: skip


def test_dynamic_slot_and_defaults_convert_as_the_server_expects(probe_host: Host) -> None:
    """No frontend of 0.33 draws a DynamicSlot, and its server rejects a linked one at validation (it compares
    the link's type with COMFY_DYNAMICSLOT_V3), so a linked slot is checked against the server's schema
    expansion (the slot, then its nested widgets in input order, named `slot.child`) and an unlinked one by
    running it. Widgets missing at the end of a saved workflow take their defaults, as the frontend does when
    it opens an older workflow."""
    host = probe_host
    graph = comfy_graph.ui_to_api(_slot_workflow([4, "scaled", 1.5, "a", "slot", 0.25]), host.object_info)
    assert graph["3"]["inputs"] == {"before": 4, "mode": "scaled", "mode.factor": 1.5, "mode.inner": "a",
                                    "images.image0": ["1", 0], "label": "slot", "mask": ["2", 0],
                                    "mask.strength": 0.25}  # fmt: skip

    unlinked = _slot_workflow([4, "scaled"])
    unlinked["nodes"][2]["inputs"] = unlinked["nodes"][2]["inputs"][:1]
    short = comfy_graph.ui_to_api(unlinked, host.object_info)
    assert short["3"]["inputs"] == {"before": 4, "mode": "scaled", "mode.factor": 2.0, "mode.inner": "a",
                                    "images.image0": ["1", 0], "label": "probe"}  # fmt: skip
    result = host.server.run(short, timeout=120)
    assert result.status == "success", result.error
    received = _probe_output(host, "probe")
    assert received["mode"] == {"mode": "scaled", "factor": 2.0, "inner": {"inner": "a"}}
    assert "mask" not in received and received["images"] == {"image0": {"tensor": [1, 144, 256, 3]}}


def test_graphs_that_cannot_be_converted_are_refused(probe_host: Host) -> None:
    host = probe_host
    with pytest.raises(comfy_graph.GraphConversionError, match="'mode' is 'zoomed', not one of its options"):
        comfy_graph.ui_to_api(_slot_workflow([4, "zoomed", "x", 0.25]), host.object_info)
    with pytest.raises(comfy_graph.GraphConversionError, match="6 widget values for 4 widget"):
        comfy_graph.ui_to_api(_slot_workflow([4, "plain", "x", 0.25, 9, 9]), host.object_info)
    broken = _slot_workflow([4, "plain", "x", 0.25])
    broken["nodes"][2]["inputs"] = [{"name": "mask", "link": 2}]  # the required Autogrow image0 unconnected
    with pytest.raises(comfy_graph.GraphConversionError, match="required input 'images.image0' is not connected"):
        comfy_graph.ui_to_api(broken, host.object_info)
