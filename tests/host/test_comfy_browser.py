"""The real web frontend (headless Debian Chromium) loads every example workflow without missing nodes."""

from __future__ import annotations

import comfy_browser
import comfy_host
import pytest
from ma2_host import ARTIFACTS, Host

pytestmark = pytest.mark.skipif(not comfy_browser.chromium_available(), reason="no /usr/bin/chromium")


def test_frontend_loads_every_example_workflow(host: Host, tmp_path) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    with comfy_browser.open_app(host.server.url, tmp_path / "profile") as page:
        comfy_browser.wait_for_node_types(page, list(comfy_host.OUR_NODES))

        # Negative control: an unknown node type must raise the missing-nodes dialog we look for.
        first = comfy_host.load_workflow(comfy_host.example_workflows()[0])
        broken = {**first, "nodes": [dict(n) for n in first["nodes"]]}
        broken["nodes"][0]["type"] = "MA2NoSuchNode"
        comfy_browser.load_ui_workflow(page, broken)
        page.wait_for_timeout(700)
        assert comfy_browser.missing_nodes_dialog_shown(page), comfy_browser.visible_dialog_texts(page)
        assert comfy_browser.unregistered_nodes(page) == ["MA2NoSuchNode"]
        comfy_browser.close_dialogs(page)
        page.wait_for_timeout(300)
        assert not comfy_browser.missing_nodes_dialog_shown(page)

        for path in comfy_host.example_workflows():
            toasts_before = len(comfy_browser.toast_texts(page))
            comfy_browser.load_ui_workflow(page, comfy_host.load_workflow(path))
            page.wait_for_timeout(700)
            assert not comfy_browser.missing_nodes_dialog_shown(page), comfy_browser.visible_dialog_texts(page)
            assert comfy_browser.unregistered_nodes(page) == []
            assert len(comfy_browser.toast_texts(page)) == toasts_before, comfy_browser.toast_texts(page)
            types = page.evaluate("() => app.graph.nodes.map(n => n.type)")
            assert {"MA2LoadModel", "MA2MatteVideo"} <= set(types)
            page.screenshot(path=str(ARTIFACTS / f"browser-{path.stem}.png"))
