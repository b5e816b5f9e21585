"""int8: an opt-in engine that states its cost.

Static post-training quantization (NNCF, ``pip install 'vitpose[int8]'``) of the trunk of our
OpenVINO engine (the transformer blocks; as in the bf16 engine, the patch embedding, the
heatmap layer and the LayerNorms stay float32), calibrated on crops of the user's own images
(activation ranges are static: crops of other images calibrate worse, docs/PERFORMANCE.md
"int8"). ``auto`` never
chooses it: int8 runs only when asked (``--dtype int8``, ``vitpose export --int8``,
`int8_engine`).

Every int8 engine carries an `Int8Certificate`, written beside its files
(``certificate.json``) and logged once per process: on held-out crops (crops of the same
images, not used for the calibration) and their mirrors, against our eager float32,

* the share of keypoints whose heatmap arg-max is the same, overall and per keypoint;
* PCK@0.05, box-normalised: the share of keypoints whose arg-max position lies within 5% of
  the box's larger side (the crop's larger side / 1.25) of the float32 one;
* the largest and mean position error in crop pixels (arg-max positions, heatmap stride);
* the engine, OpenVINO device and precision hints that actually ran, and the CPU.

`INT8_VARIANTS` are the ways to give accuracy back for speed (which matrix products run in
int8; NNCF's accuracy-controlled quantization).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...fileio import atomic_write_json, read_json
from ...models.vitpose import ViTPose, ViTPoseConfig
from .base import EngineError, argmax_agreement, cache_dir, rel_l2
from .graph import model_key, onnx_parts_for, plain_config
from .openvino_engine import FLOAT32_OPS, OpenVinoEngine, mark_float32
from .precision import cpu_features, cpu_supports_bf16
from .torch_engine import TorchEngine

__all__ = ["DEFAULT_VARIANT", "INT8_MISSING", "INT8_VARIANTS", "Int8Certificate", "Int8Engine",
           "calibration_crops", "certificate_of", "certify", "crops_from_images", "images_in",
           "int8_engine", "load_int8", "quantize_int8", "split_crops", "with_mirrors"]

log = logging.getLogger(__name__)

INT8_MISSING = ("int8 needs NNCF and OpenVINO: pip install 'vitpose[int8]' "
                "(nncf, openvino, onnx)")

#: variant -> (what it quantizes, regular expression on the trunk graph's MatMul names that
#: run in int8; None: NNCF's accuracy control decides). The attention's own products
#: (``attn/MatMul``) always stay in the higher precision.
INT8_VARIANTS: dict[str, tuple[str, str | None]] = {
    "all": ("every linear layer of the blocks (qkv, proj, fc1, fc2) in int8",
            r"/(qkv|proj|fc1|fc2)/MatMul"),
    "mixed": ("the linear layers of every block but the first and the last in int8 (the most "
              "sensitive blocks kept in the higher precision)",
              r"blocks\.(?!0/)(?!{last}/)\d+/.*/(qkv|proj|fc1|fc2)/MatMul"),
    "qkv-fc1": ("only qkv and fc1 (the products fed by a LayerNorm) in int8",
                r"/(qkv|fc1)/MatMul"),
    "accuracy": ("NNCF's accuracy-controlled quantization: every linear layer, then layers "
                 "returned to the higher precision until the arg-max agreement on validation "
                 "crops (a part of the calibration crops, never the held-out ones) is within "
                 "1% of float32, at most 6 layers (the search is bounded)",
                 r"/(qkv|proj|fc1|fc2)/MatMul"),
}
DEFAULT_VARIANT = "mixed"
#: the accuracy-controlled variant returns at most this many layers to the higher precision
ACCURACY_MAX_STEPS = 6
#: the held-out share of the crops (the rest calibrates)
HELD_OUT_SHARE = 0.25
_PRINTED: set[str] = set()


def _nncf() -> Any:
    try:
        import nncf
        import openvino  # noqa: F401
    except ImportError:
        raise EngineError(INT8_MISSING) from None
    return nncf


@dataclass
class Int8Certificate:
    """What an int8 engine costs in accuracy, measured against our eager float32."""

    variant: str
    description: str
    engine: str
    runtime: dict[str, Any]
    cpu: str
    calibration_crops: int
    held_out_crops: int
    argmax_same: float
    argmax_same_per_keypoint: list[float]
    pck_005: float
    max_pixel_error: float
    mean_pixel_error: float
    rel_l2: float
    quantize_seconds: float | None = None
    calibration_source: str = ""
    reference: str = "torch/float32 (eager)"
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line: the numbers a user needs before trusting the engine."""
        worst = int(np.argmin(self.argmax_same_per_keypoint)) if \
            self.argmax_same_per_keypoint else 0
        per = self.argmax_same_per_keypoint[worst] if self.argmax_same_per_keypoint else 1.0
        return (f"int8 certificate ({self.variant}; {self.engine} on "
                f"{self.runtime.get('openvino_device', '?')}, "
                f"{self.held_out_crops} held-out crops vs float32): same arg-max "
                f"{100 * self.argmax_same:.1f}% (worst keypoint #{worst} {100 * per:.1f}%), "
                f"PCK@0.05 {100 * self.pck_005:.1f}%, max error {self.max_pixel_error:.1f} px "
                f"(mean {self.mean_pixel_error:.2f} px)")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Int8Certificate:
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in names})


class Int8Engine(OpenVinoEngine):
    """The OpenVINO engine with an int8 trunk: float32 stem and heatmap layer, the quantized
    blocks (unquantized products in bf16 where the CPU has it natively, else float32).

    Args:
        stem, trunk, final: the three graphs (`onnx_parts_for`; ``trunk`` the quantized IR).
        cfg: the plain model's config.
        float32_ops: operation types of the trunk kept float32 (default the bf16 engine's
            `FLOAT32_OPS`; a saved engine runs with those it was certified with).
        certificate: its `Int8Certificate` (None until `certify`).
        threads: OpenVINO threads.
    """

    def __init__(self, stem: str | os.PathLike, trunk: str | os.PathLike,
                 final: str | os.PathLike, cfg: ViTPoseConfig, *,
                 certificate: Int8Certificate | None = None, threads: int | None = None,
                 float32_ops: Sequence[str] | None = None) -> None:
        hint = torch.bfloat16 if cpu_supports_bf16() else torch.float32
        super().__init__(stem, hint, threads=threads, cfg=cfg, parts=(stem, trunk, final),
                         float32_ops=float32_ops)
        self.hint = hint
        self.dtype = torch.int8
        self.certificate = certificate

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d["other_products"] = "bfloat16" if self.hint == torch.bfloat16 else "float32"
        if self.certificate is not None:
            d["certificate"] = self.certificate.as_dict()
        return d


def _normalise(crops: np.ndarray, model: ViTPose) -> torch.Tensor:
    """uint8 RGB crops ``[N, H, W, 3]`` -> the model's normalised input (its own
    ``pixel_mean`` / ``pixel_std``, as `PoseEstimator.to_tensor`)."""
    x = torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float()
    mean = torch.tensor(model.pixel_mean).view(1, 3, 1, 1) * 255
    std = torch.tensor(model.pixel_std).view(1, 3, 1, 1) * 255
    return ((x - mean) / std).contiguous()


def crops_from_images(model: ViTPose, images: Sequence[str | os.PathLike | np.ndarray],
                      boxes: Sequence[np.ndarray | None] | None = None,
                      max_crops: int = 256) -> torch.Tensor:
    """Normalised crops ``[N, 3, H, W]`` of the user's images: their boxes (xywh, one array per
    image) where given, else the whole image and its central 85%, 70% and 55% (what a
    whole-image fallback and a detector would give), each followed by its mirror; at most
    `max_crops`."""
    from ...transforms import box_xywh_to_center_scale, crop_boxes
    from ..io import read_image
    h, w = model.input_size
    out: list[torch.Tensor] = []
    n = 0
    for i, item in enumerate(images):
        image = read_image(item) if not isinstance(item, np.ndarray) else item
        ih, iw = image.shape[:2]
        b = None if boxes is None else boxes[i]
        if b is None or len(b) == 0:
            b = np.array([[(1 - f) / 2 * iw, (1 - f) / 2 * ih, f * iw, f * ih]
                          for f in (1.0, 0.85, 0.7, 0.55)], np.float32)
        b = np.asarray(b, np.float32)[:, :4]
        center, scale = box_xywh_to_center_scale(b, (w, h), 1.25)
        crops, _ = crop_boxes(image, center, scale, (w, h), True)
        out.append(with_mirrors(_normalise(crops, model)))
        n += len(out[-1])
        if n >= max_crops:
            break
    if not out:
        raise EngineError("int8 calibration needs at least one image")
    return torch.cat(out)[:max_crops].contiguous()


def with_mirrors(x: torch.Tensor) -> torch.Tensor:
    """Each crop followed by its mirror (pairs stay together in `split_crops`)."""
    return torch.stack([x, x.flip(3)], 1).reshape(-1, *x.shape[1:]).contiguous()


def images_in(folder: str | os.PathLike) -> list[Path]:
    """The images of a calibration folder (``--calib DIR``), sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise EngineError(f"calibration folder {folder} does not exist")
    found = sorted(p for p in folder.rglob("*") if p.suffix.lower() in
                   (".jpg", ".jpeg", ".png", ".bmp", ".webp"))
    if not found:
        raise EngineError(f"no images (.jpg, .png, ...) in the calibration folder {folder}")
    return found


def split_crops(x: torch.Tensor, held_out: float = HELD_OUT_SHARE, seed: int = 0
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Calibration and held-out crops: a seeded permutation of the pairs (a crop and its
    mirror, as `crops_from_images` orders them: a mirror never certifies its own calibrated
    crop; an odd count is taken as single crops), `held_out` of them (at least one) held out."""
    group = 2 if len(x) % 2 == 0 else 1
    units = len(x) // group
    if units < 2:
        raise EngineError("int8 needs at least 2 crops (one to calibrate, one to certify)")
    order = np.random.default_rng(seed).permutation(units)
    k = min(units - 1, max(1, round(held_out * units)))
    pick = [torch.arange(group * u, group * u + group) for u in order]
    held = torch.cat(pick[:k])
    return x[torch.cat(pick[k:])], x[held]


def _positions(heatmaps: torch.Tensor, stride: tuple[float, float]) -> torch.Tensor:
    """Arg-max positions ``[N, K, 2]`` (x, y) in crop pixels."""
    n, k, h, w = heatmaps.shape
    idx = heatmaps.reshape(n, k, -1).argmax(-1)
    return torch.stack([(idx % w).float() * stride[1], (idx // w).float() * stride[0]], -1)


def certify(runner: Any, reference: torch.Tensor, x: torch.Tensor, input_hw: tuple[int, int],
            **facts: Any) -> Int8Certificate:
    """The certificate of `runner` (an engine) on held-out crops `x` against `reference`
    heatmaps (our float32 on the same crops). `facts`: the other `Int8Certificate` fields."""
    out = torch.cat([runner(x[i:i + 8]) for i in range(0, len(x), 8)]).float().cpu()
    ref = reference.float().cpu()
    if not bool(torch.isfinite(ref).all()):
        raise EngineError("the model's own float32 output is not finite on the held-out crops: "
                          "int8 cannot be certified against it")
    same = out.flatten(2).argmax(-1) == ref.flatten(2).argmax(-1)  # [N, K]
    h, w = input_hw
    stride = (h / ref.shape[-2], w / ref.shape[-1])
    err = (_positions(out, stride) - _positions(ref, stride)).norm(dim=-1)
    box = max(h, w) / 1.25  # the box's larger side in crop pixels (crops pad boxes by 1.25)
    return Int8Certificate(
        argmax_same=round(argmax_agreement(out, ref)[0], 5),
        argmax_same_per_keypoint=[round(v, 5) for v in same.float().mean(0).tolist()],
        pck_005=round(float((err <= 0.05 * box).float().mean()), 5),
        max_pixel_error=round(float(err.max()), 3) if err.numel() else 0.0,
        mean_pixel_error=round(float(err.mean()), 4) if err.numel() else 0.0,
        rel_l2=round(rel_l2(out, ref), 6), held_out_crops=len(x), **facts)


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
            else:
                name = platform.processor() or platform.machine()
    except OSError:
        name = platform.processor() or platform.machine()
    return f"{name} ({os.cpu_count()} CPUs; {' '.join(sorted(cpu_features())) or 'no AVX2'})"


def _quantize_trunk(stem: Path, trunk: Path, final: Path, calibration: torch.Tensor,
                    variant: str, depth: int, out: Path,
                    validation: tuple[torch.Tensor, Any] | None) -> Path:
    """The trunk graph quantized by NNCF, saved as OpenVINO IR at `out` (``.xml``)."""
    nncf = _nncf()
    import openvino as ov

    from .ovcore import shared_core
    core = shared_core()
    stem_f32 = core.compile_model(str(stem), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    tokens = [stem_f32(calibration[i:i + 1].numpy())[0] for i in range(len(calibration))]
    model = core.read_model(str(trunk))
    names = [op.get_friendly_name() for op in model.get_ordered_ops()
             if op.get_type_name() in ("MatMul", "Convolution")]
    pattern = re.compile(str(INT8_VARIANTS[variant][1]).format(last=depth - 1))
    ignored = [n for n in names if not pattern.search(n)]
    kw: dict[str, Any] = {"model_type": nncf.ModelType.TRANSFORMER, "subset_size": len(tokens),
                          "ignored_scope": nncf.IgnoredScope(names=ignored, validate=False)}
    if variant == "accuracy" and validation is not None:
        held_x, held_ref = validation
        val_tokens = [stem_f32(held_x[i:i + 1].numpy())[0] for i in range(len(held_x))]
        ref_arg = held_ref.flatten(2).argmax(-1).numpy()
        final_f32 = core.compile_model(str(final), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})

        def metric(compiled: Any, data: Any) -> float:
            same = []
            for i, t in enumerate(data):
                body = compiled(t)[0]
                hm = final_f32(body)[0]
                same.append(hm.reshape(hm.shape[0], hm.shape[1], -1).argmax(-1) == ref_arg[i])
            return float(np.mean(same))

        from nncf.quantization.advanced_parameters import AdvancedAccuracyRestorerParameters

        # bounded: NNCF's default search has no limit (one ranking of ViTPose-B's 46 layer
        # groups takes ~3 min on 2 cores, and it ranks again after each step that loses more)
        restorer = AdvancedAccuracyRestorerParameters(max_num_iterations=ACCURACY_MAX_STEPS,
                                                      ranking_subset_size=16)
        q = nncf.quantize_with_accuracy_control(
            model, nncf.Dataset(tokens), nncf.Dataset(val_tokens), metric, max_drop=0.01,
            advanced_accuracy_restorer_parameters=restorer, **kw)
    else:
        q = nncf.quantize(model, nncf.Dataset(tokens), **kw)
    out.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(q, str(out), compress_to_fp16=False)
    # the LayerNorms float32 (as the bf16 engine): marked in the file, so the engine that runs
    # it needs no marked copy beside it
    mark_float32(out, FLOAT32_OPS)
    return out


def quantize_int8(model: ViTPose, dataset: int | str | None, calibration: torch.Tensor,
                  held_out: torch.Tensor, folder: str | os.PathLike, *,
                  variant: str = DEFAULT_VARIANT, threads: int | None = None,
                  source: str = "") -> Int8Engine:
    """Quantize `model` for `dataset` into `folder` (the three graphs, ``certificate.json`` and
    ``int8.json``) on `calibration` crops, certify it on `held_out` crops, log the certificate
    once and return the engine."""
    if variant not in INT8_VARIANTS:
        raise EngineError(f"unknown int8 variant '{variant}'; choose one of "
                          f"{list(INT8_VARIANTS)}")
    _nncf()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    key = model_key(model, dataset)
    stem, trunk, final = onnx_parts_for(model, dataset, key=key)
    index = model.dataset_index_of(dataset if dataset is not None else 0)
    cfg = plain_config(model.cfg, index)
    reference = TorchEngine(model, dataset, torch.float32)
    with torch.inference_mode():
        ref_held = torch.cat([reference(held_out[i:i + 8]) for i in range(0, len(held_out), 8)])
    log.info("quantizing the model to int8 (%s) on %d crops: about a minute for ViTPose-B "
             "on 2 cores (once: kept in %s)", variant, len(calibration), folder)
    t0 = time.perf_counter()
    files = [folder / "stem.onnx", folder / "trunk-int8.xml", folder / "final.onnx"]
    shutil.copyfile(stem, files[0])
    shutil.copyfile(final, files[2])
    tmp_trunk = folder / "trunk.onnx"  # the float trunk beside the final (accuracy control)
    shutil.copyfile(trunk, tmp_trunk)
    validation = None
    if variant == "accuracy":  # validated on calibration crops: the held-out ones only certify
        _, val_x = split_crops(calibration, seed=1) if len(calibration) >= 4 else \
            (calibration, calibration)
        with torch.inference_mode():
            validation = (val_x, reference(val_x).float().cpu())
    try:
        _quantize_trunk(files[0], tmp_trunk, files[2], calibration, variant, model.cfg.depth,
                        files[1], validation)
    except EngineError:
        raise
    except Exception as e:  # noqa: BLE001 - NNCF / OpenVINO raise their own types
        raise EngineError(f"int8 quantization failed: {e}") from None
    finally:
        tmp_trunk.unlink(missing_ok=True)
    seconds = round(time.perf_counter() - t0, 1)
    engine = Int8Engine(*files, cfg, threads=threads)
    cert = certify(engine, ref_held, held_out, tuple(cfg.img_size), variant=variant,
                   description=INT8_VARIANTS[variant][0], engine=engine.label,
                   runtime=_runtime(engine), cpu=_cpu_name(),
                   calibration_crops=len(calibration), quantize_seconds=seconds,
                   calibration_source=source)
    engine.certificate = cert
    atomic_write_json(folder / "certificate.json", cert.as_dict(), indent=2)
    atomic_write_json(folder / "int8.json", {"vitpose_config": cfg.to_dict(),
                                             "variant": variant, "model_key": key,
                                             "files": [f.name for f in files],
                                             "float32_ops": engine.float32_ops}, indent=2)
    del reference, ref_held
    from .auto import release_memory
    release_memory()  # NNCF's statistics and the float32 reference
    _announce(engine, folder)
    return engine


def _runtime(engine: OpenVinoEngine) -> dict[str, Any]:
    import openvino
    d = engine.describe()
    return {"openvino": openvino.__version__, "openvino_device": d.get("openvino_device"),
            "streams": d.get("streams"), "other_products": d.get("other_products"),
            "float32_ops": d.get("float32_ops", []),
            "properties": d.get("properties", {})}


def _announce(engine: Int8Engine, folder: Path) -> None:
    """Log the certificate once per process and folder."""
    key = str(folder.resolve())
    if engine.certificate is not None and key not in _PRINTED:
        _PRINTED.add(key)
        log.warning("%s; certificate: %s", engine.certificate.summary(),
                    folder / "certificate.json")


def load_int8(folder: str | os.PathLike, threads: int | None = None) -> Int8Engine:
    """The int8 engine written by `quantize_int8` or ``vitpose export --int8 DIR``, with its
    certificate (logged once)."""
    folder = Path(folder)
    try:
        manifest = read_json(folder / "int8.json")
        cert = Int8Certificate.from_dict(read_json(folder / "certificate.json"))
        cfg = ViTPoseConfig.from_dict(manifest["vitpose_config"])
        files = [folder / name for name in manifest["files"]]
        # what the certificate measured: folders written before the LayerNorms were kept
        # float32 have no such entry and run as they were certified
        float32_ops = [str(t) for t in manifest.get("float32_ops", [])]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise EngineError(f"{folder} is not an int8 engine written by vitpose ({e})") from None
    engine = Int8Engine(*files, cfg, certificate=cert, threads=threads, float32_ops=float32_ops)
    _announce(engine, folder)
    return engine


def int8_engine(model: ViTPose, dataset: int | str | None = None, *,
                images: Sequence[str | os.PathLike | np.ndarray] | None = None,
                boxes: Sequence[np.ndarray | None] | None = None,
                calib: str | os.PathLike | None = None, crops: torch.Tensor | None = None,
                variant: str = DEFAULT_VARIANT, threads: int | None = None,
                folder: str | os.PathLike | None = None, max_crops: int = 256) -> Int8Engine:
    """The int8 engine of `model` calibrated on the user's inputs: `crops` (normalised), else
    crops of `images` (with their `boxes` where known), else of the images in `calib`
    (``--calib DIR``), else (not representative: a warning) of the bundled sample image.
    Quantized once per model, variant and calibration data (kept in `folder`, default the
    cache folder's ``int8/``) and certified; `predict` and `demo` call this for
    ``--dtype int8``."""
    if variant not in INT8_VARIANTS:
        raise EngineError(f"unknown int8 variant '{variant}'; choose one of "
                          f"{list(INT8_VARIANTS)}")
    source = "crops given"
    if crops is None:
        crops, source = calibration_crops(model, images=images, boxes=boxes, calib=calib,
                                          max_crops=max_crops)
    h = hashlib.sha256(model_key(model, dataset).encode())
    h.update(variant.encode())
    h.update(crops.detach().float().cpu().numpy().tobytes())
    folder = Path(folder) if folder is not None else \
        cache_dir() / "int8" / f"{variant}-{h.hexdigest()[:16]}"
    if (folder / "int8.json").is_file() and (folder / "certificate.json").is_file():
        try:
            return load_int8(folder, threads)
        except EngineError as e:
            log.warning("quantizing again: %s", e)
    calibration, held_out = split_crops(crops)
    return quantize_int8(model, dataset, calibration, held_out, folder, variant=variant,
                         threads=threads, source=source)


def calibration_crops(model: ViTPose, *,
                      images: Sequence[str | os.PathLike | np.ndarray] | None = None,
                      boxes: Sequence[np.ndarray | None] | None = None,
                      calib: str | os.PathLike | None = None, max_crops: int = 256
                      ) -> tuple[torch.Tensor, str]:
    """Crops to calibrate and certify on, and where they come from: `images` (with `boxes`),
    else the images of `calib`, else the bundled sample image (with a warning: not the
    user's)."""
    if images:
        return crops_from_images(model, images, boxes, max_crops), \
            f"{len(images)} input image(s)"
    if calib is not None:
        found = images_in(calib)
        return crops_from_images(model, found, None, max_crops), \
            f"{len(found)} image(s) of {calib}"
    from .auto import calibration_inputs
    log.warning("int8 calibrated on the bundled sample image only: pass your own images "
                "(--calib DIR) for a representative calibration")
    x = calibration_inputs(model, 8)  # crops, then their mirrors
    return with_mirrors(x[: len(x) // 2]), "the bundled sample image"


def certificate_of(folder: str | os.PathLike) -> dict[str, Any]:
    """The certificate written beside an int8 engine, as a dict."""
    return json.loads((Path(folder) / "certificate.json").read_text())
