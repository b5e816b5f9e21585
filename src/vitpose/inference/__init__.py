"""Top-down inference: boxes -> crops -> heatmaps -> keypoints, detectors, drawing, video."""

from .pipeline import PoseEstimator, PoseInstance, PoseResult, TestSettings

__all__ = ["PoseEstimator", "PoseInstance", "PoseResult", "TestSettings"]
