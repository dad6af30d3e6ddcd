"""The analytic (weight-free) matte evaluator: where an alpha is probably wrong, from the frame and a
segmentation alone.

Two terms, each a per-pixel *evidence* map pooled over a neighbourhood (like the patch-level labels the
learned evaluator is trained on) and turned into a probability by the smooth step `p = s^2 / (s^2 + tau^2)`
(0 at 0, 0.5 at `s = tau`, towards 1 above; smooth, so gradients reach the alpha):

* **Semantic** (holes in the subject, missing parts, background blobs, a wrong object). A trimap from the
  segmentation `seg` (> 0.5): a square kernel of side `0.1 * sqrt(area(seg))` clamped to 9..21 px (times
  short side / 1080 above 1080p) gives the foreground core `erode(seg)`, the background core
  `not dilate(seg)` and the band between them. Evidence is `relu(0.5 - mean3x3(alpha)) / 0.5` in the
  foreground core and `relu(mean3x3(alpha) - 0.5) / 0.5` in the background core: the 3x3 mean
  (`thin_radius` 1) keeps one-pixel cracks and strands the segmentation missed from counting as holes or
  blobs. Pooled as the mean over a 15x15 patch (`patch_radius` 7), `tau_semantic` 0.01.
* **Detail** (segmentation-like hard edges, a boundary pushed out or pulled in, jitter). A true matte is
  locally an affine function of the image colours (the closed-form matting model): a colour guided filter
  (radius 2, ridge 1e-4 on 0..1 RGB) fitted to the alpha reproduces a correct alpha and changes a wrong one.
  Evidence is `|alpha - fit(alpha)|` weighted by the observability `v / (v + 1e-5)` of the window's colour
  variance `v` (where foreground and background share a colour, the alpha cannot be judged from colour),
  on the alpha's own edges (pixels within 2 px of a change of more than 0.02 in a 3x3 neighbourhood) inside
  the band dilated by 2 px. It is pooled as the mean over those edge pixels of a 17x17 window
  (`detail_radius` 8): a textured background leaves a residual along every correct edge too, and only a
  boundary that is wrong along its length rises clearly above it. `tau_detail` 0.03.

The error probability is the noisy-or `1 - (1 - p_semantic) (1 - p_detail)`. Everything is box filters,
a 3x3 solve per pixel and element-wise maths: O(pixels), on the tensors' device, differentiable in `alpha`
(the trimap comes from `seg` only). `evaluate_matte` hands it a few frames at a time, so a clip of any
length costs one chunk of temporaries beyond the output. The constants were calibrated with the validation suite
(`python -m matanyone2_core validate-evaluator`), which also shows what this evaluator cannot see: an
over-blurred matte and lost thin strands are as consistent with the colour model as the true matte.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .filters import box_mean, dilate, erode, local_linear_fit, local_variance


@dataclass(frozen=True)
class AnalyticEvaluator:
    """The weight-free evaluator; call it like any evaluator: `evaluator(frames, alpha, seg) -> [T,H,W]`.

    The fields are the constants of the module docstring (trimap kernel, core levels, thin-structure radius,
    guided-filter fit, observability, pooling radii, smooth-step midpoints), plus `device` (where to compute;
    default the frames' device).
    """

    trimap_scale: float = 0.1
    trimap_min: int = 9
    trimap_max: int = 21
    fg_level: float = 0.5
    bg_level: float = 0.5
    thin_radius: int = 1
    fit_radius: int = 2
    fit_eps: float = 1e-4
    observability: float = 1e-5
    patch_radius: int = 7
    detail_radius: int = 8
    tau_semantic: float = 0.01
    tau_detail: float = 0.03
    device: str | None = None

    name = "analytic"

    def __call__(self, frames: torch.Tensor, alpha: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        """Error probability `[T,H,W]` for `frames` `[T,H,W,3]`, `alpha` / `seg` `[T,H,W]` in 0..1, on the
        compute device (differentiable in `alpha`); `evaluate_matte` streams clips through it in chunks."""
        device = torch.device(self.device) if self.device is not None else frames.device
        return self.terms(frames.to(device), alpha.to(device), seg.to(device))["error"]

    def kernel_radius(self, seg: torch.Tensor) -> torch.Tensor:
        """Per-frame trimap kernel radius (side = 2r+1) from the segmentation's area, `[T]` ints."""
        area = (seg > 0.5).flatten(1).sum(1).float()
        side = (self.trimap_scale * area.sqrt()).clamp(self.trimap_min, self.trimap_max)
        short = min(seg.shape[-2:])
        side = side * max(1.0, short / 1080.0)
        return (side.round().long() // 2).clamp(min=1)

    def trimap(self, seg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(foreground core, background core) as 0/1 `[T,1,H,W]` from `seg` `[T,H,W]`."""
        binary = (seg > 0.5).float()[:, None]
        radii = self.kernel_radius(seg)
        fg, bg = torch.empty_like(binary), torch.empty_like(binary)
        for radius in radii.unique().tolist():
            sel = radii == radius
            fg[sel] = erode(binary[sel], radius)
            bg[sel] = 1.0 - dilate(binary[sel], radius)
        return fg, bg

    def terms(self, frames: torch.Tensor, alpha: torch.Tensor, seg: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every intermediate map for one chunk, `[T,H,W]` each: `semantic` and `detail` evidence and
        probabilities (`p_semantic`, `p_detail`) and the combined `error`. Differentiable in `alpha`."""
        image = frames.permute(0, 3, 1, 2).float()
        a = alpha.float()[:, None]
        fg_core, bg_core = self.trimap(seg)
        band = 1.0 - fg_core - bg_core

        # Semantic errors are regions, not hairlines: the alpha's 3x3 mean first, so that a strand the
        # segmentation missed (or a one-pixel crack) is not a blob (or a hole). A mean, not a min/max: a
        # sparse pattern of dots must not satisfy the term when it serves as a training loss.
        a_local = box_mean(a, self.thin_radius)
        semantic = fg_core * F.relu(self.fg_level - a_local) / self.fg_level
        semantic = semantic + bg_core * F.relu(a_local - self.bg_level) / (1.0 - self.bg_level)

        fitted = local_linear_fit(image, a, self.fit_radius, self.fit_eps)
        variance = local_variance(image, self.fit_radius)
        observed = variance / (variance + self.observability)
        near_band = dilate(band, self.fit_radius)
        # Pool over the alpha's own edges in the band (where it changes within the fit window): the residual
        # lives there, and a wide band of flat alpha would only dilute it.
        changes = (F.max_pool2d(a, 3, stride=1, padding=1) + F.max_pool2d(-a, 3, stride=1, padding=1)) > 0.02
        edges = dilate(changes.float(), self.fit_radius) * near_band
        detail = (a - fitted).abs() * observed * edges
        weight = box_mean(edges, self.detail_radius)

        s_sem = box_mean(semantic, self.patch_radius)
        # The band's mean residual around each pixel: a boundary that is wrong along its length stands out of
        # the texture-driven residual that a correct matte also has.
        s_det = box_mean(detail, self.detail_radius) / weight.clamp(min=1e-6) * near_band * (weight > 0)
        p_sem = _smooth_step(s_sem, self.tau_semantic)
        p_det = _smooth_step(s_det, self.tau_detail)
        error = 1.0 - (1.0 - p_sem) * (1.0 - p_det)
        maps = {"semantic": s_sem, "detail": s_det, "p_semantic": p_sem, "p_detail": p_det, "error": error,
                "band": band}  # fmt: skip
        return {k: v[:, 0] for k, v in maps.items()}


def _smooth_step(s: torch.Tensor, tau: float) -> torch.Tensor:
    """s^2 / (s^2 + tau^2): 0 at 0, 0.5 at tau, towards 1 above; smooth, so gradients reach alpha."""
    s2 = s * s
    return s2 / (s2 + tau * tau)
