"""Shared pieces of the host tests: paths, clip size, the Host handle (imported by conftest and tests)."""

from __future__ import annotations

import copy
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
for extra in (ROOT / "scripts", ROOT / "tests", ROOT):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

import comfy_graph  # noqa: E402
import comfy_host  # noqa: E402
import comfy_samples  # noqa: E402

#: Small clip so that the whole host + browser set stays within a few minutes on 2 CPU cores.
HEIGHT, WIDTH, FRAMES = 96, 128, 8
#: Fast settings written over the example workflows' widgets in tests (the reference run uses the same).
FAST = {"warmup": 1}
#: A seeded, untrained learned evaluator written into models/matanyone_evaluator of every host base.
LEARNED_EVALUATOR = "ma2_tiny_evaluator.safetensors"
#: SAM 2's input size in the host tests (the model's own is 1024: slow on CPU).
SAM2_TEST_SIZE = 256
CHECKPOINT_SEED = 0
ARTIFACTS = ROOT / "test-artifacts"


@dataclass
class Host:
    spec: comfy_host.HostSpec
    server: comfy_host.ComfyServer
    base: Path
    checkpoint: Path
    sample: comfy_samples.SampleInputs
    object_info: dict[str, Any]
    sam2_checkpoint: Path | None = None

    def example_graph(self, stem: str, **matte_overrides: Any) -> dict[str, Any]:
        """The example workflow `stem` as an API graph, with FAST on the matting nodes (+ overrides on
        MA2MatteVideo only)."""
        workflow = comfy_host.load_workflow(comfy_host.WORKFLOWS_DIR / f"{stem}.json")
        graph = comfy_graph.ui_to_api(workflow, self.object_info)
        for node in graph.values():
            if node["class_type"] == "MA2MatteVideo":
                node["inputs"].update({**FAST, **matte_overrides})
            elif node["class_type"] == "MA2MatteFrames":
                node["inputs"].update(FAST)
            elif node["class_type"] == "MA2LoadSAM2":
                node["inputs"]["image_size"] = SAM2_TEST_SIZE
        return copy.deepcopy(graph)
