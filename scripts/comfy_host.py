"""A real ComfyUI server for this plugin: base folder, start/stop, HTTP + websocket client, UI->API graphs.

Used by the host tests (tests/host), the main job (scripts/run_main_job.py) and the workflow export helper
(scripts/comfy_workflows.py). Needs only the standard library plus `requests` and `websocket-client`.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import websocket

ROOT = Path(__file__).resolve().parent.parent
PLUGIN_NAME = "matanyone2-video-matting"  # folder name under custom_nodes (the registry node name)
WORKFLOWS_DIR = ROOT / "workflows"
OUR_NODES = ("MA2LoadModel", "MA2MatteVideo", "MA2Composite")


def comfyui_dir() -> Path | None:
    """The ComfyUI source tree: $COMFYUI_DIR, else $MA2_ENV_DIR/ComfyUI (both set by scripts/test.sh)."""
    env_dir = os.environ.get("MA2_ENV_DIR")
    for candidate in (os.environ.get("COMFYUI_DIR"), env_dir and f"{env_dir}/ComfyUI"):
        if candidate and (Path(candidate) / "main.py").is_file():
            return Path(candidate)
    return None


def server_python() -> str:
    """The Python that runs ComfyUI: the environment's venv when known, else this interpreter."""
    env = os.environ.get("MA2_ENV_DIR")
    if env and Path(env, "venv/bin/python").exists():
        return str(Path(env, "venv/bin/python"))
    return sys.executable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prepare_base(base: Path, plugin_dir: Path = ROOT) -> Path:
    """Create a ComfyUI base directory with this plugin linked into custom_nodes."""
    for sub in ("custom_nodes", "input", "output", "temp", "user/default", "models/matanyone"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    settings = base / "user/default/comfy.settings.json"
    if not settings.exists():
        settings.write_text(json.dumps({"Comfy.TutorialCompleted": True, "Comfy.Minimap.Visible": False}))
    link = base / "custom_nodes" / PLUGIN_NAME
    if link.is_symlink() and link.resolve() != plugin_dir.resolve():
        link.unlink()
    if not link.exists():
        link.symlink_to(plugin_dir.resolve(), target_is_directory=True)
    return base


@dataclass
class RunResult:
    """What one queued prompt did: outcome, websocket messages and the history entry."""

    prompt_id: str
    status: str  # "success" | "error" | "interrupted"
    messages: list[dict[str, Any]] = field(default_factory=list)
    history: dict[str, Any] = field(default_factory=dict)

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m["data"] for m in self.messages if m.get("type") == kind]

    @property
    def error(self) -> dict[str, Any] | None:
        errors = self.of_type("execution_error")
        return errors[0] if errors else None

    def output_files(self, node_id: str, key: str = "images") -> list[dict[str, Any]]:
        return self.history.get("outputs", {}).get(str(node_id), {}).get(key, [])


class ComfyServer:
    """One ComfyUI process on a loopback port, stopped by its PID."""

    def __init__(self, comfy_dir: Path, base: Path, *, python: str | None = None, extra_args: Iterable[str] = ()):
        self.comfy_dir = Path(comfy_dir)
        self.base = Path(base)
        self.python = python or server_python()
        self.extra_args = list(extra_args)
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.log_path = self.base / "comfyui.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> ComfyServer:
        self.port = free_port()
        cmd = [
            self.python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
            "--base-directory", str(self.base), "--database-url", f"sqlite:///{self.base}/user/comfyui.db",
            "--disable-auto-launch", "--disable-api-nodes", *self.extra_args,
        ]  # fmt: skip
        log = open(self.log_path, "ab")  # noqa: SIM115 (kept open for the life of the process)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(cmd, cwd=self.comfy_dir, stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if requests.get(f"{self.url}/system_stats", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.3)
        self.stop()
        raise TimeoutError(f"ComfyUI did not answer within {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=15)

    def __enter__(self) -> ComfyServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    # HTTP API -------------------------------------------------------------------------------------------

    def get_json(self, path: str) -> Any:
        response = requests.get(f"{self.url}{path}", timeout=30)
        response.raise_for_status()
        return response.json()

    def object_info(self) -> dict[str, Any]:
        return self.get_json("/object_info")

    def upload(self, path: Path, name: str | None = None) -> str:
        with open(path, "rb") as fh:
            files = {"image": (name or path.name, fh)}
            response = requests.post(f"{self.url}/upload/image", files=files, data={"overwrite": "true"}, timeout=60)
        response.raise_for_status()
        return response.json()["name"]

    def view(self, item: dict[str, Any]) -> bytes:
        params = {
            "filename": item["filename"],
            "subfolder": item.get("subfolder", ""),
            "type": item.get("type", "output"),
        }
        response = requests.get(f"{self.url}/view", params=params, timeout=60)
        response.raise_for_status()
        return response.content

    def queue(self, prompt: dict[str, Any], client_id: str) -> dict[str, Any]:
        response = requests.post(f"{self.url}/prompt", json={"prompt": prompt, "client_id": client_id}, timeout=60)
        body = response.json()
        if response.status_code != 200:
            raise PromptRejected(body)
        return body

    def interrupt(self) -> None:
        requests.post(f"{self.url}/interrupt", json={}, timeout=10).raise_for_status()

    def run(self, prompt: dict[str, Any], timeout: float = 300.0, on_message=None) -> RunResult:
        """Queue `prompt`, follow it on the websocket until it finishes, and read its history."""
        client_id = uuid.uuid4().hex
        ws = websocket.create_connection(f"ws://127.0.0.1:{self.port}/ws?clientId={client_id}", timeout=timeout)
        try:
            prompt_id = self.queue(prompt, client_id)["prompt_id"]
            result = RunResult(prompt_id=prompt_id, status="")
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                raw = ws.recv()
                if isinstance(raw, bytes):
                    continue  # binary frames are previews
                message = json.loads(raw)
                data = message.get("data") or {}
                if data.get("prompt_id") not in (None, prompt_id):
                    continue
                result.messages.append(message)
                if on_message is not None:
                    on_message(message)
                kind = message.get("type")
                if kind == "execution_success":
                    result.status = "success"
                elif kind == "execution_error":
                    result.status = "error"
                elif kind == "execution_interrupted":
                    result.status = "interrupted"
                    break
                elif kind == "executing" and data.get("node") is None and data.get("prompt_id") == prompt_id:
                    break
            else:
                raise TimeoutError(f"prompt {prompt_id} did not finish within {timeout:.0f} s")
        finally:
            ws.close()
        result.history = self._history(prompt_id)
        return result

    def _history(self, prompt_id: str, wait: float = 10.0) -> dict[str, Any]:
        # The history entry is written just after the final websocket message.
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            entry = self.get_json(f"/history/{prompt_id}").get(prompt_id)
            if entry:
                return entry
            time.sleep(0.1)
        return {}


class PromptRejected(RuntimeError):
    """POST /prompt answered an error (validation failed); `.body` holds the server's answer."""

    def __init__(self, body: dict[str, Any]):
        super().__init__(json.dumps(body)[:2000])
        self.body = body


# UI workflow -> API graph --------------------------------------------------------------------------------

_WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}


def _is_widget(spec: Any) -> bool:
    kind, options = spec[0], (spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {})
    if options.get("forceInput"):
        return False
    return isinstance(kind, list) or kind in _WIDGET_TYPES


def _extra_widget_values(name: str, spec: Any) -> int:
    """How many extra values the frontend stores right after this widget's own value.

    A seed's "control after generate" follows it directly; an upload button's value is stored after all
    other widgets, so it never shifts the inputs that the server knows.
    """
    options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    if options.get("control_after_generate") or (spec[0] == "INT" and name in ("seed", "noise_seed")):
        return 1
    return 0


def ui_to_api(workflow: dict[str, Any], object_info: dict[str, Any]) -> dict[str, Any]:
    """Convert a UI-format workflow ({nodes, links, ...}) to an API graph, using /object_info input order.

    Widget values are matched to the node's widget inputs in order (required then optional), links become
    `[source_node_id, output_slot]`. Muted nodes are left out; notes are skipped.
    """
    links = {link[0]: link for link in workflow.get("links", [])}
    graph: dict[str, Any] = {}
    for node in workflow["nodes"]:
        if node.get("mode", 0) == 2 or node["type"] in ("Note", "MarkdownNote"):
            continue
        info = object_info.get(node["type"])
        if info is None:
            raise KeyError(f"node type {node['type']!r} (node {node['id']}) is not known to this ComfyUI")
        specs = {**info["input"].get("required", {}), **info["input"].get("optional", {})}
        order = info.get("input_order", {})
        names = list(order.get("required", [])) + list(order.get("optional", []))
        linked = {slot["name"]: links[slot["link"]] for slot in node.get("inputs", []) if slot.get("link") is not None}
        values = list(node.get("widgets_values") or [])
        if isinstance(node.get("widgets_values"), dict):
            raise ValueError(f"node {node['id']} stores widgets by name; not supported")
        inputs: dict[str, Any] = {}
        position = 0
        for name in names:
            spec = specs[name]
            if _is_widget(spec):
                if position < len(values):
                    inputs[name] = values[position]
                position += 1 + _extra_widget_values(name, spec)
            if name in linked:
                link = linked[name]
                inputs[name] = [str(link[1]), link[2]]
        graph[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    return graph


def load_workflow(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def example_workflows() -> list[Path]:
    return sorted(WORKFLOWS_DIR.glob("*.json"))
