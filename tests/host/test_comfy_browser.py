"""The real web frontend (headless Debian Chromium) loads every example workflow without missing nodes."""

from __future__ import annotations

import comfy_browser
import comfy_host
import pytest
from ma2_host import ARTIFACTS, Host

pytestmark = pytest.mark.skipif(not comfy_browser.chromium_available(), reason="no /usr/bin/chromium")


@pytest.fixture(scope="module")
def page(host: Host, tmp_path_factory: pytest.TempPathFactory):
    """One headless Chromium page on the app, shared by this module's tests."""
    ARTIFACTS.mkdir(exist_ok=True)
    with comfy_browser.open_app(host.server.url, tmp_path_factory.mktemp("chromium")) as page:
        comfy_browser.wait_for_node_types(page, list(comfy_host.OUR_NODES))
        yield page


def test_frontend_loads_every_example_workflow(page) -> None:
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


def test_template_browser_lists_and_opens_the_examples(page) -> None:
    for path in comfy_host.example_workflows():
        page.evaluate("() => app.graph.clear()")
        page.evaluate("() => app.extensionManager.command.execute('Comfy.BrowseTemplates')")
        page.get_by_text(comfy_host.PLUGIN_NAME, exact=True).first.click()
        card = page.locator(f"h3[title='{path.stem}']")
        card.wait_for(timeout=15_000)
        page.screenshot(path=str(ARTIFACTS / "browser-templates.png"))
        card.click()
        page.wait_for_function("() => app.graph.nodes.length > 0", timeout=15_000)
        page.wait_for_timeout(700)
        assert not comfy_browser.missing_nodes_dialog_shown(page), comfy_browser.visible_dialog_texts(page)
        assert comfy_browser.unregistered_nodes(page) == []
        loaded = sorted(page.evaluate("() => app.graph.nodes.map(n => n.type)"))
        expected = sorted(n["type"] for n in comfy_host.load_workflow(path)["nodes"])
        assert loaded == expected
