"""Matte quality without ground truth: evaluators, quality-guided dual-branch fusion, the image branch,
keyframe suggestions and the pictures that show them."""

from .analytic import AnalyticEvaluator
from .evaluate import DEFAULT_EVALUATOR, Evaluator, evaluate_matte, reliable_map
from .fusion import default_sigma, fuse_mattes, fusion_map
from .image_branch import matte_frames
from .keyframes import frame_scores, suggest_keyframes
from .visualize import error_heatmap, frame_strip

__all__ = [
    "DEFAULT_EVALUATOR",
    "AnalyticEvaluator",
    "Evaluator",
    "default_sigma",
    "error_heatmap",
    "evaluate_matte",
    "frame_scores",
    "frame_strip",
    "fuse_mattes",
    "fusion_map",
    "matte_frames",
    "reliable_map",
    "suggest_keyframes",
]
