"""The learned evaluator: DINOv3 backbone parity with transformers in both namings, the strict DINOv3 loader,
the MQE model and its evaluator call, evaluator files, the losses, the data pipeline and the training run
(F1 rises, exact resume, CLI)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from matanyone2_core import CheckpointError
from matanyone2_core.__main__ import main as cli_main
from matanyone2_core.io import to_uint8
from matanyone2_core.quality import (
    AnalyticEvaluator,
    MattingQualityEvaluator,
    MQEConfig,
    build_evaluator,
    degrade,
    eval_loss,
    evaluate_matte,
    load_dinov3,
    load_evaluator,
    matte_frames,
    reliable_map,
    save_evaluator,
)
from matanyone2_core.quality.mqe import DINOv3ViT, focal_loss, from_hf_names, read_metadata, to_hf_names
from matanyone2_core.quality.mqe.data import (
    CLEAN,
    FolderSources,
    HeldOut,
    SyntheticSources,
    TrainingSamples,
    cache_matting_predictions,
    find_layout,
)
from matanyone2_core.quality.mqe.dinov3 import VIT_VARIANTS, backbone_from_state, rope_periods
from matanyone2_core.quality.mqe.train import TrainConfig, lr_factor, train_evaluator
from matanyone2_core.quality.validate import run_validation

TINY = VIT_VARIANTS["tiny"]
VITS = VIT_VARIANTS["vits16"]


def _randomise(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Every parameter random and O(1) (LayerScale, norms, biases, the masked key bias too): nothing hides."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            fan_in = p[0].numel() if p.ndim > 1 else 0
            scale = 0.5 if name.endswith("gamma") or fan_in == 0 else 1.0 / math.sqrt(fan_in)
            p.copy_(torch.randn(p.shape, generator=gen) * scale + (1.0 if name.endswith("norm1.weight") else 0.0))
    return model.eval()


def _hf_model(config, state: dict[str, torch.Tensor]):
    transformers = pytest.importorskip("transformers")
    # Every field explicit: the class defaults differ from DINOv3's (0 registers, train-time RoPE rescale 2).
    hc = transformers.DINOv3ViTConfig(
        hidden_size=config.embed_dim, intermediate_size=config.mlp_hidden, num_hidden_layers=config.depth,
        num_attention_heads=config.num_heads, patch_size=16, num_register_tokens=4, layerscale_value=1.0,
        use_gated_mlp=False, hidden_act="gelu", rope_theta=100.0, layer_norm_eps=1e-5, query_bias=True,
        key_bias=False, value_bias=True, proj_bias=True, mlp_bias=True, drop_path_rate=0.0,
        pos_embed_shift=None, pos_embed_jitter=None, pos_embed_rescale=None, attn_implementation="eager",
    )  # fmt: skip
    hf = transformers.DINOv3ViTModel(hc).eval()
    hf.load_state_dict(to_hf_names(state, prefix="model.layer."), strict=True)
    return hf


def _patch_tokens(hf, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return hf(pixel_values=x).last_hidden_state[:, 5:]  # CLS + 4 registers first


@pytest.fixture(scope="module")
def vits_state() -> dict[str, torch.Tensor]:
    return _randomise(DINOv3ViT(VITS), 3).state_dict()


@pytest.fixture(scope="module")
def vits_files(tmp_path_factory, vits_state) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("dinov3")
    torch.save(vits_state, folder / "dinov3_vits16.pth")
    save_file({k: v.contiguous() for k, v in to_hf_names(vits_state).items()}, str(folder / "model.safetensors"))
    return {"meta": folder / "dinov3_vits16.pth", "hf": folder / "model.safetensors"}


# ------------------------------------------------------------------------------------------ backbone parity


def test_tiny_backbone_matches_transformers_in_both_namings():
    ours = _randomise(DINOv3ViT(TINY), 0)
    with torch.no_grad():
        ours.blocks[0].attn.qkv.bias[TINY.embed_dim : 2 * TINY.embed_dim] = 5.0  # masked: must not matter
    hf = _hf_model(TINY, ours.state_dict())
    back = DINOv3ViT(TINY).eval()
    back.load_state_dict(from_hf_names(hf.state_dict(), TINY), strict=True)  # HF -> Meta naming
    worst = 0.0
    for h, w in ((64, 64), (48, 80)):
        x = torch.randn(2, 3, h, w, generator=torch.Generator().manual_seed(h))
        reference = _patch_tokens(hf, x)
        with torch.no_grad():
            for model in (ours, back):
                tokens = model(x)
                assert tokens.shape == (2, (h // 16) * (w // 16), TINY.embed_dim)
                worst = max(worst, float((tokens - reference).abs().max()))
        assert float(reference.abs().max()) > 1.0  # a real signal, not near-zero outputs
    print(f"tiny parity max |delta| = {worst:.2e}")
    assert worst <= 1e-4


def test_vits16_matches_transformers(vits_state):
    ours = DINOv3ViT(VITS).eval()
    ours.load_state_dict(vits_state)
    hf = _hf_model(VITS, vits_state)
    x = torch.randn(1, 3, 32, 48, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        delta = float((ours(x) - _patch_tokens(hf, x)).abs().max())
    print(f"ViT-S/16 parity max |delta| = {delta:.2e}")
    assert delta <= 1e-4


def test_rope_periods_and_patch_coordinates():
    periods = rope_periods(64, 100.0)
    assert periods.shape == (16,) and float(periods[0]) == 1.0
    assert float(periods[-1]) == pytest.approx(100 ** (15 / 16), rel=1e-6)  # 74.99
    cos, sin = DINOv3ViT(TINY).rope_embed(2, 3)
    assert cos.shape == (6, TINY.head_dim)
    # token 0 is the top-left patch centre: y = 2 * 0.5 / 2 - 1 = -0.5, x = 2 * 0.5 / 3 - 1 = -2/3
    p = rope_periods(TINY.head_dim, 100.0)
    angles = torch.cat((2 * math.pi * -0.5 / p, 2 * math.pi * (-2 / 3) / p)).repeat(2)
    assert torch.allclose(cos[0], torch.cos(angles), atol=1e-6) and torch.allclose(sin[0], torch.sin(angles), atol=1e-6)


@pytest.mark.parametrize(
    "images, message",
    [
        (torch.zeros(1, 3, 40, 48), "multiples of 16"),
        (torch.zeros(1, 4, 32, 32), r"\[B,3,H,W\]"),
        (torch.zeros(3, 32, 32), r"\[B,3,H,W\]"),
    ],  # fmt: skip
)
def test_backbone_refuses_bad_images(images, message):
    with pytest.raises(ValueError, match=message):
        DINOv3ViT(TINY)(images)
    with pytest.raises(ValueError, match="taps"):
        DINOv3ViT(TINY).features(torch.zeros(1, 3, 32, 32), (0, 9))


# ------------------------------------------------------------------------------------------ DINOv3 loader


def test_load_dinov3_reads_meta_and_hugging_face_files(vits_files, vits_state):
    meta, hf = load_dinov3(vits_files["meta"]), load_dinov3(vits_files["hf"])
    assert isinstance(meta, DINOv3ViT) and meta.config.name == "vits16" and not meta.training
    reference = DINOv3ViT(VITS).eval()
    reference.load_state_dict(vits_state)
    x = torch.randn(2, 3, 48, 32)
    with torch.no_grad():
        out = meta(x)
        assert out.shape == (2, 6, 384)
        assert torch.equal(out, reference(x))
        assert float((hf(x) - out).abs().max()) <= 1e-5  # HF recomputes the periods; the rest is identical


def _broken(state: dict, change: str) -> dict:
    state = dict(state)
    if change == "missing":
        del state["blocks.3.mlp.fc1.bias"]
    elif change == "unexpected":
        state["blocks.3.mlp.extra"] = torch.zeros(3)
    elif change == "shape":
        state["blocks.0.attn.proj.weight"] = torch.zeros(384, 383)
    elif change == "bias_mask":
        state["blocks.2.attn.qkv.bias_mask"] = torch.full((1152,), float("nan"))
    elif change == "periods":
        state["rope_embed.periods"] = rope_periods(64, 10000.0)
    elif change == "nan":
        state["norm.weight"] = torch.full((384,), float("nan"))
    elif change == "int":
        state["norm.bias"] = torch.zeros(384, dtype=torch.int64)
    elif change == "vitl":
        state = {"cls_token": torch.zeros(1, 1, 1024), "blocks.0.norm1.weight": torch.zeros(1024)}
    elif change == "swiglu":
        state["blocks.0.mlp.w1.weight"] = state.pop("blocks.0.mlp.fc1.weight")
    elif change == "foreign":
        state = {"pixel_encoder.conv1.weight": torch.zeros(1)}
    return state


@pytest.mark.parametrize(
    "change, message",
    [
        ("missing", r"1 missing key\(s\): blocks.3.mlp.fc1.bias"),
        ("unexpected", r"1 unexpected key\(s\): blocks.3.mlp.extra"),
        ("shape", r"shape mismatch\(es\): blocks.0.attn.proj.weight \(384, 383\) \(expected \(384, 384\)\)"),
        ("bias_mask", "blocks.2.attn.qkv.bias_mask is not the key-bias mask"),
        ("periods", "not DINOv3's RoPE periods"),
        ("nan", "NaN or infinite values: norm.weight"),
        ("int", "not floating point: norm.bias"),
        ("vitl", "embedding dim 1024 .* not supported"),
        ("swiglu", "SwiGLU"),
        ("foreign", "does not look like a DINOv3 ViT checkpoint .* pixel_encoder.conv1.weight"),
    ],
)
def test_a_bad_meta_state_is_refused_naming_the_keys(vits_state, change, message):
    with pytest.raises(CheckpointError, match=f"^ckpt.pth: .*{message}"):
        backbone_from_state(_broken(vits_state, change), "ckpt.pth")


def test_a_bad_hugging_face_state_is_refused_in_its_own_names(vits_state):
    hf = to_hf_names(vits_state)
    del hf["layer.4.attention.k_proj.weight"]
    hf["layer.4.attention.k_proj.bias"] = torch.zeros(384)  # DINOv3 has no key bias
    with pytest.raises(CheckpointError, match="Hugging Face naming.*missing key.*layer.4.attention.k_proj.weight"
                       ".*unexpected key.*layer.4.attention.k_proj.bias"):  # fmt: skip
        backbone_from_state(hf, "model.safetensors")


def test_load_dinov3_refuses_bad_files(tmp_path, vits_files, weights_path):
    cases = {
        tmp_path / "absent.pth": "no such DINOv3 checkpoint file",
        tmp_path / "empty.pth": "the file is empty",
        tmp_path / "cut.pth": "not a readable DINOv3 checkpoint file",
        tmp_path / "cut.safetensors": "not a readable DINOv3 checkpoint file",
        weights_path: "does not look like a DINOv3 ViT checkpoint",  # a MatAnyone 2 checkpoint
    }
    (tmp_path / "empty.pth").write_bytes(b"")
    (tmp_path / "cut.pth").write_bytes(vits_files["meta"].read_bytes()[:5000])
    (tmp_path / "cut.safetensors").write_bytes(vits_files["hf"].read_bytes()[:5000])
    for path, message in cases.items():
        with pytest.raises(CheckpointError, match=message) as info:
            load_dinov3(path)
        assert str(path) in str(info.value)
    with pytest.raises(ValueError, match="device"):
        load_dinov3(vits_files["meta"], device="nonsense")


# ---------------------------------------------------------------------------------------------- the model


def _scene(t=2, h=37, w=53, seed=0):
    gen = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    alpha = ((yy - h / 2) ** 2 + (xx - w / 2) ** 2 < (min(h, w) / 3) ** 2).float()[None].repeat(t, 1, 1)
    frames = (alpha[..., None] * torch.tensor([0.8, 0.3, 0.2]) + 0.4 * torch.rand(t, h, w, 3, generator=gen)).clamp(
        0, 1
    )
    return frames, alpha, (alpha > 0.5).float()


def test_the_evaluator_call_takes_any_size_and_plugs_into_evaluate_matte():
    mqe = build_evaluator("tiny", seed=0).eval()
    _randomise(mqe.head, 1)  # a non-trivial head
    frames, alpha, seg = _scene(t=3)
    with torch.no_grad():
        direct = mqe(frames, alpha, seg)
    assert direct.shape == (3, 37, 53) and direct.dtype == torch.float32
    assert 0 <= float(direct.min()) and float(direct.max()) <= 1 and float(direct.std()) > 0
    mqe.batch_size = 1  # one frame at a time: the same numbers
    assert torch.allclose(evaluate_matte(frames, alpha, seg, evaluator=mqe, chunk=2), direct, atol=1e-6)
    assert reliable_map(direct, mqe.threshold).dtype == torch.bool
    assert torch.allclose(mqe(frames, alpha, seg[0]), direct, atol=1e-6)  # one [H,W] segmentation broadcast


def test_the_widened_patch_embedding_starts_as_dinov3_and_alpha_reaches_the_output():
    backbone = _randomise(DINOv3ViT(TINY), 2)
    mqe = build_evaluator("tiny", seed=0).eval()
    mqe.load_backbone(backbone)
    assert torch.count_nonzero(mqe.guide_embed.weight) == 0  # the alpha/seg slices start at zero
    frames, alpha, seg = _scene(t=1, h=48, w=64)
    images = frames.permute(0, 3, 1, 2)
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    normalised = (images - mean[:, None, None]) / std[:, None, None]
    guide = torch.cat((2 * alpha[:, None] - 1, 2 * seg[:, None] - 1), 1)
    with torch.no_grad():
        tokens = mqe.backbone.features(normalised, extra=mqe.guide_embed(guide))[0]
        assert torch.allclose(tokens, backbone(normalised), atol=1e-6)  # ImageNet normalisation inside
        other = mqe(frames, 1 - alpha, seg)
        assert float((other - mqe(frames, alpha, seg)).abs().max()) > 1e-4  # through the full-resolution guide
    with pytest.raises(ValueError, match="backbone must be a DINOv3 tiny"):
        mqe.load_backbone(DINOv3ViT(VITS))


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(frames=torch.rand(2, 32, 32)), r"frames must be \[T,H,W,3\]"),
        (dict(alpha=torch.rand(2, 32, 33)), r"alpha must be \[T,H,W\]"),
        (dict(alpha=torch.rand(2, 32, 32) * 3), "alpha must be finite values in 0..1"),
        (dict(seg=torch.rand(3, 32, 32)), "seg has 3 frames"),
    ],  # fmt: skip
)
def test_the_evaluator_call_refuses_bad_input(change, message):
    args = dict(frames=torch.rand(2, 32, 32, 3), alpha=torch.rand(2, 32, 32), seg=torch.rand(2, 32, 32))
    args.update(change)
    with pytest.raises(ValueError, match=message):
        build_evaluator("tiny", seed=0)(args["frames"], args["alpha"], args["seg"])


def test_config_checks():
    assert MQEConfig.for_backbone("vitb16").features == 128
    with pytest.raises(ValueError, match="unknown evaluator backbone"):
        MQEConfig.for_backbone("vitl16")
    good = json.loads(MQEConfig().to_json())
    assert MQEConfig.from_json(json.dumps(good)) == MQEConfig()
    for change, message in ((dict(taps=[2, 5, 8, 12]), "taps"), (dict(extra=1), "unknown configuration field"),
                            (dict(input_scheme="rgb"), "input scheme"), (dict(features=63), "features")):  # fmt: skip
        with pytest.raises(ValueError, match=message):
            MQEConfig.from_json(json.dumps({**good, **change}))


def test_parameter_counts_match_the_reference():
    with torch.device("meta"):
        s, b = MattingQualityEvaluator(MQEConfig.for_backbone("vits16")), DINOv3ViT(VIT_VARIANTS["vitb16"])
    assert sum(p.numel() for p in s.backbone.parameters()) == 21_601_152  # 21.60 M
    assert sum(p.numel() for p in b.parameters()) == 85_669_632  # 85.67 M


# ------------------------------------------------------------------------------------------ evaluator files


def test_an_evaluator_file_round_trips_with_its_metadata(tmp_path):
    mqe = _randomise(build_evaluator("tiny", seed=0, threshold=0.4), 5)
    path = save_evaluator(mqe, tmp_path / "e.safetensors", provenance={"data": "x", "steps": 7, "seed": 1})
    back = load_evaluator(path)
    assert not back.training and not any(p.requires_grad for p in back.parameters())
    assert back.threshold == 0.4 and back.metadata["provenance"]["steps"] == 7
    assert back.metadata["labels"] == {"patch": 9, "mad": 0.04, "grad": 0.05}
    assert read_metadata(path)["format"] == "matanyone2-mqe"
    frames, alpha, seg = _scene()
    with torch.no_grad():
        assert torch.equal(back(frames, alpha, seg), mqe(frames, alpha, seg))
    assert load_evaluator(path, threshold=0.7).threshold == 0.7


def test_wrong_evaluator_files_are_refused_naming_the_file(tmp_path, weights_path):
    mqe = build_evaluator("tiny", seed=0)
    good = save_evaluator(mqe, tmp_path / "good.safetensors")
    state = {k: v.contiguous() for k, v in mqe.state_dict().items()}
    from safetensors import safe_open

    with safe_open(str(good), framework="pt") as f:
        meta = f.metadata()

    def write(name, tensors=state, metadata=meta):
        save_file(tensors, str(tmp_path / name), metadata=metadata)
        return tmp_path / name

    cases = [
        (weights_path, "not a readable evaluator file"),  # a MatAnyone 2 .pth
        (write("plain.safetensors", metadata=None), "no 'format' entry in its metadata"),
        (write("version.safetensors", metadata={**meta, "format_version": "9"}), "format version '9'"),
        (write("config.safetensors", metadata={**meta, "config": "{"}), "malformed evaluator metadata"),
        (write("backbone.safetensors", metadata={**meta, "config": meta["config"].replace("tiny", "vitl")}),
         "unknown evaluator backbone"),
        (write("threshold.safetensors", metadata={**meta, "threshold": "2"}), "threshold 2.0 is not in"),
        (write("missing.safetensors", {k: v for k, v in state.items() if k != "head.head3.bias"}),
         r"missing key\(s\): head.head3.bias"),
        (write("shape.safetensors", {**state, "guide_embed.weight": torch.zeros(64, 3, 16, 16)}),
         "shape mismatch.*guide_embed.weight"),
        (write("nan.safetensors", {**state, "head.head3.bias": torch.tensor([float("nan")])}), "NaN"),
        (tmp_path / "absent.safetensors", "no such evaluator file"),
    ]  # fmt: skip
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    cases.append((cut, "truncated"))
    for path, message in cases:
        with pytest.raises(CheckpointError, match=message) as info:
            load_evaluator(path)
        assert str(path) in str(info.value)
    with pytest.raises(ValueError, match="must end in .safetensors"):
        save_evaluator(mqe, tmp_path / "e.pth")
    with pytest.raises(ValueError, match="MattingQualityEvaluator"):
        save_evaluator(AnalyticEvaluator(), tmp_path / "e.safetensors")


# ------------------------------------------------------------------------------------------------- losses


def test_focal_loss_follows_its_formula():
    logits = torch.tensor([[2.0, -1.0], [0.5, -3.0]])
    labels = torch.tensor([[True, True], [False, False]])
    p = torch.sigmoid(logits)
    by_hand = torch.where(labels, -0.75 * (1 - p) ** 2 * torch.log(p), -0.25 * p**2 * torch.log(1 - p)).mean()
    assert float(focal_loss(logits, labels)) == pytest.approx(float(by_hand), rel=1e-5)
    with pytest.raises(ValueError, match="one shape"):
        focal_loss(logits, labels[0])


@pytest.mark.parametrize("kind", ["mqe", "analytic"])
def test_eval_loss_guides_alpha_and_leaves_the_evaluator_untouched(kind):
    frames, target, seg = _scene(t=1, h=48, w=48)
    if kind == "mqe":
        evaluator = _randomise(build_evaluator("tiny", seed=0), 4).train()
    else:
        evaluator = AnalyticEvaluator()
    # A matte with a hole, parametrised through a sigmoid so that it stays in 0..1.
    start = target.clone()
    start[:, 20:28, 20:28] = 0.0
    logits = torch.logit(start.clamp(0.02, 0.98)).requires_grad_(True)
    optimiser = torch.optim.Adam([logits], lr=0.2)
    losses = []
    for _ in range(8):
        loss = eval_loss(evaluator, frames, torch.sigmoid(logits), seg)
        assert loss.ndim == 0 and loss.requires_grad
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    assert all(b < a for a, b in zip(losses, losses[1:], strict=False))
    assert losses[-1] < (0.97 if kind == "mqe" else 0.8) * losses[0]
    if kind == "mqe":
        assert all(p.grad is None for p in evaluator.parameters())
        assert evaluator.training and all(p.requires_grad for p in evaluator.parameters())  # restored


def test_the_schedule_warms_up_then_decays():
    factors = [lr_factor(s, warmup=4, steps=20, min_ratio=0.01) for s in range(20)]
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0]
    assert all(a >= b for a, b in zip(factors[3:], factors[4:], strict=False)) and factors[-1] < 0.05


# --------------------------------------------------------------------------------------------------- data


def _write_folder(root: Path, layout: str, count: int = 3, size=(72, 90), seg: bool = False) -> Path:
    images, alphas = {"p3m": ("train/blurred_image", "train/mask"), "generic": ("images", "alphas")}[layout]
    for sub in (images, alphas) + (("train/segmentation",) if seg else ()):
        (root / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        frames, alpha, _ = _scene(t=1, h=size[0], w=size[1], seed=i)
        Image.fromarray(to_uint8(frames[0])).save(root / images / f"p_{i}.jpg")
        Image.fromarray(to_uint8(alpha[0] * (0.7 + 0.3 * rng.random()))).save(root / alphas / f"p_{i}.png")
        if seg:
            Image.fromarray(to_uint8(alpha[0])).save(root / "train/segmentation" / f"p_{i}.png")
    return root


def test_folder_layouts_are_found_and_checked(tmp_path):
    p3m = _write_folder(tmp_path / "P3M-10k", "p3m", seg=True)
    assert find_layout(p3m)[0] == "P3M-10k root" and find_layout(p3m)[3].name == "segmentation"
    sources = FolderSources(_write_folder(tmp_path / "generic", "generic"), short_side=64)
    assert len(sources) == 3 and sources.key(0) == "p_0"
    ex = sources[0]
    assert ex.image.shape == (64, 80, 3) and ex.alpha.shape == (64, 80) and set(ex.seg.unique().tolist()) <= {0, 1}
    (tmp_path / "generic/alphas/p_0.png").unlink()
    with pytest.raises(ValueError, match="without a partner.*p_0"):
        FolderSources(tmp_path / "generic", short_side=64)
    (tmp_path / "other").mkdir()
    with pytest.raises(ValueError, match="not a known matting data layout"):
        find_layout(tmp_path / "other")


def test_training_samples_are_a_function_of_their_position(tmp_path):
    sources = FolderSources(_write_folder(tmp_path, "generic"), short_side=64)
    samples = TrainingSamples(sources, crop=48, seed=3, clean_fraction=0.3)
    first = samples[5]
    assert all(torch.equal(first[k], v) for k, v in samples[5].items())
    assert first["image"].shape == (3, 48, 48) and first["label"].dtype == torch.bool
    kinds = [samples[i] for i in range(24)]
    assert len({int(s["kind"]) for s in kinds}) >= 4
    for s in kinds:
        if samples.kinds[int(s["kind"])] == CLEAN:
            assert not s["label"].any()  # the ground truth itself carries no error label
    assert any(s["label"].any() for s in kinds)


def test_matting_predictions_are_cached_from_matte_frames(tmp_path, model):
    sources = SyntheticSources(clips=1, frames=1, height=48, width=48, seed=0, cache_dir=tmp_path)
    folder = cache_matting_predictions(sources, model, tmp_path, tag="t")
    ex = sources[0]
    expected = to_uint8(matte_frames(model, ex.image[None], ex.seg[None])[0])
    assert np.array_equal(np.asarray(Image.open(folder / "synthetic_00000.png")), expected)
    sample = TrainingSamples(sources, crop=48, seed=0, matting_dir=folder, matting_fraction=1.0, flip=False)[0]
    assert torch.equal(sample["alpha"], torch.from_numpy(expected.astype(np.float32) / 255.0))


def test_held_out_scoring_is_the_validation_suite():
    settings = dict(clips=1, frames=1, height=48, width=64, seed=0)
    held = HeldOut.synthetic(**settings).score(AnalyticEvaluator())
    suite = run_validation(**settings)
    assert held["degradations"] == suite.degradations and held["gt_flagged"] == suite.gt_flagged
    mqe = build_evaluator("tiny", seed=0).eval()
    report = run_validation(evaluator=mqe, **settings)  # the learned evaluator plugs into the suite
    assert report.settings["evaluator"] == "mqe-tiny" and set(report.degradations) == set(degrade.DEGRADATIONS)


# ----------------------------------------------------------------------------------------------- training


def _tiny(tmp: Path, cache: Path, **change) -> TrainConfig:
    base = dict(data="synthetic", out=str(tmp), cache=str(cache), backbone="tiny", crop=64, batch=6, steps=30,
                lr=2e-3, warmup=3, backbone_lr_scale=1.0, synthetic_clips=3, synthetic_frames=2,
                synthetic_height=64, synthetic_width=64, val_every=30, val_clips=1, val_frames=2, val_height=64,
                val_width=64, ckpt_every=0, progress=False)  # fmt: skip
    return TrainConfig(**{**base, **change})


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("mqe_cache")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, cache):
    return train_evaluator(_tiny(tmp_path_factory.mktemp("run"), cache))


def test_a_short_run_raises_the_validation_f1(trained):
    untrained, final = trained.validations[0], trained.validations[-1]
    assert (untrained["step"], final["step"]) == (0, 30)
    print(f"loss {trained.first_loss:.4f} -> {trained.last_loss:.4f}; mean F1 {untrained['mean_f1']:.3f} -> "
          f"{final['mean_f1']:.3f}; {trained.samples_per_s:.1f} samples/s")  # fmt: skip
    assert final["mean_f1"] > untrained["mean_f1"] + 0.2
    assert sum(h["loss"] for h in trained.history[-5:]) < 0.5 * sum(h["loss"] for h in trained.history[:5])
    out = trained.out
    assert len((out / "log.jsonl").read_text().splitlines()) == 30
    assert json.loads((out / "validation/step_000030.json").read_text())["mean_f1"] == final["mean_f1"]
    assert "| hard_edges |" in (out / "validation/step_000030.md").read_text()
    mqe = load_evaluator(trained.evaluator_path)
    provenance = mqe.metadata["provenance"]
    assert provenance["steps"] == 30 and provenance["seed"] == 0 and provenance["init"] == "random"
    assert provenance["data"].startswith("synthetic") and provenance["date"][:2] == "20"
    # The file's evaluator is the trained one: it scores the same held-out F1.
    again = HeldOut.synthetic(clips=1, frames=2, height=64, width=64, seed=0).score(mqe)
    assert again["mean_f1"] == pytest.approx(final["mean_f1"], abs=1e-9)


def test_the_trained_evaluator_guides_a_degraded_matte(trained):
    mqe = load_evaluator(trained.evaluator_path).train()
    held = HeldOut.synthetic(clips=1, frames=2, height=64, width=64, seed=0)
    frames, gt, seg, candidates = held.items[0]
    pred = dict((n, p) for n, p, _ in candidates)["dilated"][:1]
    logits = torch.logit(pred.clamp(0.02, 0.98)).requires_grad_(True)
    optimiser = torch.optim.Adam([logits], lr=0.1)
    losses = []
    for _ in range(6):
        loss = eval_loss(mqe, frames[:1], torch.sigmoid(logits), seg[:1])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]
    assert all(p.grad is None for p in mqe.parameters())


def test_a_resumed_run_continues_exactly(tmp_path, cache):
    settings = dict(steps=4, batch=2, crop=32, val_every=0, warmup=2)
    whole = train_evaluator(_tiny(tmp_path / "whole", cache, **settings))
    part = train_evaluator(_tiny(tmp_path / "part", cache, stop_after=2, **settings))
    assert part.steps_done == 2 and part.evaluator_path is None and part.checkpoint_path.is_file()
    rest = train_evaluator(_tiny(tmp_path / "part", cache, resume=True, **settings))
    assert rest.steps_done == 4
    assert [h["loss"] for h in rest.history] == [h["loss"] for h in whole.history]
    a, b = load_evaluator(whole.evaluator_path).state_dict(), load_evaluator(rest.evaluator_path).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="already holds a training run"):
        train_evaluator(_tiny(tmp_path / "part", cache, **settings))
    with pytest.raises(ValueError, match=r"cannot resume with different training settings: --lr"):
        train_evaluator(_tiny(tmp_path / "part", cache, resume=True, **{**settings, "lr": 1e-3}))


def test_the_cli_trains_on_a_folder_and_refuses_bad_settings(tmp_path, capsys):
    data = _write_folder(tmp_path / "P3M-10k", "p3m")

    def args(out: Path, *change: str) -> list[str]:
        fixed = ["--backbone", "tiny", "--steps", "2", "--batch", "2", "--crop", "48", "--short-side", "64"]
        return [
            "train-evaluator",
            "--data",
            str(data),
            "--out",
            str(out),
            *fixed,
            "--val-every",
            "0",
            "--quiet",
            *change,
        ]

    assert cli_main(args(tmp_path / "run")) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["steps"] == 2 and Path(summary["evaluator"]).is_file()
    assert "P3M-10k root layout" in load_evaluator(summary["evaluator"]).metadata["provenance"]["data"]
    bad = [
        (["--crop", "40"], "--crop must be a multiple of 16"),
        (["--data", str(tmp_path / "nowhere")], "no such folder"),
        (["--init-dinov3", str(tmp_path / "none.pth")], "--init-dinov3 .*no such file"),
        (["--steps", "0"], "--steps must be an integer >= 1"),
        (["--focal-alpha", "2"], "--focal-alpha must be a number in 0..1"),
        ([], "already holds a training run"),
    ]
    for change, message in bad:
        out = tmp_path / ("run" if not change else "bad")
        assert cli_main(args(out, *change)) == 2
        assert re.search(message, capsys.readouterr().err)


def test_init_dinov3_and_a_frozen_backbone(tmp_path, cache, vits_files):
    # ViT-S/16 weights copied in; with the backbone frozen only the decoder (and the alpha/seg slices) move.
    cfg = _tiny(tmp_path / "run", cache, backbone="vits16", init_dinov3=str(vits_files["meta"]),
                freeze_backbone=True, steps=1, batch=1, crop=32, val_every=0)  # fmt: skip
    result = train_evaluator(cfg)
    trained = load_evaluator(result.evaluator_path)
    reference = load_dinov3(vits_files["meta"])
    assert all(torch.equal(v, reference.state_dict()[k]) for k, v in trained.backbone.state_dict().items())
    assert torch.count_nonzero(trained.guide_embed.weight) > 0


def test_matting_weights_add_network_predictions_to_training(tmp_path, cache, weights_path):
    cfg = _tiny(tmp_path / "run", cache, matting_weights=str(weights_path), matting_fraction=0.5, steps=2, batch=4,
                val_every=0)  # fmt: skip
    result = train_evaluator(cfg)
    folder = cache / f"matting_{weights_path.stem}_synthetic"
    assert len(list(folder.glob("*.png"))) == 6  # every pool frame matted once, by matte_frames
    assert load_evaluator(result.evaluator_path).metadata["provenance"]["matting_weights"] == weights_path.name
    with pytest.raises(ValueError, match="--clean-fraction plus --matting-fraction"):
        train_evaluator(_tiny(tmp_path / "x", cache, matting_weights=str(weights_path), matting_fraction=0.95))
