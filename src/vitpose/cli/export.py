"""`vitpose export`: a model to ONNX (dynamic batch, validated against PyTorch) and/or to the
Hugging Face transformers layout (``config.json`` + ``model.safetensors``).

For ViTPose+ and multi-task models the ONNX graph holds one dataset (``--dataset``, default the
first): its experts are folded into the MLP and only its head is kept.

``--int8 DIR`` writes the opt-in int8 engine (OpenVINO, NNCF's static quantization calibrated
on crops of ``--calib DIR``'s images) with its certificate (arg-max agreement, PCK@0.05, pixel
errors against float32 on held-out crops), printed once.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import InputError
from ..inference.engines.int8 import INT8_VARIANTS


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None,
                   help="variant name (released weights), checkpoint path or hub id "
                        "(default: vitpose-b-simple; with --weights, the file's own "
                        "architecture)")
    p.add_argument("--weights", default=None, help="checkpoint path or hub id for --model")
    p.add_argument("--dataset", default=None,
                   help="dataset baked into the ONNX graph (ViTPose+ expert and head)")
    p.add_argument("--onnx", default=None, metavar="OUT.onnx", help="write an ONNX file")
    p.add_argument("--hf", default=None, metavar="DIR",
                   help="write the transformers layout (main head only) to DIR")
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--no-validate", action="store_true",
                   help="do not compare ONNX Runtime with PyTorch after the export")
    p.add_argument("--tolerance", type=float, default=1e-4,
                   help="largest accepted relative L2 error of the validation "
                        "(default: %(default)s)")
    p.add_argument("--int8", default=None, metavar="DIR",
                   help="write the int8 engine (OpenVINO; needs pip install 'vitpose[int8]') "
                        "and its certificate to DIR")
    p.add_argument("--calib", default=None, metavar="DIR",
                   help="images to calibrate and certify int8 on: use your own (default: the "
                        "bundled sample image, not representative)")
    p.add_argument("--int8-variant", default=None, choices=list(INT8_VARIANTS),
                   help="which products run in int8: all linear layers; mixed (default: the "
                        "first and last blocks kept in higher precision); qkv-fc1; accuracy "
                        "(NNCF's accuracy-controlled quantization, within 1%% of the arg-max)")
    p.add_argument("--threads", type=int, default=None, help="threads of the int8 engine")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")


def run(args: argparse.Namespace) -> int:
    if not args.onnx and not args.hf and not args.int8:
        raise InputError("nothing to do: pass --onnx OUT.onnx, --hf DIR and/or --int8 DIR")
    if args.calib and not args.int8:
        raise InputError("--calib goes with --int8 DIR")
    for out in (args.onnx, args.hf, args.int8):
        if out and Path(out).exists() and not args.overwrite:
            raise InputError(f"output already exists: {out} (pass --overwrite to replace)")
    from ..checkpoints import save_hf_pretrained
    from ..export import export_onnx, onnxruntime_available
    from ..hub import load_model
    model = load_model(args.model, weights=args.weights, device="cpu", dataset=args.dataset)
    if args.onnx:
        validate = not args.no_validate
        if validate and not onnxruntime_available():
            raise InputError("validation needs onnxruntime (pip install 'vitpose[onnx]'), or "
                             "pass --no-validate")
        res = export_onnx(model, args.onnx, dataset=args.dataset, opset=args.opset,
                          validate=validate, tolerance=args.tolerance)
        check = "" if res.max_rel_error is None else \
            (f"; ONNX Runtime matches PyTorch to {res.max_rel_error:.1e} relative at batch "
             f"sizes {list(res.checked_batch_sizes)}")
        print(f"ONNX -> {res.path} (dataset {res.dataset}, input [batch, 3, "
              f"{res.input_shape[2]}, {res.input_shape[3]}], {res.num_keypoints} keypoints{check})")
    if args.hf:
        folder = save_hf_pretrained(model, args.hf)
        print(f"transformers layout -> {folder}")
    if args.int8:
        from ..export import export_int8
        from ..inference.engines import EngineError
        out = Path(args.int8)
        if out.is_dir():
            import shutil
            shutil.rmtree(out)
        elif out.exists():
            out.unlink()
        try:
            engine = export_int8(model, args.int8, dataset=args.dataset, calib=args.calib,
                                 variant=args.int8_variant, threads=args.threads)
        except EngineError as e:
            raise InputError(str(e)) from None
        cert = engine.certificate
        print(f"int8 ({cert.variant}) -> {args.int8} (quantized in {cert.quantize_seconds} s on "
              f"{cert.calibration_crops} crops of {cert.calibration_source}; certificate: "
              f"{Path(args.int8) / 'certificate.json'})")
    return 0
