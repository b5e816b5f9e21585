"""The OpenVINO engine: an exported graph compiled by OpenVINO for the CPU, in float32 or bf16.

Needs ``openvino`` (``pip install 'vitpose[openvino]'``), imported when an engine is built. The
compiled model is cached on disk (OpenVINO's ``CACHE_DIR``, under the vitpose cache folder), so
the second start of the same graph and settings loads it instead of compiling (about 0.2 s
instead of 2 s for ViTPose-B).
"""

from __future__ import annotations

import json
import os
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...models.vitpose import ViTPoseConfig
from .base import Engine, EngineError, cache_dir, installed
from .ovcore import shared_core
from .precision import resolve_dtype
from .runtime import OV_MISSING, compile_openvino, openvino_config

__all__ = ["FLOAT32_OPS", "OpenVinoEngine", "keep_float32", "mark_float32",
           "openvino_available", "openvino_config"]

#: Operation types of the trunk that the bf16 engine keeps in float32 (OpenVINO's per-operation
#: "precise" mark, which its CPU plugin honours under a bf16 precision hint): the LayerNorms
#: (``MVN``), as autocast does. OpenVINO's bf16 otherwise normalises the bf16-rounded residual
#: stream, whose large mean leaves few significant bits after the subtraction: on trained
#: weights this moves arg-maxes (docs/PERFORMANCE.md, "Accuracy of each engine"). The residual
#: additions already run in float32; the cost is nil (the conversion to bf16 moves from the
#: LayerNorm's input to its output).
FLOAT32_OPS = ("MVN",)


def openvino_available() -> bool:
    """Whether openvino is installed (not imported here: see `installed`)."""
    return installed("openvino")


class OpenVinoEngine(Engine):
    """A file written by `vitpose export` (or `onnx_file_for`) compiled by OpenVINO.

    Args:
        path: the ``.onnx`` file (with vitpose metadata), or OpenVINO IR (``.xml``).
        dtype: ``float32`` (exact) or ``bfloat16`` (OpenVINO's bf16 inference precision: every
            matrix product in bf16; needs a CPU with bf16, else OpenVINO computes in fp32).
        device: OpenVINO device name (``'CPU'``).
        threads: inference threads (default: OpenVINO's choice).
        cfg: the model's `ViTPoseConfig` when known (else read from the file's metadata).
        tuned: our settings (latency hint, compiled-model cache, calls split across
            streams); False = OpenVINO's defaults, one request per call.
        cache: the compiled-model cache folder (default ``<cache folder>/openvino``).
        streams: with `tuned`, calls of several rows are split into this many parts that run
            at once, each on its own OpenVINO stream (a throughput-hint compiled model sharing
            the threads); one-row calls run on a latency-hint model over all threads. Default:
            2 where there are at least 2 threads, else 1. See docs/PERFORMANCE.md ("Streams").
        parts: the same graph as three files (`onnx_parts_for`: stem, trunk, final). In bf16
            the stem and the final layer then run in float32, as `models.precision` does under
            autocast: OpenVINO's bf16 otherwise rounds the pixels before the patch embedding and
            the heatmaps' last layer, which moves arg-maxes (docs/PERFORMANCE.md). Inside the
            trunk the operations of `FLOAT32_OPS` (the LayerNorms) stay float32 too
            (`keep_float32`). The trunk may be a quantized OpenVINO IR (`engines.int8`).
        float32_ops: the operation types of the trunk kept float32 below float32 precision
            (default `FLOAT32_OPS`; an int8 engine passes what it was certified with).
    """

    backend = "openvino"

    def __init__(self, path: str | os.PathLike, dtype: str | torch.dtype = torch.float32,
                 device: str = "CPU", threads: int | None = None,
                 cfg: ViTPoseConfig | None = None, tuned: bool = True,
                 cache: str | os.PathLike | None = None, streams: int | None = None,
                 parts: Sequence[str | os.PathLike] | None = None,
                 float32_ops: Sequence[str] | None = None) -> None:
        try:
            import openvino  # noqa: F401 - the missing runtime is an EngineError here
        except ImportError:
            raise EngineError(OV_MISSING) from None
        self.path = Path(path)
        for f in [self.path, *(Path(q) for q in parts or ())]:
            if not f.is_file():
                raise EngineError(f"model file {f} does not exist")
        self.dtype = resolve_dtype(dtype, "cpu")
        self.device = torch.device("cpu")
        self.ov_device = device
        core = shared_core()  # one Core per process: see ovcore.py
        if cfg is None:
            cfg = _config_from_file(core, self.path)
        self.cfg = cfg
        if not tuned:
            self.streams = 1
        else:
            self.streams = _default_streams(threads) if streams is None else max(1, int(streams))
        # (file, precision) of each graph of the chain
        # (with parts in float32 the chain computes as the one file; the int8 engine's trunk is
        # a quantized graph run under this precision hint)
        self.float32_ends = bool(parts)
        self.float32_ops: list[str] = []
        if self.float32_ends:
            stem, trunk, final = (Path(q) for q in parts)  # type: ignore[union-attr]
            ops = FLOAT32_OPS if float32_ops is None else tuple(float32_ops)
            self.float32_ops = list(ops) if self.dtype != torch.float32 else []
            trunk = keep_float32(trunk, self.float32_ops)
            self._graphs = [(stem, torch.float32), (trunk, self.dtype), (final, torch.float32)]
        else:
            self._graphs = [(self.path, self.dtype)]
        self._settings = {"device": device, "threads": threads, "cache": cache, "tuned": tuned,
                          "core": core}
        self._chains: dict[int, list[list[Any]]] = {}  # streams -> a chain of requests per slot
        # the properties of the latency-hint model of one-row calls (compiled on the first such
        # call); those of the split calls' model under "split"
        cached = (Path(cache) if cache is not None else cache_dir() / "openvino") \
            if tuned else None
        self.properties: dict[str, Any] = openvino_config(self._graphs[len(self._graphs) // 2][1],
                                                          threads, cached, tuned)
        # compiled now, so that a bad file fails here, not on the first call: the model of the
        # calls a job makes (with the flip test, a crop and its mirror: split where there are
        # streams); the other one on first use (a ViTPose-B model left uncompiled is ~0.2-0.4 GB
        # and ~2 s less, in each engine a calibration builds)
        self._chains_for(self.streams)

    def _chains_for(self, streams: int) -> list[list[Any]]:
        """One chain of infer requests (one per graph) for each of `streams` slots, compiled on
        first use (one-row calls: latency hint; split calls: throughput hint)."""
        if streams not in self._chains:
            compiled = []
            for f, dt in self._graphs:
                model, properties = compile_openvino(f, dt, streams=streams, **self._settings)
                compiled.append(model)
                if f == self._graphs[len(self._graphs) // 2][0] and streams > 1:
                    self.properties["split"] = properties  # the graph of the matmuls
            self._chains[streams] = [[c.create_infer_request() for c in compiled]
                                     for _ in range(streams)]
        return self._chains[streams]

    def run(self, images: np.ndarray) -> np.ndarray:
        """float32 ``[B, 3, H, W]`` -> float32 heatmaps ``[B, K, h, w]`` (numpy)."""
        x = np.ascontiguousarray(images, dtype=np.float32)
        if self.streams > 1 and len(x) > 1:
            return self._run_split(x)
        return _run_chain(self._chains_for(1)[0], x)

    def _run_split(self, x: np.ndarray) -> np.ndarray:
        """Rows split into up to `streams` contiguous parts run at once, one per stream (the
        values of one call: each row is computed independently). Each stage of the chain starts
        on every part, then is waited for; no Python threads (OpenVINO's own run the parts)."""
        chains = self._chains_for(self.streams)
        data = np.array_split(x, min(self.streams, len(x)))
        for stage in range(len(self._graphs)):
            requests = [chain[stage] for chain in chains[:len(data)]]
            for request, part in zip(requests, data, strict=True):
                request.start_async({0: part}, share_inputs=True)
            for i, request in enumerate(requests):
                request.wait()
                # a view of the request's output buffer: valid until its next inference, which
                # comes after this call (the next stage reads it, the concatenation copies it)
                data[i] = request.get_output_tensor(0).data
        return np.concatenate(data).astype(np.float32, copy=False)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.run(images.detach().float().cpu().numpy()))

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "openvino_device": self.ov_device,
                "streams": self.streams, "float32_ends": self.float32_ends,
                "float32_ops": self.float32_ops,
                "properties": {k: str(v) for k, v in self.properties.items()},
                "file": str(self.path)}


def keep_float32(graph: str | os.PathLike, op_types: Sequence[str] = FLOAT32_OPS) -> Path:
    """`graph` (``.onnx`` or IR ``.xml``) as OpenVINO IR whose operations of `op_types` carry
    OpenVINO's "precise" mark: they keep float32 under a lower precision hint while the rest
    (the matrix products) follow the hint.

    An IR whose operations of `op_types` are all marked already (the int8 trunk, marked when
    it is written) is returned as it is. Otherwise the marked IR is written once beside `graph`
    (``<name>.f32-<types>.xml`` and ``.bin``, atomically: the ``.xml`` appears last) and
    reused; where that folder is not writable, in the vitpose cache folder. The mark can only
    be set through the IR: OpenVINO's Python API takes string values for runtime info, and the
    plugin looks for its own attribute type, which the IR reader creates from
    ``<attribute name="precise" version="0"/>``.
    """
    graph = Path(graph)
    if not op_types or (graph.suffix == ".xml" and _all_marked(graph, op_types)):
        return graph
    name = f"{graph.stem}.f32-{'-'.join(t.lower() for t in op_types)}.xml"
    out = graph.with_name(name)
    if out.is_file() and out.with_suffix(".bin").is_file():
        return out
    try:
        return _write_marked(graph, out, op_types)
    except OSError:
        out = cache_dir() / "graphs" / f"{graph.parent.name}-{name}"
        if out.is_file() and out.with_suffix(".bin").is_file():
            return out
        return _write_marked(graph, out, op_types)


def mark_float32(xml: str | os.PathLike, op_types: Sequence[str] = FLOAT32_OPS) -> int:
    """Mark the operations of `op_types` in the OpenVINO IR file `xml` in place (its ``.bin``
    is unchanged; the ``.xml`` is replaced atomically). Returns how many were marked."""
    xml = Path(xml)
    tree = ET.parse(xml)
    marked = 0
    for layer in tree.getroot().iter("layer"):
        if layer.get("type") in op_types and not _is_marked(layer):
            info = layer.find("rt_info")
            if info is None:
                info = ET.SubElement(layer, "rt_info")
            ET.SubElement(info, "attribute", {"name": "precise", "version": "0"})
            marked += 1
    tmp = xml.with_name(f".{xml.name}.marking")
    tree.write(tmp, encoding="utf-8", xml_declaration=True)
    os.replace(tmp, xml)
    return marked


def _is_marked(layer: ET.Element) -> bool:
    info = layer.find("rt_info")
    return info is not None and any(a.get("name") == "precise" for a in info.iter("attribute"))


def _all_marked(xml: Path, op_types: Sequence[str]) -> bool:
    try:
        layers = [la for la in ET.parse(xml).getroot().iter("layer") if la.get("type") in op_types]
    except (OSError, ET.ParseError):
        return False
    return bool(layers) and all(_is_marked(la) for la in layers)


def _write_marked(graph: Path, out: Path, op_types: Sequence[str]) -> Path:
    import openvino as ov

    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        model = shared_core().read_model(str(graph))
    except Exception as e:  # noqa: BLE001 - OpenVINO raises RuntimeError with its message
        raise EngineError(f"OpenVINO cannot read {graph}: {e}") from None
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".marking-") as tmp:
        xml = Path(tmp) / "graph.xml"
        ov.save_model(model, str(xml), compress_to_fp16=False)
        mark_float32(xml, op_types)
        os.replace(xml.with_suffix(".bin"), out.with_suffix(".bin"))
        os.replace(xml, out)
    return out


def _run_chain(chain: Sequence[Any], x: np.ndarray) -> np.ndarray:
    """`x` through a chain of infer requests."""
    out = x
    for request in chain:
        out = request.infer({0: out}, share_inputs=True)[0]  # outputs are copies
    return np.asarray(out, np.float32)


def _default_streams(threads: int | None) -> int:
    """Two streams where there are two threads or more. Measured on the 2-core machine of
    docs/PERFORMANCE.md ("Streams", "S, L and H"): in bf16 at batch 8, 1.05x (B) and 1.13x (S)
    OpenVINO's one request on a quiet machine, 1.25-1.43x with other work on the cores (a
    two-thread request waits for its slower thread at every layer), 0.96x for L and H (one row
    already fills the cores)."""
    n = threads or os.cpu_count() or 1
    return 2 if n >= 2 else 1


def _config_from_file(core: Any, path: Path) -> ViTPoseConfig:
    model = core.read_model(str(path))
    try:
        text = model.get_rt_info(["framework", "vitpose_config"]).astype(str)
    except Exception:  # noqa: BLE001 - no such metadata
        raise EngineError(f"{path} was not written by `vitpose export` (no vitpose metadata); "
                          "export it again with vitpose") from None
    return ViTPoseConfig.from_dict(json.loads(text))
