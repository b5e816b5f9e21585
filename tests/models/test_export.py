"""ONNX export (tiny simple / classic / ViTPose+ models): dynamic batch, ONNX Runtime output equal
to PyTorch within 1e-4 relative, the dataset baked in for ViTPose+, the ONNX Runtime estimator,
`vitpose export` (ONNX and transformers layout), and the PyTorch inference preparation."""

from __future__ import annotations

import copy
import importlib.util
import warnings

import numpy as np
import pytest
import torch

import vitpose
from vitpose.cli.main import main
from vitpose.export import (
    ExportError,
    export_onnx,
    optimize_for_inference,
    plain_model_for,
    rel_l2,
    resolve_dtype,
)
from vitpose.inference.builder import estimator_from_file
from vitpose.inference.engines import EngineError, OnnxRuntimeEngine
from vitpose.inference.pipeline import PoseEstimator, TestSettings


def _tiny(name: str, seed: int = 0) -> vitpose.ViTPose:
    model = vitpose.build_model(name, embed_dim=32, depth=2, num_heads=2)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():  # non-trivial weights (the default head init is ~0)
            p.copy_(torch.randn(p.shape, generator=g) * 0.05 + (1.0 if p.ndim == 1 and
                                                                 p.shape[0] == 32 else 0.0))
    return model.eval()


def _heatmaps(model: vitpose.ViTPose, x: torch.Tensor, dataset: int | str = 0) -> torch.Tensor:
    with torch.no_grad():
        return model.head_for(dataset)(model.forward_features(x, dataset))


# ---------------------------------------------------------------------------------------------
# PyTorch fast paths (no ONNX needed)
# ---------------------------------------------------------------------------------------------

def test_optimize_for_inference_equals_autocast():
    model = _tiny("vitpose-b")
    fast = optimize_for_inference(copy.deepcopy(model), torch.bfloat16)
    assert fast.backbone.blocks[0].attn.qkv.weight.dtype == torch.bfloat16
    assert fast.backbone.blocks[0].norm1.weight.dtype == torch.float32  # norms stay fp32
    # the two ends run outside autocast (vitpose.models.precision)
    assert fast.keypoint_head.final_layer.weight.dtype == torch.float32
    assert fast.backbone.patch_embed.proj.weight.dtype == torch.float32
    x = torch.randn(2, 3, 256, 192)
    ref = PoseEstimator(model, dtype=torch.bfloat16).forward_heatmaps(x)
    out = PoseEstimator(fast, dtype=torch.bfloat16).forward_heatmaps(x)
    assert torch.equal(out, ref)  # the same numbers as plain autocast, without per-call casts
    assert rel_l2(out, PoseEstimator(model).forward_heatmaps(x)) < 2e-2


def test_resolve_dtype():
    assert resolve_dtype("float32") == torch.float32
    assert resolve_dtype(torch.float16) == torch.float16
    assert resolve_dtype("auto", "cpu") in (torch.float32, torch.bfloat16)
    with pytest.raises(ValueError, match="dtype"):
        resolve_dtype("int8")


def test_resolve_dtype_on_cuda_follows_compute_capability(monkeypatch):
    """Native bf16 from Ampere on; older GPUs get fp16 (is_bf16_supported counts emulation)."""
    seen = []

    def capability(device=None):
        seen.append(device)
        return capability.value

    monkeypatch.setattr(torch.cuda, "get_device_capability", capability)
    for value, expected in (((7, 5), torch.float16), ((8, 0), torch.bfloat16),
                            ((9, 0), torch.bfloat16)):
        capability.value = value
        assert resolve_dtype("auto", "cuda:1") == expected
    assert seen[-1] == torch.device("cuda:1")  # the device asked about, not the current one


def test_plain_model_for_vitpose_plus_equals_routed_model():
    model = _tiny("vitpose-plus-b")
    plain = plain_model_for(model, "ap10k")
    assert not plain.cfg.is_moe and plain.datasets == ("ap10k",) and len(plain.heads) == 1
    x = torch.randn(2, 3, 256, 192)
    assert rel_l2(_heatmaps(plain, x), _heatmaps(model, x, "ap10k")) < 1e-5


# ---------------------------------------------------------------------------------------------
# ONNX
# ---------------------------------------------------------------------------------------------

HAS_ONNX = importlib.util.find_spec("onnx") is not None and \
    importlib.util.find_spec("onnxruntime") is not None
needs_onnx = pytest.mark.skipif(not HAS_ONNX, reason="onnx / onnxruntime are not installed "
                                                     "(pip install 'vitpose[onnx]')")


@needs_onnx
@pytest.mark.parametrize("name,dataset", [("vitpose-b-simple", None), ("vitpose-b", None),
                                          ("vitpose-plus-b", "ap10k"),
                                          ("vitpose-b-multi", "mpii")])
def test_export_dynamic_batch_matches_torch(tmp_path, name, dataset):
    model = _tiny(name)
    res = export_onnx(model, tmp_path / "m.onnx", dataset=dataset)
    want = dataset or model.datasets[0]
    assert res.path.is_file() and res.dataset == want
    assert res.max_rel_error is not None and res.max_rel_error < 1e-4
    runner = OnnxRuntimeEngine(res.path)
    assert runner.dataset == want and runner.input_hw == (256, 192)
    for batch in (1, 2, 5):  # the batch dimension is dynamic
        x = torch.randn(batch, 3, 256, 192)
        out = runner(x)
        ref = _heatmaps(model, x, want)
        assert out.shape == ref.shape
        assert rel_l2(out, ref) < 1e-4


@needs_onnx
def test_onnx_estimator_equals_torch_estimator(tmp_path, data_dir):
    from vitpose.inference.detectors import load_coco_detections
    from vitpose.inference.io import read_image
    model = _tiny("vitpose-b-simple", seed=1)
    path = export_onnx(model, tmp_path / "m.onnx").path
    image = read_image(data_dir / "coco" / "000000000785.jpg")
    dets = load_coco_detections(data_dir / "coco" / "test_coco_det_AP_H_56.json")[785][:3]
    for flip in (True, False):
        settings = TestSettings.for_dataset("coco", flip_test=flip)
        est = PoseEstimator(model, settings=settings)
        oest = estimator_from_file(path, settings=settings, batch_size=2)
        x, _, _ = est.crops(image, dets)
        assert rel_l2(oest.forward_heatmaps(x), est.forward_heatmaps(x)) < 1e-4
        a, b = est(image, dets), oest(image, dets)
        assert len(a.instances) == len(b.instances) == 3
        np.testing.assert_allclose(b.keypoints[..., 2], a.keypoints[..., 2], rtol=1e-3,
                                   atol=1e-5)
    assert oest.with_settings(flip_test=True).engine is oest.engine


@needs_onnx
def test_export_validation_failure_is_an_error(tmp_path):
    with pytest.raises(ExportError, match="differs from PyTorch"):
        export_onnx(_tiny("vitpose-b-simple"), tmp_path / "m.onnx", tolerance=1e-15)


@needs_onnx
def test_onnx_model_rejects_foreign_files(tmp_path):
    with pytest.raises(EngineError, match="does not exist"):
        OnnxRuntimeEngine(tmp_path / "missing.onnx")
    path = tmp_path / "plain.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
        torch.onnx.export(torch.nn.Linear(3, 2), (torch.randn(1, 3),), str(path), dynamo=False,
                          input_names=["images"], output_names=["heatmaps"])
    with pytest.raises(EngineError, match="not written by `vitpose export`"):
        OnnxRuntimeEngine(path)


@needs_onnx
def test_cli_export_onnx_and_hf(tmp_path, capsys):
    model = _tiny("vitpose-plus-b")
    ckpt = vitpose.save_checkpoint(model, tmp_path / "plus.pth")
    out = tmp_path / "out" / "plus_ap10k.onnx"
    hf = tmp_path / "hf"
    code = main(["export", "--model", str(ckpt), "--dataset", "ap10k", "--onnx", str(out),
                 "--hf", str(hf)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "dataset ap10k" in printed and "matches PyTorch" in printed
    assert OnnxRuntimeEngine(out).dataset == "ap10k"
    assert (hf / "config.json").is_file() and (hf / "model.safetensors").is_file()
    x = torch.randn(1, 3, 256, 192)
    back = vitpose.load_model(str(hf))  # the transformers layout reads back (main head)
    assert rel_l2(_heatmaps(back, x), _heatmaps(model, x, 0)) < 1e-5
    # existing outputs are kept unless --overwrite; nothing to do is an error
    assert main(["export", "--model", str(ckpt), "--onnx", str(out)]) == 2
    assert main(["export", "--model", str(ckpt), "--onnx", str(out), "--overwrite"]) == 0
    assert main(["export", "--model", str(ckpt)]) == 2
