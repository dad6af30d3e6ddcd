"""One real ComfyUI 0.3.75 server per test session, with this plugin linked in and seeded random weights.

The server runs headless on a free loopback port (`--cpu --disable-api-nodes --cache-none`) from a
temporary base folder; it is stopped by its PID at the end of the session. Skipped with a reason when no
ComfyUI tree is known (run through scripts/test.sh, which exports COMFYUI_DIR and MA2_ENV_DIR).
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
    WIDTH,
    Host,
    comfy_host,
    comfy_samples,
)


@pytest.fixture(scope="session")
def host(tmp_path_factory: pytest.TempPathFactory) -> Host:
    comfy_dir = comfy_host.comfyui_dir()
    if comfy_dir is None:
        pytest.skip("no ComfyUI tree: set COMFYUI_DIR or MA2_ENV_DIR (scripts/test.sh does)")
    from weights import write_random_checkpoint

    base = comfy_host.prepare_base(tmp_path_factory.mktemp("comfyui") / "base")
    checkpoint = write_random_checkpoint(base / "models" / "matanyone" / "matanyone2.pth", seed=CHECKPOINT_SEED)
    sample = comfy_samples.write_sample_inputs(base / "input", HEIGHT, WIDTH, FRAMES)
    server = comfy_host.ComfyServer(comfy_dir, base, extra_args=["--cache-none"])
    server.start()
    try:
        yield Host(server=server, base=base, checkpoint=checkpoint, sample=sample, object_info=server.object_info())
    finally:
        server.stop()
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "comfyui-server.log").write_text(server.log_text())


@pytest.fixture(scope="session")
def reference_model(host: Host):
    """The same checkpoint loaded in the test process, for comparisons with the server's results."""
    from matanyone2_core import load_matting_model

    return load_matting_model(host.checkpoint, device="cpu")
