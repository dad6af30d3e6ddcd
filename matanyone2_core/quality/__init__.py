"""Matte quality without ground truth: evaluators, quality-guided dual-branch fusion, the image branch,
keyframe suggestions, the pictures that show them, and the learned evaluator (`mqe`)."""

from .analytic import AnalyticEvaluator
from .evaluate import DEFAULT_EVALUATOR, Evaluator, evaluate_matte, reliable_map
from .fusion import default_sigma, fuse_mattes, fusion_map
from .image_branch import matte_frames
from .keyframes import frame_scores, suggest_keyframes
from .mqe import (
    DINOv3ViT,
    MattingQualityEvaluator,
    MQEConfig,
    build_evaluator,
    eval_loss,
    load_dinov3,
    load_evaluator,
    save_evaluator,
)
from .visualize import error_heatmap, frame_strip

__all__ = [
    "DEFAULT_EVALUATOR",
    "AnalyticEvaluator",
    "DINOv3ViT",
    "MQEConfig",
    "MattingQualityEvaluator",
    "Evaluator",
    "build_evaluator",
    "default_sigma",
    "error_heatmap",
    "eval_loss",
    "evaluate_matte",
    "frame_scores",
    "frame_strip",
    "fuse_mattes",
    "fusion_map",
    "load_dinov3",
    "load_evaluator",
    "matte_frames",
    "reliable_map",
    "save_evaluator",
    "suggest_keyframes",
]
