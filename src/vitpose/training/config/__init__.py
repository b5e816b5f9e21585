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

The code is in three modules: :mod:`.schema` (the dataclasses), :mod:`.loading` (files,
``_base_``, overrides, conversion) and :mod:`.validation` (checks across fields); every public
name is importable from here.

Packaged configs live in ``vitpose/configs/`` and are found by name relative to this package
(``load_config("coco/vitpose_b_coco_256x192")``); ``list_configs()`` names them.
Data paths in dataset entries are relative to ``data.root`` (``DataConfig.resolve``).
"""

from __future__ import annotations

from .loading import (
    BASE_KEY,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    dump_config,
    find_config,
    list_configs,
    load_config,
    load_config_dict,
    parse_override,
)
from .schema import (
    CONFIG_DIR,
    DataConfig,
    DatasetConfig,
    ExperimentConfig,
    ModelConfig,
    OptimConfig,
    RuntimeConfig,
    ScheduleConfig,
    TestConfig,
)
from .validation import validate_config

__all__ = [
    "BASE_KEY",
    "CONFIG_DIR",
    "DataConfig",
    "DatasetConfig",
    "ExperimentConfig",
    "ModelConfig",
    "OptimConfig",
    "RuntimeConfig",
    "ScheduleConfig",
    "TestConfig",
    "apply_overrides",
    "config_from_dict",
    "config_to_dict",
    "dump_config",
    "find_config",
    "list_configs",
    "load_config",
    "load_config_dict",
    "parse_override",
    "validate_config",
]
