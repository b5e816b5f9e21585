"""One entry point that reads any supported benchmark's annotations into :class:`PoseRecord` s.

:func:`read_annotations` picks the reader from the dataset layout:

==========================================  ==============================================
dataset                                     reader
==========================================  ==============================================
coco, aic, crowdpose, ochuman, ap10k,       :func:`~vitpose.datasets.coco.read_coco_keypoints`
apt36k, custom :class:`DatasetMeta`
wholebody (coco_wholebody)                  :func:`~vitpose.datasets.coco.read_coco_wholebody`
mpii                                        :func:`~vitpose.datasets.mpii.read_mpii`
interhand2d                                 :func:`~vitpose.datasets.interhand.read_interhand2d`
==========================================  ==============================================

Detections are read with :func:`~vitpose.datasets.coco.read_detections`.
"""

from __future__ import annotations

from vitpose.dataset_meta import DatasetMeta
from vitpose.datasets.coco import read_coco_keypoints, read_coco_wholebody, read_detections
from vitpose.datasets.interhand import read_interhand2d
from vitpose.datasets.mpii import MpiiHeadBoxes, load_mpii_head_boxes, read_mpii
from vitpose.datasets.records import PathLike, PoseRecord, crop_center_scale, resolve_meta

__all__ = [
    "MpiiHeadBoxes",
    "PoseRecord",
    "crop_center_scale",
    "load_mpii_head_boxes",
    "read_annotations",
    "read_coco_keypoints",
    "read_coco_wholebody",
    "read_detections",
    "read_interhand2d",
    "read_mpii",
]


def read_annotations(
    dataset: str | DatasetMeta,
    ann_path: PathLike,
    *,
    image_root: PathLike | None = None,
    input_size_hw: tuple[int, int] = (256, 192),
    padding: float | None = None,
    skip_unlabeled: bool = True,
    skip_crowd: bool = True,
    head_boxes: PathLike | MpiiHeadBoxes | None = None,
    camera_path: PathLike | None = None,
    joint_3d_path: PathLike | None = None,
) -> list[PoseRecord]:
    """Read ground-truth annotations of any supported dataset.

    Args:
        dataset: registry name (``coco``, ``aic``, ``mpii``, ``crowdpose``, ``ochuman``,
            ``ap10k``, ``apt36k``, ``wholebody``, ``interhand2d``) or a custom
            :class:`DatasetMeta` (COCO-style file).
        ann_path: the annotation file (InterHand2.6M: the ``*_data.json``).
        image_root: folder the image names are relative to (default: the file's folder).
        input_size_hw: model input ``(H, W)``, for the crop aspect fix (not used by MPII).
        padding: box enlargement (default: each reader's official value, 1.25; 1.5 for
            InterHand2.6M; MPII keeps its own scale rule).
        skip_unlabeled: COCO-style only: drop annotations without labelled keypoints.
        skip_crowd: COCO-style only: drop ``iscrowd`` annotations.
        head_boxes: MPII only: head-box file (fills ``head_size``).
        camera_path: InterHand2.6M only: camera file (default derived from ``ann_path``).
        joint_3d_path: InterHand2.6M only: 3D joint file (default derived from ``ann_path``).

    Returns:
        The records, in file order.

    Raises:
        InputError: unknown dataset or malformed files (the message names file, entry and key).
    """
    meta = resolve_meta(dataset)
    pad = {} if padding is None else {"padding": padding}
    if meta.name == "mpii":
        return read_mpii(ann_path, image_root=image_root, head_boxes=head_boxes)
    if meta.name == "interhand2d":
        return read_interhand2d(ann_path, camera_path=camera_path, joint_3d_path=joint_3d_path,
                                image_root=image_root, input_size_hw=input_size_hw, **pad)
    if meta.name == "wholebody":
        return read_coco_wholebody(ann_path, image_root=image_root, input_size_hw=input_size_hw,
                                   skip_unlabeled=skip_unlabeled, skip_crowd=skip_crowd, **pad)
    return read_coco_keypoints(ann_path, meta, image_root=image_root, input_size_hw=input_size_hw,
                               skip_unlabeled=skip_unlabeled, skip_crowd=skip_crowd, **pad)
