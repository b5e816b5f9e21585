"""The schema of an experiment: the config dataclasses and their defaults (the official
single-task COCO recipe, ViTPose paper https://arxiv.org/abs/2204.12484; numbers in docs ref §2).

Loading, ``_base_`` inheritance and ``--set`` overrides are in :mod:`.loading`; the checks across
fields in :mod:`.validation`; :mod:`vitpose.training.config` re-exports the public names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

__all__ = [
    "CONFIG_DIR",
    "DATASET_DEFAULTS",
    "DataConfig",
    "DatasetConfig",
    "ExperimentConfig",
    "ModelConfig",
    "OptimConfig",
    "RuntimeConfig",
    "ScheduleConfig",
    "TestConfig",
]

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
"""Folder of the packaged YAML configs."""

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

    The keys left null (``half_body``, ``num_joints_half_body``, ``rot_factor``,
    ``scale_factor``, ``center_jitter_prob``, ``box_padding``) take the dataset's own value
    when the config is validated: the official recipe of that dataset
    (`vitpose.dataset_meta.TRAIN_DEFAULTS`: no half-body and no centre jitter for MPII, ...),
    else `DATASET_DEFAULTS` (the COCO recipe). A value written in the config wins.
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
    half_body: bool | None = None
    num_joints_half_body: int | None = None
    prob_half_body: float = 0.3
    rot_factor: float | None = None
    rot_prob: float = 0.6
    scale_factor: float | None = None
    center_jitter_prob: float | None = None
    center_jitter: Literal["per_box", "per_iteration"] = "per_box"
    box_padding: float | None = None
    half_body_padding: float = 1.5
    camera_file: str | None = None
    joint_file: str | None = None


#: The COCO recipe's values of the dataset keys that other datasets may change (see
#: `DatasetConfig`; per-dataset values in `vitpose.dataset_meta.TRAIN_DEFAULTS`).
DATASET_DEFAULTS = {"half_body": True, "num_joints_half_body": 8, "rot_factor": 40.0,
                    "scale_factor": 0.5, "center_jitter_prob": 0.3, "box_padding": 1.25}


@dataclass
class DataConfig:
    """Datasets and loading.

    Attributes:
        root: folder that dataset paths are relative to (``--data-root``); laid out like the
            official ``data/`` folder (``coco/annotations/...``, ``coco/val2017/``, ...).
        train: training datasets, mixed when more than one.
        val: validation datasets: evaluated during training (``best.pth`` is chosen on them)
            and by ``vitpose test`` unless ``test`` is set.
        test: the datasets whose numbers are reported (``vitpose test``), when they are not
            the validation ones (InterHand2.6M: validated on the machine-annotated val split,
            reported on the test split, as in the official configs); null: ``val``.
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
    test: list[DatasetConfig] | None = None
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
        backend: the engine of `vitpose test` (``vitpose.inference.engines``): ``torch``
            (eager PyTorch: with ``float32`` the official numbers exactly), ``auto`` (the
            fastest engine of this machine that passes the accuracy gate, as in ``predict``),
            ``onnxruntime`` (float32) or ``openvino`` (float32 or bfloat16; CPU). Validation
            during training always runs PyTorch (the weights change every epoch).
    """

    flip_test: bool = True
    shift_heatmap: bool | None = None
    decode: Literal["udp", "default", "dark"] = "udp"
    blur_kernel: int = 11
    vis_thr: float = 0.2
    oks_thr: float = 0.9
    oks_nms: bool = True
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = "float32"
    backend: Literal["torch", "auto", "onnxruntime", "openvino"] = "torch"


@dataclass
class RuntimeConfig:
    """How a run is executed and recorded.

    Attributes:
        seed: random seed (offset by rank in data workers).
        amp: mixed precision: ``none`` (fp32, as official), ``bf16`` or ``fp16``.
        eval_interval: evaluate every this many epochs (0: only at the end).
        save_interval: save a checkpoint every this many epochs.
        latest_share: the largest share of the run's time that writing ``latest.pth`` may
            take. It is written after an epoch unless the previous write took more than this
            share of the time since that write began, and always after the last epoch, a
            validation and an ``epoch_N.pth`` snapshot; ``1`` writes it after every epoch. On
            a small dataset (a ViTPose-B checkpoint with its optimiser is ~1 GB, several
            seconds to write) this keeps the run from spending most of its time writing; an
            interruption loses at most the epochs since the last write (a resumed run still
            reaches the same weights as an uninterrupted one).
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
    latest_share: float = 0.1
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
