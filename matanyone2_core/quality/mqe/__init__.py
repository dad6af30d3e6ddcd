"""The learned Matting Quality Evaluator: DINOv3 ViT-S/16 (or ViT-B/16) + DPT, its files, losses and training.

    from matanyone2_core.quality import load_evaluator, evaluate_matte, reliable_map
    mqe = load_evaluator("evaluator.safetensors", device="cuda")
    error = evaluate_matte(frames, alpha, seg, evaluator=mqe)
    ok = reliable_map(error, mqe.threshold)

Training: `python -m matanyone2_core train-evaluator` (train.py, imported on demand). See docs/mqe.md.
"""

from .dinov3 import VIT_VARIANTS, DINOv3ViT, ViTConfig, from_hf_names, load_dinov3, to_hf_names
from .files import load_evaluator, read_metadata, save_evaluator
from .loss import eval_loss, focal_loss
from .model import INPUT_SCHEME, MattingQualityEvaluator, MQEConfig, build_evaluator

__all__ = [
    "INPUT_SCHEME",
    "VIT_VARIANTS",
    "DINOv3ViT",
    "MQEConfig",
    "MattingQualityEvaluator",
    "ViTConfig",
    "build_evaluator",
    "eval_loss",
    "focal_loss",
    "from_hf_names",
    "load_dinov3",
    "load_evaluator",
    "read_metadata",
    "save_evaluator",
    "to_hf_names",
]
