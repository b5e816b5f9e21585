"""Dataset metadata: keypoint names, flip partners, OKS sigmas, skeleton, colours, body split.

This module is the one home of per-dataset keypoint facts. Everything that other modules need to
know about a keypoint layout (flip test, half-body augmentation, OKS evaluation, drawing) is read
from a :class:`DatasetMeta` found in :data:`DATASET_META` (or loaded from a user file with
:func:`load_dataset_meta`).

Facts follow the official ViTPose dataset configs (``configs/_base_/datasets/*.py``, summarised in
``vitpose-reference.md`` §4.1-§4.9):

* **flip pairs are derived**, never written as index lists: every keypoint has a swap partner
  *name* (``left_eye`` <-> ``right_eye``, ``L_Eye`` <-> ``R_Eye``, the iBUG face mirror for
  COCO-WholeBody) and :attr:`DatasetMeta.flip_pairs` / :attr:`DatasetMeta.flip_indices` are
  computed from those names;
* "upper" body keypoints are those typed ``upper`` in the official files; every other keypoint
  counts as lower (ref §2.5 step 4), so face, hands and feet of COCO-WholeBody are "lower";
* OKS sigmas are the official numbers, kept exactly (:attr:`DatasetMeta.oks_sigmas` is the float64
  copy used by evaluators, :attr:`DatasetMeta.sigmas` the float32 array);
* ``joint_weights`` are unused by every official recipe (ref §2.6). The values here follow the
  pattern of the COCO file (elbows/knees 1.2, wrists/ankles/paws 1.5, else 1.0) for the body
  datasets and are all 1.0 for COCO-WholeBody and InterHand2.6M;
* colours are for drawing only and derived from a keypoint's side (left / right / centre), face
  membership or finger.

This module is a leaf: it imports nothing from ``vitpose`` and raises :class:`ValueError` for bad
metadata (callers that read user files wrap it into their own error types).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

__all__ = [
    "DATASET_META",
    "DATASET_NAMES",
    "DatasetMeta",
    "TRAIN_DEFAULTS",
    "dataset_train_defaults",
    "RGB",
    "dataset_meta_from_dict",
    "get_dataset_meta",
    "load_dataset_meta",
    "mirror_keypoint_name",
]

RGB = tuple[int, int, int]

# Drawing palette (RGB). Chosen for contrast on natural images; not part of any benchmark.
_LEFT_COLOR: RGB = (0, 220, 0)
_RIGHT_COLOR: RGB = (255, 140, 0)
_CENTER_COLOR: RGB = (40, 150, 255)
_FACE_COLOR: RGB = (255, 255, 255)
_FINGER_COLORS: dict[str, RGB] = {
    "thumb": (255, 140, 0),
    "forefinger": (255, 150, 255),
    "middle": (100, 180, 255),
    "ring": (255, 60, 60),
    "pinky": (0, 220, 0),
}

_UPPER = "upper"
_LOWER = "lower"


# --------------------------------------------------------------------------------------------
# The dataclass
# --------------------------------------------------------------------------------------------


def _readonly(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class DatasetMeta:
    """Keypoint layout of one dataset.

    Construct it through :func:`dataset_meta_from_dict` / :func:`load_dataset_meta` for custom
    data, or look up a built-in one with :func:`get_dataset_meta`. The constructor validates every
    field and derives the flip pairs, flip permutation, lower-body ids and (when not given) the
    drawing colours.

    Args:
        name: short dataset name (``"coco"``, ``"wholebody"``, ...).
        keypoint_names: ``K`` unique keypoint names in channel order.
        swap_names: ``K`` swap partner names, ``""`` (or the keypoint's own name) for a keypoint
            that maps to itself under a horizontal flip. Partners must be mutual.
        sigmas: ``K`` OKS sigmas (per-keypoint falloff, in units of object scale).
        skeleton: links as 0-based index pairs ``(a, b)``, for drawing.
        upper_body_ids: indices of the "upper" keypoints of the half-body transform.
        joint_weights: ``K`` per-joint loss weights (unused by the official recipes); ``None``
            gives all ones.
        keypoint_colors: ``K`` RGB colours; empty derives them from the names.
        link_colors: one RGB colour per skeleton link; empty derives them.
        parts: named index ranges of sub-parts (COCO-WholeBody: ``body``, ``foot``, ``face``,
            ``lefthand``, ``righthand``); empty for single-part layouts.

    Attributes (derived):
        flip_pairs: ``(left, right)`` index pairs, each unordered pair once, ordered by the
            first index.
        flip_indices: ``K`` permutation: channel ``i`` of a flipped image holds keypoint
            ``flip_indices[i]``.
        lower_body_ids: every keypoint that is not upper.
        oks_sigmas: float64 copy of the sigmas exactly as given (used by OKS evaluation).
    """

    name: str
    keypoint_names: tuple[str, ...]
    swap_names: tuple[str, ...]
    sigmas: np.ndarray
    skeleton: tuple[tuple[int, int], ...]
    upper_body_ids: tuple[int, ...]
    joint_weights: np.ndarray | None = None
    keypoint_colors: tuple[RGB, ...] = ()
    link_colors: tuple[RGB, ...] = ()
    parts: Mapping[str, range] = field(default_factory=dict)
    flip_pairs: tuple[tuple[int, int], ...] = field(init=False)
    flip_indices: tuple[int, ...] = field(init=False)
    lower_body_ids: tuple[int, ...] = field(init=False)
    oks_sigmas: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        def put(attr: str, value: Any) -> None:
            object.__setattr__(self, attr, value)

        where = f"dataset meta {self.name!r}"
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(
                f"dataset meta: field 'name' must be a non-empty string, got {self.name!r}")
        names = tuple(str(n) for n in self.keypoint_names)
        if not names:
            raise ValueError(f"{where}: field 'keypoint_names' is empty")
        seen: set[str] = set()
        for i, n in enumerate(names):
            if not n:
                raise ValueError(f"{where}: field 'keypoint_names' entry {i} is an empty name")
            if n in seen:
                raise ValueError(f"{where}: field 'keypoint_names' has the duplicate name {n!r}")
            seen.add(n)
        num = len(names)
        put("keypoint_names", names)
        index_of = {n: i for i, n in enumerate(names)}

        # Swap partners -> flip permutation and pairs.
        swaps = tuple("" if s is None else str(s) for s in self.swap_names)
        if len(swaps) != num:
            raise ValueError(
                f"{where}: field 'swap_names' has {len(swaps)} entries for {num} keypoints")
        flip = list(range(num))
        for i, s in enumerate(swaps):
            if s in ("", names[i]):
                continue
            if s not in index_of:
                raise ValueError(
                    f"{where}: field 'swap' of keypoint {names[i]!r} names {s!r}, "
                    f"which is not a keypoint")
            flip[i] = index_of[s]
        for i, j in enumerate(flip):
            if flip[j] != i:
                raise ValueError(
                    f"{where}: field 'swap' is not mutual: {names[i]!r} swaps with {names[j]!r} "
                    f"but {names[j]!r} swaps with {names[flip[j]]!r}")
        put("swap_names", tuple("" if flip[i] == i else names[flip[i]] for i in range(num)))
        put("flip_indices", tuple(flip))
        put("flip_pairs", tuple((i, j) for i, j in enumerate(flip) if i < j))

        # Sigmas: keep the exact values in float64 for evaluation and a float32 array.
        try:
            sig64 = np.array(self.sigmas, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}: field 'sigmas' is not a list of numbers ({exc})") from None
        if sig64.shape[0] != num:
            raise ValueError(
                f"{where}: field 'sigmas' has {sig64.shape[0]} values for {num} keypoints")
        if not np.all(np.isfinite(sig64)) or np.any(sig64 <= 0):
            raise ValueError(f"{where}: field 'sigmas' must hold finite positive numbers")
        put("oks_sigmas", _readonly(sig64))
        put("sigmas", _readonly(sig64.astype(np.float32)))

        # Skeleton.
        links = []
        for li, link in enumerate(self.skeleton):
            pair = tuple(link)
            if len(pair) != 2:
                raise ValueError(f"{where}: field 'skeleton' link {li} is not a pair: {link!r}")
            a, b = (_as_index(v, num, where, f"skeleton link {li}") for v in pair)
            links.append((a, b))
        put("skeleton", tuple(links))

        # Upper / lower split.
        upper = sorted({_as_index(v, num, where, "upper_body_ids") for v in self.upper_body_ids})
        put("upper_body_ids", tuple(upper))
        put("lower_body_ids", tuple(i for i in range(num) if i not in set(upper)))

        # Joint weights.
        if self.joint_weights is None:
            weights = np.ones(num, dtype=np.float32)
        else:
            try:
                weights = np.array(self.joint_weights, dtype=np.float32).reshape(-1)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{where}: field 'joint_weights' is not numeric ({exc})") from None
            if weights.shape[0] != num:
                raise ValueError(f"{where}: field 'joint_weights' has {weights.shape[0]} values "
                                 f"for {num} keypoints")
        put("joint_weights", _readonly(weights))

        # Colours.
        kcolors = tuple(self.keypoint_colors) or tuple(_keypoint_color(n) for n in names)
        if len(kcolors) != num:
            raise ValueError(
                f"{where}: field 'keypoint_colors' has {len(kcolors)} entries for {num} keypoints")
        put("keypoint_colors", tuple(_as_rgb(c, where, "keypoint_colors") for c in kcolors))
        lcolors = tuple(self.link_colors) or tuple(
            _link_color(names[a], names[b]) for a, b in self.skeleton)
        if len(lcolors) != len(self.skeleton):
            raise ValueError(
                f"{where}: field 'link_colors' has {len(lcolors)} entries for "
                f"{len(self.skeleton)} skeleton links")
        put("link_colors", tuple(_as_rgb(c, where, "link_colors") for c in lcolors))

        # Parts.
        parts: dict[str, range] = {}
        for part, rng in dict(self.parts).items():
            rng = range(rng.start, rng.stop) if isinstance(rng, range) else range(*rng)
            if rng.start < 0 or rng.stop > num or len(rng) == 0:
                raise ValueError(f"{where}: field 'parts' entry {part!r} = {rng} is out of range")
            parts[str(part)] = rng
        put("parts", MappingProxyType(parts))

    @property
    def num_keypoints(self) -> int:
        """Number of keypoints ``K``."""
        return len(self.keypoint_names)

    def index(self, keypoint_name: str) -> int:
        """Channel index of a keypoint name (raises ``ValueError`` listing the names)."""
        try:
            return self.keypoint_names.index(keypoint_name)
        except ValueError:
            raise ValueError(
                f"dataset {self.name!r} has no keypoint {keypoint_name!r}; "
                f"known: {', '.join(self.keypoint_names)}") from None

    def __repr__(self) -> str:
        return (f"DatasetMeta(name={self.name!r}, num_keypoints={self.num_keypoints}, "
                f"flip_pairs={len(self.flip_pairs)}, links={len(self.skeleton)})")


def _as_index(value: Any, num: int, where: str, what: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{where}: field '{what}' holds {value!r}, expected a keypoint index")
    if not 0 <= int(value) < num:
        raise ValueError(f"{where}: field '{what}' index {value} is out of range 0..{num - 1}")
    return int(value)


def _as_rgb(value: Any, where: str, what: str) -> RGB:
    try:
        rgb = tuple(int(c) for c in value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: field '{what}' entry {value!r} is not an RGB triple") from None
    if len(rgb) != 3 or not all(0 <= c <= 255 for c in rgb):
        raise ValueError(f"{where}: field '{what}' entry {value!r} is not an RGB triple in 0..255")
    return rgb  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------
# Name rules: mirror partners, sides, colours
# --------------------------------------------------------------------------------------------

_SIDE_SWAP = {"left": "right", "right": "left", "Left": "Right", "Right": "Left",
              "L": "R", "R": "L", "l": "r", "r": "l"}


def mirror_keypoint_name(name: str) -> str:
    """Horizontal-flip partner of a keypoint name by the left/right naming rule.

    The first ``_``-separated token decides: ``left``/``right`` (any case as written) and the
    single letters ``L``/``R`` swap (``left_eye`` -> ``right_eye``, ``L_F_Paw`` -> ``R_F_Paw``).
    Other names map to themselves.

    Args:
        name: keypoint name.

    Returns:
        The partner name (``name`` itself for a centre keypoint).
    """
    head, sep, rest = name.partition("_")
    if sep and head in _SIDE_SWAP:
        return _SIDE_SWAP[head] + sep + rest
    return name


def _side(name: str) -> str:
    head = name.partition("_")[0].lower()
    if head in ("left", "l"):
        return "left"
    if head in ("right", "r"):
        return "right"
    return "center"


def _finger(name: str) -> str | None:
    for finger in _FINGER_COLORS:
        if finger in name.lower():
            return finger
    return None


def _keypoint_color(name: str) -> RGB:
    if name.startswith("face-"):
        return _FACE_COLOR
    finger = _finger(name)
    if finger is not None:
        return _FINGER_COLORS[finger]
    side = _side(name)
    return _LEFT_COLOR if side == "left" else _RIGHT_COLOR if side == "right" else _CENTER_COLOR


def _link_color(a: str, b: str) -> RGB:
    finger = _finger(b) or _finger(a)
    if finger is not None:
        return _FINGER_COLORS[finger]
    sa, sb = _side(a), _side(b)
    if sa == sb == "left":
        return _LEFT_COLOR
    if sa == sb == "right":
        return _RIGHT_COLOR
    return _CENTER_COLOR


def _body_joint_weight(name: str) -> float:
    low = name.lower()
    if any(k in low for k in ("wrist", "ankle", "paw")):
        return 1.5
    if any(k in low for k in ("elbow", "knee")):
        return 1.2
    return 1.0


# --------------------------------------------------------------------------------------------
# Built-in tables (ref §4.1-§4.9)
# --------------------------------------------------------------------------------------------


def _from_table(
    name: str,
    keypoints: Sequence[tuple[str, str]],
    sigmas: Sequence[float],
    links: Iterable[tuple[str, str]],
    *,
    swap_overrides: Mapping[str, str] | None = None,
    weighted: bool = True,
    parts: Mapping[str, range] | None = None,
) -> DatasetMeta:
    """Build a meta from ``(name, type)`` rows; swap partners come from the naming rule."""
    names = [k for k, _ in keypoints]
    overrides = dict(swap_overrides or {})
    swaps = [overrides.get(k, mirror_keypoint_name(k)) for k in names]
    index = {k: i for i, k in enumerate(names)}
    return DatasetMeta(
        name=name,
        keypoint_names=tuple(names),
        swap_names=tuple(swaps),
        sigmas=np.array(sigmas, dtype=np.float64),
        skeleton=tuple((index[a], index[b]) for a, b in links),
        upper_body_ids=tuple(i for i, (_, t) in enumerate(keypoints) if t == _UPPER),
        joint_weights=np.array(
            [_body_joint_weight(k) if weighted else 1.0 for k in names], dtype=np.float32),
        parts=parts or {},
    )


_U, _L, _N = _UPPER, _LOWER, ""

_COCO_KEYPOINTS = (
    ("nose", _U), ("left_eye", _U), ("right_eye", _U), ("left_ear", _U), ("right_ear", _U),
    ("left_shoulder", _U), ("right_shoulder", _U), ("left_elbow", _U), ("right_elbow", _U),
    ("left_wrist", _U), ("right_wrist", _U), ("left_hip", _L), ("right_hip", _L),
    ("left_knee", _L), ("right_knee", _L), ("left_ankle", _L), ("right_ankle", _L),
)
_COCO_SIGMAS = (0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062,
                0.107, 0.107, 0.087, 0.087, 0.089, 0.089)
_COCO_LINKS = (
    ("left_ankle", "left_knee"), ("left_knee", "left_hip"), ("right_ankle", "right_knee"),
    ("right_knee", "right_hip"), ("left_hip", "right_hip"), ("left_shoulder", "left_hip"),
    ("right_shoulder", "right_hip"), ("left_shoulder", "right_shoulder"),
    ("left_shoulder", "left_elbow"), ("right_shoulder", "right_elbow"),
    ("left_elbow", "left_wrist"), ("right_elbow", "right_wrist"), ("left_eye", "right_eye"),
    ("nose", "left_eye"), ("nose", "right_eye"), ("left_eye", "left_ear"),
    ("right_eye", "right_ear"), ("left_ear", "left_shoulder"), ("right_ear", "right_shoulder"),
)

_AIC_KEYPOINTS = (
    ("right_shoulder", _U), ("right_elbow", _U), ("right_wrist", _U), ("left_shoulder", _U),
    ("left_elbow", _U), ("left_wrist", _U), ("right_hip", _L), ("right_knee", _L),
    ("right_ankle", _L), ("left_hip", _L), ("left_knee", _L), ("left_ankle", _L),
    ("head_top", _U), ("neck", _U),
)
_AIC_SIGMAS = (0.01388152, 0.01515228, 0.01057665, 0.01417709, 0.01497891, 0.01402144,
               0.03909642, 0.03686941, 0.01981803, 0.03843971, 0.03412318, 0.02415081,
               0.01291456, 0.01236173)
_AIC_LINKS = (
    ("right_wrist", "right_elbow"), ("right_elbow", "right_shoulder"), ("right_shoulder", "neck"),
    ("neck", "left_shoulder"), ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"),
    ("right_ankle", "right_knee"), ("right_knee", "right_hip"), ("right_hip", "left_hip"),
    ("left_hip", "left_knee"), ("left_knee", "left_ankle"), ("head_top", "neck"),
    ("right_shoulder", "right_hip"), ("left_shoulder", "left_hip"),
)

_MPII_KEYPOINTS = (
    ("right_ankle", _L), ("right_knee", _L), ("right_hip", _L), ("left_hip", _L),
    ("left_knee", _L), ("left_ankle", _L), ("pelvis", _L), ("thorax", _U), ("upper_neck", _U),
    ("head_top", _U), ("right_wrist", _U), ("right_elbow", _U), ("right_shoulder", _U),
    ("left_shoulder", _U), ("left_elbow", _U), ("left_wrist", _U),
)
# Carried by the official file, unused by PCKh.
_MPII_SIGMAS = (0.089, 0.083, 0.107, 0.107, 0.083, 0.089, 0.026, 0.026, 0.026, 0.026, 0.062,
                0.072, 0.179, 0.179, 0.072, 0.062)
_MPII_LINKS = (
    ("right_ankle", "right_knee"), ("right_knee", "right_hip"), ("right_hip", "pelvis"),
    ("pelvis", "left_hip"), ("left_hip", "left_knee"), ("left_knee", "left_ankle"),
    ("pelvis", "thorax"), ("thorax", "upper_neck"), ("upper_neck", "head_top"),
    ("upper_neck", "right_shoulder"), ("right_shoulder", "right_elbow"),
    ("right_elbow", "right_wrist"), ("upper_neck", "left_shoulder"),
    ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"),
)

_CROWDPOSE_KEYPOINTS = (
    ("left_shoulder", _U), ("right_shoulder", _U), ("left_elbow", _U), ("right_elbow", _U),
    ("left_wrist", _U), ("right_wrist", _U), ("left_hip", _L), ("right_hip", _L),
    ("left_knee", _L), ("right_knee", _L), ("left_ankle", _L), ("right_ankle", _L),
    ("top_head", _U), ("neck", _U),
)
_CROWDPOSE_SIGMAS = (0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107, 0.087, 0.087,
                     0.089, 0.089, 0.079, 0.079)
_CROWDPOSE_LINKS = (
    ("left_ankle", "left_knee"), ("left_knee", "left_hip"), ("right_ankle", "right_knee"),
    ("right_knee", "right_hip"), ("left_hip", "right_hip"), ("left_shoulder", "left_hip"),
    ("right_shoulder", "right_hip"), ("left_shoulder", "right_shoulder"),
    ("left_shoulder", "left_elbow"), ("right_shoulder", "right_elbow"),
    ("left_elbow", "left_wrist"), ("right_elbow", "right_wrist"), ("top_head", "neck"),
    ("right_shoulder", "neck"), ("left_shoulder", "neck"),
)

# NOTE: R_F_Paw is typed "lower" while L_F_Paw is "upper" in the official file (ref §4.9);
# kept as is because it changes which joints the half-body transform picks.
_AP10K_KEYPOINTS = (
    ("L_Eye", _U), ("R_Eye", _U), ("Nose", _U), ("Neck", _U), ("Root of tail", _L),
    ("L_Shoulder", _U), ("L_Elbow", _U), ("L_F_Paw", _U), ("R_Shoulder", _U), ("R_Elbow", _U),
    ("R_F_Paw", _L), ("L_Hip", _L), ("L_Knee", _L), ("L_B_Paw", _L), ("R_Hip", _L),
    ("R_Knee", _L), ("R_B_Paw", _L),
)
_AP10K_SIGMAS = (0.025, 0.025, 0.026, 0.035, 0.035, 0.079, 0.072, 0.062, 0.079, 0.072, 0.062,
                 0.107, 0.087, 0.089, 0.107, 0.087, 0.089)
_AP10K_LINKS = (
    ("L_Eye", "R_Eye"), ("L_Eye", "Nose"), ("R_Eye", "Nose"), ("Nose", "Neck"),
    ("Neck", "Root of tail"), ("Neck", "L_Shoulder"), ("L_Shoulder", "L_Elbow"),
    ("L_Elbow", "L_F_Paw"), ("Neck", "R_Shoulder"), ("R_Shoulder", "R_Elbow"),
    ("R_Elbow", "R_F_Paw"), ("Root of tail", "L_Hip"), ("L_Hip", "L_Knee"),
    ("L_Knee", "L_B_Paw"), ("Root of tail", "R_Hip"), ("R_Hip", "R_Knee"),
    ("R_Knee", "R_B_Paw"),
)

# ---- COCO-WholeBody (133) -------------------------------------------------------------------

_FOOT_NAMES = ("big_toe", "small_toe", "heel")
_FOOT_SIGMAS = (0.068, 0.066, 0.066, 0.092, 0.094, 0.094)
_FACE_SIGMAS = (
    0.042, 0.043, 0.044, 0.043, 0.040, 0.035, 0.031, 0.025, 0.020, 0.023, 0.029, 0.032, 0.037,
    0.038, 0.043, 0.041, 0.045, 0.013, 0.012, 0.011, 0.011, 0.012, 0.012, 0.011, 0.011, 0.013,
    0.015, 0.009, 0.007, 0.007, 0.007, 0.012, 0.009, 0.008, 0.016, 0.010, 0.017, 0.011, 0.009,
    0.011, 0.009, 0.007, 0.013, 0.008, 0.011, 0.012, 0.010, 0.034, 0.008, 0.008, 0.009, 0.008,
    0.008, 0.007, 0.010, 0.008, 0.009, 0.009, 0.009, 0.007, 0.007, 0.008, 0.011, 0.008, 0.008,
    0.008, 0.010, 0.008,
)
_HAND_SIGMAS = (0.029, 0.022, 0.035, 0.037, 0.047, 0.026, 0.025, 0.024, 0.035, 0.018, 0.024,
                0.022, 0.026, 0.017, 0.021, 0.021, 0.032, 0.020, 0.019, 0.022, 0.031)
_FINGERS = ("thumb", "forefinger", "middle_finger", "ring_finger", "pinky_finger")
# Hand layout of COCO-WholeBody: root, then each finger from base (1) to tip (4).
_WB_HAND_NAMES = ("hand_root",) + tuple(f"{f}{j}" for f in _FINGERS for j in range(1, 5))

# 68-point iBUG face mirror, as groups that mirror onto themselves: within a (first, last) range
# point i swaps with first + last - i; the eye corners pair up explicitly.
_FACE_MIRROR_RANGES = ((0, 16), (17, 26), (31, 35), (48, 54), (55, 59), (60, 64), (65, 67))
_FACE_EYE_PAIRS = ((36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46))


def _face_swap_names() -> dict[str, str]:
    swaps: dict[str, str] = {}
    for first, last in _FACE_MIRROR_RANGES:
        for i in range(first, last + 1):
            swaps[f"face-{i}"] = f"face-{first + last - i}"
    for a, b in _FACE_EYE_PAIRS:
        swaps[f"face-{a}"], swaps[f"face-{b}"] = f"face-{b}", f"face-{a}"
    return swaps


def _hand_links(prefix: str) -> list[tuple[str, str]]:
    root = f"{prefix}hand_root"
    links = []
    for finger in _FINGERS:
        chain = [root] + [f"{prefix}{finger}{j}" for j in range(1, 5)]
        links += list(zip(chain[:-1], chain[1:]))
    return links


def _build_wholebody() -> DatasetMeta:
    rows: list[tuple[str, str]] = list(_COCO_KEYPOINTS)
    rows += [(f"{side}_{n}", _L) for side in ("left", "right") for n in _FOOT_NAMES]
    rows += [(f"face-{i}", _N) for i in range(68)]
    rows += [(f"left_{n}", _N) for n in _WB_HAND_NAMES]
    rows += [(f"right_{n}", _N) for n in _WB_HAND_NAMES]
    sigmas = _COCO_SIGMAS + _FOOT_SIGMAS + _FACE_SIGMAS + _HAND_SIGMAS + _HAND_SIGMAS
    feet = [(f"{side}_ankle", f"{side}_{n}") for side in ("left", "right") for n in _FOOT_NAMES]
    links = list(_COCO_LINKS) + feet + _hand_links("left_") + _hand_links("right_")
    parts = {"body": range(0, 17), "foot": range(17, 23), "face": range(23, 91),
             "lefthand": range(91, 112), "righthand": range(112, 133)}
    return _from_table("wholebody", rows, sigmas, links, swap_overrides=_face_swap_names(),
                       weighted=False, parts=parts)


# ---- InterHand2.6M (21, one hand) -----------------------------------------------------------

# Each finger from tip (4) to base (1), then the wrist (ref §4.9).
_INTERHAND_NAMES = tuple(f"{f}{j}" for f in _FINGERS for j in range(4, 0, -1)) + ("wrist",)


def _build_interhand() -> DatasetMeta:
    # The official config defines no OKS sigmas for InterHand2.6M (its metrics are PCK / AUC /
    # EPE). So that OKS-based tools (OKS-NMS) still work, borrow the COCO-WholeBody hand sigmas
    # by keypoint name (wrist = hand_root). Not a benchmark number.
    wb_index = {n: i for i, n in enumerate(_WB_HAND_NAMES)}
    sigmas = [_HAND_SIGMAS[wb_index["hand_root" if n == "wrist" else n]] for n in _INTERHAND_NAMES]
    links = []
    for finger in _FINGERS:
        chain = ["wrist"] + [f"{finger}{j}" for j in range(1, 5)]
        links += list(zip(chain[:-1], chain[1:]))
    rows = [(n, _N) for n in _INTERHAND_NAMES]
    # A flipped right hand is simply treated as a hand: no flip pairs, no upper/lower split.
    return _from_table("interhand2d", rows, sigmas, links, weighted=False)


def _build_registry() -> dict[str, DatasetMeta]:
    coco = _from_table("coco", _COCO_KEYPOINTS, _COCO_SIGMAS, _COCO_LINKS)
    ap10k = _from_table("ap10k", _AP10K_KEYPOINTS, _AP10K_SIGMAS, _AP10K_LINKS)
    wholebody = _build_wholebody()
    registry = {
        "coco": coco,
        "aic": _from_table("aic", _AIC_KEYPOINTS, _AIC_SIGMAS, _AIC_LINKS),
        "mpii": _from_table("mpii", _MPII_KEYPOINTS, _MPII_SIGMAS, _MPII_LINKS),
        "crowdpose": _from_table("crowdpose", _CROWDPOSE_KEYPOINTS, _CROWDPOSE_SIGMAS,
                                 _CROWDPOSE_LINKS),
        "ochuman": _from_table("ochuman", _COCO_KEYPOINTS, _COCO_SIGMAS, _COCO_LINKS),
        "ap10k": ap10k,
        "apt36k": _from_table("apt36k", _AP10K_KEYPOINTS, _AP10K_SIGMAS, _AP10K_LINKS),
        "wholebody": wholebody,
        "interhand2d": _build_interhand(),
    }
    return registry


#: Canonical dataset names, in a stable order.
DATASET_NAMES: tuple[str, ...] = ("coco", "aic", "mpii", "crowdpose", "ochuman", "ap10k",
                                  "apt36k", "wholebody", "interhand2d")

_ALIASES = {"coco_wholebody": "wholebody", "cocowholebody": "wholebody",
            "interhand": "interhand2d", "interhand2.6m": "interhand2d"}

#: Registry of built-in layouts: canonical names plus the aliases ``coco_wholebody``,
#: ``interhand`` and ``interhand2.6m`` (aliases point at the same object).
DATASET_META: dict[str, DatasetMeta] = _build_registry()
for _alias, _target in _ALIASES.items():
    DATASET_META[_alias] = DATASET_META[_target]
del _alias, _target


def get_dataset_meta(name: str) -> DatasetMeta:
    """Look up a built-in dataset layout by name (case-insensitive; aliases accepted).

    Args:
        name: e.g. ``"coco"``, ``"wholebody"`` / ``"coco_wholebody"``, ``"interhand2d"``.

    Returns:
        The shared, immutable :class:`DatasetMeta`.

    Raises:
        ValueError: unknown name; the message lists the known names.
    """
    key = str(name).strip().lower().replace("-", "_")
    if key in DATASET_META:
        return DATASET_META[key]
    raise ValueError(
        f"unknown dataset {name!r}; known datasets: {', '.join(DATASET_NAMES)} "
        f"(aliases: {', '.join(sorted(_ALIASES))}). For your own COCO-format data, describe the "
        f"keypoints in a YAML/JSON file and load it with load_dataset_meta(path)")


# --------------------------------------------------------------------------------------------
# Training-recipe facts of each dataset
# --------------------------------------------------------------------------------------------

#: The augmentation settings of the official training pipeline that differ from the COCO
#: recipe, per dataset: what an experiment config's dataset entry gets unless it sets the key
#: itself (the generic values are those of `vitpose.training.config.DatasetConfig`'s
#: documentation: half-body on above 8 joints, rotation 40, scale 0.5, centre jitter 0.3,
#: box padding 1.25).
#:
#: * MPII: the crop centres and scales come from the annotations (ref §4.3): no centre jitter,
#:   and the official MPII pipeline has no half-body transform.
#: * CrowdPose: half-body needs more than 6 visible joints (of 14).
#: * InterHand2.6M: no half-body, rotation 90, scale 0.3, boxes padded x1.5 (ref §4.8).
TRAIN_DEFAULTS: Mapping[str, Mapping[str, Any]] = MappingProxyType({
    "mpii": MappingProxyType({"half_body": False, "center_jitter_prob": 0.0}),
    "crowdpose": MappingProxyType({"num_joints_half_body": 6}),
    "interhand2d": MappingProxyType({"half_body": False, "rot_factor": 90.0,
                                     "scale_factor": 0.3, "box_padding": 1.5}),
})


def dataset_train_defaults(name: str) -> Mapping[str, Any]:
    """The training settings of dataset ``name`` that differ from the COCO recipe (see
    :data:`TRAIN_DEFAULTS`); empty for the others and for custom metadata files."""
    key = str(name).strip().lower().replace("-", "_")
    key = _ALIASES.get(key, key)
    return TRAIN_DEFAULTS.get(key, MappingProxyType({}))


# --------------------------------------------------------------------------------------------
# Custom metadata files
# --------------------------------------------------------------------------------------------

_KNOWN_FIELDS = {"name", "keypoints", "keypoint_names", "flip_pairs", "sigmas", "skeleton",
                 "upper_body_ids", "joint_weights", "keypoint_colors", "link_colors", "parts"}


def dataset_meta_from_dict(data: Mapping[str, Any], *, source: str = "dataset meta") -> DatasetMeta:
    """Build a :class:`DatasetMeta` from a plain mapping (the parsed custom meta file).

    Accepted fields (see ``vitpose/configs/datasets/custom_example.yaml``):

    * ``name`` (str, required);
    * ``keypoints`` (required): a list of keypoint names, or of mappings with ``name`` and
      optional ``swap`` (partner name) and ``type`` (``upper`` / ``lower``);
    * ``flip_pairs`` (optional): pairs of names or indices, an alternative to per-keypoint
      ``swap`` (give one or the other);
    * ``sigmas`` (required): ``K`` OKS sigmas;
    * ``skeleton`` (optional): links as pairs of names or indices;
    * ``upper_body_ids`` (optional): names or indices, an alternative to per-keypoint ``type``;
    * ``joint_weights``, ``keypoint_colors``, ``link_colors`` (optional);
    * ``parts`` (optional): ``{part: [start, stop)}`` index ranges.

    Args:
        data: the mapping.
        source: text naming where ``data`` came from, used in error messages.

    Returns:
        The validated metadata.

    Raises:
        ValueError: a missing or invalid field; the message names ``source`` and the field.
    """
    if not isinstance(data, Mapping):
        raise ValueError(
            f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    unknown = sorted(set(data) - _KNOWN_FIELDS)
    if unknown:
        raise ValueError(f"{source}: unknown field(s) {', '.join(map(repr, unknown))}; "
                         f"allowed: {', '.join(sorted(_KNOWN_FIELDS))}")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{source}: field 'name' is required and must be a non-empty string")

    kp_field = "keypoints" if "keypoints" in data else "keypoint_names"
    rows = data.get(kp_field)
    if not isinstance(rows, (list, tuple)) or not rows:
        raise ValueError(f"{source}: field 'keypoints' is required: a non-empty list of names "
                         f"or of {{name, swap, type}} mappings")
    names: list[str] = []
    swaps: list[str] = []
    types: list[str] = []
    for i, row in enumerate(rows):
        if isinstance(row, str):
            row = {"name": row}
        if not isinstance(row, Mapping):
            raise ValueError(f"{source}: field 'keypoints' entry {i} must be a name or a mapping")
        extra = sorted(set(row) - {"name", "swap", "type", "color"})
        if extra:
            raise ValueError(f"{source}: field 'keypoints' entry {i} has unknown key(s) {extra}")
        kname = row.get("name")
        if not isinstance(kname, str) or not kname:
            raise ValueError(f"{source}: field 'keypoints' entry {i} needs a string 'name'")
        swap = row.get("swap") or ""
        if not isinstance(swap, str):
            raise ValueError(f"{source}: field 'keypoints' entry {i} ({kname!r}): 'swap' must be "
                             f"a keypoint name")
        ktype = row.get("type") or ""
        if ktype not in ("", _UPPER, _LOWER):
            raise ValueError(f"{source}: field 'keypoints' entry {i} ({kname!r}): 'type' must be "
                             f"'upper' or 'lower', got {ktype!r}")
        if kname in names:
            raise ValueError(f"{source}: field 'keypoints' entry {i} repeats the name {kname!r}")
        names.append(kname)
        swaps.append(swap)
        types.append(ktype)
    num = len(names)
    where = f"{source}"

    def to_index(value: Any, what: str) -> int:
        if isinstance(value, str):
            if value not in names:
                raise ValueError(
                    f"{where}: field '{what}' names {value!r}, which is not a keypoint")
            return names.index(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(
                f"{where}: field '{what}' holds {value!r}; use keypoint names or indices")
        if not 0 <= value < num:
            raise ValueError(f"{where}: field '{what}' index {value} is out of range 0..{num - 1}")
        return value

    def pairs(what: str) -> list[tuple[int, int]]:
        raw = data.get(what) or []
        if not isinstance(raw, (list, tuple)):
            raise ValueError(f"{where}: field '{what}' must be a list of pairs")
        out = []
        for j, pair in enumerate(raw):
            if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                raise ValueError(f"{where}: field '{what}' entry {j} is not a pair: {pair!r}")
            out.append((to_index(pair[0], what), to_index(pair[1], what)))
        return out

    if "flip_pairs" in data:
        if any(swaps):
            raise ValueError(f"{where}: give either per-keypoint 'swap' or field 'flip_pairs', "
                             f"not both")
        for a, b in pairs("flip_pairs"):
            for i, j in ((a, b), (b, a)):
                if swaps[i] and swaps[i] != names[j]:
                    raise ValueError(f"{where}: field 'flip_pairs' pairs {names[i]!r} twice")
                swaps[i] = names[j]

    if "sigmas" not in data:
        raise ValueError(
            f"{where}: field 'sigmas' is required ({num} OKS sigmas, one per keypoint)")
    sigmas = data["sigmas"]
    if not isinstance(sigmas, (list, tuple)) or not all(
            isinstance(s, (int, float)) and not isinstance(s, bool) for s in sigmas):
        raise ValueError(f"{where}: field 'sigmas' must be a list of {num} numbers")

    if "upper_body_ids" in data:
        if any(types):
            raise ValueError(f"{where}: give either per-keypoint 'type' or field 'upper_body_ids', "
                             f"not both")
        raw_upper = data["upper_body_ids"] or []
        if not isinstance(raw_upper, (list, tuple)):
            raise ValueError(f"{where}: field 'upper_body_ids' must be a list of names or indices")
        upper = [to_index(v, "upper_body_ids") for v in raw_upper]
    else:
        upper = [i for i, t in enumerate(types) if t == _UPPER]

    colors = data.get("keypoint_colors")
    if colors is None and any("color" in r for r in rows if isinstance(r, Mapping)):
        colors = [r.get("color") or _keypoint_color(n) if isinstance(r, Mapping)
                  else _keypoint_color(n) for r, n in zip(rows, names)]
    parts_raw = data.get("parts") or {}
    if not isinstance(parts_raw, Mapping):
        raise ValueError(f"{where}: field 'parts' must map part names to [start, stop) ranges")
    parts = {}
    for part, rng in parts_raw.items():
        if not isinstance(rng, (list, tuple)) or len(rng) != 2:
            raise ValueError(f"{where}: field 'parts' entry {part!r} must be [start, stop)")
        parts[part] = range(int(rng[0]), int(rng[1]))

    try:
        return DatasetMeta(
            name=name.strip(),
            keypoint_names=tuple(names),
            swap_names=tuple(swaps),
            sigmas=np.array(sigmas, dtype=np.float64),
            skeleton=tuple(pairs("skeleton")),
            upper_body_ids=tuple(upper),
            joint_weights=data.get("joint_weights"),
            keypoint_colors=tuple(colors or ()),
            link_colors=tuple(data.get("link_colors") or ()),
            parts=parts,
        )
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from None


def load_dataset_meta(path: str | Path) -> DatasetMeta:
    """Read a custom dataset layout from a YAML (``.yaml``/``.yml``) or JSON file.

    See :func:`dataset_meta_from_dict` for the fields and
    ``vitpose/configs/datasets/custom_example.yaml`` for an example.

    Args:
        path: the file.

    Returns:
        The validated metadata.

    Raises:
        ValueError: unreadable file, bad syntax, or an invalid field (the message names the file
            and the field).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read dataset meta file {path}: {exc.strerror or exc}") from None
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:  # yaml.YAMLError / json.JSONDecodeError
        raise ValueError(f"dataset meta file {path} is not valid "
                         f"{'JSON' if path.suffix.lower() == '.json' else 'YAML'}: {exc}") from None
    return dataset_meta_from_dict(data, source=f"dataset meta file {path}")
