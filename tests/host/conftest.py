"""One real ComfyUI server per configured host (0.3.75, 0.33.0, a tree of your own), each with this plugin
linked in and seeded random weights.

Every host test runs once per host (`host` is parametrized over `comfy_host.configured_hosts()`; pytest
groups the tests by host, so one server runs at a time). A server runs headless on a free loopback port
(`--cpu --disable-api-nodes --cache-none`) from a temporary base folder and is stopped by its PID when its
tests are done. Skipped with a reason when no ComfyUI tree is known (run through scripts/test.sh, which
exports MA2_HOSTS).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ma2_host import (  # noqa: E402
    ARTIFACTS,
    CHECKPOINT_SEED,
    FRAMES,
    HEIGHT,
    LEARNED_EVALUATOR,
    WIDTH,
    Host,
    comfy_host,
    comfy_samples,
)

HOSTS = comfy_host.configured_hosts()
PROBE_PACK = Path(__file__).resolve().parent / "ma2_test_probe"


@pytest.fixture(scope="session", params=HOSTS or [None], ids=[h.name for h in HOSTS] or ["no-comfyui"])
def host(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Host:
    spec: comfy_host.HostSpec | None = request.param
    if spec is None:
        pytest.skip("no ComfyUI tree: set MA2_HOSTS or COMFYUI_DIR (scripts/test.sh does)")
    from weights import write_random_checkpoint

    base = comfy_host.prepare_base(tmp_path_factory.mktemp(spec.name) / "base", extra_packs=[PROBE_PACK])
    checkpoint = write_random_checkpoint(base / "models" / "matanyone" / "matanyone2.pth", seed=CHECKPOINT_SEED)
    sam2_checkpoint = _random_sam2(base / "models" / "sam2" / "sam2.1_hiera_tiny.pt")
    _random_evaluator(base / "models" / "matanyone_evaluator" / LEARNED_EVALUATOR)
    sample = comfy_samples.write_sample_inputs(base / "input", HEIGHT, WIDTH, FRAMES)
    server = comfy_host.ComfyServer(spec, base, extra_args=["--cache-none"])
    server.start()
    try:
        yield Host(spec=spec, server=server, base=base, checkpoint=checkpoint, sample=sample,
                   object_info=server.object_info(), sam2_checkpoint=sam2_checkpoint)  # fmt: skip
    finally:
        server.stop()
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / f"{spec.name}-server.log").write_text(server.log_text())


def _random_evaluator(path: Path) -> Path:
    """A seeded, untrained learned evaluator (tiny backbone) in our evaluator-file format."""
    from matanyone2_core.quality.mqe import build_evaluator, save_evaluator

    path.parent.mkdir(parents=True, exist_ok=True)
    return save_evaluator(build_evaluator("tiny", seed=CHECKPOINT_SEED), path, provenance={"data": "none (test)"})


def _random_sam2(path: Path) -> Path | None:
    """Seeded random SAM 2.1 tiny weights in Meta's format (None when the sam2 package is missing here)."""
    from sam2_weights import random_sam2_state_dict, write_sam2_checkpoint

    from matanyone2_core.segmentation.sam2_backend import sam2_available

    if not sam2_available():
        return None
    return write_sam2_checkpoint(path, random_sam2_state_dict("tiny", seed=CHECKPOINT_SEED))


@pytest.fixture(scope="session")
def reference_model(host: Host):
    """The same checkpoint loaded in the test process, for comparisons with the server's results."""
    from matanyone2_core import load_matting_model

    return load_matting_model(host.checkpoint, device="cpu")
