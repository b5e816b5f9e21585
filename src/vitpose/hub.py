"""Names to files: released weights, hub ids, the Hugging Face cache, and `load_model`.

Models never download anything; this module does, and only here (`fetch`). Weights published on
the Hugging Face hub (the transformers port's ``usyd-community/*`` repositories and the mirror of
the original ``.pth`` files) are downloaded on first use into the Hugging Face cache. Weights
that exist only on the original project's OneDrive are listed with their link: download them in
a browser and pass the file path.

Offline rules (`fetch`): with ``HF_HUB_OFFLINE=1`` only the cache is used ("not in the cache"
otherwise); online, one quick request without retries decides whether the hub is reachable, so
an unreachable hub fails within seconds with one message (the cached copy is used if there is
one). Reading and converting the files is `vitpose.checkpoints`' job; this module calls it and
is never imported by it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from . import checkpoints
from .checkpoints import (
    checkpoint_config,
    load_state_dict_strict,
    prepare_state_dict,
    read_checkpoint,
)
from .errors import CheckpointError, DownloadError
from .models.vitpose import ViTPose, ViTPoseConfig, canonical_name, replace_config, variant_config

__all__ = ["ReleasedWeights", "RELEASED_WEIGHTS", "DEFAULT_MODEL", "fetch", "resolve_weights",
           "load_weights", "load_model", "released_weights_for", "hub_cache_dir"]

log = logging.getLogger(__name__)

#: Mirror of the original `.pth` files used by the transformers conversion (all heads included).
_ORIGINAL_MIRROR = "nielsr/vitpose-original-checkpoints"


@dataclass(frozen=True)
class ReleasedWeights:
    """One released checkpoint.

    Attributes:
        variant: the `VARIANTS` name it fits.
        hf_repo: Hugging Face repository in the transformers layout (main head only), or None.
        original: ``"repo/filename"`` of the original `.pth` on the hub (all heads), or None.
        onedrive: the original project's OneDrive link (manual download), or None.
        datasets: what it was trained on (README wording).
        coco_ap: COCO val AP from the original README.
    """

    variant: str
    hf_repo: str | None = None
    original: str | None = None
    onedrive: str | None = None
    datasets: str = "COCO"
    coco_ap: float | None = None


_OD = "https://1drv.ms/u/s!AimBgYV7JjTlg"
RELEASED_WEIGHTS: dict[str, ReleasedWeights] = {
    "vitpose-s": ReleasedWeights("vitpose-s", onedrive=_OD + "ccifT1XlGRatxg3vw?e=9wz7BY", coco_ap=73.8),
    "vitpose-b": ReleasedWeights("vitpose-b", "usyd-community/vitpose-base",
                                 f"{_ORIGINAL_MIRROR}/vitpose-b.pth",
                                 _OD + "SMjp1_NrV3VRSmK?e=Q1uZKs", coco_ap=75.8),
    "vitpose-l": ReleasedWeights("vitpose-l", onedrive=_OD + "Sd9k_kuktPtiP4F?e=K7DGYT", coco_ap=78.3),
    "vitpose-h": ReleasedWeights("vitpose-h", onedrive=_OD + "ShLMI-kkmvNfF_h?e=dEhGHe", coco_ap=79.1),
    "vitpose-s-simple": ReleasedWeights("vitpose-s-simple", onedrive=_OD + "ccgb_50jIgiYkHvdw?e=D7RbH2",
                                        coco_ap=73.5),
    "vitpose-b-simple": ReleasedWeights("vitpose-b-simple", "usyd-community/vitpose-base-simple",
                                        f"{_ORIGINAL_MIRROR}/vitpose-b-simple.pth",
                                        _OD + "SRPKrD5PmDRiv0R?e=jifvOe", coco_ap=75.5),
    "vitpose-l-simple": ReleasedWeights("vitpose-l-simple", onedrive=_OD + "SVS6DP2LmKwZ3sm?e=MmCvDT",
                                        coco_ap=78.2),
    "vitpose-h-simple": ReleasedWeights("vitpose-h-simple", onedrive=_OD + "SbHyN2mjh2n2LyG?e=y0FgMK",
                                        coco_ap=78.9),
    "vitpose-b-multi": ReleasedWeights("vitpose-b-multi", "usyd-community/vitpose-base-coco-aic-mpii",
                                       f"{_ORIGINAL_MIRROR}/vitpose_base_coco_aic_mpii.pth",
                                       _OD + "cccwaTZ8xCFFM3Sjg?e=chmiK5", "COCO+AIC+MPII", 77.1),
    "vitpose-l-multi": ReleasedWeights("vitpose-l-multi", onedrive=_OD + "ccdOLQqSo6E87GfMw?e=TEurgW",
                                       datasets="COCO+AIC+MPII", coco_ap=78.7),
    "vitpose-h-multi": ReleasedWeights("vitpose-h-multi", onedrive=_OD + "ccmHofkmfJDQDukVw?e=gRK224",
                                       datasets="COCO+AIC+MPII", coco_ap=79.5),
    **{f"vitpose-plus-{s}": ReleasedWeights(
        f"vitpose-plus-{s}", f"usyd-community/vitpose-plus-{size}",
        f"{_ORIGINAL_MIRROR}/vitpose+_{size}.pth", _OD + link,
        "COCO+AIC+MPII+AP10K+APT36K+WholeBody", ap)
       for s, size, link, ap in (("s", "small", "ccrwORr61gT9E4n8g?e=kz9sz5", 75.8),
                                 ("b", "base", "cckRZk1bIAuRa_E1w?e=ylDB2G", 77.0),
                                 ("l", "large", "ccs1SNFUGSTsmRJ8w?e=a9zKwZ", 78.6),
                                 ("h", "huge", "ccoXv8rCUgVe7oD9Q?e=ZBw6gR", 79.4))},
}


#: What `load_model()` and the commands load when neither a model nor weights are named.
DEFAULT_MODEL = "vitpose-b-simple"
#: File name endings that make a spec a checkpoint file (local, or ``owner/repo/file`` on the hub).
_WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors", ".ckpt")
#: What `fetch` takes from a hub repository by default (configs and safetensors weights).
_REPO_PATTERNS = ("*.json", "*.safetensors")


def released_weights_for(variant: str) -> ReleasedWeights:
    """The released checkpoint of a variant name, with a clear error if there is none."""
    key = canonical_name(variant) or variant
    if key not in RELEASED_WEIGHTS:
        if key == "vitpose-g":
            raise DownloadError("ViTPose-G was never released (no config or weights exist); "
                                "train it yourself or pass --weights PATH")
        raise DownloadError(f"no released weights are known for '{variant}'; pass a checkpoint "
                            "path with --weights / weights=")
    return RELEASED_WEIGHTS[key]


# --------------------------------------------------------------------------------------------
# The hub, with our offline rules
# --------------------------------------------------------------------------------------------

_TRUE = {"1", "on", "yes", "true"}


def _hub_offline() -> bool:
    """``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``), read now: huggingface_hub reads it
    once, when its ``constants`` module is first imported, which may be long after start.
    Without either variable, huggingface_hub's own offline switch (``constants.HF_HUB_OFFLINE``,
    which a program may set) decides."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE")
    if value is not None:
        return value.strip().lower() in _TRUE
    import sys
    constants = sys.modules.get("huggingface_hub.constants")
    return bool(getattr(constants, "HF_HUB_OFFLINE", False))


def hub_cache_dir() -> Path:
    """The Hugging Face cache folder in use (``HF_HUB_CACHE``, else ``HF_HOME/hub``), read from
    the environment now."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.path.expanduser(os.environ["HF_HUB_CACHE"]))
    if os.environ.get("HF_HOME"):
        return Path(os.path.expanduser(os.environ["HF_HOME"])) / "hub"
    from huggingface_hub import constants
    return Path(constants.HF_HUB_CACHE)


def _probe_timeout() -> float:
    try:
        return min(float(os.environ.get("HF_HUB_ETAG_TIMEOUT", "5")), 10.0)
    except ValueError:
        return 5.0


def _how_to_get_it(entry: ReleasedWeights | None, offline: bool = False) -> str:
    """The way out of a missing download; `offline`: ``HF_HUB_OFFLINE`` is already set, so
    the advice does not tell the user to set it."""
    link = f" (or from {entry.onedrive})" if entry and entry.onedrive else ""
    cache = "copy that machine's Hugging Face cache here" + \
        ("" if offline else " and set HF_HUB_OFFLINE=1")
    return ("To work offline: download the checkpoint on a machine with internet" + link +
            " and pass its path with --weights PATH (Python: weights=PATH), or " + cache +
            " (see 'Offline use' in the README).")


def _from_cache(repo_id: str, filename: str | None, patterns: Sequence[str],
                cache: Path, revision: str | None = None) -> Path | None:
    """The cached copy, without any network access (None if there is none)."""
    from huggingface_hub import hf_hub_download, snapshot_download
    try:
        if filename:
            return Path(hf_hub_download(repo_id, filename, cache_dir=cache, revision=revision,
                                        local_files_only=True))
        folder = Path(snapshot_download(repo_id, cache_dir=cache, local_files_only=True,
                                        revision=revision, allow_patterns=list(patterns)))
    except Exception:  # noqa: BLE001 - "not cached" has several types across versions
        return None
    return folder if folder.is_dir() and any(folder.iterdir()) else None


def _probe(repo_id: str, filename: str | None, revision: str | None = None
           ) -> tuple[str, str]:
    """One request, no retries: ``('ok', '')``, ``('missing', why)`` or ``('unreachable', why)``."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.utils import (
        EntryNotFoundError,
        GatedRepoError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )
    try:
        get_hf_file_metadata(hf_hub_url(repo_id, filename or "config.json", revision=revision),
                             timeout=_probe_timeout())
    except GatedRepoError:
        return "missing", "the repository is gated: log in with `hf auth login` and accept its terms"
    except RepositoryNotFoundError:
        return "missing", "no such repository (or it is private)"
    except RevisionNotFoundError:
        return "missing", "no such revision"
    except EntryNotFoundError:
        if filename:
            return "missing", f"the repository has no file '{filename}'"
        return "ok", ""  # a repository without config.json: the snapshot says what it has
    except Exception as e:  # noqa: BLE001 - network errors have many types (httpx, OSError, ...)
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return "unreachable", reason[:200]
    return "ok", ""


def fetch(repo_id: str, filename: str | None = None, *, what: str | None = None,
          allow_patterns: Sequence[str] = _REPO_PATTERNS,
          entry: ReleasedWeights | None = None, revision: str | None = None,
          cache_dir: str | os.PathLike[str] | None = None, advice: str | None = None) -> Path:
    """Resolve a hub file or repository to a local path, with our offline rules and messages.

    The one way this package reaches the Hugging Face hub (weights, and detectors that live on
    the hub). ``HF_HUB_OFFLINE=1``: the cache only. Otherwise one quick request without retries
    decides: hub unreachable -> the cached copy if any, else one `DownloadError` within seconds
    (no retry loop); missing repository or file -> `DownloadError` saying so; reachable -> the
    normal (cached) download.

    Args:
        repo_id: ``owner/name`` of a model repository.
        filename: a file in it; None for the repository (a folder with `allow_patterns`).
        what: how messages name it (default ``'owner/name[/file]'``).
        allow_patterns: files taken from a repository.
        entry: the released weights this is, for the download link in messages.
        revision: a branch, tag or commit of the repository (default its main branch).
        cache_dir: the Hugging Face cache folder to use (default `hub_cache_dir`).
        advice: what messages say to do offline (default: the weights' advice, with
            ``--weights PATH``; detectors give their own).

    Returns:
        the local file (`filename`) or snapshot folder.

    Raises:
        DownloadError: not in the cache offline, hub unreachable, not found on the hub.
    """
    try:
        import huggingface_hub  # noqa: F401
    except ImportError:  # pragma: no cover - it is a dependency
        raise DownloadError(
            "huggingface_hub is not installed; pass a local file with --weights") from None
    label = what or f"'{repo_id}{'/' + filename if filename else ''}'"
    howto = advice if advice is not None else _how_to_get_it(entry)
    cache = Path(os.path.expanduser(os.fspath(cache_dir))) if cache_dir else hub_cache_dir()
    cached = _from_cache(repo_id, filename, allow_patterns, cache, revision)
    if _hub_offline():
        if cached is not None:
            return cached
        if advice is None:  # HF_HUB_OFFLINE is set already: not advised again
            howto = _how_to_get_it(entry, offline=True)
        raise DownloadError(f"{label}: not in the Hugging Face cache ({cache}), and "
                            f"HF_HUB_OFFLINE=1 forbids downloading. {howto}")
    state, reason = _probe(repo_id, filename, revision)
    if state == "unreachable":
        if cached is not None:
            log.warning("the Hugging Face hub is unreachable (%s); using the cached %s", reason,
                        label)
            return cached
        raise DownloadError(f"{label}: the Hugging Face hub is unreachable ({reason}) and it "
                            f"is not in the cache ({cache}). {howto}")
    if state == "missing":
        raise DownloadError(f"{label}: not found on the Hugging Face hub ({reason})")
    from huggingface_hub import hf_hub_download, snapshot_download
    try:
        if filename:
            return Path(hf_hub_download(repo_id, filename, cache_dir=cache, revision=revision))
        return Path(snapshot_download(repo_id, cache_dir=cache, revision=revision,
                                      allow_patterns=list(allow_patterns)))
    except Exception as e:  # noqa: BLE001 - the hub's errors have many types
        if cached is not None:
            return cached
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DownloadError(f"{label}: the download from the Hugging Face hub failed ({reason}). "
                            f"{howto}") from None


# --------------------------------------------------------------------------------------------
# Specs -> files
# --------------------------------------------------------------------------------------------

def _looks_local(spec: str) -> bool:
    """A spec the user meant as a local file: a path prefix, a weights suffix without the
    ``owner/repo/`` of a hub file, or a first folder that exists here."""
    if spec.startswith(("/", ".", "~", "\\")) or (len(spec) > 1 and spec[1] == ":"):
        return True
    parts = spec.replace("\\", "/").split("/")
    if spec.lower().endswith(_WEIGHT_SUFFIXES) and len(parts) < 3:
        return True
    return len(parts) > 1 and Path(parts[0]).is_dir()


def resolve_weights(spec: str, prefer_original: bool = False) -> Path:
    """Turn a weights spec into a local path, downloading on first use (`fetch`).

    Args:
        spec: a local file/folder, a Hugging Face repo id (``usyd-community/vitpose-base``), a
            ``owner/repo/filename.pth`` on the hub, or a variant name with released weights.
        prefer_original: for a variant name, fetch the original `.pth` (all heads) instead of
            the transformers repository (main head only).

    Raises:
        CheckpointError: a local path that does not exist, or a spec that is nothing of these.
        DownloadError: see `fetch`; weights published on OneDrive only.
    """
    spec = str(spec)
    p = Path(os.path.expanduser(spec))
    if p.exists():
        return p
    if spec.startswith(("http://", "https://")):
        if "1drv.ms" in spec or "onedrive" in spec:
            raise DownloadError("OneDrive share links cannot be downloaded automatically: open "
                                f"{spec} in a browser, save the file and pass its path")
        raise DownloadError(f"only local paths and Hugging Face ids are supported, got {spec}")
    if _looks_local(spec):
        raise CheckpointError(f"checkpoint file not found: {spec}")
    if canonical_name(spec):
        entry = released_weights_for(spec)
        what = f"the released weights of {canonical_name(spec)}"
        if prefer_original and entry.original:
            repo, filename = entry.original.rsplit("/", 1)
            return fetch(repo, filename, what=f"{what} ({entry.original})", entry=entry)
        if entry.hf_repo:
            return fetch(entry.hf_repo, what=f"{what} ({entry.hf_repo})", entry=entry)
        if entry.original:
            repo, filename = entry.original.rsplit("/", 1)
            return fetch(repo, filename, what=f"{what} ({entry.original})", entry=entry)
        raise DownloadError(f"the weights of '{spec}' are published on the original project's "
                            f"OneDrive only: open {entry.onedrive} in a browser, save the .pth and "
                            "pass it with --weights PATH")
    parts = spec.split("/")
    if len(parts) == 2 and all(parts):
        return fetch(spec)
    if len(parts) >= 3 and parts[-1].lower().endswith(_WEIGHT_SUFFIXES):
        return fetch("/".join(parts[:-1]), parts[-1])
    raise CheckpointError(f"'{spec}' is neither an existing file, a model variant (see "
                          "`vitpose models`) nor a Hugging Face id (owner/repo or "
                          "owner/repo/file.pth)")


def load_weights(model: ViTPose, source: str | os.PathLike | Mapping[str, Any],
                 dataset: int | str | None = None) -> ViTPose:
    """`vitpose.checkpoints.load_local_weights` for files, state dicts, hub ids and variant names.

    Args:
        model: a `ViTPose` of the matching architecture.
        source: a file or folder, a Hugging Face id (``usyd-community/vitpose-base-simple``), a
            variant name (its released weights), or an in-memory state dict.
        dataset: see `vitpose.checkpoints.load_local_weights`.
    """
    if not isinstance(source, Mapping) and not Path(os.path.expanduser(str(source))).exists():
        source = resolve_weights(str(source))
    return checkpoints.load_local_weights(model, source, dataset)


# --------------------------------------------------------------------------------------------
# load_model: the file decides the architecture
# --------------------------------------------------------------------------------------------

def _check_name_fits(name: str, named: ViTPoseConfig, found: ViTPoseConfig, path: Path) -> None:
    """A model name given next to weights must describe the file's architecture."""
    mismatch = [field for field, a, b in (
        ("width", named.embed_dim, found.embed_dim), ("depth", named.depth, found.depth),
        ("attention heads", named.num_heads, found.num_heads),
        ("patch size", named.patch_size, found.patch_size),
        ("MLP ratio", round(named.mlp_ratio, 4), round(found.mlp_ratio, 4)),
        ("qkv bias", named.qkv_bias, found.qkv_bias),
        ("input size", tuple(named.img_size), tuple(found.img_size)),
        ("experts", named.num_experts if named.is_moe else 1,
         found.num_experts if found.is_moe else 1),
        ("expert width", named.part_features if named.is_moe else 0,
         found.part_features if found.is_moe else 0),
        ("decoder", named.decoder, found.decoder)) if a != b]
    if mismatch:
        raise CheckpointError(
            f"the model name '{name}' ({named.summary()}) contradicts the weights {path}, which "
            f"hold {found.summary()} (different {', '.join(mismatch)}). The architecture comes "
            "from the file: leave out --model (Python: pass the file as the model) or name the "
            "matching variant")


def load_model(name_or_path: str | None = None, weights: str | None = None,
               device: str | torch.device = "cpu", dataset: str | int | None = None,
               num_heads: int | None = None, **overrides: Any) -> ViTPose:
    """Build a model and load its weights in one call, in eval mode on `device`.

    The architecture always comes from the weights file: its recorded config (ours), its
    transformers ``config.json``, or its tensor shapes (official files; the head count, which
    official files do not record, from the released variant of that width and depth). A name
    that contradicts the file is an error, never a silent mix.

    Args:
        name_or_path: a variant name (``"vitpose-b-simple"``; its released weights are fetched on
            first use), a checkpoint path, or a hub id. None: `DEFAULT_MODEL`, or with `weights`
            the file's own architecture.
        weights: weights to load instead of the variant's released ones (path or hub id); a
            variant name given with them must match the file.
        device: where to put the model.
        dataset: for ViTPose+ / multi-task checkpoints, the dataset whose head must exist (its
            original `.pth` with all heads is fetched for non-COCO datasets).
        num_heads: attention heads of an official file whose width is not a released one.
        **overrides: `ViTPoseConfig` fields (e.g. ``datasets=``) applied after inference.

    Raises:
        CheckpointError: unknown name, missing or unreadable file, name contradicting the file.
        DownloadError: released weights that cannot be fetched (see `fetch`).
    """
    variant = None
    if weights is None:
        name_or_path = DEFAULT_MODEL if name_or_path is None else str(name_or_path)
        if Path(os.path.expanduser(name_or_path)).exists():
            spec = name_or_path
        elif variant_config(name_or_path) is not None:
            variant = name_or_path
            needs_all_heads = dataset not in (None, 0, "coco")
            spec = str(resolve_weights(canonical_name(variant) or variant,
                                       prefer_original=needs_all_heads)) \
                if canonical_name(variant) else None
            if spec is None:  # an original config name such as ViTPose_base_coco_256x192
                raise DownloadError(f"'{variant}' is an original config name: its weights are not "
                                    "downloaded automatically; pass them with --weights PATH")
        elif "/" in name_or_path or "\\" in name_or_path or \
                name_or_path.lower().endswith(_WEIGHT_SUFFIXES):
            spec = name_or_path
        else:
            raise CheckpointError(_unknown_name(name_or_path))
    else:
        spec = str(weights)
        if name_or_path is not None:
            variant = str(name_or_path)
            if variant_config(variant) is None:
                raise CheckpointError(
                    f"with --weights (Python: weights=), --model must be a variant name, not "
                    f"'{variant}'; leave it out to use the architecture of {spec}"
                    if Path(os.path.expanduser(variant)).exists() or "/" in variant
                    else _unknown_name(variant))
    path = resolve_weights(spec)
    obj = read_checkpoint(path)
    cfg, sd = checkpoint_config(obj, num_heads=num_heads, source=str(path))
    if variant is not None:
        _check_name_fits(variant, variant_config(variant), cfg, path)
    if overrides:
        try:
            cfg = replace_config(cfg, **overrides)
        except ValueError as e:
            raise CheckpointError(str(e)) from None
    with torch.device("meta"):  # laid out, not initialised: every tensor comes from the file
        model = ViTPose(cfg)
    load_state_dict_strict(model, prepare_state_dict(sd, model), str(path), assign=True)
    if dataset is not None:
        try:
            model.head_for(dataset)  # fails clearly if the checkpoint lacks that dataset's head
        except ValueError as e:
            raise CheckpointError(str(e)) from None
    log.info("loaded %s from %s", cfg.summary(), path)
    return model.eval().to(device)


def _unknown_name(name: str) -> str:
    from .models.vitpose import list_models
    return (f"'{name}' is neither an existing checkpoint file nor a model variant. Known "
            f"variants: {', '.join(list_models())}")
