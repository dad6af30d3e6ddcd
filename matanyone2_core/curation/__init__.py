"""Offline curation: a folder of clips through the paper's dual-branch annotation pipeline (video branch, image
branch, evaluation, quality-guided fusion), with a resumable JSON Lines manifest, locally or on Ray."""

from .cli import CurationResult, curate, register_cli
from .clip import ClipRunner, CurationConfig, quality_scores, subject_region
from .layout import ClipSource, discover_clips
from .manifest import MANIFEST_NAME, read_manifest

__all__ = [
    "MANIFEST_NAME",
    "ClipRunner",
    "ClipSource",
    "CurationConfig",
    "CurationResult",
    "curate",
    "discover_clips",
    "quality_scores",
    "read_manifest",
    "register_cli",
    "subject_region",
]
