"""The real web frontend (headless Debian Chromium) of each host: every example workflow loads without missing
nodes, converts to the same API graph as the frontend's own graphToPrompt, and opens from the template browser."""

from __future__ import annotations

import json

import comfy_browser
import comfy_graph
import comfy_host
import pytest
from ma2_host import ARTIFACTS, Host

pytestmark = pytest.mark.skipif(not comfy_browser.chromium_available(), reason="no /usr/bin/chromium")


@pytest.fixture(scope="module")
def page(host: Host, tmp_path_factory: pytest.TempPathFactory):
    """One headless Chromium page on the app, shared by this module's tests (per host)."""
    ARTIFACTS.mkdir(exist_ok=True)
    with comfy_browser.open_app(host.server.url, tmp_path_factory.mktemp("chromium")) as page:
        comfy_browser.wait_for_node_types(page, list(comfy_host.OUR_NODES))
        yield page


def _server_inputs(api: dict, object_info: dict) -> dict:
    """An API graph without the frontend-only widgets (previews, upload buttons) the server ignores."""
    out = {}
    for node_id, node in api.items():
        spec = object_info[node["class_type"]]["input"]
        known = {**spec.get("required", {}), **spec.get("optional", {})}
        inputs = {k: v for k, v in node["inputs"].items() if k in known or "." in k}
        out[node_id] = {"class_type": node["class_type"], "inputs": inputs}
    return out


def test_frontend_loads_every_example_workflow(host: Host, page) -> None:
    # Negative control: an unknown node type must raise the missing-nodes notice we look for.
    first = comfy_host.load_workflow(comfy_host.example_workflows()[0])
    broken = {**first, "nodes": [dict(n) for n in first["nodes"]]}
    broken["nodes"][0]["type"] = "MA2NoSuchNode"
    comfy_browser.load_ui_workflow(page, broken)
    page.wait_for_timeout(700)
    assert comfy_browser.missing_nodes_reported(page), comfy_browser.visible_notice_texts(page)
    assert comfy_browser.unregistered_nodes(page) == ["MA2NoSuchNode"]
    page.screenshot(path=str(ARTIFACTS / f"{host.spec.name}-browser-missing-node.png"))
    comfy_browser.close_dialogs(page)

    for path in comfy_host.example_workflows():
        toasts_before = len(comfy_browser.toast_texts(page))
        comfy_browser.load_ui_workflow(page, comfy_host.load_workflow(path))
        page.wait_for_timeout(700)
        assert not comfy_browser.missing_nodes_reported(page), comfy_browser.visible_notice_texts(page)
        assert comfy_browser.unregistered_nodes(page) == []
        assert len(comfy_browser.toast_texts(page)) == toasts_before, comfy_browser.toast_texts(page)
        types = page.evaluate("() => app.graph.nodes.map(n => n.type)")
        assert "MA2LoadModel" in types and {"MA2MatteVideo", "MA2MatteVideoFile"} & set(types)
        page.screenshot(path=str(ARTIFACTS / f"{host.spec.name}-browser-{path.stem}.png"))


def test_our_conversion_equals_the_frontends(host: Host, page) -> None:
    """comfy_graph.ui_to_api gives, for every example workflow as saved, what the frontend itself would queue."""
    for path in comfy_host.example_workflows():
        workflow = comfy_host.load_workflow(path)
        comfy_browser.load_ui_workflow(page, workflow)
        frontend = json.loads(page.evaluate("async () => JSON.stringify((await app.graphToPrompt()).output)"))
        ours = comfy_graph.ui_to_api(workflow, host.object_info)
        assert _server_inputs(ours, host.object_info) == _server_inputs(frontend, host.object_info), path.stem


def test_template_browser_lists_and_opens_the_examples(host: Host, page) -> None:
    for path in comfy_host.example_workflows():
        page.evaluate("() => app.graph.clear()")
        page.evaluate("() => app.extensionManager.command.execute('Comfy.BrowseTemplates')")
        page.get_by_text(comfy_host.PLUGIN_NAME, exact=True).first.click()
        card = page.locator(f"h3[title='{path.stem}']")
        card.wait_for(timeout=15_000)
        page.screenshot(path=str(ARTIFACTS / f"{host.spec.name}-browser-templates.png"))
        card.click()
        page.wait_for_function("() => app.graph.nodes.length > 0", timeout=15_000)
        page.wait_for_timeout(700)
        assert not comfy_browser.missing_nodes_reported(page), comfy_browser.visible_notice_texts(page)
        assert comfy_browser.unregistered_nodes(page) == []
        loaded = sorted(page.evaluate("() => app.graph.nodes.map(n => n.type)"))
        expected = sorted(n["type"] for n in comfy_host.load_workflow(path)["nodes"])
        assert loaded == expected
