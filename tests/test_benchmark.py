"""Benchmark harness: synthetic run end to end with the real engine, resume, layouts and clear errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from matanyone2_core import metrics as M
from matanyone2_core.__main__ import main
from matanyone2_core.benchmark import BenchmarkConfig, LayoutError, discover_clips, run_benchmark

# ------------------------------------------------------------------------------------------- helpers


def save_gray(path: Path, values: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(values.astype(np.uint8)).save(path)


def save_rgb(path: Path, red: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.stack([red, np.full_like(red, 7), np.full_like(red, 200)], axis=-1).astype(np.uint8)
    Image.fromarray(rgb).save(path)


class FakeSession:
    """Returns each frame's red channel as the alpha, so the GT can be written to match or not."""

    def __init__(self, log: list, settings: tuple[int, int, int]):
        self.log, self.settings = log, settings

    def step(self, frame: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        self.log.append((self.settings, None if mask is None else mask.clone()))
        return frame[..., 0].clone()

    def close(self) -> None:
        pass


def fake_factory(log: list):
    return lambda warmup, erode, dilate: FakeSession(log, (warmup, erode, dilate))


def red_values(i: int, h: int = 6, w: int = 8) -> np.ndarray:
    """A frame-specific 8-bit pattern (frame i of a clip)."""
    return ((np.arange(h * w).reshape(h, w) * 3 + 17 * i) % 256).astype(np.uint8)


def make_vm_like(root: Path, top: str, prefix: str, res: str, input_dir: str, flat_masks: bool) -> None:
    for subset in (f"{prefix}_motion", f"{prefix}_static"):
        for clip in ("0000", "0001"):
            d = root / top / f"{prefix}_{res}" / subset / clip
            for i in range(3):
                save_rgb(d / input_dir / f"{i:04d}.png", red_values(i))
                save_gray(d / "pha" / f"{i:04d}.png", red_values(i))
            mask_dir = root / f"{top}_first_frame_seg_mask" / f"{prefix}_{res}"
            mask_file = mask_dir / f"{clip}.png" if flat_masks else mask_dir / subset / f"{clip}.png"
            m = np.zeros((6, 8), np.uint8)
            m[1:4, 2:6] = 255
            save_gray(mask_file, m)


# ----------------------------------------------------------------------------- end to end (real engine)


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory, weights_path):
    base = tmp_path_factory.mktemp("bench")
    weights = weights_path  # seeded random weights in the official layout (conftest)
    out = base / "out"
    argv = [
        "benchmark", "--dataset", "synthetic", "--root", str(base / "clips"), "--weights", str(weights),
        "--out", str(out), "--clips", "2", "--frames", "6", "--size", "96x128", "--device", "cpu", "--save-alpha",
    ]  # fmt: skip
    assert main(argv) == 0
    return base, out, weights


def test_synthetic_end_to_end_outputs(synthetic_run):
    base, out, _ = synthetic_run
    summary = json.loads((out / "results.json").read_text())
    assert summary["dataset"] == "synthetic" and summary["protocol"] == "lr"
    assert summary["settings"] == {"warmup": 1, "erode": 4, "dilate": 4}
    assert summary["metrics"] == ["MAD", "MSE", "Grad", "Conn", "dtSSD"]
    assert [c["clip"] for c in summary["per_clip"]] == ["clip_0000", "clip_0001"]

    records = [json.loads((out / "clips" / f"clip_000{i}.json").read_text()) for i in range(2)]
    for rec in records:
        clip_dir = base / "clips" / rec["clip"]
        # The saved 8-bit predictions, rescored here against the GT PNGs, give the recorded numbers.
        pred = [np.asarray(Image.open(p)) for p in sorted((out / "pred" / rec["clip"] / "pha").iterdir())]
        gt = [np.asarray(Image.open(p)) for p in sorted((clip_dir / "pha").iterdir())]
        assert len(pred) == len(gt) == rec["frames"] == rec["evaluated_frames"] == 6
        per = M.per_frame_metrics(
            torch.from_numpy(np.stack(pred)).float() / 255, torch.from_numpy(np.stack(gt)).float() / 255
        )
        for m in per:
            assert np.allclose(rec["per_frame"][m], per[m], rtol=1e-6, atol=1e-9), m
            assert rec["mean"][m] == pytest.approx(np.mean(per[m]), rel=1e-6)
        assert rec["per_frame"]["dtSSD"][0] == 0.0
        assert rec["mean"]["MAD"] > 0  # random weights: a demonstration of the harness, not of quality
        assert (rec["height"], rec["width"]) == (96, 128)

    overall = M.aggregate_clips([r["per_frame"] for r in records])
    assert summary["overall"] == pytest.approx(overall, rel=1e-9)

    rows = list(csv.reader((out / "results.csv").open()))
    assert rows[0] == ["clip", "frames", "evaluated_frames", "MAD", "MSE", "Grad", "Conn", "dtSSD", "fps"]
    assert [r[0] for r in rows[1:]] == ["clip_0000", "clip_0001", "overall"]
    assert float(rows[3][3]) == pytest.approx(overall["MAD"], rel=1e-9)

    md = (out / "results.md").read_text()
    assert "| clip | frames | MAD | MSE | Grad | Conn | dtSSD | fps |" in md
    assert f"| **overall** | 12 | **{overall['MAD']:.2f}** | **{overall['MSE']:.2f}** |" in md
    assert f"| clip_0001 | 6 | {records[1]['mean']['MAD']:.2f} |" in md

    for name in ("clip_0000", "clip_0001"):
        with Image.open(out / "plots" / f"{name}.png") as im:
            assert im.format == "PNG" and im.width >= 600 and im.height >= 400
            assert len(np.unique(np.asarray(im.convert("RGB")).reshape(-1, 3), axis=0)) > 5  # drawn, not blank


def test_resume_skips_finished_clips(synthetic_run):
    base, out, weights = synthetic_run
    before = json.loads((out / "results.json").read_text())
    (out / "clips" / "clip_0001.json").unlink()
    log: list = []
    config = BenchmarkConfig(
        dataset="synthetic", root=base / "clips", out=out, weights=weights,
        synthetic_clips=2, synthetic_frames=6, synthetic_height=96, synthetic_width=128,
    )  # fmt: skip
    run_benchmark(config, session_factory=fake_factory(log))
    # Only clip_0001 was matted again (6 frames); clip_0000 came from its saved record.
    assert len(log) == 6
    after = json.loads((out / "results.json").read_text())
    assert after["per_clip"][0] == before["per_clip"][0]
    assert after["per_clip"][1]["mean"] != before["per_clip"][1]["mean"]
    # A run with other settings refuses to mix its results into this folder.
    with pytest.raises(ValueError, match="different run"):
        run_benchmark(BenchmarkConfig(**{**config.__dict__, "warmup": 3}), session_factory=fake_factory([]))


# ------------------------------------------------------------------------------------------- layouts


def test_videomatte_layout_and_lr_hr_settings(tmp_path):
    for res in ("512x288", "1920x1080"):
        make_vm_like(tmp_path, "VideoMatte", "videomatte", res, "com", flat_masks=False)
    for resolution, settings in (("lr", (1, 4, 4)), ("hr", (10, 15, 15))):
        log: list = []
        cfg = BenchmarkConfig(dataset="videomatte", root=tmp_path, out=tmp_path / f"out_{resolution}",
                              resolution=resolution)  # fmt: skip
        summary = run_benchmark(cfg, session_factory=fake_factory(log))
        assert summary["protocol"] == resolution
        assert [c["clip"] for c in summary["per_clip"]] == [
            "videomatte_motion/0000", "videomatte_motion/0001", "videomatte_static/0000", "videomatte_static/0001",
        ]  # fmt: skip
        assert all(c["mean"]["MAD"] == 0.0 and c["mean"]["dtSSD"] == 0.0 for c in summary["per_clip"])
        assert ("Conn" in summary["metrics"]) == (resolution == "lr")
        assert {s for s, _ in log} == {settings}
        masks = [m for _, m in log if m is not None]
        assert len(masks) == 4 and len(log) == 12  # the mask goes with frame 0 of each clip only
        assert float(masks[0][1, 2]) == 1.0 and float(masks[0][0, 0]) == 0.0


def test_youtubematte_layout_reads_har_and_flat_masks(tmp_path):
    make_vm_like(tmp_path, "YouTubeMatte", "youtubematte", "512x288", "har", flat_masks=True)
    protocol, clips = discover_clips(BenchmarkConfig(dataset="youtubematte", root=tmp_path, out=tmp_path / "o"))
    assert protocol == "lr" and len(clips) == 4
    assert clips[0].frames[0].parent.name == "har"
    assert clips[2].mask == tmp_path / "YouTubeMatte_first_frame_seg_mask" / "youtubematte_512x288" / "0000.png"
    summary = run_benchmark(
        BenchmarkConfig(dataset="youtubematte", root=tmp_path, out=tmp_path / "o"), session_factory=fake_factory([])
    )
    assert summary["overall"]["MAD"] == 0.0


def test_crgnn_pairs_gt_i_with_frame_10i(tmp_path):
    base = tmp_path / "crgnn"
    for i in range(25):  # frames 0..24 -> GT for frames 0, 10, 20
        save_rgb(base / "image_allframe" / "vidA" / f"{i:05d}.png", red_values(i))
    for j in range(4):  # GT 3 would pair with frame 30: past the end, dropped
        save_gray(base / "alpha" / "vidA" / f"{10 * j + 1:05d}.png", red_values(10 * j))
    m = np.zeros((6, 8), np.uint8)
    m[2:5, 2:5] = 255
    save_gray(base / "mask" / "vidA.png", m)
    log: list = []
    summary = run_benchmark(
        BenchmarkConfig(dataset="crgnn", root=tmp_path, out=tmp_path / "out", resolution="hr"),
        session_factory=fake_factory(log),
    )
    assert summary["protocol"] == "crgnn" and summary["resolution"] == "native"
    assert {s for s, _ in log} == {(10, 10, 10)} and len(log) == 25
    clip = summary["per_clip"][0]
    assert clip["frames"] == 25 and clip["evaluated_frames"] == 3
    assert clip["mean"] == {"MAD": 0.0, "MSE": 0.0, "Grad": 0.0, "dtSSD": 0.0}
    # A GT shifted by one frame no longer matches: the pairing is index-exact.
    save_gray(base / "alpha" / "vidA" / "00011.png", red_values(11))
    rerun = run_benchmark(
        BenchmarkConfig(dataset="crgnn", root=tmp_path, out=tmp_path / "out2"), session_factory=fake_factory([])
    )
    per = json.loads((tmp_path / "out2" / "clips" / "vidA.json").read_text())["per_frame"]
    assert per["MAD"][0] == 0.0 and per["MAD"][1] > 0 and per["MAD"][2] == 0.0
    assert per["dtSSD"][1] > 0 and rerun["overall"]["MAD"] > 0


# -------------------------------------------------------------------------------------------- errors


def test_missing_root_and_dataset_folder(tmp_path):
    with pytest.raises(LayoutError, match="does not exist"):
        discover_clips(BenchmarkConfig(dataset="videomatte", root=tmp_path / "nope", out=tmp_path))
    with pytest.raises(LayoutError) as err:
        discover_clips(BenchmarkConfig(dataset="videomatte", root=tmp_path, out=tmp_path))
    assert str(tmp_path / "VideoMatte" / "videomatte_512x288") in str(err.value)
    assert "videomatte_motion" in str(err.value)


def test_malformed_clip_folders(tmp_path):
    make_vm_like(tmp_path, "VideoMatte", "videomatte", "512x288", "com", flat_masks=False)
    cfg = BenchmarkConfig(dataset="videomatte", root=tmp_path, out=tmp_path / "o")
    clip = tmp_path / "VideoMatte" / "videomatte_512x288" / "videomatte_static" / "0001"
    (clip / "pha" / "0002.png").unlink()
    with pytest.raises(LayoutError, match="3 input frames but 2 ground-truth alphas"):
        discover_clips(cfg)
    for f in (clip / "pha").iterdir():
        f.unlink()
    (clip / "pha").rmdir()
    with pytest.raises(LayoutError) as err:
        discover_clips(cfg)
    assert str(clip / "pha") in str(err.value) and "missing folder" in str(err.value)
    save_gray(clip / "pha" / "0000.png", red_values(0))
    save_gray(clip / "pha" / "0001.png", red_values(1))
    save_gray(clip / "pha" / "0002.png", red_values(2))
    mask = tmp_path / "VideoMatte_first_frame_seg_mask" / "videomatte_512x288" / "videomatte_static" / "0001.png"
    mask.unlink()
    with pytest.raises(LayoutError) as err:
        discover_clips(cfg)
    assert str(mask) in str(err.value) and "first-frame segmentation mask" in str(err.value)


def test_size_mismatch_and_missing_weights(tmp_path):
    make_vm_like(tmp_path, "VideoMatte", "videomatte", "512x288", "com", flat_masks=False)
    gt = tmp_path / "VideoMatte" / "videomatte_512x288" / "videomatte_motion" / "0000" / "pha" / "0001.png"
    save_gray(gt, np.zeros((5, 8)))
    cfg = BenchmarkConfig(dataset="videomatte", root=tmp_path, out=tmp_path / "o", max_clips=1)
    with pytest.raises(LayoutError, match=r"0001.png: ground truth is \(5, 8\)"):
        run_benchmark(cfg, session_factory=fake_factory([]))
    with pytest.raises(FileNotFoundError, match="weights file not found"):
        run_benchmark(BenchmarkConfig(**{**cfg.__dict__, "out": tmp_path / "o2", "weights": tmp_path / "x.pth"}))


def test_cli_reports_layout_errors(tmp_path, capsys):
    code = main(["benchmark", "--dataset", "crgnn", "--root", str(tmp_path), "--weights", str(tmp_path / "w.pth")])
    assert code == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "crgnn" / "image_allframe") in err and "expected" in err
