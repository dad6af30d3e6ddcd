"""Training the learned evaluator.

    python -m matanyone2_core train-evaluator --data DIR|synthetic --out DIR [--backbone vits16] [--steps N]
        [--batch B --accum A --crop 256] [--init-dinov3 FILE] [--matting-weights FILE] [--resume] ...

Focal loss (alpha 0.75 on "erroneous", gamma 2), AdamW (betas 0.9/0.999, weight decay on weight matrices and
kernels only), linear warm-up then cosine decay to `min_lr_ratio`, the backbone at `backbone_lr_scale` x the
learning rate (or frozen), bf16 autocast on CUDA, gradient accumulation, gradient clipping. Every
`ckpt_every` steps `OUT/last.pt` holds the model, optimiser, scheduler, RNG states and the data position;
`--resume` continues from it exactly (the data stream is a function of its position, see data.py). Every
`val_every` steps (and before the first and after the last) the evaluator is scored on a held-out set
(precision / recall / F1 of error pixels per degradation) into `OUT/validation/step_NNNNNN.{json,md}`. At the
end `OUT/evaluator.safetensors` is the trained evaluator (load it with `load_evaluator`). `OUT/log.jsonl`
has one line per step (loss, learning rate, samples/s).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ...checkpoint import CheckpointError, short_reason
from ...engine.validate import resolve_device
from .data import FolderSources, HeldOut, SyntheticSources, TrainingSamples, cache_matting_predictions, score_markdown
from .dinov3 import load_dinov3
from .files import save_evaluator
from .loss import focal_loss
from .model import MattingQualityEvaluator, MQEConfig, build_evaluator

CHECKPOINT_FORMAT = "matanyone2-mqe-training"
CHECKPOINT_NAME = "last.pt"
EVALUATOR_NAME = "evaluator.safetensors"
# Settings that do not change the training trajectory: free to differ when a run is resumed.
_FREE = {"out", "resume", "stop_after", "cache", "progress", "workers", "device", "val_every", "ckpt_every",
         "val_data", "val_clips", "val_frames", "val_height", "val_width", "val_seed", "val_images"}  # fmt: skip


@dataclass
class TrainConfig:
    """Every setting of a training run (the CLI flags; see docs/mqe.md for the defaults' reasons)."""

    data: str = "synthetic"
    out: str = "mqe-run"
    backbone: str = "vits16"
    init_dinov3: str | None = None
    matting_weights: str | None = None
    matting_fraction: float = 0.25
    steps: int = 2000
    batch: int = 8
    accum: int = 1
    crop: int = 256
    short_side: int = 512
    lr: float = 2e-4
    backbone_lr_scale: float = 0.1
    freeze_backbone: bool = False
    weight_decay: float = 0.05
    warmup: int = 100
    min_lr_ratio: float = 0.01
    grad_clip: float = 1.0
    focal_alpha: float = 0.75
    focal_gamma: float = 2.0
    clean_fraction: float = 0.1
    seed: int = 0
    synthetic_clips: int = 8
    synthetic_frames: int = 4
    synthetic_height: int = 144
    synthetic_width: int = 256
    device: str = "auto"
    amp: bool = True
    workers: int = 0
    val_data: str | None = None
    val_images: int = 8
    val_every: int = 500
    val_clips: int = 2
    val_frames: int = 4
    val_height: int = 144
    val_width: int = 256
    val_seed: int = 0
    ckpt_every: int = 500
    stop_after: int | None = None
    resume: bool = False
    cache: str | None = None
    progress: bool = True

    def check(self) -> TrainConfig:
        """Self, every setting checked (ValueError naming the flag)."""
        MQEConfig.for_backbone(self.backbone)
        ints = {"steps": 1, "batch": 1, "accum": 1, "crop": 16, "short_side": 16, "warmup": 0, "seed": 0,
                "synthetic_clips": 1, "synthetic_frames": 1, "synthetic_height": 16, "synthetic_width": 16,
                "workers": 0, "val_images": 1, "val_every": 0, "val_clips": 1, "val_frames": 1,
                "val_height": 32, "val_width": 32, "val_seed": 0, "ckpt_every": 0}  # fmt: skip
        for name, low in ints.items():
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"--{name.replace('_', '-')} must be an integer >= {low}, got {value!r}")
        if self.crop % 16:
            raise ValueError(f"--crop must be a multiple of 16 (the patch size), got {self.crop}")
        if self.stop_after is not None and (not isinstance(self.stop_after, int) or self.stop_after < 1):
            raise ValueError(f"--stop-after must be an integer >= 1, got {self.stop_after!r}")
        for name, lo, hi in (("lr", 0.0, 1.0), ("backbone_lr_scale", 0.0, 10.0), ("weight_decay", 0.0, 1.0),
                             ("min_lr_ratio", 0.0, 1.0), ("grad_clip", 0.0, 1e6), ("focal_alpha", 0.0, 1.0),
                             ("focal_gamma", 0.0, 10.0), ("clean_fraction", 0.0, 1.0),
                             ("matting_fraction", 0.0, 1.0)):  # fmt: skip
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not lo <= value <= hi:
                raise ValueError(f"--{name.replace('_', '-')} must be a number in {lo:g}..{hi:g}, got {value!r}")
        if self.lr == 0:
            raise ValueError("--lr must be > 0")
        if self.clean_fraction + (self.matting_fraction if self.matting_weights else 0.0) > 1.0:
            raise ValueError("--clean-fraction plus --matting-fraction must not exceed 1")
        if self.data == "synthetic" and self.crop > min(self.synthetic_height, self.synthetic_width):
            raise ValueError(f"--crop {self.crop} is larger than the synthetic frames "
                             f"({self.synthetic_height}x{self.synthetic_width})")  # fmt: skip
        if self.data != "synthetic" and self.crop > self.short_side:
            raise ValueError(f"--crop {self.crop} is larger than --short-side {self.short_side}")
        for name in ("init_dinov3", "matting_weights"):
            value = getattr(self, name)
            if value is not None and not Path(value).is_file():
                raise ValueError(f"--{name.replace('_', '-')} {value}: no such file")
        return self

    def trajectory(self) -> dict:
        """The settings a resumed run must share with the run it continues."""
        return {k: v for k, v in asdict(self).items() if k not in _FREE}


@dataclass
class TrainResult:
    """What a run did: per-step `history` (loss, lr, samples/s), `validations` (held-out scores by step)."""

    out: Path
    steps_done: int
    history: list[dict] = field(default_factory=list)
    validations: list[dict] = field(default_factory=list)
    evaluator_path: Path | None = None
    checkpoint_path: Path | None = None
    samples_per_s: float = 0.0

    @property
    def first_loss(self) -> float:
        return self.history[0]["loss"]

    @property
    def last_loss(self) -> float:
        return self.history[-1]["loss"]


def lr_factor(step: int, *, warmup: int, steps: int, min_ratio: float) -> float:
    """The schedule: linear warm-up over `warmup` steps, then cosine from 1 to `min_ratio` at `steps`."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _param_groups(model: MattingQualityEvaluator, cfg: TrainConfig) -> list[dict]:
    """Decoder (full lr) and backbone (lr x scale) groups, each split so that weight decay skips biases, norms,
    tokens and LayerScale (1-D or token tensors)."""
    groups = []
    parts = [("decoder", model.decoder_parameters(), cfg.lr)]
    if not cfg.freeze_backbone:
        parts.append(("backbone", model.backbone_parameters(), cfg.lr * cfg.backbone_lr_scale))
    for name, params, lr in parts:
        # Weight matrices and kernels decay; biases, norms, LayerScale (1-D) and tokens (leading dim 1) do not.
        decay = [p for p in params if p.ndim >= 2 and p.shape[0] != 1]
        ids = {id(p) for p in decay}
        rest = [p for p in params if id(p) not in ids]
        groups.append({"params": decay, "lr": lr, "weight_decay": cfg.weight_decay, "name": f"{name}"})
        groups.append({"params": rest, "lr": lr, "weight_decay": 0.0, "name": f"{name}-no-decay"})
    return [g for g in groups if g["params"]]


class _Progress:
    """A one-line progress bar on stderr: step, loss, learning rate, samples/s, time left."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.enabled, self.started = total, enabled, time.perf_counter()

    def update(self, step: int, loss: float, lr: float, rate: float, left_s: float) -> None:
        if not self.enabled:
            return
        width = 24
        filled = int(width * step / max(self.total, 1))
        eta = f"{int(left_s // 60)}m{int(left_s % 60):02d}s"
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] step {step}/{self.total} loss {loss:.4f} "
                         f"lr {lr:.2e} {rate:.1f} samples/s ETA {eta}   ")  # fmt: skip
        sys.stderr.flush()

    def note(self, text: str) -> None:
        if self.enabled:
            sys.stderr.write(f"\n{text}\n")
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _sources(cfg: TrainConfig, cache: Path, progress: _Progress) -> SyntheticSources | FolderSources:
    if cfg.data != "synthetic":
        return FolderSources(cfg.data, short_side=cfg.short_side)

    def report(done: int, total: int) -> None:
        if progress.enabled:
            sys.stderr.write(f"\rgenerating synthetic training clips: {done}/{total}")

    return SyntheticSources(clips=cfg.synthetic_clips, frames=cfg.synthetic_frames, height=cfg.synthetic_height,
                            width=cfg.synthetic_width, seed=cfg.seed, cache_dir=cache, progress=report)  # fmt: skip


def _held_out(cfg: TrainConfig) -> HeldOut:
    if cfg.val_data is not None:
        return HeldOut.folder(FolderSources(cfg.val_data, short_side=cfg.short_side, limit=cfg.val_images),
                              seed=cfg.val_seed)  # fmt: skip
    return HeldOut.synthetic(clips=cfg.val_clips, frames=cfg.val_frames, height=cfg.val_height,
                             width=cfg.val_width, seed=cfg.val_seed)  # fmt: skip


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def read_training_checkpoint(path: Path) -> dict:
    """A training state written by `train_evaluator`, or a CheckpointError naming the file."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch, pickle and zip each raise their own types
        raise CheckpointError(
            f"{path}: not a readable training checkpoint (truncated or corrupted?): {short_reason(exc)}"
        ) from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a train-evaluator checkpoint")
    return state


def _validate(model: MattingQualityEvaluator, held_out: HeldOut, step: int, out: Path) -> dict:
    was_training = model.training
    model.eval()
    with torch.no_grad():
        scores = held_out.score(model)
    model.train(was_training)
    scores["step"] = step
    folder = out / "validation"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"step_{step:06d}.json").write_text(json.dumps(scores, indent=2) + "\n")
    text = score_markdown(scores, title=f"Held-out validation after {step} steps ({held_out.settings}).")
    (folder / f"step_{step:06d}.md").write_text(text)
    (folder / "latest.md").write_text(text)
    return scores


def train_evaluator(cfg: TrainConfig) -> TrainResult:
    """Train (or `resume`) an evaluator as `cfg` says; see the module docstring for what is written where."""
    cfg.check()
    out = Path(cfg.out)
    ckpt_path = out / CHECKPOINT_NAME
    if ckpt_path.exists() and not cfg.resume:
        raise ValueError(f"{out} already holds a training run ({ckpt_path.name}); pass --resume to continue it "
                         "or choose another --out")  # fmt: skip
    resumed = read_training_checkpoint(ckpt_path) if cfg.resume and ckpt_path.exists() else None
    if resumed is not None:
        before = resumed["config"]
        now = cfg.trajectory()
        diff = [f"--{k.replace('_', '-')} {before.get(k)!r} -> {now.get(k)!r}" for k in sorted(set(before) | set(now))
                if before.get(k) != now.get(k)]  # fmt: skip
        if diff:
            raise ValueError(f"{ckpt_path}: cannot resume with different training settings: {'; '.join(diff)}")
    device = resolve_device("cuda" if cfg.device == "auto" and torch.cuda.is_available() else
                            ("cpu" if cfg.device == "auto" else cfg.device))  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    cache = Path(cfg.cache) if cfg.cache else out / "cache"
    progress = _Progress(cfg.steps, cfg.progress)

    torch.manual_seed(cfg.seed)
    model = build_evaluator(cfg.backbone, seed=cfg.seed)
    if cfg.init_dinov3 and resumed is None:
        model.load_backbone(load_dinov3(cfg.init_dinov3))
    if cfg.freeze_backbone:
        model.backbone.requires_grad_(False)
    model.to(device).train()

    sources = _sources(cfg, cache, progress)
    matting_dir = None
    if cfg.matting_weights:
        from ...checkpoint import load_matting_model

        matting = load_matting_model(cfg.matting_weights, device=device)
        tag = f"{Path(cfg.matting_weights).stem}_{'synthetic' if cfg.data == 'synthetic' else cfg.short_side}"

        def report(done: int, total: int) -> None:
            if progress.enabled:
                sys.stderr.write(f"\rmatting the training images: {done}/{total}")

        matting_dir = cache_matting_predictions(sources, matting, cache, tag=tag, progress=report)
        del matting
    dataset = TrainingSamples(sources, crop=cfg.crop, seed=cfg.seed, clean_fraction=cfg.clean_fraction,
                              matting_dir=matting_dir, matting_fraction=cfg.matting_fraction)  # fmt: skip
    held_out = _held_out(cfg) if cfg.val_every > 0 else None

    optimizer = torch.optim.AdamW(_param_groups(model, cfg), lr=cfg.lr, betas=(0.9, 0.999))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, warmup=cfg.warmup, steps=cfg.steps, min_ratio=cfg.min_lr_ratio)
    )
    result = TrainResult(out=out, steps_done=0)
    step = 0
    if resumed is not None:
        model.load_state_dict(resumed["model"], strict=True)
        optimizer.load_state_dict(resumed["optimizer"])
        scheduler.load_state_dict(resumed["scheduler"])
        _set_rng_state(resumed["rng"])
        step = int(resumed["step"])
        result.history = list(resumed["history"])
        result.validations = list(resumed["validations"])
        progress.note(f"resumed {ckpt_path} at step {step}")

    per_step = cfg.batch * cfg.accum
    amp = cfg.amp and device.type == "cuda"

    def save_state() -> None:
        state = {"format": CHECKPOINT_FORMAT, "version": 1, "config": cfg.trajectory(), "step": step,
                 "position": step * per_step, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                 "scheduler": scheduler.state_dict(), "rng": _rng_state(), "history": result.history,
                 "validations": result.validations}  # fmt: skip
        tmp = ckpt_path.with_name(f".{ckpt_path.name}.part")
        torch.save(state, tmp)
        tmp.replace(ckpt_path)
        result.checkpoint_path = ckpt_path

    if held_out is not None and step == 0:
        result.validations.append(_validate(model, held_out, 0, out))
    end = cfg.steps if cfg.stop_after is None else min(cfg.steps, step + cfg.stop_after)
    # The sampler names the stream positions still to read: a resumed run reads on from where it stopped.
    loader = torch.utils.data.DataLoader(dataset, batch_size=cfg.batch, sampler=range(step * per_step, end * per_step),
                                         num_workers=cfg.workers, pin_memory=device.type == "cuda")  # fmt: skip
    batches = iter(loader)
    log = (out / "log.jsonl").open("a")
    train_time, train_samples = 0.0, 0
    try:
        while step < end:
            started = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            total = 0.0
            for _ in range(cfg.accum):
                batch = next(batches)
                images = batch["image"].to(device, non_blocking=True)
                alpha = batch["alpha"].to(device, non_blocking=True)
                seg = batch["seg"].to(device, non_blocking=True)
                labels = batch["label"].to(device, non_blocking=True)
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
                    logits = model.logits(images, alpha, seg)
                loss = focal_loss(logits, labels, alpha=cfg.focal_alpha, gamma=cfg.focal_gamma) / cfg.accum
                loss.backward()
                total += float(loss.detach())
            if not math.isfinite(total):
                raise RuntimeError(f"the training loss became {total} at step {step + 1}; lower --lr")
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], cfg.grad_clip)
            lr = optimizer.param_groups[0]["lr"]
            optimizer.step()
            scheduler.step()
            step += 1
            elapsed = time.perf_counter() - started
            train_time += elapsed
            train_samples += per_step
            rate = train_samples / max(train_time, 1e-9)
            entry = {"step": step, "loss": total, "lr": lr, "samples_per_s": per_step / max(elapsed, 1e-9)}
            result.history.append(entry)
            log.write(json.dumps(entry) + "\n")
            progress.update(step, total, lr, rate, (end - step) * per_step / max(rate, 1e-9))
            if held_out is not None and (step % cfg.val_every == 0 or step == cfg.steps):
                scores = _validate(model, held_out, step, out)
                result.validations.append(scores)
                progress.note(f"step {step}: held-out mean F1 {scores['mean_f1']:.3f}, ground truth flagged "
                              f"{100 * scores['gt_flagged']:.2f} %")  # fmt: skip
            if (cfg.ckpt_every and step % cfg.ckpt_every == 0) or step == end:
                save_state()
    finally:
        log.close()
        progress.close()
    result.steps_done = step
    result.samples_per_s = train_samples / max(train_time, 1e-9)
    if step == cfg.steps:
        model.eval()
        provenance = {
            "data": sources.describe(),
            "steps": cfg.steps, "seed": cfg.seed, "batch": cfg.batch, "accum": cfg.accum, "crop": cfg.crop,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "init": Path(cfg.init_dinov3).name if cfg.init_dinov3 else "random",
            "matting_weights": Path(cfg.matting_weights).name if cfg.matting_weights else None,
            "loss": {"focal_alpha": cfg.focal_alpha, "focal_gamma": cfg.focal_gamma},
            "optimiser": {"lr": cfg.lr, "backbone_lr_scale": cfg.backbone_lr_scale,
                          "freeze_backbone": cfg.freeze_backbone, "weight_decay": cfg.weight_decay,
                          "warmup": cfg.warmup},
            "final_loss": result.last_loss,
            "validation": ({"mean_f1": result.validations[-1]["mean_f1"], **result.validations[-1]["settings"]}
                           if result.validations else None),
        }  # fmt: skip
        result.evaluator_path = save_evaluator(model.cpu(), out / EVALUATOR_NAME, provenance=provenance)
    return result


# ------------------------------------------------------------------------------------------------------ CLI


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    """The `train-evaluator` subcommand."""
    d = TrainConfig()
    p = subparsers.add_parser("train-evaluator", help="train the learned matte evaluator (DINOv3 + DPT)",
                              description=__doc__.split("\n\n")[0])  # fmt: skip
    p.add_argument("--data", required=True, help="'synthetic' or a folder (P3M-10k, or images/ + alphas/)")
    p.add_argument("--out", required=True, help="the run folder (checkpoint, logs, validation, evaluator)")
    p.add_argument("--backbone", default=d.backbone, choices=["vits16", "vitb16", "tiny"])
    p.add_argument("--init-dinov3", help="start from official DINOv3 weights (.pth or Hugging Face .safetensors)")
    p.add_argument("--matting-weights", help="also train on MatAnyone 2 predictions (matte_frames) of the images")
    p.add_argument("--freeze-backbone", action="store_true", help="train only the decoder and alpha/seg slices")
    p.add_argument("--no-amp", dest="amp", action="store_false", help="no bf16 autocast on CUDA")
    p.add_argument("--resume", action="store_true", help="continue OUT/last.pt exactly")
    p.add_argument("--quiet", dest="progress", action="store_false", help="no progress bar")
    for f in dataclasses.fields(TrainConfig):
        if f.name in ("data", "out", "backbone", "init_dinov3", "matting_weights", "freeze_backbone", "amp",
                      "resume", "progress"):  # fmt: skip
            continue
        kind = int if f.type in ("int", "int | None") else (float if f.type == "float" else str)
        p.add_argument(f"--{f.name.replace('_', '-')}", type=kind, default=getattr(d, f.name),
                       help=f"(default {getattr(d, f.name)})")  # fmt: skip
    p.set_defaults(func=_run_cli)


def _run_cli(args: argparse.Namespace) -> int:
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)}
    result = train_evaluator(TrainConfig(**values))
    summary = {"steps": result.steps_done, "first_loss": result.first_loss if result.history else None,
               "last_loss": result.last_loss if result.history else None,
               "samples_per_s": round(result.samples_per_s, 2),
               "mean_f1": [round(v["mean_f1"], 4) for v in result.validations],
               "evaluator": str(result.evaluator_path) if result.evaluator_path else None,
               "checkpoint": str(result.checkpoint_path) if result.checkpoint_path else None}  # fmt: skip
    print(json.dumps(summary, indent=2))
    return 0
