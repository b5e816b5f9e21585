"""`vitpose test` and `vitpose evaluate` end to end on the COCO sample (incl. a 2-process run)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from pycocotools.coco import COCO

import vitpose
from vitpose.cli.main import main


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    model = vitpose.build_model("vitpose-b-simple", embed_dim=32, depth=2, num_heads=2,
                                img_size=(64, 48))
    return str(vitpose.save_checkpoint(model, tmp_path_factory.mktemp("w") / "tiny.pth"))


def _test_args(tiny_weights, data_dir, work_dir):
    return ["test", "debug/tiny_coco", "--weights", tiny_weights, "--data-root", str(data_dir),
            "--set", "model.variant=vitpose-b-simple", "--work-dir", str(work_dir)]


def test_vitpose_test_end_to_end(tiny_weights, data_dir, tmp_path, capsys):
    assert main(_test_args(tiny_weights, data_dir, tmp_path)) == 0
    out = capsys.readouterr().out
    assert "AP" in out and "coco:" in out
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics["coco"]) >= {"AP", "AP50", "AP75", "AR"}
    results = json.loads((tmp_path / "results_coco.json").read_text())
    gt = COCO(str(data_dir / "coco" / "test_coco.json"))
    dt = gt.loadRes(results)  # valid COCO results
    assert len(dt.anns) == len(results) > 0
    assert {r["image_id"] for r in results} <= set(gt.getImgIds())
    assert all(len(r["keypoints"]) == 17 * 3 for r in results)
    # the official results format: centre and scale of the crop, no 'bbox' (whose area the
    # official evaluator would use instead of the keypoints' extent)
    written = json.loads((tmp_path / "results_coco.json").read_text())  # loadRes added boxes
    assert all("bbox" not in r and len(r["center"]) == len(r["scale"]) == 2 for r in written)
    # scoring the written file gives the numbers `vitpose test` printed
    capsys.readouterr()
    assert main(["evaluate", "--dataset", "coco", "--ann", str(data_dir / "coco" / "test_coco.json"),
                 "--results", str(tmp_path / "results_coco.json"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == metrics["coco"]


def test_vitpose_test_bf16(tiny_weights, data_dir, tmp_path, capsys):
    """``--dtype bfloat16`` (test.dtype): the same records, keypoints near the float32 ones."""
    import numpy as np
    assert main(_test_args(tiny_weights, data_dir, tmp_path / "fp32")) == 0
    assert main(_test_args(tiny_weights, data_dir, tmp_path / "bf16")
                + ["--dtype", "bfloat16"]) == 0
    a, b = (json.loads((tmp_path / d / "results_coco.json").read_text()) for d in ("fp32", "bf16"))
    assert len(a) == len(b) > 0
    ka = np.array([r["keypoints"] for r in a]).reshape(len(a), -1, 3)
    kb = np.array([r["keypoints"] for r in b]).reshape(len(b), -1, 3)
    assert not np.array_equal(ka, kb)  # bf16 really ran
    # random tiny weights: flat heatmaps, so some arg-maxes move; most keypoints stay put
    assert np.median(np.linalg.norm(ka[..., :2] - kb[..., :2], axis=-1)) < 1.0
    capsys.readouterr()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(nproc, args):
    # One thread and batch 1 in both runs, so each crop sees exactly the same arithmetic.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
           "-m", "vitpose.cli", *args, "--set", "data.val_batch_size=1"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.slow
def test_two_processes_equal_one(tiny_weights, data_dir, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    _torchrun(1, _test_args(tiny_weights, data_dir, one))
    _torchrun(2, _test_args(tiny_weights, data_dir, two))
    r1 = json.loads((one / "results_coco.json").read_text())
    r2 = json.loads((two / "results_coco.json").read_text())
    key = lambda r: (r["image_id"], r["center"], r["score"])  # noqa: E731
    assert len(r1) == len(r2) > 0
    assert sorted(r1, key=key) == sorted(r2, key=key)
    assert json.loads((one / "metrics.json").read_text()) == \
        json.loads((two / "metrics.json").read_text())


def test_vitpose_evaluate_scores_a_results_file(data_dir, tmp_path, capsys):
    gt = json.loads((data_dir / "coco" / "test_coco.json").read_text())
    results = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"],
                "score": 1.0} for a in gt["annotations"] if a.get("num_keypoints", 0) > 0]
    path = tmp_path / "gt_as_results.json"
    path.write_text(json.dumps(results))
    out_json = tmp_path / "m.json"
    assert main(["evaluate", "--dataset", "coco", "--ann", str(data_dir / "coco" / "test_coco.json"),
                 "--results", str(path), "--out", str(out_json), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["AP"] == pytest.approx(1.0)
    assert json.loads(out_json.read_text()) == printed


def test_bad_results_file_is_one_clear_error(data_dir, tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('[{"image_id": 785, "category_id": 1, "keypoints": [1, 2], "score": 1}]')
    rc = main(["evaluate", "--dataset", "coco", "--ann", str(data_dir / "coco" / "test_coco.json"),
               "--results", str(bad)])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error:") and "bad.json" in err
    assert "Traceback" not in err


def _gt_as_results(data_dir):
    gt = json.loads((data_dir / "coco" / "test_coco.json").read_text())
    return [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"],
             "score": 1.0} for a in gt["annotations"] if a.get("num_keypoints", 0) > 0]


def _evaluate(data_dir, results_path):
    return main(["evaluate", "--dataset", "coco", "--ann",
                 str(data_dir / "coco" / "test_coco.json"), "--results", str(results_path),
                 "--json"])


def test_vitpose_evaluate_reads_json_lines(data_dir, tmp_path, capsys):
    """A ``.jsonl`` results file (one result per line, as ``predict --out r.jsonl`` writes it)
    scores as the same results in one ``.json``; blank lines are allowed."""
    results = _gt_as_results(data_dir)
    results[0] = {**results[0], "score": 0.5}  # not every result perfect: AP below 1
    results[1] = {**results[1], "keypoints": [v + 9.0 for v in results[1]["keypoints"]]}
    (tmp_path / "r.json").write_text(json.dumps(results))
    lines = [json.dumps(r) for r in results]
    (tmp_path / "r.jsonl").write_text("\n".join(lines[:2] + [""] + lines[2:]) + "\n")
    assert _evaluate(data_dir, tmp_path / "r.json") == 0
    expected = json.loads(capsys.readouterr().out)
    assert _evaluate(data_dir, tmp_path / "r.jsonl") == 0
    assert json.loads(capsys.readouterr().out) == expected and expected["AP"] < 1.0


@pytest.mark.parametrize("content, message", [
    ('{"image_id": 785}\n{"image_id": 785, oops}\n', "line 2 is not valid JSON"),
    ('{"image_id": 785}\n\n{"image_id": 78', "line 3 is not valid JSON"),
    ('{"image_id": 785}\n\n{"image_id": 78', "the file ends in the middle of this line"),
    ('{"image_id": 785}\n\xff\xfe\n', "line 2 is not valid JSON (not UTF-8 text)"),
    ('{"vitpose_journal": 1, "settings": {}}\n{"key": "a.jpg", "value": []}\n',
     "the journal of a `vitpose predict` run that has not finished"),
])
def test_malformed_json_lines_name_the_line(content, message, data_dir, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(content.encode("latin-1"))
    assert _evaluate(data_dir, bad) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and str(bad) in err and message in err, err
    assert "Traceback" not in err


def test_the_metrics_read_json_lines_themselves(data_dir, tmp_path):
    """`vitpose.metrics.evaluate` takes a ``.jsonl`` path as it takes a ``.json`` one."""
    from vitpose.metrics import evaluate
    results = _gt_as_results(data_dir)
    path = tmp_path / "r.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in results))
    ann = data_dir / "coco" / "test_coco.json"
    assert evaluate("coco", ann, path) == evaluate("coco", ann, results)


# ---------------------------------------------------------------------------------------------
# `vitpose test --backend`: the same metrics on every engine
# ---------------------------------------------------------------------------------------------

#: The tiny model fitted to the COCO sample (tests/tools/tiny_coco_fit.py): non-zero AP with the flip
#: test, so that equal metrics mean something (random weights score 0 everywhere).
FITTED = Path(__file__).resolve().parents[1] / "data" / "tiny_coco_fit.pth"


def _installed(backend: str) -> bool:
    import importlib.util
    return all(importlib.util.find_spec(m) is not None for m in ("onnx", backend))


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_vitpose_test_gives_the_same_metrics_on_every_engine(backend, data_dir, tmp_path,
                                                            capsys):
    if not _installed(backend):
        pytest.skip(f"{backend} is not installed (pip install 'vitpose[onnx]' / "
                    "'vitpose[openvino]')")
    import numpy as np
    runs = {}
    for name in ("torch", backend):
        work = tmp_path / name
        assert main(_test_args(str(FITTED), data_dir, work) + ["--backend", name]) == 0
        runs[name] = (json.loads((work / "metrics.json").read_text()),
                      json.loads((work / "results_coco.json").read_text()))
    assert f"coco engine: {backend}/float32" in capsys.readouterr().out
    (ref, ref_results), (other, other_results) = runs["torch"], runs[backend]
    assert ref["engine"]["coco"]["engine"] == "torch/float32"
    assert other["engine"]["coco"]["engine"] == f"{backend}/float32"
    assert other["engine"]["coco"]["file"].endswith(".onnx")
    assert ref["coco"]["AP"] > 0  # the comparison is not between two empty results
    assert set(other["coco"]) == set(ref["coco"])
    for k, v in ref["coco"].items():
        assert other["coco"][k] == pytest.approx(v, abs=1e-6), k
    assert len(other_results) == len(ref_results)
    a = np.array([r["keypoints"] for r in ref_results])
    b = np.array([r["keypoints"] for r in other_results])
    # written with 3 decimals; the DARK refinement magnifies float32 rounding where a
    # heatmap's peak is flat (up to 0.7 px in the image on 0.3% of the values here)
    diff = np.abs(b - a)
    assert (diff <= 2e-3).mean() >= 0.99 and diff.max() < 1.0


@pytest.mark.slow
def test_two_processes_on_onnxruntime_share_one_export(data_dir, tmp_path, monkeypatch):
    """Under torchrun every rank builds its own engine, rank 0 first: one export in the cache,
    and the metrics of one process."""
    if not _installed("onnxruntime"):
        pytest.skip("onnxruntime is not installed (pip install 'vitpose[onnx]')")
    monkeypatch.setenv("VITPOSE_CACHE", str(tmp_path / "cache"))
    one, two = tmp_path / "one", tmp_path / "two"
    args = ["--backend", "onnxruntime"]
    _torchrun(1, _test_args(str(FITTED), data_dir, one) + args)
    _torchrun(2, _test_args(str(FITTED), data_dir, two) + args)
    assert len(list((tmp_path / "cache" / "graphs").glob("*.onnx"))) == 1
    m1, m2 = (json.loads((d / "metrics.json").read_text()) for d in (one, two))
    assert m2["engine"]["coco"]["engine"] == "onnxruntime/float32"
    for k, v in m1["coco"].items():
        assert m2["coco"][k] == pytest.approx(v, abs=1e-6), k


def test_vitpose_test_bad_backend_is_a_config_error(tiny_weights, data_dir, tmp_path, capsys):
    rc = main(_test_args(tiny_weights, data_dir, tmp_path) + ["--set", "test.backend=tensorrt"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error:") and "test.backend" in err and "'onnxruntime'" \
        in err and "Traceback" not in err
    with pytest.raises(SystemExit):  # the option itself offers the engines only
        main(_test_args(tiny_weights, data_dir, tmp_path) + ["--backend", "tensorrt"])
    assert "invalid choice" in capsys.readouterr().err
    if _installed("onnxruntime"):  # an engine without the dtype says which one it has
        rc = main(_test_args(tiny_weights, data_dir, tmp_path)
                  + ["--backend", "onnxruntime", "--dtype", "bfloat16"])
        err = capsys.readouterr().err
        assert rc == 2 and "computes in float32" in err and "--dtype float32" in err
        assert "Traceback" not in err
