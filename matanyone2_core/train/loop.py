"""The fine-tuning loop of the matting network (`train_matting`; the CLI is `cli.py`).

Every step: `batch` x `accum` windows (each one `window_forward` of its clip, losses per window, one backward
per window so that only one window's graph is alive at a time), the gradients all-reduced over the ranks when
launched by torchrun, clipped to `clip_grad`, one AdamW step, the learning rate following a linear warm-up of
`lr_warmup` steps then a cosine decay to `min_lr_ratio` x `lr` (`quality.mqe.train.lr_factor`, the evaluator
training's schedule). Mixed precision (`amp`) is CUDA-only autocast in bf16 (or fp16 with a gradient scaler);
on the CPU everything is fp32.

Written into `out` (by rank 0): `model.pth`, the network's state dict in the official key layout
(`load_matting_model` loads it strictly; MA2LoadModel lists it once copied into models/matanyone),
`train_state.pt` (optimizer, scheduler, gradient scaler, step, RNG states of torch / CUDA / numpy / python,
the data position, the settings, the loss history, a SHA-256 of the `model.pth` it belongs to), both every
`save_every` steps and at the end; `log.jsonl` (one line per step); `validation/step_NNNNNN.json` every
`val_every` steps (and before the first and after the last): the held-out clips matted with `matte_video`
under the training's matting options, 8-bit rounded and scored with `metrics` (MAD, MSE, Grad, Conn, dtSSD,
aggregated over the clips like the benchmark). `resume` continues exactly: the data stream is a pure function
of its position (`data.WindowSamples`), so the resumed run's next step equals the uninterrupted run's.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from .. import metrics
from ..checkpoint import CheckpointError, load_matting_model, sha256_of, short_reason
from ..cli_matte import ProgressBar
from ..engine.options import MattingOptions
from ..engine.validate import check_kernels, resolve_device
from ..engine.video import matte_video
from ..quality.mqe.train import _rng_state, _set_rng_state, lr_factor
from .data import (
    MATTING,
    HeldOutClip,
    WindowSamples,
    WindowSpec,
    find_matting_clips,
    find_segmentation_clips,
    load_held_out,
)
from .forward import set_training_mode, window_forward
from .losses import LossWeights, matting_losses, segmentation_losses

STATE_FORMAT = "matanyone2-matting-training"
MODEL_NAME = "model.pth"
STATE_NAME = "train_state.pt"
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
VAL_PROTOCOLS = ("lr", "hr")
# Settings that do not change the training trajectory: free to differ when a run is resumed.
_FREE = {"out", "resume", "stop_after", "progress", "workers", "device", "val", "val_every", "val_frames",
         "val_protocol", "save_every", "init"}  # fmt: skip


@dataclass
class TrainMattingConfig:
    """Every setting of a fine-tuning run (the CLI flags; docs/training.md explains them and the defaults)."""

    init: str = "matanyone2.pth"
    out: str = "matting-run"
    data: str | None = None
    seg_data: str | None = None
    steps: int = 2000
    lr: float = 1e-5
    weight_decay: float = 0.01
    lr_warmup: int = 100
    min_lr_ratio: float = 0.01
    batch: int = 1
    accum: int = 4
    clip_grad: float = 1.0
    amp: bool = False
    amp_dtype: str = "bf16"
    window: int = 8
    refs: int = 1
    dropout_ratio: float = 0.5
    dropout_patch: int = 32
    size: tuple[int, int] = (480, 480)
    max_stride: int = 2
    scale_min: float = 1.0
    scale_max: float = 2.0
    flip: bool = True
    jitter: float = 0.2
    seg_fraction: float = 0.5
    boundary: int = 10
    evaluator: str | None = None
    warmup: int = 1
    erode: int = 10
    dilate: int = 10
    mem_every: int = 5
    max_mem_frames: int = 5
    top_k: int = 30
    w_l1: float = 1.0
    w_laplacian: float = 1.0
    w_gradient: float = 1.0
    w_temporal: float = 5.0
    w_seg: float = 1.0
    w_eval: float = 1.0
    seed: int = 0
    val: str | None = None
    val_every: int = 500
    val_frames: int | None = None
    val_protocol: str = "lr"
    save_every: int = 500
    stop_after: int | None = None
    resume: bool = False
    workers: int = 0
    device: str = "auto"
    progress: bool = True

    def options(self) -> MattingOptions:
        """The matting options of the training forward and of validation (checked: ValueError names it)."""
        return MattingOptions(warmup=self.warmup, erode=self.erode, dilate=self.dilate, mem_every=self.mem_every,
                              max_mem_frames=self.max_mem_frames, top_k=self.top_k)  # fmt: skip

    def spec(self) -> WindowSpec:
        return WindowSpec(window=self.window, refs=self.refs, size=tuple(self.size), max_stride=self.max_stride,
                          scale=(self.scale_min, self.scale_max), flip=self.flip, jitter=self.jitter,
                          dropout_ratio=self.dropout_ratio, dropout_patch=self.dropout_patch,
                          seg_fraction=self.seg_fraction)  # fmt: skip

    def weights(self) -> LossWeights:
        return LossWeights(l1=self.w_l1, laplacian=self.w_laplacian, gradient=self.w_gradient,
                           temporal=self.w_temporal, seg=self.w_seg, eval=self.w_eval)  # fmt: skip

    def check(self) -> TrainMattingConfig:
        """Self, every setting checked without touching the disk beyond existence tests (ValueError naming
        the flag)."""
        ints = {"steps": 1, "lr_warmup": 0, "batch": 1, "accum": 1, "window": 1, "refs": 0, "dropout_patch": 1,
                "max_stride": 1, "boundary": 0, "seed": 0, "val_every": 0, "save_every": 0, "workers": 0}  # fmt: skip
        for name, low in ints.items():
            _check_int(getattr(self, name), name, low)
        for name in ("stop_after", "val_frames"):
            if getattr(self, name) is not None:
                _check_int(getattr(self, name), name, 1)
        floats = {"lr": (0.0, 1.0), "weight_decay": (0.0, 1.0), "min_lr_ratio": (0.0, 1.0), "clip_grad": (0.0, 1e6),
                  "dropout_ratio": (0.0, 1.0), "scale_min": (1.0, 8.0), "scale_max": (1.0, 8.0), "jitter": (0.0, 0.9),
                  "seg_fraction": (0.0, 1.0), "w_l1": (0.0, 1e3), "w_laplacian": (0.0, 1e3),
                  "w_gradient": (0.0, 1e3), "w_temporal": (0.0, 1e3), "w_seg": (0.0, 1e3),
                  "w_eval": (0.0, 1e3)}  # fmt: skip
        for name, (lo, hi) in floats.items():
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not lo <= value <= hi:
                raise ValueError(f"{_flag(name)} must be a number in {lo:g}..{hi:g}, got {value!r}")
        if self.lr == 0:
            raise ValueError("--lr must be > 0")
        if self.dropout_ratio >= 1:
            raise ValueError(f"--dropout-ratio must be below 1 (1 blanks the references entirely), got "
                             f"{self.dropout_ratio}")  # fmt: skip
        if self.scale_min > self.scale_max:
            raise ValueError(f"--scale-min {self.scale_min} is above --scale-max {self.scale_max}")
        if self.amp_dtype not in AMP_DTYPES:
            raise ValueError(f"--amp-dtype must be one of {sorted(AMP_DTYPES)}, got {self.amp_dtype!r}")
        if self.val_protocol not in VAL_PROTOCOLS:
            raise ValueError(f"--val-protocol must be one of {VAL_PROTOCOLS}, got {self.val_protocol!r}")
        size = tuple(self.size)
        if len(size) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 16 for s in size):
            raise ValueError(f"--size must be two integers >= 16 (H, W), got {self.size!r}")
        options = self.options()
        try:
            check_kernels(options, size)
        except ValueError as exc:
            raise ValueError(f"--size {size[0]}x{size[1]}: {exc}") from exc
        if self.data is None and self.seg_data is None:
            raise ValueError("give --data (matting clips) and/or --seg-data (segmentation clips)")
        for name in ("init", "evaluator"):
            value = getattr(self, name)
            if value is not None and not Path(value).is_file():
                raise ValueError(f"{_flag(name)} {value}: no such file")
        for name in ("data", "seg_data", "val"):
            value = getattr(self, name)
            if value is not None and not Path(value).is_dir():
                raise ValueError(f"{_flag(name)} {value}: no such folder")
        out = Path(self.out)
        if out.exists() and not out.is_dir():
            raise ValueError(f"--out {out} is a file, not a folder")
        return self

    def trajectory(self) -> dict:
        """The settings a resumed run must share with the run it continues."""
        values = {k: v for k, v in asdict(self).items() if k not in _FREE}
        values["size"] = list(values["size"])
        return values


def _flag(name: str) -> str:
    return f"--{name.replace('_', '-')}"


def _check_int(value: object, name: str, low: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"{_flag(name)} must be an integer >= {low}, got {value!r}")


@dataclass
class TrainResult:
    """What a run did: per-step `history` (loss terms, lr), `validations` (held-out metrics by step)."""

    out: Path
    steps_done: int
    history: list[dict] = field(default_factory=list)
    validations: list[dict] = field(default_factory=list)
    model_path: Path | None = None
    state_path: Path | None = None


# ------------------------------------------------------------------------------------------------ helpers


def rng_state() -> dict:
    """torch (and CUDA), numpy and python RNG states, in a form `torch.load(weights_only=True)` reads."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {**_rng_state(), "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                                      "has_gauss": int(has_gauss), "gauss": float(gauss)},
            "python": random.getstate()}  # fmt: skip


def set_rng_state(state: dict) -> None:
    _set_rng_state(state)
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def read_train_state(path: Path) -> dict:
    """A `train_state.pt` written by `train_matting`, or a CheckpointError naming the file."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch, pickle and zip each raise their own types
        raise CheckpointError(
            f"{path}: not a readable training state (truncated or corrupted?): {short_reason(exc)}"
        ) from exc
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise CheckpointError(f"{path}: not a train-matting state file")
    return state


def _save_atomic(obj: object, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.part")
    torch.save(obj, tmp)
    tmp.replace(path)


def save_model(model: torch.nn.Module, path: Path) -> Path:
    """The network's state dict (fp32, CPU) at `path`: the official key layout `load_matting_model` reads."""
    _save_atomic({k: v.detach().float().cpu().contiguous() if v.is_floating_point() else v.detach().cpu()
                  for k, v in model.state_dict().items()}, path)  # fmt: skip
    return path


class _Distributed:
    """torchrun's environment (WORLD_SIZE > 1): process group, rank, gradient all-reduce; a no-op otherwise."""

    def __init__(self) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.active = self.world > 1

    def start(self, device: torch.device) -> None:
        if self.active and not torch.distributed.is_initialized():
            if device.type == "cuda":
                torch.cuda.set_device(device)  # NCCL talks to the current device
            torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")

    def all_reduce_gradients(self, params: list[torch.nn.Parameter]) -> None:
        """Average the gradients over the ranks in one flat buffer. A missing gradient counts as zeros, so that
        every rank sends the same layout; a parameter no rank has a gradient for keeps none (AdamW then leaves
        it alone, as in a single process)."""
        if not self.active:
            return
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        present = torch.tensor([float(p.grad is not None) for p in params], device=params[0].device)
        flat = torch.cat([*(g.reshape(-1).to(present.dtype) for g in grads), present])
        torch.distributed.all_reduce(flat)
        flags = flat[flat.numel() - len(params) :].tolist()
        offset = 0
        for p, has_grad in zip(params, flags, strict=True):
            n = p.numel()
            p.grad = (flat[offset : offset + n] / self.world).view_as(p).to(p.dtype).clone() if has_grad else None
            offset += n

    def barrier(self) -> None:
        if self.active:
            torch.distributed.barrier()

    def mean(self, value: float, device: torch.device) -> float:
        if not self.active:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=device)
        torch.distributed.all_reduce(t)
        return float(t) / self.world


def validate(model: torch.nn.Module, clips: list[HeldOutClip], options: MattingOptions, protocol: str = "lr") -> dict:
    """Held-out metrics: each clip matted by `matte_video` from its first-frame mask with `options`, rounded to
    8 bits, scored per frame by `metrics.per_frame_metrics` and aggregated like the benchmark
    (`metrics.aggregate_clips`). Returns {metric: value, "clips": {name: clip means}}."""
    per_clip, means = [], {}
    for clip in clips:
        pred = metrics.quantize_alpha(matte_video(model, clip.frames, clip.first_mask, options=options))
        values = metrics.per_frame_metrics(pred, clip.alphas, protocol=protocol)
        per_clip.append(values)
        means[clip.name] = {k: float(np.mean(v)) for k, v in values.items()}
    return {**metrics.aggregate_clips(per_clip), "clips": means}


def window_loss(
    model: torch.nn.Module,
    sample: dict[str, torch.Tensor],
    cfg: TrainMattingConfig,
    device: torch.device,
    *,
    evaluator: object = None,
) -> dict[str, torch.Tensor]:
    """The loss terms (and `total`) of one window (a sample of `WindowSamples`, without the batch axis)."""
    frames = sample["frames"].to(device)
    refs = sample["ref_images"].to(device) if sample["ref_images"].shape[0] else None
    ref_alphas = sample["ref_alphas"].to(device) if refs is not None else None
    alphas = window_forward(model, frames, sample["first_mask"], cfg.options(), ref_images=refs, ref_alphas=ref_alphas)
    target = sample["alphas"].to(device)
    if int(sample["kind"]) == MATTING:
        return matting_losses(alphas, target, cfg.weights())
    return segmentation_losses(alphas, target, frames, cfg.weights(), evaluator=evaluator, boundary=cfg.boundary)


# -------------------------------------------------------------------------------------------------- loop


def train_matting(cfg: TrainMattingConfig) -> TrainResult:
    """Fine-tune (or `resume`) the matting network as `cfg` says; see the module docstring for the outputs.

    Every input is checked (settings, folders, clips long enough for the window, the weights, the evaluator,
    the held-out clips, a run to resume) before anything is written."""
    cfg.check()
    dist = _Distributed()
    out = Path(cfg.out)
    state_path, model_path = out / STATE_NAME, out / MODEL_NAME
    if state_path.exists() and not cfg.resume:
        raise ValueError(f"--out {out} already holds a training run ({STATE_NAME}); pass --resume to continue it "
                         "or choose another --out")  # fmt: skip
    resumed = read_train_state(state_path) if cfg.resume and state_path.exists() else None
    if resumed is not None:
        before, now = resumed["config"], cfg.trajectory()
        diff = [f"{_flag(k)} {before.get(k)!r} -> {now.get(k)!r}" for k in sorted(set(before) | set(now))
                if before.get(k) != now.get(k)]  # fmt: skip
        if diff:
            raise ValueError(f"{state_path}: cannot resume with different training settings: {'; '.join(diff)}")
        if resumed["world"] != dist.world:
            raise ValueError(f"{state_path}: the run used {resumed['world']} process(es), this launch has "
                             f"{dist.world}; resume with the same number")  # fmt: skip
        if not model_path.is_file() or sha256_of(model_path) != resumed["model_sha256"]:
            raise CheckpointError(f"{model_path}: missing or not the network of {state_path} (step "
                                  f"{resumed['step']}); cannot resume")  # fmt: skip

    if cfg.device == "auto":
        device = torch.device(f"cuda:{dist.local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    else:
        device = resolve_device(cfg.device, name="--device")
    spec = cfg.spec()
    matting = find_matting_clips(cfg.data, flag="--data") if cfg.data else []
    segmentation = find_segmentation_clips(cfg.seg_data, flag="--seg-data") if cfg.seg_data else []
    dataset = WindowSamples(matting, segmentation, spec, seed=cfg.seed, roots=(str(cfg.data), str(cfg.seg_data)))
    held_out = load_held_out(cfg.val, max_frames=cfg.val_frames) if cfg.val else []
    if held_out:
        for clip in held_out:
            check_kernels(cfg.options(), tuple(clip.first_mask.shape))
    evaluator = None
    if cfg.evaluator and segmentation:
        from ..quality.mqe.files import load_evaluator

        evaluator = load_evaluator(cfg.evaluator, device=device)
    model = load_matting_model(model_path if resumed is not None else cfg.init, device=device)
    set_training_mode(model)

    # Writing starts here.
    dist.start(device)
    leader = dist.rank == 0
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    random.seed(cfg.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    rest = [p for p in params if p.ndim < 2]  # biases and norm weights do not decay
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                   {"params": rest, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.999))  # fmt: skip
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, warmup=cfg.lr_warmup, steps=cfg.steps, min_ratio=cfg.min_lr_ratio)
    )
    amp = cfg.amp and device.type == "cuda"
    amp_dtype = AMP_DTYPES[cfg.amp_dtype]
    scaler = torch.amp.GradScaler("cuda", enabled=amp and amp_dtype == torch.float16)
    result = TrainResult(out=out, steps_done=0)
    step = 0
    if resumed is not None:
        optimizer.load_state_dict(resumed["optimizer"])
        scheduler.load_state_dict(resumed["scheduler"])
        scaler.load_state_dict(resumed["scaler"])
        set_rng_state(resumed["rng"][dist.rank] if isinstance(resumed["rng"], list) else resumed["rng"])
        step = int(resumed["step"])
        result.history = list(resumed["history"])
        result.validations = list(resumed["validations"])
    if leader:
        out.mkdir(parents=True, exist_ok=True)

    per_rank = cfg.batch * cfg.accum

    def sample_index(s: int, a: int, j: int) -> int:
        # Global position of window j of accumulation round a of step s on this rank.
        return ((s * cfg.accum + a) * dist.world + dist.rank) * cfg.batch + j

    def save_state() -> None:
        states = [rng_state()]
        if dist.active:
            gathered: list = [None] * dist.world
            torch.distributed.all_gather_object(gathered, states[0])
            states = gathered
        if not leader:
            return
        save_model(model, model_path)
        state = {"format": STATE_FORMAT, "version": 1, "config": cfg.trajectory(), "step": step,
                 "position": step * per_rank * dist.world, "world": dist.world,
                 "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                 "scaler": scaler.state_dict(), "rng": states if dist.active else states[0],
                 "history": result.history, "validations": result.validations,
                 "model_sha256": sha256_of(model_path)}  # fmt: skip
        _save_atomic(state, state_path)
        result.model_path, result.state_path = model_path, state_path

    def run_validation() -> None:
        if leader and held_out:
            scores = validate(model, held_out, cfg.options(), cfg.val_protocol)
            scores["step"] = step
            folder = out / "validation"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"step_{step:06d}.json").write_text(json.dumps(scores, indent=2) + "\n")
            result.validations.append(scores)
        dist.barrier()

    if step == 0 and held_out and not result.validations:
        run_validation()
    end = cfg.steps if cfg.stop_after is None else min(cfg.steps, step + cfg.stop_after)
    order = [sample_index(s, a, j) for s in range(step, end) for a in range(cfg.accum) for j in range(cfg.batch)]
    loader = torch.utils.data.DataLoader(dataset, batch_size=None, sampler=order, num_workers=cfg.workers)
    samples = iter(loader)
    bar = ProgressBar(cfg.steps, label="training") if cfg.progress and leader else None
    log = (out / "log.jsonl").open("a") if leader else None
    try:
        while step < end:
            started = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            sums: dict[str, float] = {}
            kinds = []
            for _ in range(per_rank):
                sample = next(samples)
                with torch.autocast("cuda", dtype=amp_dtype, enabled=amp):
                    terms = window_loss(model, sample, cfg, device, evaluator=evaluator)
                scaler.scale(terms["total"] / per_rank).backward()
                for k, v in terms.items():
                    sums[k] = sums.get(k, 0.0) + float(v.detach()) / per_rank
                kinds.append(int(sample["kind"]))
            total = dist.mean(sums["total"], device)
            if not math.isfinite(total):
                raise RuntimeError(f"the training loss became {total} at step {step + 1}; lower --lr")
            dist.all_reduce_gradients(params)
            scaler.unscale_(optimizer)
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, cfg.clip_grad if cfg.clip_grad > 0 else math.inf))
            lr = optimizer.param_groups[0]["lr"]
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            step += 1
            entry = {"step": step, "loss": total, **{k: v for k, v in sums.items() if k != "total"}, "lr": lr,
                     "grad_norm": grad_norm, "segmentation_windows": sum(kinds),
                     "seconds": time.perf_counter() - started}  # fmt: skip
            result.history.append(entry)
            if log is not None:
                log.write(json.dumps(entry) + "\n")
                log.flush()
            if bar is not None:
                bar.label = f"training loss {total:.4f}"
                bar.update(step)
            if held_out and ((cfg.val_every and step % cfg.val_every == 0) or step == cfg.steps):
                run_validation()
            if (cfg.save_every and step % cfg.save_every == 0) or step == end:
                save_state()
    finally:
        if log is not None:
            log.close()
        if bar is not None:
            bar.close()
    result.steps_done = step
    return result
