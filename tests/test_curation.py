"""`python -m matanyone2_core curate` on tiny synthetic clips: the outputs against an independent recomputation
with the core API, resuming after an interruption, bad clips recorded without stopping the run, supplied
image-branch alphas, SAM 2 prompts, and the Ray executor against the local one."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from matanyone2_core import matte_video
from matanyone2_core.__main__ import main
from matanyone2_core.benchmark import BenchmarkConfig, discover_clips
from matanyone2_core.curation.layout import read_prompts
from matanyone2_core.io import read_mask, read_rgb, to_uint8
from matanyone2_core.quality import evaluate_matte, fuse_mattes, fusion_map, matte_frames
from matanyone2_core.synthetic import MASK_FILENAME, make_clip, write_clip

H, W, T, CLIPS = 32, 48, 6, 4
IDS = [f"clip_{i:04d}" for i in range(CLIPS)]
FAST = ["--warmup", "0", "--device", "cpu", "--threads", "1"]


def _write_input(root: Path, gt_root: Path, ids: list[str]) -> None:
    """Synthetic clips (exact GT in `gt_root/<id>/`, `write_clip` layout) as curation input `root/<id>/`."""
    for i, clip_id in enumerate(ids):
        gt = write_clip(make_clip(H, W, T, seed=i), gt_root / clip_id)
        shutil.copytree(gt / "com", root / clip_id / "frames")
        shutil.copy(gt / MASK_FILENAME, root / clip_id / "mask.png")


def _manifest(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def _by_clip(records: list[dict]) -> dict[str, dict]:
    return {r["clip"]: {k: v for k, v in r.items() if k != "timings"} for r in records}


def _png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def _mtimes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("curation")
    _write_input(root / "in", root / "gt", IDS)
    return root


@pytest.fixture(scope="module")
def local_run(data, weights_path) -> Path:
    """One local run over the four clips with every optional output."""
    out = data / "out_local"
    rc = main(["curate", "--input", str(data / "in"), "--out", str(out), "--weights", str(weights_path),
               "--save-branches", "--save-errors", "--min-quality", "0.98", *FAST])  # fmt: skip
    assert rc == 0
    return out


def _same_8bit(stored: np.ndarray, expected: torch.Tensor) -> bool:
    """The stored 8-bit map is `expected` rounded, up to one level on at most 1 % of the pixels: the evaluator's
    float sums (box filters over the chunk it is given) may round differently with another thread count."""
    stored, wanted = stored.astype(int), to_uint8(expected).astype(int)
    return bool(np.abs(stored - wanted).max() <= 1 and (stored == wanted).mean() > 0.99)


def _args(data: Path, out: Path, weights_path: Path, *extra: str) -> list[str]:
    return ["curate", "--input", str(data), "--out", str(out), "--weights", str(weights_path), *FAST, *extra]


# ------------------------------------------------------------------------------------------ end to end


def test_outputs_equal_an_independent_recomputation_with_the_core_api(data, local_run, model, capsys):
    records = _manifest(local_run)
    assert [r["clip"] for r in records] == IDS and {r["status"] for r in records} == {"done"}
    for clip_id in IDS:
        folder = local_run / clip_id
        files = sorted((data / "in" / clip_id / "frames").iterdir())
        frames = torch.stack([read_rgb(f) for f in files])
        mask = read_mask(data / "in" / clip_id / "mask.png")
        # the core API, step by step, as the pipeline is specified
        alpha_video = matte_video(model, frames, mask, warmup=0)
        seg = (alpha_video > 0.5).float()
        alpha_image = matte_frames(model, frames, seg, warmup=0)
        err_video = evaluate_matte(frames, alpha_video, seg)
        err_image = evaluate_matte(frames, alpha_image, seg)
        fused = fuse_mattes(alpha_video, alpha_image, err_video, err_image, binary=True)
        for t in range(T):
            name = f"{t:04d}.png"
            assert np.array_equal(_png(folder / "pha" / name), to_uint8(fused[t]))
            assert np.array_equal(_png(folder / "alpha_video" / name), to_uint8(alpha_video[t]))
            assert np.array_equal(_png(folder / "alpha_image" / name), to_uint8(alpha_image[t]))
            assert _same_8bit(_png(folder / "err_video" / name), err_video[t])
            assert _same_8bit(_png(folder / "err_image" / name), err_image[t])
            assert np.array_equal(_png(folder / "com" / name), _png(files[t]))
        assert np.array_equal(_png(folder / MASK_FILENAME), to_uint8((mask > 0.5).float()))

        # the scores: 1 - mean error over the subject dilated by 3 % of the short side (2 px here)
        record = next(r for r in records if r["clip"] == clip_id)
        region = F.max_pool2d(seg[:, None], 5, stride=1, padding=2)[:, 0]
        err_fused = evaluate_matte(frames, fused, seg)
        for key, error in (("video", err_video), ("image", err_image), ("fused", err_fused)):
            expected = 1 - (error * region).sum((1, 2)) / region.sum((1, 2))
            assert np.allclose(record["scores"][key]["per_frame"], expected.numpy(), atol=1e-6)
            assert record["scores"][key]["mean"] == pytest.approx(float(expected.mean()), abs=1e-6)
            assert np.allclose(record["scores"][key]["error_per_frame"], error.mean((1, 2)).numpy(), atol=1e-6)
        taken = fusion_map(err_video, err_image, binary=True)
        assert record["image_fraction"] == pytest.approx(float(taken.mean()), abs=1e-6)
        assert record["quality"] == record["scores"]["fused"]["mean"]
        assert record["accepted"] == (record["quality"] >= 0.98)
        assert (record["frames"], record["height"], record["width"]) == (T, H, W)
        assert record["weights"]["file"] == "matanyone2.pth" and len(record["weights"]["sha256"]) == 64
        assert record["version"] == "0.1.0" and record["segmentation"] == "video_threshold"
        assert set(record["timings"]) >= {"read", "video", "image", "evaluate", "fuse", "write", "total"}
    # the output is a synthetic-benchmark dataset: the benchmark's reader pairs its frames and alphas
    _, specs = discover_clips(BenchmarkConfig(dataset="synthetic", root=local_run, out=local_run / "bench"))
    assert [s.name for s in specs] == IDS and all(len(s.frames) == len(s.gt) == T for s in specs)
    assert not any(p.name.endswith(".partial") for p in local_run.rglob("*"))


def test_summary_table_counts_the_run(data, weights_path, tmp_path, capsys):
    for clip_id in IDS[:2]:
        shutil.copytree(data / "in" / clip_id, tmp_path / "in" / clip_id)
    assert main(_args(tmp_path / "in", tmp_path / "out", weights_path, "--min-quality", "1.0")) == 0
    printed = capsys.readouterr()
    assert "| done | 2 (2 now, 0 before) |" in printed.out
    assert "| accepted | 0 of 2 done |" in printed.out  # no matte is judged perfect
    assert f"| frames curated now | {2 * T} |" in printed.out and "clips/h" in printed.out
    assert "[2/2] clip_0001: done" in printed.err and f"image [{'#' * 30}] {T}/{T}" in printed.err


# ---------------------------------------------------------------------------------------------- resume


SAME = ("--save-branches", "--save-errors", "--min-quality", "0.98")  # the settings of `local_run`


def test_resume_redoes_only_unfinished_clips(data, local_run, weights_path, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(local_run, out)  # copy2: file mtimes kept
    lines = (out / "manifest.jsonl").read_text().splitlines()
    # interrupted while clip 2 was being recorded and clip 3 being written: clip 2's folder is there without
    # a manifest line; clip 3 has only a half-written temporary folder
    (out / "manifest.jsonl").write_text("\n".join(lines[:2]) + "\n" + lines[2][:40])
    shutil.rmtree(out / "clip_0003")
    (out / ".clip_0003.partial" / "pha").mkdir(parents=True)
    (out / ".clip_0003.partial" / "pha" / "0000.png").write_bytes(b"half")
    kept = {c: _mtimes(out / c) for c in IDS[:2]}
    before = {c: _mtimes(out / c) for c in IDS[2:3]}

    assert main(_args(data / "in", out, weights_path, *SAME)) == 0
    assert "| done | 4 (2 now, 2 before) |" in capsys.readouterr().out
    assert {c: _mtimes(out / c) for c in IDS[:2]} == kept  # done clips untouched
    assert _mtimes(out / "clip_0002") != before["clip_0002"]  # the unrecorded one redone
    assert not (out / ".clip_0003.partial").exists()
    records = _manifest(out)
    assert [r["clip"] for r in records[2:]] == ["clip_0002", "clip_0003"]  # cut line skipped, 2 and 3 appended
    assert _by_clip(records) == _by_clip(_manifest(local_run))  # and redone identically
    for clip_id in IDS:
        for path in sorted((local_run / clip_id).rglob("*.png")):
            assert path.read_bytes() == (out / path.relative_to(local_run)).read_bytes()

    # a finished folder resumed again does nothing; a done clip whose folder lost a frame is redone
    (out / "clip_0001" / "pha" / "0003.png").unlink()
    assert main(_args(data / "in", out, weights_path, *SAME)) == 0
    assert [r["clip"] for r in _manifest(out)[4:]] == ["clip_0001"]
    assert (out / "clip_0001" / "pha" / "0003.png").is_file()

    # other settings in the same folder are refused before anything is written
    assert main(_args(data / "in", out, weights_path, "--min-quality", "0.5")) == 2
    assert "other settings" in capsys.readouterr().err and len(_manifest(out)) == 5


def test_a_clip_given_as_a_video_file_gives_the_outputs_of_its_frames(data, local_run, weights_path, tmp_path):
    av = pytest.importorskip("av")
    frames = [_png(p) for p in sorted((data / "in" / "clip_0002" / "frames").iterdir())]
    (tmp_path / "in" / "clip_0002").mkdir(parents=True)
    with av.open(str(tmp_path / "in" / "clip_0002" / "take.mov"), "w") as container:  # lossless (PNG codec)
        stream = container.add_stream("png", rate=24)
        stream.width, stream.height, stream.pix_fmt = W, H, "rgb24"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    shutil.copy(data / "in" / "clip_0002" / "mask.png", tmp_path / "in" / "clip_0002")
    out = tmp_path / "out"
    assert main(_args(tmp_path / "in", out, weights_path, *SAME)) == 0
    assert _by_clip(_manifest(out)) == {"clip_0002": _by_clip(_manifest(local_run))["clip_0002"]}
    for path in sorted((local_run / "clip_0002").rglob("*.png")):
        assert path.read_bytes() == (out / path.relative_to(local_run)).read_bytes()


# ------------------------------------------------------------------------------------------- bad clips


def test_bad_clips_are_recorded_with_reasons_and_the_run_finishes(data, weights_path, tmp_path, capsys):
    root = tmp_path / "in"
    shutil.copytree(data / "in" / "clip_0000", root / "good")
    shutil.copytree(data / "in" / "clip_0001", root / "corrupt")
    frame = root / "corrupt" / "frames" / "0003.png"
    frame.write_bytes(frame.read_bytes()[:60])  # truncated
    shutil.copytree(data / "in" / "clip_0001", root / "size")
    Image.fromarray(np.full((H + 2, W), 255, np.uint8)).save(root / "size" / "mask.png")
    shutil.copytree(data / "in" / "clip_0002", root / "empty")
    Image.fromarray(np.zeros((H, W), np.uint8)).save(root / "empty" / "mask.png")
    shutil.copytree(data / "in" / "clip_0002", root / "nomask")
    (root / "nomask" / "mask.png").unlink()
    shutil.copytree(root / "nomask", root / "prompted")
    (root / "prompted" / "prompts.json").write_text('{"positive": [{"x": 20, "y": 16}]}')
    (root / "noframes").mkdir()
    shutil.copy(data / "in" / "clip_0000" / "mask.png", root / "noframes")

    out = tmp_path / "out"
    assert main(_args(root, out, weights_path)) == 0
    records = {r["clip"]: r for r in _manifest(out)}
    assert records["good"]["status"] == "done" and (out / "good" / "pha" / "0005.png").is_file()
    expected = {
        "corrupt": ("failed", "0003.png is not a readable image"),
        "size": ("failed", f"must be [H,W] = [{H}, {W}] like the frames, got [{H + 2}, {W}]"),
        "empty": ("failed", "is empty"),
        "nomask": ("skipped", "no mask.png (and no prompts.json)"),
        "prompted": ("skipped", "prompts.json needs --sam2"),
        "noframes": ("failed", "no frames/ folder and no video file"),
    }
    for clip_id, (status, reason) in expected.items():
        assert records[clip_id]["status"] == status and reason in records[clip_id]["reason"], records[clip_id]
        assert not (out / clip_id).exists() and not (out / f".{clip_id}.partial").exists()
    table = capsys.readouterr().out
    assert "| failed | 4 |" in table and "| skipped | 2 |" in table and "| corrupt | failed |" in table


def test_command_line_errors_stop_before_anything_is_written(data, weights_path, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(_args(tmp_path / "nowhere", out, weights_path)) == 2
    assert "--input" in capsys.readouterr().err and not out.exists()
    assert main(["curate", "--input", str(data / "in"), "--out", str(out), *FAST]) == 2
    assert "--weights is required" in capsys.readouterr().err and not out.exists()
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    assert main(_args(data / "in", out, bad)) == 2
    assert "not a readable MatAnyone checkpoint" in capsys.readouterr().err and not out.exists()
    assert main(_args(data / "in", out, weights_path, "--image-alphas", str(tmp_path / "none"))) == 2
    assert "--image-alphas" in capsys.readouterr().err and not out.exists()


# -------------------------------------------------------------------------------------- supplied alphas


def test_image_alphas_supplied_replace_the_image_branch_soft_fusion(data, local_run, weights_path, model, tmp_path):
    alphas = tmp_path / "alphas"
    for clip_id in IDS[:3]:  # the ground truth as the image branch; none for the last clip
        shutil.copytree(data / "gt" / clip_id / "pha", alphas / clip_id)
    out = tmp_path / "out"
    args = _args(data / "in", out, weights_path, "--image-alphas", str(alphas), "--save-branches", "--fusion", "soft")
    assert main(args) == 0
    records = {r["clip"]: r for r in _manifest(out)}
    assert records["clip_0003"]["status"] == "failed" and "--image-alphas" in records["clip_0003"]["reason"]
    for clip_id in IDS[:3]:
        record = records[clip_id]
        assert record["status"] == "done" and record["image_branch"] == "supplied" and record["fusion"] == "soft"
        gt = torch.stack([read_mask(p) for p in sorted((alphas / clip_id).iterdir())])
        frames = torch.stack([read_rgb(p) for p in sorted((data / "in" / clip_id / "frames").iterdir())])
        video = matte_video(model, frames, read_mask(data / "in" / clip_id / "mask.png"), warmup=0)
        seg = (video > 0.5).float()
        fused = fuse_mattes(video, gt, evaluate_matte(frames, video, seg), evaluate_matte(frames, gt, seg))  # soft
        for t in range(T):
            assert np.array_equal(_png(out / clip_id / "alpha_image" / f"{t:04d}.png"), to_uint8(gt[t]))
            assert _same_8bit(_png(out / clip_id / "pha" / f"{t:04d}.png"), fused[t])
        assert record["scores"]["video"] == _by_clip(_manifest(local_run))[clip_id]["scores"]["video"]


# ------------------------------------------------------------------------------------------------- SAM 2


def test_sam2_tracks_the_first_mask_and_makes_it_from_prompts(data, weights_path, model, tmp_path):
    pytest.importorskip("sam2")
    from sam2_weights import random_sam2_state_dict, write_sam2_checkpoint

    from matanyone2_core.segmentation.sam2_backend import load_sam2

    sam2_path = write_sam2_checkpoint(tmp_path / "sam2.1_hiera_tiny.pt", random_sam2_state_dict("tiny"))
    root = tmp_path / "in"
    for source, name in (("clip_0000", "masked"), ("clip_0001", "prompted")):  # 3 frames each: SAM 2 is slow
        shutil.copytree(data / "in" / source, root / name, ignore=shutil.ignore_patterns("000[3-9].png"))
    (root / "prompted" / "mask.png").unlink()
    (root / "prompted" / "prompts.json").write_text('{"boxes": [4, 4, 44, 30]}')
    out = tmp_path / "out"
    assert main(_args(root, out, weights_path, "--sam2", str(sam2_path), "--sam2-image-size", "256",
                      "--save-branches", "--min-quality", "0")) == 0  # fmt: skip
    records = {r["clip"]: r for r in _manifest(out)}
    sam2 = load_sam2(sam2_path, image_size=256)
    frames = torch.stack([read_rgb(p) for p in sorted((root / "masked" / "frames").iterdir())])
    mask = read_mask(root / "masked" / "mask.png")
    seg = sam2.segment_video(frames, None, masks=(mask > 0.5)[None].float())[0]
    assert records["masked"]["segmentation"] == "sam2" and records["masked"]["sam2"]["file"] == sam2_path.name
    image = torch.stack([read_mask(p) for p in sorted((out / "masked" / "alpha_image").iterdir())])
    model_image = matte_frames(model, frames, seg, warmup=0)
    assert torch.equal(torch.from_numpy(to_uint8(model_image)), torch.from_numpy(to_uint8(image)))
    # the first mask from the box: SAM 2 tracking from the prompt, its frame 0 (random weights: some mask)
    prompted = records["prompted"]
    assert prompted["status"] == "done" and prompted["first_mask"] == "sam2_prompts", prompted
    frames = torch.stack([read_rgb(p) for p in sorted((root / "prompted" / "frames").iterdir())])
    prompts = read_prompts(root / "prompted" / "prompts.json", (H, W))
    tracked = sam2.segment_video(frames, prompts).amax(dim=0)
    assert np.array_equal(_png(out / "prompted" / MASK_FILENAME), to_uint8((tracked[0] > 0.5).float()))


# --------------------------------------------------------------------------------------------------- Ray


def test_ray_executor_gives_the_local_manifest_and_identical_pngs(data, local_run, weights_path, tmp_path):
    ray = pytest.importorskip("ray")
    out = tmp_path / "out"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        args = _args(data / "in", out, weights_path, "--save-branches", "--save-errors", "--min-quality", "0.98",
                     "--executor", "ray", "--workers", "2")  # fmt: skip
        assert main(args) == 0
        assert _by_clip(_manifest(out)) == _by_clip(_manifest(local_run))
        files = sorted(p.relative_to(local_run) for p in local_run.rglob("*.png"))
        assert files == sorted(p.relative_to(out) for p in out.rglob("*.png"))
        assert all((local_run / f).read_bytes() == (out / f).read_bytes() for f in files)
        # resumable the same way: a half-finished clip is redone, nothing else
        lines = (out / "manifest.jsonl").read_text().splitlines()
        (out / "manifest.jsonl").write_text("\n".join(lines[:3]) + "\n")
        redo = next(json.loads(line)["clip"] for line in lines[3:])
        kept = {c: _mtimes(out / c) for c in IDS if c != redo}
        assert main(args) == 0
        assert [r["clip"] for r in _manifest(out)[3:]] == [redo]
        assert {c: _mtimes(out / c) for c in IDS if c != redo} == kept
    finally:
        ray.shutdown()
