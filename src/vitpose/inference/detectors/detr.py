"""DETR-family detectors (D-FINE, RT-DETR, DETR, ...): what is known about them without running
one. The short names and hub ids (`DETECTOR_MODELS`, `AUTO_DETECTOR`), the COCO classes, the
image pre-processing of a hub ``preprocessor_config.json`` (`DetrPreprocess`), the network as a
plain function of a fixed-size tensor (`detector_graph`), the decoding of its outputs
(`decode_detr_detections`), and the architecture of each `DETECTOR_MODELS` entry
(`detector_config`, for random-weight stand-ins)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np

from ...errors import InputError
from ..boxes import empty_boxes

__all__ = ["ANIMAL_CLASSES", "AUTO_DETECTOR", "COCO_CLASSES", "DEFAULT_TRANSFORMERS_DETECTOR",
           "DETECTOR_MODELS", "DETR_640_PREPROCESS", "DetrPreprocess", "decode_detr_detections",
           "decode_detr_outputs", "detector_config", "detector_graph"]

#: Hub id of RT-DETR (ResNet-50-vd), pre-trained on Objects365 and fine-tuned on COCO (about 55
#: box AP on COCO val2017), Apache-2.0, the detector the ``transformers`` ViTPose documentation
#: pairs with ViTPose; what `TransformersDetector()` loads without a model id.
DEFAULT_TRANSFORMERS_DETECTOR = "PekingU/rtdetr_r50vd_coco_o365"

#: Short names of the learned detectors -> Hugging Face hub ids (see docs/DETECTORS.md for the
#: published COCO box AP, licences and the speed measured here). All are DETR-family models that
#: ``transformers`` loads with ``AutoModelForObjectDetection``.
DETECTOR_MODELS: dict[str, str] = {
    "dfine-n": "ustc-community/dfine-nano-coco",
    "dfine-s": "ustc-community/dfine-small-coco",
    "rtdetr": DEFAULT_TRANSFORMERS_DETECTOR,
}
#: What ``--detector auto`` (the default) loads: D-FINE-N, 42.8 COCO box AP, Apache-2.0, ~4 M
#: parameters, about 30 ms per 640x640 frame through ONNX Runtime or OpenVINO on a 2-core Zen 5
#: CPU.
AUTO_DETECTOR = "dfine-n"

#: The 80 COCO detection classes in the order of the ``id2label`` of the COCO detectors.
COCO_CLASSES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich",
    "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote",
    "keyboard", "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book",
    "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
)

#: The image processor settings of the `DETECTOR_MODELS` (all resize to 640x640, scale to 0..1).
DETR_640_PREPROCESS: dict[str, Any] = {
    "do_resize": True, "size": {"height": 640, "width": 640}, "resample": 2, "do_rescale": True,
    "rescale_factor": 1 / 255, "do_normalize": False,
}


#: COCO detector classes that are routed to an animal keypoint set (AP-10K and APT-36K annotate
#: mammals; birds have no keypoint set in ViTPose+).
ANIMAL_CLASSES: tuple[str, ...] = (
    "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe",
)


def decode_detr_outputs(
    logits: np.ndarray,
    pred_boxes: np.ndarray,
    image_hw: tuple[int, int],
    label_ids: Sequence[int],
    threshold: float,
    sigmoid: bool,
) -> np.ndarray:
    """Turns one image's DETR-family outputs into scored pixel boxes of the wanted classes.

    Same as `decode_detr_detections` without the class ids.
    """
    return decode_detr_detections(logits, pred_boxes, image_hw, label_ids, threshold, sigmoid)[0]


def decode_detr_detections(
    logits: np.ndarray,
    pred_boxes: np.ndarray,
    image_hw: tuple[int, int],
    label_ids: Sequence[int],
    threshold: float,
    sigmoid: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Turns one image's DETR-family outputs into scored pixel boxes and their classes.

    Args:
        logits: ``(Q, C)`` class logits per query; with ``sigmoid=False`` the last column is the
            "no object" class.
        pred_boxes: ``(Q, 4)`` ``cx, cy, w, h`` normalised to ``[0, 1]`` of the network input,
            which covers the whole (unpadded) image.
        image_hw: original image size ``(H, W)``.
        label_ids: class indices to keep (e.g. the id of "person").
        threshold: minimum score.
        sigmoid: True for focal-loss models (D-FINE, RT-DETR, Deformable/Conditional DETR): a
            query's class is its most likely one among ``label_ids`` and its score that
            class's sigmoid. False for softmax models (DETR, YOLOS): a query is kept when its
            most likely real class is in ``label_ids``.

    Returns:
        ``(N, 5)`` float32 ``x, y, w, h, score`` in original-image pixels, best first, and the
        ``(N,)`` int64 class ids of the boxes.
    """
    logits = np.asarray(logits, dtype=np.float64)
    boxes = np.asarray(pred_boxes, dtype=np.float64)
    ids = np.asarray(list(label_ids), dtype=np.int64)
    if logits.shape[0] == 0 or ids.size == 0:
        return empty_boxes(), np.zeros((0,), np.int64)
    if sigmoid:
        probs = 1.0 / (1.0 + np.exp(-logits[:, ids]))
        best = ids[probs.argmax(axis=1)]
        scores = probs.max(axis=1)
        keep = scores >= threshold
    else:
        z = logits - logits.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        real = p[:, :-1]
        best = real.argmax(axis=1)
        scores = real.max(axis=1)
        keep = np.isin(best, ids) & (scores >= threshold)
    h, w = float(image_hw[0]), float(image_hw[1])
    b = boxes[keep]
    out = np.empty((b.shape[0], 5), dtype=np.float64)
    out[:, 0] = (b[:, 0] - 0.5 * b[:, 2]) * w
    out[:, 1] = (b[:, 1] - 0.5 * b[:, 3]) * h
    out[:, 2] = b[:, 2] * w
    out[:, 3] = b[:, 3] * h
    out[:, 4] = scores[keep]
    order = np.argsort(-out[:, 4], kind="stable")
    return out[order].astype(np.float32), best[keep][order].astype(np.int64)


_CV2_INTERP = {0: cv2.INTER_NEAREST, 1: cv2.INTER_LANCZOS4, 2: cv2.INTER_LINEAR, 3: cv2.INTER_CUBIC}


class DetrPreprocess:
    """Resize / rescale / normalise settings read from a hub ``preprocessor_config.json``.

    ``transformers`` 5 image processors need Pillow or torchvision, neither of which vitpose
    depends on, so the settings are applied here with OpenCV instead.
    """

    def __init__(self, cfg: Mapping[str, Any]) -> None:
        self.do_resize = bool(cfg.get("do_resize", True))
        size = dict(cfg.get("size") or {"shortest_edge": 800, "longest_edge": 1333})
        self.size = size
        resample = cfg.get("resample")
        self.interp = _CV2_INTERP.get(
            int(resample) if resample is not None else 2, cv2.INTER_LINEAR
        )
        self.do_rescale = bool(cfg.get("do_rescale", True))
        self.rescale_factor = float(cfg.get("rescale_factor", 1 / 255))
        self.do_normalize = bool(cfg.get("do_normalize", True))
        self.mean = np.asarray(cfg.get("image_mean", [0.485, 0.456, 0.406]), dtype=np.float32)
        self.std = np.asarray(cfg.get("image_std", [0.229, 0.224, 0.225]), dtype=np.float32)

    @property
    def fixed_size(self) -> bool:
        """True when every image is resized to the same ``(height, width)``."""
        return self.do_resize and "height" in self.size and "width" in self.size

    def output_hw(self, h: int, w: int) -> tuple[int, int]:
        """Network input size for an ``(h, w)`` image."""
        if not self.do_resize:
            return h, w
        s = self.size
        if "height" in s and "width" in s:
            return int(s["height"]), int(s["width"])
        if "shortest_edge" in s:
            short, long_ = float(min(h, w)), float(max(h, w))
            f = float(s["shortest_edge"]) / short
            if s.get("longest_edge") and long_ * f > float(s["longest_edge"]):
                f = float(s["longest_edge"]) / long_
            return max(1, round(h * f)), max(1, round(w * f))
        if "max_height" in s and "max_width" in s:
            f = min(float(s["max_height"]) / h, float(s["max_width"]) / w)
            return max(1, round(h * f)), max(1, round(w * f))
        if "longest_edge" in s:
            f = float(s["longest_edge"]) / max(h, w)
            return max(1, round(h * f)), max(1, round(w * f))
        return h, w

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """``(H, W, 3)`` uint8 RGB -> ``(3, h, w)`` float32 network input."""
        h, w = image.shape[:2]
        oh, ow = self.output_hw(h, w)
        x = image if (oh, ow) == (h, w) else cv2.resize(image, (ow, oh), interpolation=self.interp)
        x = x.astype(np.float32)
        if self.do_rescale:
            x *= self.rescale_factor
        if self.do_normalize:
            x = (x - self.mean) / self.std
        return np.ascontiguousarray(x.transpose(2, 0, 1))


def detector_graph(model: Any) -> Any:
    """The detector as a plain function of a fixed-size tensor:
    ``pixel_values [B, 3, H, W] -> (logits [B, Q, C], pred_boxes [B, Q, 4])`` (what ONNX export
    and any inference engine take)."""
    import torch

    class DetectorGraph(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            out = self.inner(pixel_values=pixel_values)
            return out.logits, out.pred_boxes

    return DetectorGraph(model).eval()


def detector_config(name: str) -> Any:
    """The ``transformers`` config of a `DETECTOR_MODELS` entry (the architecture of the hub
    checkpoint, COCO classes), to build it with random weights for tests and speed
    measurements (speed does not depend on the weights). D-FINE settings follow transformers'
    conversion script of the original checkpoints."""
    import transformers

    labels = dict(enumerate(COCO_CLASSES))
    common = {"id2label": labels, "label2id": {v: k for k, v in labels.items()}}
    hgnet = {"model_type": "hgnet_v2", "layer_type": "basic", "embedding_size": 32,
             "hidden_sizes": [128, 256, 512, 1024], "stem_channels": [3, 16, 16],
             "stage_in_channels": [16, 64, 256, 512], "stage_mid_channels": [16, 32, 64, 128],
             "stage_out_channels": [64, 256, 512, 1024], "stage_num_blocks": [1, 1, 2, 1],
             "stage_downsample": [False, True, True, True],
             "stage_light_block": [False, False, True, True], "stage_kernel_size": [3, 3, 5, 5],
             "stage_numb_of_layers": [3, 3, 3, 3], "use_learnable_affine_block": True}
    if name == "dfine-n":
        return transformers.DFineConfig(
            backbone_config={**hgnet, "out_indices": [3, 4]}, num_feature_levels=2,
            encoder_ffn_dim=512, encode_proj_layers=[1], d_model=128, encoder_hidden_dim=128,
            decoder_ffn_dim=512, encoder_in_channels=[512, 1024], decoder_n_points=[6, 6],
            decoder_in_channels=[128, 128], feat_strides=[16, 32], depth_mult=0.5,
            decoder_layers=3, hidden_expansion=0.34, **common)
    if name == "dfine-s":
        return transformers.DFineConfig(
            backbone_config={**hgnet, "out_indices": [2, 3, 4]}, decoder_layers=3,
            hidden_expansion=0.5, depth_mult=0.34, decoder_n_points=[3, 6, 3],
            encoder_in_channels=[256, 512, 1024], **common)
    if name == "rtdetr":
        return transformers.RTDetrConfig(**common)
    raise InputError(f"no built-in config for detector {name!r}; choose one of "
                     f"{', '.join(DETECTOR_MODELS)}")

