"""Checks of a typed config: value ranges and agreement between sections.

Run by :func:`vitpose.training.config.load_config`, ``config_from_dict`` and ``apply_overrides``
after every value is in (two keys may have to change together).
"""

from __future__ import annotations

import difflib

from vitpose.errors import ConfigError

from .schema import DATASET_DEFAULTS, ExperimentConfig

__all__ = ["fill_dataset_defaults", "validate_config"]


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


def fill_dataset_defaults(cfg: ExperimentConfig) -> None:
    """Give every dataset entry's unset (null) recipe keys the dataset's own value
    (`vitpose.dataset_meta.dataset_train_defaults`), else the COCO recipe's
    (`DATASET_DEFAULTS`). Values the config sets are kept."""
    from vitpose.dataset_meta import dataset_train_defaults

    for ds in (*cfg.data.train, *cfg.data.val, *(cfg.data.test or ())):
        own = dataset_train_defaults(ds.name)
        for key, generic in DATASET_DEFAULTS.items():
            if getattr(ds, key) is None:
                setattr(ds, key, own.get(key, generic))


def validate_config(cfg: ExperimentConfig) -> None:
    """Fill the datasets' own defaults (`fill_dataset_defaults`), then check value ranges and
    agreement between sections.

    Args:
        cfg: a typed config (its null dataset recipe keys are filled in place).

    Raises:
        ConfigError: naming the offending key and what is expected.
    """
    fill_dataset_defaults(cfg)

    def positive(path: str, value: float | int | None, allow_zero: bool = False) -> None:
        if value is None:
            return
        if value < 0 or (value == 0 and not allow_zero):
            bound = ">= 0" if allow_zero else "> 0"
            raise ConfigError(f"{path}: must be {bound}, got {value!r}"[:300])

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
    for section in ("train", "val", "test"):
        for i, ds in enumerate(getattr(data, section) or ()):
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
    for where, ds in [*((f"data.val.{i}", d) for i, d in enumerate(data.val)),
                      *((f"data.test.{i}", d) for i, d in enumerate(data.test or ()))]:
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
    # AdamW steps are about lr in size whatever the gradients: above 1 every weight moves by
    # more than its own scale each step; decoupled decay above 1 is not a regularisation
    if optim.lr > 1.0:
        raise ConfigError(f"optim.lr: must be at most 1 (AdamW; the released configs use "
                          f"5e-4), got {optim.lr}")
    if optim.weight_decay > 1.0:
        raise ConfigError(f"optim.weight_decay: must be at most 1 (the released configs use "
                          f"0.1), got {optim.weight_decay}")
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
    if not 0 < runtime.latest_share <= 1:
        raise ConfigError(f"runtime.latest_share: must be in (0, 1], got {runtime.latest_share}")
    positive("runtime.log_interval", runtime.log_interval)
