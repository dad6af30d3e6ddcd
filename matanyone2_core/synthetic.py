"""Procedural video-matting clips with exact ground truth, at any resolution and length.

A figure (soft-edged body and head) sways across a textured background that pans. It carries hair-like
strands one pixel wide, a semi-transparent veil, and motion blur: alpha and premultiplied foreground are
both averaged over sub-frame positions, so every frame is exactly ``fg * alpha + bg * (1 - alpha)``.
Everything is seeded; geometry scales with ``min(height, width)`` while strands stay one pixel wide.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .io import to_uint8

SUBFRAMES = 7  # sub-frame positions averaged for motion blur (odd: the middle one is the sharp frame)
SHUTTER = 0.6  # fraction of the frame interval the shutter stays open
MASK_FILENAME = "first_frame_seg_mask.png"


@dataclass
class SyntheticClip:
    """A clip in ComfyUI layout with its exact decomposition."""

    frames: torch.Tensor  # [T,H,W,3] float32 in [0,1], = foreground * alpha + background * (1 - alpha)
    alpha: torch.Tensor  # [T,H,W] float32 in [0,1]
    foreground: torch.Tensor  # [T,H,W,3] float32 in [0,1]
    background: torch.Tensor  # [T,H,W,3] float32 in [0,1]
    first_mask: torch.Tensor  # [H,W] float32 0/1: frame 0's alpha >= 0.5


@dataclass(frozen=True)
class _Scene:
    """Random parameters of one clip (drawn once from the seed)."""

    bg_freq: np.ndarray  # [K,2] cycles per pixel
    bg_phase: np.ndarray  # [K]
    bg_colour: np.ndarray  # [K,3] per-wave colour weights
    bg_base: np.ndarray  # [3]
    pan: np.ndarray  # [2] background pan, pixels per frame
    path_amp: np.ndarray  # [2] sway amplitude as fractions of (W, H)
    path_period: float  # frames
    path_phase: float
    body_colour: np.ndarray
    head_colour: np.ndarray
    hair_colour: np.ndarray
    veil_colour: np.ndarray
    veil_opacity: float
    strand_angle: np.ndarray  # [S] root angle on the head (radians, image coordinates)
    strand_length: np.ndarray  # [S] as fractions of the scale
    strand_bend: np.ndarray  # [S]
    strand_opacity: np.ndarray  # [S]


def _draw_scene(rng: np.random.Generator) -> _Scene:
    k = 14
    period = np.exp(rng.uniform(math.log(6.0), math.log(80.0), size=k))
    theta = rng.uniform(0, math.pi, size=k)
    freq = np.stack([np.cos(theta), np.sin(theta)], axis=1) / period[:, None]
    n_strands = 14
    side = rng.choice([-1.0, 1.0], size=n_strands)
    return _Scene(
        bg_freq=freq,
        bg_phase=rng.uniform(0, 2 * math.pi, size=k),
        bg_colour=rng.normal(0, 0.22, size=(k, 3)),
        bg_base=rng.uniform(-0.5, 0.5, size=3),
        pan=rng.uniform(0.6, 1.6, size=2) * rng.choice([-1.0, 1.0], size=2),
        path_amp=np.array([rng.uniform(0.12, 0.2), rng.uniform(0.01, 0.03)]),
        path_period=float(rng.uniform(14.0, 24.0)),
        path_phase=float(rng.uniform(0, 2 * math.pi)),
        body_colour=rng.uniform(0.15, 0.85, size=3),
        head_colour=np.array([0.85, 0.65, 0.5]) + rng.uniform(-0.1, 0.1, size=3),
        hair_colour=rng.uniform(0.05, 0.3, size=3),
        veil_colour=rng.uniform(0.4, 0.95, size=3),
        veil_opacity=float(rng.uniform(0.35, 0.6)),
        # Strands leave the head sideways (wind-blown), so horizontal sway blurs them along their length
        # and they stay one pixel thick.
        strand_angle=np.where(side > 0, 0.0, math.pi) + side * rng.uniform(-0.9, 0.35, size=n_strands),
        strand_length=rng.uniform(0.12, 0.26, size=n_strands),
        strand_bend=rng.uniform(-0.5, 0.5, size=n_strands),
        strand_opacity=rng.uniform(0.7, 0.95, size=n_strands),
    )


def _background(scene: _Scene, height: int, width: int, t: float) -> torch.Tensor:
    """[H,W,3] float64 in [0.04, 0.96]: a sum of coloured waves, panned by ``t`` frames."""
    y = torch.arange(height, dtype=torch.float64)[:, None] + scene.pan[1] * t
    x = torch.arange(width, dtype=torch.float64)[None, :] + scene.pan[0] * t
    out = torch.zeros(height, width, 3, dtype=torch.float64)
    for f, ph, c in zip(scene.bg_freq, scene.bg_phase, scene.bg_colour, strict=True):
        wave = torch.sin(2 * math.pi * (f[0] * x + f[1] * y) + ph)
        out += wave[..., None] * torch.as_tensor(c)
    # A soft checker adds sharp-ish structure the matting must not mistake for the subject.
    cell = max(height, width) / 9.0
    checker = torch.tanh(3 * torch.sin(math.pi * x / cell) * torch.sin(math.pi * y / cell))
    out += 0.25 * checker[..., None]
    return 0.04 + 0.92 * torch.sigmoid(out + torch.as_tensor(scene.bg_base))


def _ellipse_coverage(x: torch.Tensor, y: torch.Tensor, a: float, b: float, soft: float) -> torch.Tensor:
    """Anti-aliased coverage of an axis-aligned ellipse (local coordinates, pixels) with a soft edge."""
    r = torch.sqrt((x / a) ** 2 + (y / b) ** 2)
    signed = (r - 1.0) * min(a, b)  # approximate signed distance in pixels
    return (0.5 - signed / soft).clamp(0.0, 1.0)


def _segment_distance(px: torch.Tensor, py: torch.Tensor, a: np.ndarray, b: np.ndarray) -> torch.Tensor:
    ab = b - a
    denom = float(ab @ ab) or 1e-12
    u = (((px - a[0]) * ab[0] + (py - a[1]) * ab[1]) / denom).clamp(0.0, 1.0)
    return torch.hypot(px - (a[0] + u * ab[0]), py - (a[1] + u * ab[1]))


def _over(front_c: torch.Tensor, front_a: torch.Tensor, back_p: torch.Tensor, back_a: torch.Tensor):
    """Premultiplied 'over': (colour, alpha) of a front layer over a premultiplied back layer."""
    fa = front_a[..., None]
    return front_c * fa + back_p * (1 - fa), front_a + back_a * (1 - front_a)


def _subject(scene: _Scene, height: int, width: int, t: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Premultiplied colour [H,W,3] and alpha [H,W] (float64) of the figure at time ``t`` (frames)."""
    s = float(min(height, width))
    w = 2 * math.pi * t / scene.path_period + scene.path_phase
    cx = width * (0.5 + scene.path_amp[0] * math.sin(w))
    cy = height * (0.6 + scene.path_amp[1] * math.sin(w + 1.3))
    tilt = 0.12 * math.sin(w + 0.7)
    ys = torch.arange(height, dtype=torch.float64)[:, None].expand(height, width)
    xs = torch.arange(width, dtype=torch.float64)[None, :].expand(height, width)
    cos_t, sin_t = math.cos(tilt), math.sin(tilt)

    def local(ox: float, oy: float) -> tuple[torch.Tensor, torch.Tensor]:
        # Pixel coordinates relative to (ox, oy) in the figure's tilted frame.
        dx, dy = xs - ox, ys - oy
        return dx * cos_t + dy * sin_t, -dx * sin_t + dy * cos_t

    def place(lx: float, ly: float) -> tuple[float, float]:
        return cx + lx * cos_t - ly * sin_t, cy + lx * sin_t + ly * cos_t

    soft = max(1.0, s / 96.0)
    prem = torch.zeros(height, width, 3, dtype=torch.float64)
    alpha = torch.zeros(height, width, dtype=torch.float64)

    bx, by = local(*place(0.0, 0.12 * s))
    body_a = _ellipse_coverage(bx, by, 0.17 * s, 0.3 * s, soft)
    stripes = 0.5 + 0.5 * torch.sin(by / (0.035 * s) * math.pi)
    body_c = torch.as_tensor(scene.body_colour) * (0.75 + 0.25 * stripes[..., None])
    prem, alpha = _over(body_c, body_a, prem, alpha)

    head_x, head_y = place(0.0, -0.26 * s)
    hx, hy = local(head_x, head_y)
    head_r = 0.1 * s
    head_a = _ellipse_coverage(hx, hy, head_r, head_r * 1.12, soft)
    head_c = torch.as_tensor(scene.head_colour)
    prem, alpha = _over(head_c, head_a, prem, alpha)

    hair_c = torch.as_tensor(scene.hair_colour)
    sway = 0.35 * math.sin(w * 1.7)
    for ang, length, bend, opacity in zip(
        scene.strand_angle, scene.strand_length, scene.strand_bend, scene.strand_opacity, strict=True
    ):
        a = ang + tilt
        root = np.array([head_x + 0.95 * head_r * math.cos(a), head_y + 0.95 * head_r * math.sin(a)])
        direction = np.array([math.cos(a), math.sin(a)])
        normal = np.array([-direction[1], direction[0]])
        tip = root + direction * length * s + normal * (bend + sway) * length * s
        ctrl = root + direction * 0.5 * length * s + normal * 0.5 * bend * length * s
        u = np.linspace(0.0, 1.0, 17)[:, None]
        pts = (1 - u) ** 2 * root + 2 * u * (1 - u) * ctrl + u**2 * tip
        x0, y0 = np.floor(pts.min(axis=0)) - 2
        x1, y1 = np.ceil(pts.max(axis=0)) + 3
        x0, y0 = int(max(x0, 0)), int(max(y0, 0))
        x1, y1 = int(min(x1, width)), int(min(y1, height))
        if x0 >= x1 or y0 >= y1:
            continue
        px, py = xs[y0:y1, x0:x1], ys[y0:y1, x0:x1]
        dist = torch.stack([_segment_distance(px, py, pts[i], pts[i + 1]) for i in range(len(pts) - 1)])
        # A line one pixel wide: full coverage on the line, none one pixel away.
        coverage = (1.0 - dist.amin(dim=0)).clamp(0.0, 1.0) * float(opacity)
        box = (slice(y0, y1), slice(x0, x1))
        prem[box], alpha[box] = _over(hair_c, coverage, prem[box], alpha[box])

    vx, vy = local(*place(0.2 * s, 0.08 * s))
    veil_a = _ellipse_coverage(vx, vy, 0.16 * s, 0.09 * s, max(soft, 0.04 * s)) * scene.veil_opacity
    veil_c = torch.as_tensor(scene.veil_colour)
    prem, alpha = _over(veil_c, veil_a, prem, alpha)
    return prem, alpha


def make_clip(height: int, width: int, frames: int, seed: int = 0) -> SyntheticClip:
    """A seeded synthetic clip of ``frames`` frames at ``height`` x ``width`` (see the module docstring)."""
    for name, value, least in (("height", height, 16), ("width", width, 16), ("frames", frames, 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise ValueError(f"make_clip: {name} must be an integer >= {least}, got {value!r}")
    scene = _draw_scene(np.random.default_rng(seed))
    alphas, fgs, bgs = [], [], []
    offsets = (np.arange(SUBFRAMES) / (SUBFRAMES - 1) - 0.5) * SHUTTER
    for t in range(frames):
        prem = torch.zeros(height, width, 3, dtype=torch.float64)
        alpha = torch.zeros(height, width, dtype=torch.float64)
        for off in offsets:
            p, a = _subject(scene, height, width, t + float(off))
            prem += p
            alpha += a
            if off == 0.0:
                sharp_prem, sharp_alpha = p, a
        prem /= SUBFRAMES
        alpha /= SUBFRAMES
        # Un-premultiply where the subject is present; elsewhere any colour composites identically.
        fallback = sharp_prem / sharp_alpha.clamp(min=1e-6)[..., None]
        fallback = torch.where(sharp_alpha[..., None] > 1e-6, fallback, torch.as_tensor(scene.body_colour))
        present = alpha[..., None] > 1e-9
        fg = torch.where(present, prem / alpha.clamp(min=1e-12)[..., None], fallback)
        alphas.append(alpha.clamp(0, 1).to(torch.float32))
        fgs.append(fg.clamp(0, 1).to(torch.float32))
        bgs.append(_background(scene, height, width, float(t)).to(torch.float32))
    alpha_t = torch.stack(alphas)
    fg_t = torch.stack(fgs)
    bg_t = torch.stack(bgs)
    a = alpha_t[..., None]
    frames_t = fg_t * a + bg_t * (1 - a)  # the exact compositing equation, in float32
    return SyntheticClip(
        frames=frames_t,
        alpha=alpha_t,
        foreground=fg_t,
        background=bg_t,
        first_mask=(alpha_t[0] >= 0.5).to(torch.float32),
    )


def write_clip(clip: SyntheticClip, clip_dir: str | Path) -> Path:
    """Write ``clip`` as 8-bit PNGs in the VideoMatte-like layout the benchmark reads.

    ``clip_dir/com/0000.png`` (composited frames), ``pha/`` (alpha), ``fgr/``, ``bgr/`` and the
    first-frame mask ``clip_dir/first_frame_seg_mask.png`` (0/255). Returns ``clip_dir``.
    """
    clip_dir = Path(clip_dir)
    parts = {"com": clip.frames, "fgr": clip.foreground, "bgr": clip.background, "pha": clip.alpha}
    for sub, tensor in parts.items():
        (clip_dir / sub).mkdir(parents=True, exist_ok=True)
        for i, frame in enumerate(tensor):
            Image.fromarray(to_uint8(frame)).save(clip_dir / sub / f"{i:04d}.png")
    Image.fromarray(to_uint8(clip.first_mask)).save(clip_dir / MASK_FILENAME)
    return clip_dir


def write_dataset(root: str | Path, *, clips: int, height: int, width: int, frames: int, seed: int = 0) -> list[Path]:
    """Generate ``clips`` clips (seeds ``seed``, ``seed+1``, ...) under ``root/clip_XXXX``, skipping clips
    already complete; ``root/synthetic.json`` records the settings. Returns the clip folders."""
    root = Path(root)
    spec = {"clips": clips, "height": height, "width": width, "frames": frames, "seed": seed}
    spec_file = root / "synthetic.json"
    if spec_file.exists():
        old = json.loads(spec_file.read_text())
        if old != spec:
            raise ValueError(
                f"{root} already holds synthetic clips made with {old}, not {spec}; "
                "use another folder or the same settings"
            )
    root.mkdir(parents=True, exist_ok=True)
    spec_file.write_text(json.dumps(spec, indent=2) + "\n")
    out = []
    for i in range(clips):
        clip_dir = root / f"clip_{i:04d}"
        done = clip_dir / ".complete"
        if not done.exists():
            write_clip(make_clip(height, width, frames, seed=seed + i), clip_dir)
            done.touch()
        out.append(clip_dir)
    return out
