"""The real ComfyUI web frontend in headless Debian Chromium, driven by Python Playwright.

No browser download: Playwright drives /usr/bin/chromium (override with $CHROMIUM).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
]  # fmt: skip
MISSING_NODES_PATTERN = r"missing nodes?\b"


def chromium_available() -> bool:
    return Path(CHROMIUM).exists()


@contextmanager
def open_app(url: str, profile_dir: Path, viewport: tuple[int, int] = (1400, 900)) -> Iterator[Any]:
    """A page with the ComfyUI app loaded and ready (graph canvas present)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile_dir),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": viewport[0], "height": viewport[1]},
        )
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.goto(url, wait_until="domcontentloaded", timeout=60_000)
            page.wait_for_function(
                "() => window.app && window.app.graph && document.querySelector('canvas#graph-canvas')",
                timeout=60_000,
            )
            yield page
        finally:
            context.close()


def wait_for_node_types(page: Any, types: list[str], timeout_ms: int = 30_000) -> None:
    page.wait_for_function(
        "(types) => window.LiteGraph && types.every(t => LiteGraph.registered_node_types[t])",
        arg=types,
        timeout=timeout_ms,
    )


def load_api_graph(page: Any, graph: dict[str, Any], name: str) -> None:
    page.evaluate("([g, n]) => app.loadApiJson(g, n)", [graph, name])
    page.wait_for_timeout(300)


def load_ui_workflow(page: Any, workflow: dict[str, Any]) -> None:
    page.evaluate("(w) => app.loadGraphData(w)", workflow)
    page.wait_for_timeout(500)


def export_ui_workflow(page: Any) -> dict[str, Any]:
    # Stringified in the page: returning the object through Playwright would turn undefined into null.
    return json.loads(page.evaluate("() => JSON.stringify(app.graph.serialize())"))


def unregistered_nodes(page: Any) -> list[str]:
    return page.evaluate("() => app.graph.nodes.filter(n => !LiteGraph.registered_node_types[n.type]).map(n => n.type)")


#: Where frontends report a workflow's missing node types: the dialog of frontend 1.32 ("This workflow has
#: missing nodes") and the error overlay of frontend 1.49 ("Missing node: X"), which is not a dialog.
NOTICE_SELECTORS = "[role=dialog], .p-dialog, [data-testid=error-overlay], [role=alert], [role=status]"


def visible_notice_texts(page: Any) -> list[str]:
    """The text of every visible dialog, error overlay or alert on the page."""
    return page.evaluate(
        """(selectors) => Array.from(document.querySelectorAll(selectors))
                 .filter(e => e.offsetParent !== null || e.getClientRects().length > 0)
                 .map(e => e.innerText)""",
        NOTICE_SELECTORS,
    )


def missing_nodes_reported(page: Any) -> bool:
    """True while the frontend shows a missing-nodes notice (old dialog or new error overlay)."""
    return any(re.search(MISSING_NODES_PATTERN, text, re.IGNORECASE) for text in visible_notice_texts(page))


def toast_texts(page: Any) -> list[str]:
    return page.evaluate("() => Array.from(document.querySelectorAll('.p-toast-message')).map(e => e.innerText)")


def close_dialogs(page: Any) -> None:
    page.keyboard.press("Escape")
    page.wait_for_timeout(200)


def fit_view(page: Any, region: tuple[int, int, int, int]) -> None:
    """Scale and move the canvas so the whole graph fits into `region` (x, y, width, height in pixels)."""
    page.evaluate(
        """([rx, ry, rw, rh]) => { const c = app.canvas; const ns = app.graph.nodes; if (!ns.length) return;
             let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
             for (const n of ns) { x0 = Math.min(x0, n.pos[0]); y0 = Math.min(y0, n.pos[1] - 35);
               x1 = Math.max(x1, n.pos[0] + n.size[0]); y1 = Math.max(y1, n.pos[1] + n.size[1]); }
             const pad = 20, s = Math.min((rw - 2 * pad) / (x1 - x0), (rh - 2 * pad) / (y1 - y0), 1.5);
             const r = c.canvas.getBoundingClientRect();
             c.ds.scale = s;
             c.ds.offset[0] = (rx - r.left + (rw - s * (x1 - x0)) / 2) / s - x0;
             c.ds.offset[1] = (ry - r.top + (rh - s * (y1 - y0)) / 2) / s - y0;
             c.setDirty(true, true); }""",
        list(region),
    )
    page.wait_for_timeout(400)
