"""The main job (scripts/run_main_job.py) end to end on a small clip, and its offline message."""

from __future__ import annotations

import json

import comfy_host
import pytest
import run_main_job
from ma2_host import Host

import matanyone2_core


def test_main_job_writes_outputs_and_scores_them(host: Host, tmp_path) -> None:
    out = tmp_path / "output"
    argv = ["--weights", str(host.checkpoint), "--base", str(tmp_path / "base"), "--output", str(out),
            "--height", "96", "--width", "128", "--frames", "3", "--seed", "3", "--warmup", "1",
            "--comfyui", str(host.spec.comfy_dir)]  # fmt: skip
    assert run_main_job.main(argv) == 0
    job = out / run_main_job.JOB_DIR
    assert len(list(job.glob("alpha_*.png"))) == 3
    assert len(list(job.glob("foreground_*.mp4"))) == 1
    assert len(list(job.glob("rgba_*.png"))) == 3
    report = json.loads((job / "report.json").read_text())
    assert set(report["metrics_hr"]) >= {"MAD", "MSE", "Grad", "dtSSD"}
    assert all(v >= 0 for v in report["metrics_hr"].values())
    assert report["clip"] == {"height": 96, "width": 128, "frames": 3, "seed": 3}
    assert report["matting"]["warmup"] == 1 and report["comfyui"] == host.spec.version
    # The weights were found through the extra model path, not copied into the base folder.
    assert not (tmp_path / "base" / "models" / "matanyone" / host.checkpoint.name).exists()


def test_main_job_offline_says_where_to_put_the_weights(tmp_path, monkeypatch) -> None:
    if comfy_host.comfyui_dir() is None:
        pytest.skip("no ComfyUI tree")

    def offline(folder, **_):
        raise matanyone2_core.CheckpointError("network unreachable")

    monkeypatch.setattr(matanyone2_core, "download_official_weights", offline)
    monkeypatch.delenv("MA2_WEIGHTS", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        run_main_job.main(["--base", str(tmp_path / "base"), "--output", str(tmp_path / "out")])
    message = str(exit_info.value)
    assert str(tmp_path / "base" / "models" / "matanyone" / "matanyone2.pth") in message
    assert matanyone2_core.OFFICIAL_WEIGHTS_URL in message and "MA2_WEIGHTS" in message
