"""Reading experiment configs: YAML files with ``_base_`` inheritance, typed conversion with
errors that name the key, ``--set a.b.c=value`` overrides, and writing a resolved config.

Resolution order: dataclass defaults, then each ``_base_`` (recursively, left to right), then
the file itself, then the overrides. Mappings merge key by key; lists are replaced as a whole.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import math
import re
import types
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import yaml

from vitpose.errors import ConfigError

from .schema import CONFIG_DIR, ExperimentConfig
from .validation import validate_config

__all__ = [
    "BASE_KEY",
    "apply_overrides",
    "config_from_dict",
    "config_to_dict",
    "dump_config",
    "find_config",
    "list_configs",
    "load_config",
    "load_config_dict",
    "parse_override",
]

BASE_KEY = "_base_"


# --------------------------------------------------------------------------------------------
# YAML reading (with floats such as 1e-3, which YAML 1.1 would read as strings)
# --------------------------------------------------------------------------------------------


#: Largest config file (or override) read, in characters: configs are a few KB.
MAX_CONFIG_CHARS = 1 << 20


class _Loader(yaml.SafeLoader):
    """Safe loader whose float rule also accepts ``1e-3`` and ``5E-4``, and which refuses
    aliases (``*name``): a few of them nested expand a 2 KB file into gigabytes (the "billion
    laughs"), and no config needs them (``_base_`` shares values between files)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise _AliasRefused(f"line {event.start_mark.line + 1}: YAML aliases (*{event.anchor}"
                                ") are not supported in configs; write the value out or share "
                                f"it through '{BASE_KEY}'")
        return super().compose_node(parent, index)


class _AliasRefused(Exception):
    pass


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
    if len(text) > MAX_CONFIG_CHARS:
        raise ConfigError(f"{where}: {len(text)} characters, more than a config holds "
                          f"({MAX_CONFIG_CHARS})")
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except _AliasRefused as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: invalid YAML: {_short(str(exc), 400)}") from None
    except RecursionError:
        raise ConfigError(f"{where}: invalid YAML: nested too deeply") from None


def _clip(text: str, limit: int = 120) -> str:
    """``text`` cut to ``limit`` characters (an override echoed in a message)."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _short(value: Any, limit: int = 80) -> str:
    """``repr``-like text of a value, cut to ``limit`` characters: messages never echo a huge
    value (a config's list of a million items)."""
    text = value if isinstance(value, str) and limit > 80 else repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


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
    shown = key if len(key) <= 80 else f"{key[:80]}..."
    message = f"unknown key '{_join(path, shown)}'; allowed keys at {where}: {', '.join(names)}"
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
        raise ConfigError(f"{path}: expected {_type_name(tp)}, got {_short(value)}")
    if origin is Literal:
        allowed = get_args(tp)
        if not any(value == a and type(value) is type(a) for a in allowed):
            raise ConfigError(
                f"{path}: {_short(value)} is not allowed; choose one of {', '.join(map(repr, allowed))}"
            )
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {_short(value)}")
        return _from_dict(tp, value, path)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected {_type_name(tp)}, got {_short(value)}")
        args = get_args(tp)
        if origin is list:
            return [_convert(v, args[0], _join(path, i)) for i, v in enumerate(value)]
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], _join(path, i)) for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(
                f"{path}: expected {len(args)} values, got {len(value)} ({_short(list(value))})"
            )
        return tuple(_convert(v, a, _join(path, i)) for i, (v, a) in enumerate(zip(value, args)))
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {_short(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {_short(value)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: expected a number, got {_short(value)}")
        try:
            number = float(value)
        except OverflowError:  # an integer of hundreds of digits
            number = math.inf
        if not math.isfinite(number):
            raise ConfigError(f"{path}: must be a finite number, got {_short(value)}")
        return number
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(
                f"{path}: expected a string, got {_short(value)} ({type(value).__name__}); "
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
            raise ConfigError(f"{_short(_join(path, str(key)))}: keys must be strings, "
                              f"got {_short(key)}")
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
            f"{including}: '{BASE_KEY}' must be a path or a list of paths, got {_short(ref)}"
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
        if path.stat().st_size > 4 * MAX_CONFIG_CHARS:
            raise ConfigError(f"{path}: {path.stat().st_size} bytes, more than a config holds")
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    data = _read_yaml_text(text, str(path))
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file must hold a mapping, got {type(data).__name__}")
    refs = data.pop(BASE_KEY, [])
    if isinstance(refs, str):
        refs = [refs]
    if not isinstance(refs, list):
        raise ConfigError(f"{path}: '{BASE_KEY}' must be a path or a list of paths, "
                          f"got {_short(refs)}")
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
        raise ConfigError(f"override '{_clip(text)}' must look like key.path=value")
    parts = key.split(".")
    if any(not p for p in parts):
        raise ConfigError(f"override '{_clip(text)}': empty component in key '{key}'")
    return parts, _read_yaml_text(raw, f"override '{_clip(text)}'")


def _list_item_type(tp: Any) -> Any:
    """Element type of a ``list[X]`` annotation, also under ``Optional``."""
    if get_origin(tp) in (Union, types.UnionType):
        tp = next(a for a in get_args(tp) if a is not type(None))
    return get_args(tp)[0]


def _convert_override(value: Any, tp: Any, path: str, text: str) -> Any:
    try:
        return _convert(value, tp, path)
    except ConfigError as exc:
        raise ConfigError(f"override '{_clip(text)}': {exc}") from None


def _set_path(cfg: ExperimentConfig, parts: list[str], value: Any, text: str) -> None:
    node: Any = cfg
    node_tp: Any = ExperimentConfig
    path = ""
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        if isinstance(node, list):
            if not part.lstrip("-").isdigit():
                raise ConfigError(f"override '{_clip(text)}': '{path}' is a list; index it with a number")
            index = int(part)
            if not -len(node) <= index < len(node):
                raise ConfigError(
                    f"override '{_clip(text)}': index {index} out of range for '{path}' "
                    f"({len(node)} item{'s' if len(node) != 1 else ''})"
                )
            item_tp = _list_item_type(node_tp)
            if last:
                node[index] = _convert_override(value, item_tp, _join(path, index), text)
                return
            node, node_tp, path = node[index], item_tp, _join(path, index)
            continue
        if not dataclasses.is_dataclass(node):
            raise ConfigError(f"override '{_clip(text)}': '{path}' is a value, not a section")
        names = [f.name for f in dataclasses.fields(node)]
        if part not in names:
            message = _allowed_keys_message(type(node), part, path)
            raise ConfigError(f"override '{_clip(text)}': {message}")
        child_path = _join(path, part)
        child_tp = _field_types(type(node))[part]
        if last:
            setattr(node, part, _convert_override(value, child_tp, child_path, text))
            return
        node, node_tp, path = getattr(node, part), child_tp, child_path
        if node is None:
            raise ConfigError(f"override '{_clip(text)}': '{path}' is null; set it as a whole first")


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
