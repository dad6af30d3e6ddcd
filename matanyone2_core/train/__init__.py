"""Fine-tuning the matting network: the differentiable window forward, training data, losses and the loop."""

from .data import ClipFiles, WindowSamples, WindowSpec, find_matting_clips, find_segmentation_clips, patch_dropout
from .forward import set_training_mode, window_forward
from .loop import TrainMattingConfig, TrainResult, train_matting
from .losses import LossWeights, matting_losses, segmentation_losses

__all__ = [
    "ClipFiles",
    "LossWeights",
    "TrainMattingConfig",
    "TrainResult",
    "WindowSamples",
    "WindowSpec",
    "find_matting_clips",
    "find_segmentation_clips",
    "matting_losses",
    "patch_dropout",
    "segmentation_losses",
    "set_training_mode",
    "train_matting",
    "window_forward",
]
