"""A real ComfyUI server for this plugin: the configured hosts, base folder, start/stop, HTTP + websocket client.

Used by the host tests (tests/host), the main job (scripts/run_main_job.py) and the workflow export helper
(scripts/comfy_workflows.py). Needs only the standard library plus `requests` and `websocket-client`.
UI -> API graph conversion lives in comfy_graph.py.
"""

from __future__ import annotations

import json
import os
import re
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
PLUGIN_NAME = "matanyone2-suite"  # folder name under custom_nodes (the registry node name)
WORKFLOWS_DIR = ROOT / "workflows"
OUR_NODES = (
    "MA2LoadModel", "MA2MatteVideo", "MA2MatteVideoFile", "MA2Composite",
    "MA2LoadEvaluator", "MA2EvaluateMatte", "MA2FuseMattes", "MA2MatteFrames", "MA2SuggestKeyframes",
    "MA2EstimateForeground", "MA2ObjectsFromMasks", "MA2ObjectsFromSAM3", "MA2SelectObject",
)  # fmt: skip


@dataclass(frozen=True)
class HostSpec:
    """One ComfyUI to run: its source tree and the Python (venv) that runs it."""

    comfy_dir: Path
    python: str

    @property
    def version(self) -> str:
        """The tree's version from comfyui_version.py ("unknown" when it has none)."""
        try:
            text = self.version_file.read_text()
        except OSError:
            return "unknown"
        match = re.search(r"__version__\s*=\s*[\"']([^\"']+)", text)
        return match.group(1) if match else "unknown"

    @property
    def version_file(self) -> Path:
        return self.comfy_dir / "comfyui_version.py"

    @property
    def version_tuple(self) -> tuple[int, ...]:
        return tuple(int(p) for p in re.findall(r"\d+", self.version)[:3]) or (0,)

    @property
    def name(self) -> str:
        return f"comfyui-{self.version}"


def configured_hosts() -> list[HostSpec]:
    """The ComfyUI hosts to test on, oldest first: $MA2_HOSTS (set by scripts/activate_env.sh, one
    "<ComfyUI dir><TAB><python>" per line), else $COMFYUI_DIR or $MA2_ENV_DIR/ComfyUI with this interpreter."""
    hosts: list[HostSpec] = []
    for line in os.environ.get("MA2_HOSTS", "").splitlines():
        if not line.strip():
            continue
        comfy_dir, _, python = line.partition("\t")
        host = HostSpec(Path(comfy_dir), python or server_python())
        if not (host.comfy_dir / "main.py").is_file():
            raise RuntimeError(f"MA2_HOSTS names {comfy_dir}, which is not a ComfyUI tree (no main.py)")
        if all(h.comfy_dir.resolve() != host.comfy_dir.resolve() for h in hosts):
            hosts.append(host)
    if not hosts:
        env_dir = os.environ.get("MA2_ENV_DIR")
        for candidate in (os.environ.get("COMFYUI_DIR"), env_dir and f"{env_dir}/ComfyUI"):
            if candidate and (Path(candidate) / "main.py").is_file():
                hosts.append(HostSpec(Path(candidate), server_python()))
                break
    return sorted(hosts, key=lambda h: h.version_tuple)


def default_host() -> HostSpec | None:
    """The host the main job and the export script use: $COMFYUI_DIR's when given, else the newest one."""
    hosts = configured_hosts()
    own = os.environ.get("COMFYUI_DIR")
    for host in hosts:
        if own and host.comfy_dir.resolve() == Path(own).resolve():
            return host
    return hosts[-1] if hosts else None


def comfyui_dir() -> Path | None:
    """The ComfyUI source tree of the default host (None when no host is configured)."""
    host = default_host()
    return host.comfy_dir if host else None


def server_python() -> str:
    """The Python that runs the 0.3.75 host: the test venv when known, else this interpreter."""
    env = os.environ.get("MA2_ENV_DIR")
    if env and Path(env, "venv/bin/python").exists():
        return str(Path(env, "venv/bin/python"))
    return sys.executable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prepare_base(base: Path, plugin_dir: Path = ROOT, extra_packs: Iterable[Path] = ()) -> Path:
    """Create a ComfyUI base directory with this plugin (and any `extra_packs`) linked into custom_nodes."""
    for sub in ("custom_nodes", "input", "output", "temp", "user/default", "models/matanyone"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    settings = base / "user/default/comfy.settings.json"
    if not settings.exists():
        settings.write_text(json.dumps({"Comfy.TutorialCompleted": True, "Comfy.Minimap.Visible": False}))
    for name, target in [(PLUGIN_NAME, plugin_dir), *((Path(p).name, Path(p)) for p in extra_packs)]:
        link = base / "custom_nodes" / name
        if link.is_symlink() and link.resolve() != target.resolve():
            link.unlink()
        if not link.exists():
            link.symlink_to(target.resolve(), target_is_directory=True)
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

    def __init__(self, host: HostSpec, base: Path, *, extra_args: Iterable[str] = ()):
        self.host = host
        self.comfy_dir = host.comfy_dir
        self.base = Path(base)
        self.python = host.python
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
        # The frontend sends a title with every node; 0.33's node replacement fails on a node without one.
        prompt = {k: {"_meta": {"title": v.get("class_type", "")}, **v} for k, v in prompt.items()}
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


def load_workflow(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def example_workflows() -> list[Path]:
    return sorted(WORKFLOWS_DIR.glob("*.json"))
