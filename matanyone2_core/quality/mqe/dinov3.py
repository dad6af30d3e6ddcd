"""DINOv3 ViT-S/16 and ViT-B/16, written from the published architecture facts, and a strict loader for the
official weights in Meta's `.pth` naming or in Hugging Face's naming.

Architecture (per the public reference; see docs/mqe.md): a 16x16 patch-embedding convolution, no absolute
position embedding, the tokens `[CLS, 4 registers, patches]`, pre-norm blocks
`x + ls1 * attn(norm1(x))`, `x + ls2 * mlp(norm2(x))` with per-channel LayerScale, a fused qkv projection
whose key bias is masked to zero, a plain GELU MLP (4x), LayerNorm with eps 1e-5 and one final norm over all
tokens. Positions enter only through 2-D axial RoPE on the queries and keys of the patch tokens (the five
prefix tokens are not rotated): head dim `Dh`, periods `base^(4k/Dh)` for `k < Dh/4` (base 100), patch
centres normalised per axis to `2(i + 0.5)/n - 1`, angles `2 pi y / period` then `2 pi x / period`, tiled
twice, applied in rotate-half form in fp32. DINOv3's train-time RoPE coordinate rescale is not used (train
and eval behave alike).

Internally the parameters carry Meta's names (`blocks.N.attn.qkv`, `ls1.gamma`, `storage_tokens`, ...), so
an official `.pth` loads as it is; Hugging Face files (`embeddings.*`, `[model.]layer.N.attention.q_proj`,
`layer_scale1.lambda1`, `mlp.up_proj`, ...) are converted by `from_hf_names`, and `to_hf_names` goes back.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...checkpoint import CHECKPOINT_FLOAT_DTYPES, CheckpointError, layout_problems
from ...checkpoint import read_weights as read_checkpoint_weights
from ...engine.validate import resolve_device

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_SHOWN = 5


@dataclass(frozen=True)
class ViTConfig:
    """Shape of a DINOv3 ViT. `layerscale_init` only matters for a randomly initialised model."""

    name: str
    embed_dim: int
    depth: int
    num_heads: int
    mlp_ratio: int = 4
    patch_size: int = 16
    num_registers: int = 4
    rope_base: float = 100.0
    norm_eps: float = 1e-5
    layerscale_init: float = 1e-5

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads

    @property
    def mlp_hidden(self) -> int:
        return self.embed_dim * self.mlp_ratio

    @property
    def prefix_tokens(self) -> int:
        return 1 + self.num_registers


VIT_VARIANTS: dict[str, ViTConfig] = {
    "vits16": ViTConfig("vits16", 384, 12, 6),  # 21.6 M parameters
    "vitb16": ViTConfig("vitb16", 768, 12, 12),  # 85.7 M parameters
    # Not a DINOv3 release: a small model of the same architecture for tests and quick experiments.
    "tiny": ViTConfig("tiny", 64, 4, 2),
}
OFFICIAL_VARIANTS = ("vits16", "vitb16")
_LABELS = {"vits16": "ViT-S/16", "vitb16": "ViT-B/16", "tiny": "tiny test ViT"}


def rope_periods(head_dim: int, base: float) -> torch.Tensor:
    """The RoPE periods `base^(4k/Dh)`, `k = 0..Dh/4-1` (fp32): 1.0 ... 75.0 for Dh 64, base 100."""
    return base ** (torch.arange(head_dim // 4, dtype=torch.float64) * 4.0 / head_dim).float()


class RopeEmbedding(nn.Module):
    """2-D axial rotary embedding: `(cos, sin)` `[h*w, Dh]` (fp32) for an `h x w` patch grid, row-major."""

    def __init__(self, head_dim: int, base: float) -> None:
        super().__init__()
        self.head_dim = head_dim
        # A persistent buffer, as in the official checkpoint: its stored (bf16-rounded) periods reproduce the
        # official outputs exactly, so a loaded file's values win over recomputed ones.
        self.register_buffer("periods", rope_periods(head_dim, base))

    def forward(self, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
        periods = self.periods.float()
        device = periods.device
        ys = 2.0 * (torch.arange(h, device=device, dtype=torch.float32) + 0.5) / h - 1.0
        xs = 2.0 * (torch.arange(w, device=device, dtype=torch.float32) + 0.5) / w - 1.0
        coords = torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1).reshape(h * w, 2)
        angles = 2.0 * math.pi * coords[:, :, None] / periods[None, None, :]  # [N, 2, Dh/4]: y angles, x angles
        angles = angles.reshape(h * w, -1).repeat(1, 2)  # [N, Dh]
        return torch.cos(angles), torch.sin(angles)


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate-half RoPE on the last dim, computed in fp32 and returned in `x`'s dtype."""
    xf = x.float()
    first, second = xf.chunk(2, dim=-1)
    return (xf * cos + torch.cat((-second, first), dim=-1) * sin).to(x.dtype)


class MaskedBiasLinear(nn.Linear):
    """The fused qkv projection: Linear(D, 3D) whose key bias is multiplied by zero (`bias_mask`)."""

    def __init__(self, dim: int) -> None:
        super().__init__(dim, 3 * dim, bias=True)
        mask = torch.ones(3 * dim)
        mask[dim : 2 * dim] = 0.0
        # Persistent, as in the official checkpoint, so that an official file's keys match one to one (its
        # value is checked on loading: the reference code leaves it NaN until initialised).
        self.register_buffer("bias_mask", mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias * self.bias_mask.to(self.bias.dtype))


class Attention(nn.Module):
    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.heads = config.num_heads
        self.prefix = config.prefix_tokens
        self.qkv = MaskedBiasLinear(config.embed_dim)
        self.proj = nn.Linear(config.embed_dim, config.embed_dim)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        cos, sin = rope
        p = self.prefix  # CLS and registers carry no position: only patch tokens are rotated
        q = torch.cat((q[:, :, :p], _rotate(q[:, :, p:], cos, sin)), dim=2)
        k = torch.cat((k[:, :, :p], _rotate(k[:, :, p:], cos, sin)), dim=2)
        out = F.scaled_dot_product_attention(q, k, v)  # scale 1/sqrt(Dh), no mask
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class LayerScale(nn.Module):
    def __init__(self, dim: int, init: float) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        d = config.embed_dim
        self.norm1 = nn.LayerNorm(d, eps=config.norm_eps)
        self.attn = Attention(config)
        self.ls1 = LayerScale(d, config.layerscale_init)
        self.norm2 = nn.LayerNorm(d, eps=config.norm_eps)
        self.mlp = Mlp(d, config.mlp_hidden)
        self.ls2 = LayerScale(d, config.layerscale_init)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x), rope))
        return x + self.ls2(self.mlp(self.norm2(x)))


class PatchEmbed(nn.Module):
    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, config.embed_dim, config.patch_size, stride=config.patch_size)


class DINOv3ViT(nn.Module):
    """A DINOv3 ViT. `forward(images)` takes ImageNet-normalised `[B,3,H,W]` (H, W multiples of 16) and returns
    the patch tokens after the final norm, `[B, (H/16)*(W/16), D]` (row-major)."""

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.config = config
        d = config.embed_dim
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.storage_tokens = nn.Parameter(torch.zeros(1, config.num_registers, d))
        # Only used by masked-token pre-training; kept so that official files load strictly.
        self.mask_token = nn.Parameter(torch.zeros(1, d))
        self.patch_embed = PatchEmbed(config)
        self.rope_embed = RopeEmbedding(config.head_dim, config.rope_base)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.depth))
        self.norm = nn.LayerNorm(d, eps=config.norm_eps)
        self._init_weights()

    def _init_weights(self) -> None:
        nn.init.normal_(self.cls_token, std=0.02)
        nn.init.normal_(self.storage_tokens, std=0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)

    def grid(self, images: torch.Tensor) -> tuple[int, int]:
        """The patch grid `(h, w)` of `images`, refusing what the network cannot take."""
        p = self.config.patch_size
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
            shape = list(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise ValueError(f"images must be [B,3,H,W] (ImageNet-normalised RGB), got {shape}")
        h, w = images.shape[-2:]
        if h % p or w % p or h == 0 or w == 0:
            raise ValueError(f"images must have H and W multiples of {p} (>= {p}), got {h}x{w}")
        return h // p, w // p

    def features(
        self, images: torch.Tensor, taps: tuple[int, ...] | None = None, *, extra: torch.Tensor | None = None
    ) -> list[torch.Tensor]:
        """Patch tokens after the final norm `[B, h*w, D]` at the output of each block in `taps` (default: the
        last). `extra` `[B, D, h, w]` is added to the patch embedding (the evaluator's alpha/segmentation
        channels of a widened patch embedding)."""
        h, w = self.grid(images)
        taps = (self.config.depth - 1,) if taps is None else tuple(taps)
        if not taps or any(not 0 <= t < self.config.depth for t in taps):
            raise ValueError(f"taps must be block indices in 0..{self.config.depth - 1}, got {list(taps)}")
        x = self.patch_embed.proj(images)
        if extra is not None:
            x = x + extra
        b = x.shape[0]
        x = x.flatten(2).transpose(1, 2)
        x = torch.cat((self.cls_token.expand(b, -1, -1), self.storage_tokens.expand(b, -1, -1), x), dim=1)
        rope = self.rope_embed(h, w)
        out = []
        for index, block in enumerate(self.blocks[: max(taps) + 1]):
            x = block(x, rope)
            if index in taps:
                out.append(self.norm(x)[:, self.config.prefix_tokens :])
        return out

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.features(images)[0]


# ------------------------------------------------------------------------------------------------ naming

_HF_BLOCK = re.compile(r"^(?:model\.)?layer\.(\d+)\.(.+)$")
_HF_RENAMES = {
    "norm1.weight": "norm1.weight",
    "norm1.bias": "norm1.bias",
    "norm2.weight": "norm2.weight",
    "norm2.bias": "norm2.bias",
    "attention.o_proj.weight": "attn.proj.weight",
    "attention.o_proj.bias": "attn.proj.bias",
    "layer_scale1.lambda1": "ls1.gamma",
    "layer_scale2.lambda1": "ls2.gamma",
    "mlp.up_proj.weight": "mlp.fc1.weight",
    "mlp.up_proj.bias": "mlp.fc1.bias",
    "mlp.down_proj.weight": "mlp.fc2.weight",
    "mlp.down_proj.bias": "mlp.fc2.bias",
}
_HF_TOP = {
    "embeddings.cls_token": "cls_token",
    "embeddings.register_tokens": "storage_tokens",
    "embeddings.patch_embeddings.weight": "patch_embed.proj.weight",
    "embeddings.patch_embeddings.bias": "patch_embed.proj.bias",
    "norm.weight": "norm.weight",
    "norm.bias": "norm.bias",
}


def _hf_alias(key: str) -> str:
    """Older transformers releases nest the patch conv one level deeper; newer ones prefix blocks with model."""
    key = key.replace("embeddings.patch_embeddings.proj.", "embeddings.patch_embeddings.")
    return key[len("model.") :] if key.startswith("model.layer.") else key


def naming_of(state: dict[str, torch.Tensor]) -> str | None:
    """The naming of a DINOv3 state dict: "meta" (official `.pth`), "hf" (Hugging Face) or None (neither)."""
    keys = list(state)
    if any(k.startswith("blocks.") for k in keys) or "storage_tokens" in state:
        return "meta"
    if any(k.startswith(("embeddings.", "layer.", "model.layer.")) for k in keys):
        return "hf"
    return None


def to_hf_names(state: dict[str, torch.Tensor], *, prefix: str = "layer.") -> dict[str, torch.Tensor]:
    """Meta-named DINOv3 tensors in Hugging Face naming (the Hub files use `prefix` "layer."; the current
    `DINOv3ViTModel.state_dict()` uses "model.layer."). The masked key bias and the `bias_mask` and
    `rope_embed.periods` buffers are dropped (Hugging Face has no key bias and recomputes the periods)."""
    out: dict[str, torch.Tensor] = {}
    top = {v: k for k, v in _HF_TOP.items()}
    inner = {v: k for k, v in _HF_RENAMES.items()}
    for key, value in state.items():
        if key in top:
            out[top[key]] = value
        elif key == "mask_token":
            out["embeddings.mask_token"] = value.reshape(1, 1, -1)
        elif key == "rope_embed.periods" or key.endswith(".attn.qkv.bias_mask"):
            continue
        elif (m := re.match(r"^blocks\.(\d+)\.(.+)$", key)) is not None:
            index, rest = m.groups()
            base = f"{prefix}{index}."
            if rest in ("attn.qkv.weight", "attn.qkv.bias"):
                q, k, v = value.chunk(3, dim=0)
                leaf = rest.rsplit(".", 1)[1]
                out[f"{base}attention.q_proj.{leaf}"] = q
                if leaf == "weight":
                    out[f"{base}attention.k_proj.weight"] = k
                out[f"{base}attention.v_proj.{leaf}"] = v
            else:
                out[base + inner.get(rest, rest)] = value
        else:
            out[key] = value
    return out


def from_hf_names(state: dict[str, torch.Tensor], config: ViTConfig) -> dict[str, torch.Tensor]:
    """Hugging Face-named DINOv3 tensors in Meta's naming, with the key bias (zero), `bias_mask` and the RoPE
    periods added. Keys it does not know are passed through unchanged (so a strict check reports them)."""
    state = {_hf_alias(k): v for k, v in state.items()}
    out: dict[str, torch.Tensor] = {}
    parts: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        if key in _HF_TOP:
            out[_HF_TOP[key]] = value
        elif key == "embeddings.mask_token":
            out["mask_token"] = value.reshape(1, -1)
        elif (m := _HF_BLOCK.match(key)) is not None:
            index, rest = int(m.group(1)), m.group(2)
            if rest in _HF_RENAMES:
                out[f"blocks.{index}.{_HF_RENAMES[rest]}"] = value
            elif rest in ("attention.q_proj.weight", "attention.k_proj.weight", "attention.v_proj.weight",
                          "attention.q_proj.bias", "attention.v_proj.bias"):  # fmt: skip
                parts.setdefault(index, {})[rest] = value
            else:
                out[key] = value
        else:
            out[key] = value
    for index, p in parts.items():
        names = ("attention.q_proj.weight", "attention.k_proj.weight", "attention.v_proj.weight")
        if all(n in p for n in names) and len({p[n].shape for n in names}) == 1:
            out[f"blocks.{index}.attn.qkv.weight"] = torch.cat([p.pop(n) for n in names], dim=0)
        if "attention.q_proj.bias" in p and "attention.v_proj.bias" in p:
            q, v = p.pop("attention.q_proj.bias"), p.pop("attention.v_proj.bias")
            if q.shape == v.shape and q.ndim == 1:
                out[f"blocks.{index}.attn.qkv.bias"] = torch.cat((q, torch.zeros_like(q), v))
                mask = torch.ones(3 * q.numel())
                mask[q.numel() : 2 * q.numel()] = 0.0
                out[f"blocks.{index}.attn.qkv.bias_mask"] = mask
            else:
                p.update({"attention.q_proj.bias": q, "attention.v_proj.bias": v})
        for rest, value in p.items():  # whatever could not be fused stays visible under its own name
            out[f"layer.{index}.{rest}"] = value
    out["rope_embed.periods"] = rope_periods(config.head_dim, config.rope_base)
    return out


# ------------------------------------------------------------------------------------------------ loading


def read_weights(path: str | Path, *, what: str) -> dict[str, torch.Tensor]:
    """A flat state dict from `.pth` (weights only) or `.safetensors`, or a CheckpointError naming the file."""
    return read_checkpoint_weights(path, missing=f"{what} file", unreadable=f"{what} file")


def expected_state(config: ViTConfig) -> dict[str, torch.Tensor]:
    """The state dict layout (shapes and dtypes, no data) of a `config` backbone, in Meta's naming."""
    with torch.device("meta"):
        return DINOv3ViT(config).state_dict()


def detect_variant(state: dict[str, torch.Tensor], source: str) -> ViTConfig:
    """The official variant (ViT-S/16 or ViT-B/16) a Meta- or HF-named DINOv3 state dict has, from shapes."""
    cls = state.get("cls_token", state.get("embeddings.cls_token"))
    if not isinstance(cls, torch.Tensor) or cls.ndim != 3 or cls.shape[:2] != (1, 1):
        raise CheckpointError(f"{source}: no DINOv3 class token (cls_token of shape (1, 1, D)) in the file")
    dim = int(cls.shape[-1])
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"^(?:blocks|(?:model\.)?layer)\.(\d+)\.", k))}
    depth = max(blocks) + 1 if blocks else 0
    swiglu = any(re.search(r"\.mlp\.(w1|w12|w3|gate_proj)\.", k) for k in state)
    for name in OFFICIAL_VARIANTS:
        config = VIT_VARIANTS[name]
        if config.embed_dim == dim and not swiglu:
            return config
    hint = " with a SwiGLU MLP (ViT-S+/16 or larger)" if swiglu else ""
    raise CheckpointError(
        f"{source}: a DINOv3 ViT of embedding dim {dim} and {depth} blocks{hint} is not supported; "
        "expected ViT-S/16 (dim 384) or ViT-B/16 (dim 768), 12 blocks, plain MLP"
    )


def check_layout(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], source: str, what: str) -> None:
    """Strict: the same keys with the same shapes; or a CheckpointError naming the first offending keys."""
    problems = layout_problems(state, expected)
    if problems:
        raise CheckpointError(f"{source}: not a {what} of the expected layout: {'; '.join(problems)}")


def check_values(state: dict[str, torch.Tensor], source: str) -> None:
    """Float tensors with finite values only; or a CheckpointError naming the first offending keys."""
    bad_dtype = [f"{k} ({t.dtype})" for k, t in state.items() if t.dtype not in CHECKPOINT_FLOAT_DTYPES]
    if bad_dtype:
        raise CheckpointError(f"{source}: {len(bad_dtype)} tensor(s) are not floating point: "
                              f"{', '.join(bad_dtype[:_SHOWN])}")  # fmt: skip
    bad = [k for k, t in state.items() if not bool(torch.isfinite(t).all())]
    if bad:
        raise CheckpointError(f"{source}: {len(bad)} tensor(s) contain NaN or infinite values: "
                              f"{', '.join(bad[:_SHOWN])} (a corrupted or diverged file)")  # fmt: skip


def check_buffers(state: dict[str, torch.Tensor], config: ViTConfig, source: str) -> None:
    """The two buffers of an official file must hold what the architecture means (the reference code leaves
    `bias_mask` NaN until initialised, and a foreign RoPE base would silently change every output)."""
    d = config.embed_dim
    want = torch.ones(3 * d)
    want[d : 2 * d] = 0.0
    for index in range(config.depth):
        key = f"blocks.{index}.attn.qkv.bias_mask"
        if not torch.equal(state[key].float(), want):
            raise CheckpointError(f"{source}: {key} is not the key-bias mask (1 for q and v, 0 for k); "
                                  "an uninitialised or foreign buffer")  # fmt: skip
    periods = state["rope_embed.periods"].float()
    reference = rope_periods(config.head_dim, config.rope_base)
    # The official buffer holds bf16-rounded periods (relative error below 2^-8); anything else is foreign.
    if not bool(torch.isfinite(periods).all()) or not torch.allclose(periods, reference, rtol=1 / 128, atol=0):
        raise CheckpointError(f"{source}: rope_embed.periods {periods[:4].tolist()}... are not DINOv3's RoPE periods "
                              f"(base {config.rope_base:g}, head dim {config.head_dim})")  # fmt: skip


def backbone_from_state(state: dict[str, torch.Tensor], source: str, *, config: ViTConfig | None = None) -> DINOv3ViT:
    """A backbone from a DINOv3 state dict in either naming (checked strictly; see `load_dinov3`). `config`
    None detects the official variant from the shapes; a given config skips the detection (tests)."""
    naming = naming_of(state)
    if naming is None:
        raise CheckpointError(
            f"{source}: does not look like a DINOv3 ViT checkpoint (neither Meta's nor Hugging Face's key names; "
            f"its first keys: {', '.join(list(state)[:_SHOWN]) or 'none'})"
        )
    config = detect_variant(state, source) if config is None else config
    what = f"DINOv3 {_LABELS.get(config.name, config.name)} checkpoint"
    expected = expected_state(config)
    if naming == "hf":
        state = {_hf_alias(k): v for k, v in state.items()}
        # Check in the file's own naming, so that the messages name the file's keys.
        check_layout(state, to_hf_names(expected), source, f"{what} (Hugging Face naming)")
        check_values(state, source)
        state = from_hf_names(state, config)
    else:
        check_layout(state, expected, source, f"{what} (Meta naming)")
        check_buffers(state, config, source)  # before the NaN check: a NaN bias_mask has its own explanation
        check_values(state, source)
    with torch.device("meta"):  # no random initialisation of weights that are about to be replaced
        model = DINOv3ViT(config)
    model.load_state_dict({k: v.float().contiguous() for k, v in state.items()}, strict=True, assign=True)
    return model


def load_dinov3(path: str | Path, *, device: str | torch.device = "cpu") -> DINOv3ViT:
    """An official DINOv3 ViT-S/16 or ViT-B/16 backbone from `path` (`.pth` or `.safetensors`), in eval mode.

    Meta's names (`dinov3_vits16_pretrain_lvd1689m-*.pth`) and Hugging Face's (`model.safetensors` of
    `facebook/dinov3-vit{s,b}16-pretrain-lvd1689m`) are both read; which one, and the variant, come from the
    keys and shapes. Loading is strict: a missing, unexpected or wrongly shaped key, a non-float, NaN or
    infinite tensor, a foreign buffer, an unsupported variant, a foreign or unreadable file is a
    CheckpointError naming the file and the first offending keys. `forward(images)` takes ImageNet-normalised
    `[B,3,H,W]` (H, W multiples of 16) and returns the final-normed patch tokens `[B, (H/16)*(W/16), D]`.
    """
    device = resolve_device(device)  # before the (slow) read, so that a typo fails at once
    state = read_weights(path, what="DINOv3 checkpoint")
    model = backbone_from_state(state, str(path))
    return model.eval().to(device)
