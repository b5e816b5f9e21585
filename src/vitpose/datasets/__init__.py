"""Benchmark annotation readers (-> `PoseRecord`) and the top-down training dataset."""

from .readers import (
    MpiiHeadBoxes,
    PoseRecord,
    load_mpii_head_boxes,
    read_annotations,
    read_coco_keypoints,
    read_coco_wholebody,
    read_detections,
    read_interhand2d,
    read_mpii,
)

__all__ = ["MpiiHeadBoxes", "PoseRecord", "load_mpii_head_boxes", "read_annotations",
           "read_coco_keypoints", "read_coco_wholebody", "read_detections", "read_interhand2d",
           "read_mpii"]
