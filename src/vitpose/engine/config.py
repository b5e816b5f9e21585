"""Typed experiment configs: dataclasses, YAML files with ``_base_`` inheritance, overrides.

An experiment is an :class:`ExperimentConfig` made of nested dataclasses whose defaults are the
official single-task COCO recipe (ViTPose paper, https://arxiv.org/abs/2204.12484; numbers in
``docs`` ref §2). A YAML file lists only what differs from its base:

.. code-block:: yaml

    _base_: ../_base_/coco_256x192.yaml     # a path relative to this file, or a list of them
    model:
      variant: vitpose-l
      drop_path_rate: 0.5
    optim:
      layer_decay: 0.8

Resolution order: dataclass defaults, then each ``_base_`` (recursively, left to right), then
the file itself, then ``--set a.b.c=value`` overrides. Mappings merge key by key; lists are
replaced as a whole. Unknown keys and values of the wrong type raise
:class:`vitpose.errors.ConfigError` naming the key and the allowed keys; nothing is ever added
silently. Override values are read with YAML scalar rules (``1e-3`` is a float, ``[170, 200]``
a list, ``null`` is None); list items are addressed by index (``data.val.0.det_file=...``).

Packaged configs live in ``vitpose/configs/`` and are found by name relative to this package
(``load_config("coco/vitpose_b_coco_256x192")``); ``list_configs()`` names them.
Data paths in dataset entries are relative to ``data.root`` (``DataConfig.resolve``).
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import re
import types
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import yaml

from vitpose.errors import ConfigError

__all__ = [
    "ModelConfig",
    "DatasetConfig",
    "DataConfig",
    "OptimConfig",
    "ScheduleConfig",
    "TestConfig",
    "RuntimeConfig",
    "ExperimentConfig",
    "CONFIG_DIR",
    "list_configs",
    "find_config",
    "load_config",
    "load_config_dict",
    "config_from_dict",
    "config_to_dict",
    "apply_overrides",
    "parse_override",
    "validate_config",
    "dump_config",
]

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
"""Folder of the packaged YAML configs."""

BASE_KEY = "_base_"


# --------------------------------------------------------------------------------------------
# Dataclasses
# --------------------------------------------------------------------------------------------


@dataclass
class ModelConfig:
    """Which network to build and where its starting weights come from.

    Attributes:
        variant: architecture name (``vitpose-s/b/l/h``, ``vitpose-{s,b,l,h}-simple``,
            ``vitpose-plus-{s,b,l,h}``, ``vitpose-{b,l,h}-multi``).
        weights: full checkpoint (file path or released-weights name) loaded before training or
            evaluation; None for none.
        pretrained: MAE backbone checkpoint used to initialise the backbone for training.
        drop_path_rate: stochastic-depth rate of the last block (linear from 0); None keeps the
            variant's default.
        heads: dataset names of the keypoint heads in order (first = ``keypoint_head``, then
            ``associate_keypoint_heads.0``, ...); None keeps the variant's heads.
        embed_dim: override of the variant's width (tiny test models).
        depth: override of the number of blocks.
        num_heads: override of the number of attention heads.
        img_size: override of the input size ``(H, W)``; must equal ``data.image_size``.
        num_keypoints: override of the main head's keypoint count.
    """

    variant: str = "vitpose-b"
    weights: str | None = None
    pretrained: str | None = None
    drop_path_rate: float | None = None
    heads: list[str] | None = None
    embed_dim: int | None = None
    depth: int | None = None
    num_heads: int | None = None
    img_size: tuple[int, int] | None = None
    num_keypoints: int | None = None


@dataclass
class DatasetConfig:
    """One annotated dataset, for training or evaluation.

    Attributes:
        name: dataset kind, the key of its keypoint metadata and reader (``coco``, ``aic``,
            ``mpii``, ``crowdpose``, ``ochuman``, ``ap10k``, ``apt36k``, ``wholebody``,
            ``interhand2d``; see ``vitpose.dataset_meta``), or a keypoint-metadata file
            (``.yaml`` / ``.json``) for a custom COCO-format dataset.
        ann_file: annotation file, relative to ``data.root``.
        img_prefix: image folder, relative to ``data.root``.
        det_file: person detections (COCO results format) used when ``use_gt_bbox`` is False.
        use_gt_bbox: crop around ground-truth boxes instead of detections (evaluation).
        det_bbox_thr: detections below this score are dropped.
        use_udp: unbiased data processing (UDP affine and UDP targets) instead of the classic
            affine and MSRA targets.
        dataset_index: the ViTPose+ expert and the head (0 = ``keypoint_head``, j >= 1 =
            ``associate_keypoint_heads.{j-1}``) that this dataset's samples use.
        weight: relative sampling weight when datasets are mixed; 1.0 everywhere reproduces
            the official plain concatenation (every sample equally likely).
        flip: random horizontal flip in training.
        flip_prob: probability of that flip.
        half_body: half-body augmentation in training.
        num_joints_half_body: half-body needs more than this many visible joints.
        prob_half_body: probability of trying the half-body crop.
        rot_factor: rotation std in degrees (clipped at 2x).
        rot_prob: probability of rotating at all.
        scale_factor: scale std (scale factor clipped to 1 +- this).
        center_jitter_prob: probability of the training box-centre jitter (+-20 % of the
            box); 0 for MPII, whose official centres come from the annotations.
        center_jitter: ``per_box`` (official: drawn once per box when the training set is built
            and kept for every epoch) or ``per_iteration`` (drawn anew at every load).
        box_padding: box enlargement after the aspect fix (1.25; 1.5 for InterHand).
        half_body_padding: enlargement of half-body boxes.
        camera_file: InterHand2.6M camera parameters, relative to ``data.root``.
        joint_file: InterHand2.6M 3D joints, relative to ``data.root``.
    """

    name: str
    ann_file: str
    img_prefix: str
    det_file: str | None = None
    use_gt_bbox: bool = True
    det_bbox_thr: float = 0.0
    use_udp: bool = False
    dataset_index: int = 0
    weight: float = 1.0
    flip: bool = True
    flip_prob: float = 0.5
    half_body: bool = True
    num_joints_half_body: int = 8
    prob_half_body: float = 0.3
    rot_factor: float = 40.0
    rot_prob: float = 0.6
    scale_factor: float = 0.5
    center_jitter_prob: float = 0.3
    center_jitter: Literal["per_box", "per_iteration"] = "per_box"
    box_padding: float = 1.25
    half_body_padding: float = 1.5
    camera_file: str | None = None
    joint_file: str | None = None


@dataclass
class DataConfig:
    """Datasets and loading.

    Attributes:
        root: folder that dataset paths are relative to (``--data-root``); laid out like the
            official ``data/`` folder (``coco/annotations/...``, ``coco/val2017/``, ...).
        train: training datasets, mixed when more than one.
        val: evaluation datasets (validation during training and ``vitpose test``).
        image_size: network input ``(H, W)``.
        heatmap_size: heatmap ``(H, W)``.
        sigma: Gaussian target std in heatmap pixels.
        batch_size: training samples per GPU (per process).
        val_batch_size: evaluation samples per GPU.
        workers: data-loading worker processes per GPU.
    """

    root: str = "data"
    train: list[DatasetConfig] = field(default_factory=list)
    val: list[DatasetConfig] = field(default_factory=list)
    image_size: tuple[int, int] = (256, 192)
    heatmap_size: tuple[int, int] = (64, 48)
    sigma: float = 2.0
    batch_size: int = 64
    val_batch_size: int = 32
    workers: int = 4

    def resolve(self, path: str | None) -> Path | None:
        """Return ``path`` joined to ``root`` (absolute paths unchanged; None stays None)."""
        if path is None:
            return None
        candidate = Path(path).expanduser()
        return candidate if candidate.is_absolute() else Path(self.root).expanduser() / candidate


@dataclass
class OptimConfig:
    """AdamW with layer-wise lr decay and global gradient clipping (ref §2.1).

    Attributes:
        lr: base learning rate (the head's; block i gets ``lr * layer_decay**(depth - i)``).
        betas: AdamW betas.
        weight_decay: decay of weight matrices (none on 1-D params, biases and pos_embed).
        layer_decay: per-layer lr ratio; 1.0 turns layer decay off.
        clip_grad: max global L2 norm of the gradients; None for no clipping.
    """

    lr: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.1
    layer_decay: float = 1.0
    clip_grad: float | None = 1.0


@dataclass
class ScheduleConfig:
    """Epoch-based step schedule with linear warm-up over iterations (ref §2.2).

    Attributes:
        epochs: training epochs.
        warmup_iters: iterations of linear warm-up (0 for none).
        warmup_ratio: lr multiplier at iteration 0 of the warm-up.
        steps: epochs (0-based) from which the lr is multiplied by ``gamma`` once more.
        gamma: step multiplier.
    """

    epochs: int = 210
    warmup_iters: int = 500
    warmup_ratio: float = 0.001
    steps: list[int] = field(default_factory=lambda: [170, 200])
    gamma: float = 0.1


@dataclass
class TestConfig:
    """Test-time procedure (ref §2.8, §3, §4).

    The test affine (UDP or classic) is each dataset's ``use_udp``; ``decode`` must agree with
    it, which :func:`validate_config` checks.

    Attributes:
        flip_test: average with the prediction on the flipped crop.
        shift_heatmap: shift the flipped-back heatmap one pixel right. The test path applies
            it exactly when the decoding is not UDP, which is how every official config pairs
            them (``shift_heatmap=True`` with the classic affine, False with UDP); None follows
            the decoder, and a value that contradicts it is rejected, never dropped silently.
        decode: ``udp`` (UDP mapping + DARK refinement), ``default`` (argmax + quarter-pixel
            offset, classic mapping) or ``dark`` (classic mapping + DARK refinement).
        blur_kernel: Gaussian kernel size of the DARK refinement.
        vis_thr: keypoints scoring above this count in the instance rescoring.
        oks_thr: OKS-NMS threshold.
        oks_nms: run OKS-NMS per image.
        dtype: compute dtype of the model: ``float32`` (exact: the official numbers),
            ``bfloat16``, ``float16`` or ``auto`` (bf16 on CPUs with AVX512-BF16/AMX and recent
            GPUs, fp16 on older GPUs; see docs/PERFORMANCE.md).
    """

    flip_test: bool = True
    shift_heatmap: bool | None = None
    decode: Literal["udp", "default", "dark"] = "udp"
    blur_kernel: int = 11
    vis_thr: float = 0.2
    oks_thr: float = 0.9
    oks_nms: bool = True
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = "float32"


@dataclass
class RuntimeConfig:
    """How a run is executed and recorded.

    Attributes:
        seed: random seed (offset by rank in data workers).
        amp: mixed precision: ``none`` (fp32, as official), ``bf16`` or ``fp16``.
        eval_interval: evaluate every this many epochs (0: only at the end).
        save_interval: save a checkpoint every this many epochs.
        log_interval: write a log line every this many iterations.
        work_dir: output folder; None lets the CLI derive one from the config name.
        deterministic: ask PyTorch for deterministic kernels.
        on_bad_sample: ``error`` stops on an unreadable image or annotation, ``skip`` drops it.
        best_metric: metric whose best value is kept as ``best.pth`` (``AP``, ``PCKh``, ``AUC``).
    """

    seed: int = 0
    amp: Literal["none", "bf16", "fp16"] = "none"
    eval_interval: int = 10
    save_interval: int = 10
    log_interval: int = 50
    work_dir: str | None = None
    deterministic: bool = False
    on_bad_sample: Literal["error", "skip"] = "error"
    best_metric: str = "AP"


@dataclass
class ExperimentConfig:
    """A whole experiment: model, data, optimiser, schedule, test procedure and runtime.

    Attributes:
        description: what the config reproduces (README row and its reported numbers).
    """

    description: str = ""
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    test: TestConfig = field(default_factory=TestConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)


# --------------------------------------------------------------------------------------------
# YAML reading (with floats such as 1e-3, which YAML 1.1 would read as strings)
# --------------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """Safe loader whose float rule also accepts ``1e-3`` and ``5E-4``."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:float"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)[eE][-+]?[0-9]+
        |[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


class _Dumper(yaml.SafeDumper):
    """Safe dumper: lists of scalars inline (``[256, 192]``), everything else as blocks."""


def _represent_list(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    inline = all(not isinstance(item, (dict, list, tuple)) for item in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=inline)


_Dumper.add_representer(list, _represent_list)


def _read_yaml_text(text: str, where: str) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: invalid YAML: {exc}") from None


# --------------------------------------------------------------------------------------------
# dict -> dataclass conversion with type checks
# --------------------------------------------------------------------------------------------


def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "null"
    origin = get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in get_args(tp))
    if origin is list:
        return f"list of {_type_name(get_args(tp)[0])}"
    if origin is tuple:
        args = get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"list of {_type_name(args[0])}"
        return f"list of {len(args)} ({', '.join(_type_name(a) for a in args)})"
    if dataclasses.is_dataclass(tp):
        return "mapping"
    return getattr(tp, "__name__", str(tp))


def _allowed_keys_message(cls: type, key: str, path: str) -> str:
    names = [f.name for f in dataclasses.fields(cls)]
    where = f"'{path}'" if path else "the top level"
    message = f"unknown key '{_join(path, key)}'; allowed keys at {where}: {', '.join(names)}"
    close = difflib.get_close_matches(key, names, n=1)
    if close:
        message += f" (did you mean '{close[0]}'?)"
    return message


def _join(path: str, key: str | int) -> str:
    return f"{path}.{key}" if path else str(key)


def _convert(value: Any, tp: Any, path: str) -> Any:
    """Check ``value`` against the annotation ``tp`` and return it in the field's form."""
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise ConfigError(f"{path}: expected {_type_name(tp)}, got null")
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, path)
            except ConfigError as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        raise ConfigError(f"{path}: expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        allowed = get_args(tp)
        if not any(value == a and type(value) is type(a) for a in allowed):
            raise ConfigError(
                f"{path}: {value!r} is not allowed; choose one of {', '.join(map(repr, allowed))}"
            )
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {value!r}")
        return _from_dict(tp, value, path)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected {_type_name(tp)}, got {value!r}")
        args = get_args(tp)
        if origin is list:
            return [_convert(v, args[0], _join(path, i)) for i, v in enumerate(value)]
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], _join(path, i)) for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(
                f"{path}: expected {len(args)} values, got {len(value)} ({list(value)!r})"
            )
        return tuple(_convert(v, a, _join(path, i)) for i, (v, a) in enumerate(zip(value, args)))
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(
                f"{path}: expected a string, got {value!r} ({type(value).__name__}); "
                "quote it if it should be text"
            )
        return value
    if tp is Any:
        return value
    raise TypeError(f"unsupported config field type {tp!r} at {path}")  # a bug in this module


@functools.cache
def _field_types(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


def _from_dict(cls: type, data: dict[str, Any], path: str) -> Any:
    hints = _field_types(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if not isinstance(key, str):
            raise ConfigError(f"{_join(path, str(key))}: keys must be strings, got {key!r}")
        if key not in names:
            raise ConfigError(_allowed_keys_message(cls, key, path))
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            kwargs[f.name] = _convert(data[f.name], hints[f.name], _join(path, f.name))
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"missing key '{_join(path, f.name)}' ({_type_name(hints[f.name])})")
    return cls(**kwargs)


def config_from_dict(data: dict[str, Any]) -> ExperimentConfig:
    """Build and validate an :class:`ExperimentConfig` from a plain (resolved) mapping.

    Args:
        data: nested mapping as in a YAML file without ``_base_``; missing keys take the
            dataclass defaults.

    Returns:
        The typed config.

    Raises:
        ConfigError: an unknown key, a wrong type, a missing required key or an inconsistency.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"a config must be a mapping, got {type(data).__name__}")
    if BASE_KEY in data:
        raise ConfigError(f"'{BASE_KEY}' is only allowed in files (resolve it with load_config)")
    cfg = _from_dict(ExperimentConfig, data, "")
    validate_config(cfg)
    return cfg


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def config_to_dict(cfg: ExperimentConfig) -> dict[str, Any]:
    """Return ``cfg`` as plain nested dicts and lists (tuples become lists), e.g. for YAML or
    for storing inside a checkpoint (``weights_only``-safe)."""
    return _plain(cfg)


# --------------------------------------------------------------------------------------------
# Cross-field checks
# --------------------------------------------------------------------------------------------


_METADATA_SUFFIXES = (".yaml", ".yml", ".json")


def _check_dataset_name(path: str, name: str) -> None:
    """A built-in dataset name (aliases accepted) or a keypoint-metadata file name."""
    if name.lower().endswith(_METADATA_SUFFIXES):
        return
    from vitpose.dataset_meta import DATASET_NAMES, get_dataset_meta

    try:
        get_dataset_meta(name)
    except ValueError:
        close = difflib.get_close_matches(name, DATASET_NAMES, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ConfigError(
            f"{path}: unknown dataset '{name}'{hint}; known: {', '.join(DATASET_NAMES)}, "
            "or a keypoint-metadata .yaml/.json file"
        ) from None


def validate_config(cfg: ExperimentConfig) -> None:
    """Check value ranges and agreement between sections.

    Args:
        cfg: a typed config.

    Raises:
        ConfigError: naming the offending key and what is expected.
    """

    def positive(path: str, value: float | int | None, allow_zero: bool = False) -> None:
        if value is None:
            return
        if value < 0 or (value == 0 and not allow_zero):
            bound = ">= 0" if allow_zero else "> 0"
            raise ConfigError(f"{path}: must be {bound}, got {value!r}")

    data = cfg.data
    for name in ("image_size", "heatmap_size"):
        for i, v in enumerate(getattr(data, name)):
            positive(f"data.{name}.{i}", v)
    positive("data.sigma", data.sigma)
    positive("data.batch_size", data.batch_size)
    positive("data.val_batch_size", data.val_batch_size)
    positive("data.workers", data.workers, allow_zero=True)

    model = cfg.model
    for name in ("embed_dim", "depth", "num_heads", "num_keypoints"):
        positive(f"model.{name}", getattr(model, name))
    if model.drop_path_rate is not None and not 0.0 <= model.drop_path_rate < 1.0:
        raise ConfigError(f"model.drop_path_rate: must be in [0, 1), got {model.drop_path_rate}")
    if model.img_size is not None and tuple(model.img_size) != tuple(data.image_size):
        raise ConfigError(
            f"model.img_size {list(model.img_size)} differs from data.image_size "
            f"{list(data.image_size)}; set both to the same (H, W)"
        )
    if model.heads is not None and not model.heads:
        raise ConfigError("model.heads: give at least one dataset name, or null for the default")

    for i, head in enumerate(model.heads or ()):
        _check_dataset_name(f"model.heads.{i}", head)
    for section in ("train", "val"):
        for i, ds in enumerate(getattr(data, section)):
            where = f"data.{section}.{i}"
            _check_dataset_name(f"{where}.name", ds.name)
            positive(f"{where}.weight", ds.weight)
            positive(f"{where}.dataset_index", ds.dataset_index, allow_zero=True)
            positive(f"{where}.box_padding", ds.box_padding)
            positive(f"{where}.half_body_padding", ds.half_body_padding)
            positive(f"{where}.rot_factor", ds.rot_factor, allow_zero=True)
            positive(f"{where}.scale_factor", ds.scale_factor, allow_zero=True)
            for prob in ("flip_prob", "prob_half_body", "rot_prob", "center_jitter_prob"):
                value = getattr(ds, prob)
                if not 0.0 <= value <= 1.0:
                    raise ConfigError(f"{where}.{prob}: must be in [0, 1], got {value}")
            if model.heads is not None and ds.dataset_index >= len(model.heads):
                raise ConfigError(
                    f"{where}.dataset_index {ds.dataset_index} has no head: model.heads has "
                    f"{len(model.heads)} ({', '.join(model.heads)})"
                )
    for i, ds in enumerate(data.val):
        where = f"data.val.{i}"
        if not ds.use_gt_bbox and ds.det_file is None:
            raise ConfigError(f"{where}: use_gt_bbox is false but det_file is not set")
        if (cfg.test.decode == "udp") != ds.use_udp:
            raise ConfigError(
                f"test.decode '{cfg.test.decode}' does not match {where}.use_udp={ds.use_udp}: "
                "UDP crops need decode 'udp', classic crops need 'default' or 'dark'"
            )

    optim = cfg.optim
    positive("optim.lr", optim.lr)
    positive("optim.weight_decay", optim.weight_decay, allow_zero=True)
    positive("optim.clip_grad", optim.clip_grad)
    if not 0.0 < optim.layer_decay <= 1.0:
        raise ConfigError(f"optim.layer_decay: must be in (0, 1], got {optim.layer_decay}")
    for i, beta in enumerate(optim.betas):
        if not 0.0 <= beta < 1.0:
            raise ConfigError(f"optim.betas.{i}: must be in [0, 1), got {beta}")

    sched = cfg.schedule
    positive("schedule.epochs", sched.epochs)
    positive("schedule.warmup_iters", sched.warmup_iters, allow_zero=True)
    if not 0.0 < sched.warmup_ratio <= 1.0:
        raise ConfigError(f"schedule.warmup_ratio: must be in (0, 1], got {sched.warmup_ratio}")
    if list(sched.steps) != sorted(sched.steps) or any(s <= 0 for s in sched.steps):
        raise ConfigError(f"schedule.steps: must be increasing positive epochs, got {sched.steps}")
    positive("schedule.gamma", sched.gamma)

    test = cfg.test
    if test.blur_kernel <= 0 or test.blur_kernel % 2 == 0:
        raise ConfigError(
            f"test.blur_kernel: must be a positive odd integer, got {test.blur_kernel}"
        )
    positive("test.oks_thr", test.oks_thr)
    if test.shift_heatmap is not None and test.shift_heatmap != (test.decode != "udp"):
        raise ConfigError(
            f"test.shift_heatmap={str(test.shift_heatmap).lower()} with test.decode="
            f"'{test.decode}' is not supported: the flip-test shift follows the decoding (on "
            "for the classic 'default'/'dark' decoding, off for 'udp'), as in every official "
            "config; remove test.shift_heatmap or set it to "
            f"{str(test.decode != 'udp').lower()}"
        )

    runtime = cfg.runtime
    positive("runtime.eval_interval", runtime.eval_interval, allow_zero=True)
    positive("runtime.save_interval", runtime.save_interval)
    positive("runtime.log_interval", runtime.log_interval)


# --------------------------------------------------------------------------------------------
# Files, _base_ and overrides
# --------------------------------------------------------------------------------------------


# Folders of CONFIG_DIR that hold other kinds of YAML (keypoint metadata), not experiments.
_NON_EXPERIMENT_DIRS = ("datasets",)


def list_configs() -> list[str]:
    """Names of the packaged experiment configs (``folder/name`` without ``.yaml``).

    Bases (``_base_/``) and keypoint-metadata files (``datasets/``) are not listed.
    """
    names = []
    for path in sorted(CONFIG_DIR.rglob("*.yaml")):
        rel = path.relative_to(CONFIG_DIR)
        if any(part.startswith("_") for part in rel.parts) or rel.parts[0] in _NON_EXPERIMENT_DIRS:
            continue
        names.append(rel.with_suffix("").as_posix())
    return names


def find_config(name_or_path: str | Path) -> Path:
    """Locate a config file.

    Args:
        name_or_path: an existing file path; or a packaged config name, with or without folder
            and ``.yaml`` (``coco/vitpose_b_coco_256x192`` or ``vitpose_b_coco_256x192``).

    Returns:
        The file's path.

    Raises:
        ConfigError: nothing matches (close packaged names are suggested) or a bare name is
            ambiguous.
    """
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    name = str(name_or_path).removesuffix(".yaml").strip("/")
    packaged = CONFIG_DIR / f"{name}.yaml"
    if packaged.is_file():
        return packaged
    by_stem = [n for n in list_configs() if n.rsplit("/", 1)[-1] == name]
    if len(by_stem) == 1:
        return CONFIG_DIR / f"{by_stem[0]}.yaml"
    if len(by_stem) > 1:
        raise ConfigError(f"config name '{name}' is ambiguous: {', '.join(by_stem)}")
    close = difflib.get_close_matches(name, list_configs(), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else "; see list_configs()"
    raise ConfigError(f"no config file or packaged config named '{name_or_path}'{hint}")


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Merge ``update`` into a copy of ``base``: mappings key by key, everything else replaced."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _resolve_base(ref: Any, including: Path) -> Path:
    if not isinstance(ref, str):
        raise ConfigError(
            f"{including}: '{BASE_KEY}' must be a path or a list of paths, got {ref!r}"
        )
    relative = (including.parent / ref).expanduser()
    if relative.is_file():
        return relative
    packaged = CONFIG_DIR / ref
    if packaged.is_file():
        return packaged
    if (CONFIG_DIR / f"{ref}.yaml").is_file():
        return CONFIG_DIR / f"{ref}.yaml"
    raise ConfigError(
        f"{including}: base config '{ref}' not found (looked relative to {including.parent} "
        "and among the packaged configs)"
    )


def _load_file(path: Path, chain: tuple[Path, ...]) -> dict[str, Any]:
    path = path.resolve()
    if path in chain:
        cycle = " -> ".join(str(p) for p in (*chain, path))
        raise ConfigError(f"'{BASE_KEY}' cycle: {cycle}")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from None
    data = _read_yaml_text(text, str(path))
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file must hold a mapping, got {type(data).__name__}")
    refs = data.pop(BASE_KEY, [])
    if isinstance(refs, str):
        refs = [refs]
    if not isinstance(refs, list):
        raise ConfigError(f"{path}: '{BASE_KEY}' must be a path or a list of paths, got {refs!r}")
    merged: dict[str, Any] = {}
    for ref in refs:
        merged = _merge(merged, _load_file(_resolve_base(ref, path), (*chain, path)))
    return _merge(merged, data)


def load_config_dict(name_or_path: str | Path) -> dict[str, Any]:
    """Read a config file with its ``_base_`` chain merged, without typing or defaults.

    Args:
        name_or_path: see :func:`find_config`.

    Returns:
        The merged mapping (``_base_`` keys removed).
    """
    return _load_file(find_config(name_or_path), ())


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``a.b.c=value`` into its key path and its YAML-parsed value.

    Args:
        text: one override; the value is read with YAML scalar rules (``0.5``, ``true``,
            ``null``, ``[170, 200]``, ``{name: coco, ...}``); an empty value means null.

    Returns:
        ``(["a", "b", "c"], value)``.

    Raises:
        ConfigError: no ``=`` or an empty key.
    """
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"override '{text}' must look like key.path=value")
    parts = key.split(".")
    if any(not p for p in parts):
        raise ConfigError(f"override '{text}': empty component in key '{key}'")
    return parts, _read_yaml_text(raw, f"override '{text}'")


def _list_item_type(tp: Any) -> Any:
    """Element type of a ``list[X]`` annotation, also under ``Optional``."""
    if get_origin(tp) in (Union, types.UnionType):
        tp = next(a for a in get_args(tp) if a is not type(None))
    return get_args(tp)[0]


def _convert_override(value: Any, tp: Any, path: str, text: str) -> Any:
    try:
        return _convert(value, tp, path)
    except ConfigError as exc:
        raise ConfigError(f"override '{text}': {exc}") from None


def _set_path(cfg: ExperimentConfig, parts: list[str], value: Any, text: str) -> None:
    node: Any = cfg
    node_tp: Any = ExperimentConfig
    path = ""
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        if isinstance(node, list):
            if not part.lstrip("-").isdigit():
                raise ConfigError(f"override '{text}': '{path}' is a list; index it with a number")
            index = int(part)
            if not -len(node) <= index < len(node):
                raise ConfigError(
                    f"override '{text}': index {index} out of range for '{path}' "
                    f"({len(node)} item{'s' if len(node) != 1 else ''})"
                )
            item_tp = _list_item_type(node_tp)
            if last:
                node[index] = _convert_override(value, item_tp, _join(path, index), text)
                return
            node, node_tp, path = node[index], item_tp, _join(path, index)
            continue
        if not dataclasses.is_dataclass(node):
            raise ConfigError(f"override '{text}': '{path}' is a value, not a section")
        names = [f.name for f in dataclasses.fields(node)]
        if part not in names:
            message = _allowed_keys_message(type(node), part, path)
            raise ConfigError(f"override '{text}': {message}")
        child_path = _join(path, part)
        child_tp = _field_types(type(node))[part]
        if last:
            setattr(node, part, _convert_override(value, child_tp, child_path, text))
            return
        node, node_tp, path = getattr(node, part), child_tp, child_path
        if node is None:
            raise ConfigError(f"override '{text}': '{path}' is null; set it as a whole first")


def apply_overrides(cfg: ExperimentConfig, overrides: Iterable[str]) -> ExperimentConfig:
    """Apply ``a.b.c=value`` overrides to a copy of ``cfg`` and validate the result.

    Args:
        cfg: the config to start from (not modified).
        overrides: strings as given to ``--set``; applied in order.

    Returns:
        The new config.

    Raises:
        ConfigError: unknown key (allowed keys listed), wrong type or invalid result.
    """
    if isinstance(overrides, str):
        overrides = [overrides]
    out = copy.deepcopy(cfg)
    for text in overrides:
        parts, value = parse_override(text)
        _set_path(out, parts, value, text)
    validate_config(out)
    return out


def load_config(
    name_or_path: str | Path, overrides: Sequence[str] | None = None
) -> ExperimentConfig:
    """Load a config by packaged name or path, resolve ``_base_``, apply overrides, validate.

    Args:
        name_or_path: see :func:`find_config`.
        overrides: ``a.b.c=value`` strings applied after the files (e.g. ``data.root=/data``).

    Returns:
        The typed, validated config.

    Raises:
        ConfigError: missing file, invalid YAML, unknown key, wrong type or inconsistency.
    """
    path = find_config(name_or_path)
    data = _load_file(path, ())
    try:
        cfg = _from_dict(ExperimentConfig, data, "")
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    if overrides:
        # Validation waits until every override is in: two keys may have to change together.
        cfg = copy.deepcopy(cfg)
        for text in overrides:
            parts, value = parse_override(text)
            _set_path(cfg, parts, value, text)
    try:
        validate_config(cfg)
    except ConfigError as exc:
        after = " (after overrides)" if overrides else ""
        raise ConfigError(f"{path}{after}: {exc}") from None
    return cfg


def dump_config(cfg: ExperimentConfig, path: str | Path) -> Path:
    """Write the fully resolved config as YAML (no ``_base_``), loadable by :func:`load_config`.

    Args:
        cfg: the config to write.
        path: destination file; parent folders are created.

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.dump(config_to_dict(cfg), Dumper=_Dumper, sort_keys=False, width=100)
    path.write_text(text, encoding="utf-8")
    return path
