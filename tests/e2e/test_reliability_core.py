"""Reliability of the core: checkpoints, training configs, evaluation and dataset defaults.

Each test feeds a crafted input where the user meets it (the CLI, or the Python API) and
expects one clear line, never a traceback, a silently different answer, or memory taken.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import vitpose
from vitpose.cli.main import main
from vitpose.errors import CheckpointError
from vitpose.models import build_model

TINY = dict(embed_dim=32, depth=2, num_heads=2, img_size=(64, 48))


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith(
        ("WARNING", "INFO"))]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert len(lines[0]) < 600, lines[0][:600]
    return lines[0]


def _ours(tmp_path: Path, edit=None, name: str = "ours.pth", variant: str = "vitpose-b") -> Path:
    path = vitpose.save_checkpoint(build_model(variant, **TINY), tmp_path / name)
    if edit is not None:
        obj = torch.load(path, weights_only=True)
        cfg = json.loads(obj["meta"]["vitpose_config"])
        edit(cfg, obj)
        obj["meta"]["vitpose_config"] = json.dumps(cfg)
        torch.save(obj, path)
    return path


def _export(path: Path, tmp_path: Path) -> int:
    return main(["export", "--model", str(path), "--hf", str(tmp_path / "o")])


# ----------------------------------------------------------------------------- checkpoints

@pytest.mark.parametrize("field,value,words", [
    ("depth", 10 ** 6, "depth 1000000 (recorded) vs 2 (weights)"),
    ("embed_dim", 1 << 20, "embed_dim"),
    ("mlp_ratio", 4096.0, "mlp_ratio"),
    ("img_size", [4096, 4096], "pos_embed"),
])
def test_a_recorded_architecture_is_checked_against_the_tensors_before_building(
        tmp_path, capsys, field, value, words):
    """A few bytes of edited meta must not decide how much memory is taken: the recorded
    config is compared with the tensors, and nothing is built from a contradiction."""
    path = _ours(tmp_path, lambda cfg, obj: cfg.__setitem__(field, value))
    assert _export(path, tmp_path) == 2
    line = _one_line_error(capsys)
    assert "recorded model config" in line and words in line, line


def test_a_recorded_head_width_that_contradicts_the_tensors(tmp_path, capsys):
    def edit(cfg, obj):
        cfg["heads"][0]["deconv_filters"] = [1 << 16, 1 << 16]
    assert _export(_ours(tmp_path, edit), tmp_path) == 2
    assert "keypoint_head.deconv_layers" in _one_line_error(capsys)


def test_a_sparse_tensor_is_refused_in_one_line(tmp_path, capsys):
    def edit(cfg, obj):
        key = "backbone.blocks.0.mlp.fc1.weight"
        obj["state_dict"][key] = obj["state_dict"][key].to_sparse()
    assert _export(_ours(tmp_path, edit), tmp_path) == 2
    line = _one_line_error(capsys)
    assert "sparse" in line and "dense" in line


def test_integer_weights_are_refused_not_truncated(tmp_path, capsys):
    """int64 weights into float parameters would load silently as whole numbers."""
    def edit(cfg, obj):
        key = "backbone.blocks.0.attn.proj.weight"
        obj["state_dict"][key] = (obj["state_dict"][key] * 100).to(torch.int64)
    path = _ours(tmp_path, edit)
    assert _export(path, tmp_path) == 2
    line = _one_line_error(capsys)
    assert "backbone.blocks.0.attn.proj.weight: int64" in line
    with pytest.raises(CheckpointError, match="floating-point"):
        vitpose.load_weights(build_model("vitpose-b", **TINY), path)


def test_half_precision_weights_still_load(tmp_path):
    def edit(cfg, obj):
        obj["state_dict"] = {k: v.half() if v.is_floating_point() else v
                             for k, v in obj["state_dict"].items()}
    model = vitpose.load_model(str(_ours(tmp_path, edit)))
    assert model.backbone.pos_embed.dtype == torch.float32


def test_a_permission_error_says_permission_denied(tmp_path, capsys, monkeypatch):
    """Not "truncated?": the file may be fine, the user cannot read it. (The tests run as
    root here, where chmod does not deny reading, so the denial is simulated at the open.)"""
    import builtins

    from vitpose import checkpoints
    path = _ours(tmp_path)
    real_open = builtins.open

    def denying_open(file, *args, **kwargs):
        if Path(file) == path:
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(checkpoints, "open", denying_open, raising=False)
    assert _export(path, tmp_path) == 2
    line = _one_line_error(capsys)
    assert "permission denied" in line and "truncated" not in line


# ----------------------------------------------------------------------------- transformers

def _hf_folder(tmp_path: Path, edit) -> Path:
    model = vitpose.build_model("vitpose-b-simple", **TINY)
    folder = vitpose.save_hf_pretrained(model, tmp_path / "hf")
    cfg = json.loads((folder / "config.json").read_text())
    edit(cfg["backbone_config"])
    (folder / "config.json").write_text(json.dumps(cfg))
    return folder


@pytest.mark.parametrize("value,expected", [(1e-12, 1e-6), (0.1, 0.1), (1e-5, 1e-5)])
def test_layer_norm_eps_of_a_transformers_config(tmp_path, value, expected):
    """The released files' 1e-12 is a porting artefact (the weights were trained with 1e-6,
    what the official code runs); any other value is the file's choice and is honoured."""
    folder = _hf_folder(tmp_path, lambda bb: bb.__setitem__("layer_norm_eps", value))
    model = vitpose.load_model(str(folder))
    assert model.cfg.layer_norm_eps == expected
    assert model.backbone.blocks[0].norm1.eps == expected
    assert model.backbone.last_norm.eps == expected


def test_an_absent_layer_norm_eps_is_the_official_one(tmp_path):
    folder = _hf_folder(tmp_path, lambda bb: bb.pop("layer_norm_eps", None))
    assert vitpose.load_model(str(folder)).cfg.layer_norm_eps == 1e-6


@pytest.mark.parametrize("field,value", [("num_attention_heads", 2.5),
                                         ("num_attention_heads", "2"),
                                         ("num_hidden_layers", True),
                                         ("image_size", [64.5, 48]),
                                         ("num_hidden_layers", 10 ** 12),
                                         ("layer_norm_eps", -1)])
def test_transformers_config_fields_that_are_not_integers_are_refused(tmp_path, capsys, field,
                                                                      value):
    folder = _hf_folder(tmp_path, lambda bb: bb.__setitem__(field, value))
    assert main(["export", "--weights", str(folder), "--hf", str(tmp_path / "o")]) == 2
    assert field in _one_line_error(capsys)


# ----------------------------------------------------------------------------- training configs

@pytest.mark.parametrize("override,words", [
    ("optim.lr=.nan", "optim.lr: must be a finite number"),
    ("optim.lr=.inf", "optim.lr: must be a finite number"),
    ("optim.weight_decay=.inf", "optim.weight_decay: must be a finite number"),
    ("optim.clip_grad=.inf", "optim.clip_grad: must be a finite number"),
    ("optim.clip_grad=-.inf", "optim.clip_grad: must be a finite number"),
    ("optim.lr=1" + "0" * 400, "optim.lr: must be a finite number"),
    ("optim.lr=50", "optim.lr: must be at most 1"),
    ("optim.weight_decay=20", "optim.weight_decay: must be at most 1"),
])
def test_train_refuses_non_finite_or_absurd_optimiser_values_before_training(
        tmp_path, capsys, override, words):
    """Refused when the config is read: no traceback, no epoch trained first, no advice that
    blames the learning rate for an infinite clipping norm."""
    assert main(["train", "debug/tiny_coco", "--work-dir", str(tmp_path / "run"),
                 "--no-progress", "--device", "cpu", "--set", override]) == 2
    line = _one_line_error(capsys)
    assert words in line, line
    assert not (tmp_path / "run" / "latest.pth").exists()


def test_a_yaml_alias_bomb_is_refused_without_expanding_it(tmp_path, capsys):
    lines = ["a0: &a0 [" + ", ".join(["x"] * 10) + "]"]
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    lines.append("model: *a8")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\n")
    assert bomb.stat().st_size < 2048
    assert main(["train", str(bomb), "--work-dir", str(tmp_path / "run"), "--no-progress"]) == 2
    line = _one_line_error(capsys)
    assert "aliases" in line


def test_a_huge_value_is_not_echoed_in_the_message(tmp_path, capsys):
    path = tmp_path / "big.yaml"
    path.write_text("_base_: debug/tiny_coco.yaml\noptim:\n  lr: [" + ", ".join(["1"] * 50000)
                    + "]\n")
    from vitpose.training.config import find_config
    path.write_text(path.read_text().replace("debug/tiny_coco.yaml",
                                             str(find_config("debug/tiny_coco"))))
    assert main(["train", str(path), "--work-dir", str(tmp_path / "run"), "--no-progress"]) == 2
    line = _one_line_error(capsys)
    assert "optim.lr" in line and "characters)" in line


# ----------------------------------------------------------------------------- evaluate

def _gt_results(data_dir: Path) -> list[dict]:
    gt = json.loads((data_dir / "coco" / "test_coco.json").read_text())
    return [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"],
             "score": 1.0} for a in gt["annotations"] if a.get("num_keypoints", 0) > 0]


def _evaluate(data_dir: Path, results: Path, *extra: str) -> int:
    return main(["evaluate", "--dataset", "coco", "--ann",
                 str(data_dir / "coco" / "test_coco.json"), "--results", str(results), *extra])


@pytest.mark.parametrize("name,content", [
    ("deep.json", "[" * 100000),
    ("big_int.json", "[" + "9" * 5000 + "]"),
    ("deep.jsonl", "[" * 100000 + "\n"),
    ("big_int.jsonl", "9" * 5000 + "\n"),
])
def test_evaluate_malformed_results_are_one_line(data_dir, tmp_path, capsys, name, content):
    path = tmp_path / name
    path.write_text(content)
    assert _evaluate(data_dir, path) == 2
    assert "not valid JSON" in _one_line_error(capsys)


@pytest.mark.parametrize("content", ["[" * 100000, '{"images": [' + "9" * 5000 + "]}"])
def test_evaluate_malformed_annotations_when_matching_file_names(data_dir, tmp_path, capsys,
                                                                  content):
    """Results keyed by file name are matched through the annotation file: that reader too."""
    results = tmp_path / "r.json"
    results.write_text(json.dumps([{"image_id": "000000000785.jpg", "category_id": 1,
                                     "keypoints": [0.0] * 51, "score": 1.0}]))
    ann = tmp_path / "ann.json"
    ann.write_text(content)
    assert main(["evaluate", "--dataset", "coco", "--ann", str(ann), "--results",
                 str(results)]) == 2
    assert "not valid JSON" in _one_line_error(capsys)


def test_evaluate_refuses_duplicated_results(data_dir, tmp_path, capsys):
    """Every result twice would score a lower AP without a word (each copy a false positive)."""
    results = _gt_results(data_dir)
    path = tmp_path / "twice.json"
    path.write_text(json.dumps(results + results))
    assert _evaluate(data_dir, path) == 2
    line = _one_line_error(capsys)
    assert f"results[{len(results)}]" in line and "repeats results[0]" in line


def test_evaluate_refuses_a_category_the_annotations_do_not_have(data_dir, tmp_path, capsys):
    results = _gt_results(data_dir)
    results[0]["category_id"] = 7
    path = tmp_path / "foreign.json"
    path.write_text(json.dumps(results))
    assert _evaluate(data_dir, path) == 2
    line = _one_line_error(capsys)
    assert "category_id 7 is not a category of the ground truth" in line


def test_pck_results_with_a_repeated_ann_id_are_refused(data_dir):
    from vitpose.datasets.interhand import read_interhand2d
    from vitpose.errors import InputError
    from vitpose.metrics import evaluate
    ih = data_dir / "interhand2.6m"
    records = read_interhand2d(ih / "test_interhand2.6m_data.json")
    results = [{"ann_id": r.ann_id, "keypoints": r.keypoints.tolist()} for r in records]
    with pytest.raises(InputError, match="second result for ann_id"):
        evaluate("interhand2d", ih / "test_interhand2.6m_data.json", results + results[:1])


def test_evaluate_prints_a_table_and_json_on_request(data_dir, tmp_path, capsys):
    path = tmp_path / "r.json"
    path.write_text(json.dumps(_gt_results(data_dir)))
    assert _evaluate(data_dir, path, "--out", str(tmp_path / "m.json")) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0] == "coco:"
    assert any(line.split() == ["AP", "1.0000"] for line in table.splitlines()), table
    assert json.loads((tmp_path / "m.json").read_text())["AP"] == 1.0
    assert _evaluate(data_dir, path, "--json") == 0
    assert json.loads(capsys.readouterr().out)["AP"] == 1.0


# ----------------------------------------------------------------------------- dataset defaults

def _entry(name: str, **extra) -> dict:
    return {"name": name, "ann_file": "a.json", "img_prefix": "img/", **extra}


def test_a_user_written_mpii_entry_gets_mpii_recipe(tmp_path):
    """No centre jitter and no half-body for MPII come with the dataset, not with the packaged
    configs; a value the config writes still wins."""
    from vitpose.training.config import load_config
    path = tmp_path / "mine.yaml"
    path.write_text(json.dumps({
        "model": {"variant": "vitpose-b-multi", "heads": ["coco", "mpii", "interhand2d"]},
        "data": {"train": [_entry("coco"), _entry("mpii", dataset_index=1),
                           _entry("interhand2d", dataset_index=2),
                           _entry("mpii", dataset_index=1, center_jitter_prob=0.1)]}}))
    coco, mpii, hand, mpii_set = load_config(path).data.train
    assert (coco.center_jitter_prob, coco.half_body, coco.box_padding) == (0.3, True, 1.25)
    assert (mpii.center_jitter_prob, mpii.half_body) == (0.0, False)
    assert (hand.half_body, hand.rot_factor, hand.scale_factor, hand.box_padding) == \
        (False, 90.0, 0.3, 1.5)
    assert (mpii_set.center_jitter_prob, mpii_set.half_body) == (0.1, False)


def test_packaged_configs_keep_their_recipes():
    from vitpose.training.config import load_config
    cfg = load_config("plus/vitpose_plus_b_coco_aic_mpii_ap10k_apt36k_wholebody")
    mpii = next(d for d in cfg.data.train if d.name == "mpii")
    assert (mpii.center_jitter_prob, mpii.half_body) == (0.0, False)
    crowd = load_config("multitask/vitpose_b_coco_aic_mpii_crowdpose").data.train[-1]
    assert crowd.name == "crowdpose" and crowd.num_joints_half_body == 6


def test_interhand_validates_on_val_and_tests_on_test():
    """best.pth must not be chosen on the reported split: val is the machine-annotated val
    split, as in the official configs; `vitpose test` evaluates data.test."""
    from vitpose.training.config import load_config
    cfg = load_config("eval/interhand2d_vitpose_plus_b")
    assert [d.ann_file for d in cfg.data.val] == [
        "interhand2.6m/annotations/machine_annot/InterHand2.6M_val_data.json"]
    assert [d.ann_file for d in cfg.data.test] == [
        "interhand2.6m/annotations/all/InterHand2.6M_test_data.json"]
    assert cfg.data.test[0].box_padding == 1.5


def test_vitpose_test_evaluates_the_test_split(tmp_path, capsys):
    root = tmp_path / "data"
    assert main(["test", "eval/interhand2d_vitpose_plus_b", "--data-root", str(root),
                 "--weights", str(tmp_path / "w.pth")]) == 2
    line = _one_line_error(capsys)
    assert "InterHand2.6M_test_data.json" in line and "data.test" in line, line


def test_interhand_configs_advise_model_weights_and_pretrained_says_so(tmp_path):
    from vitpose.training.build import build_model_from_config
    from vitpose.training.config import find_config, load_config
    for size in "sblh":
        text = find_config(f"eval/interhand2d_vitpose_plus_{size}").read_text()
        assert "model.weights=<ViTPose+ checkpoint>" in text and "model.pretrained" not in text
    plus = vitpose.save_checkpoint(build_model("vitpose-plus-b", **TINY), tmp_path / "plus.pth")
    tiny = ["model.embed_dim=32", "model.depth=2", "model.num_heads=2", "model.img_size=[64,48]",
            "data.image_size=[64,48]", "data.heatmap_size=[16,12]"]
    with pytest.raises(CheckpointError, match="set model.weights=<file> instead"):
        build_model_from_config(load_config("eval/interhand2d_vitpose_plus_b",
                                            [*tiny, f"model.pretrained={plus}"]))
    model = build_model_from_config(load_config("eval/interhand2d_vitpose_plus_b",
                                                [*tiny, f"model.weights={plus}"]))
    assert model.keypoint_head.final_layer.out_channels == 21


def test_a_huge_override_is_not_echoed_whole(tmp_path, capsys):
    huge = "optim.lr=[" + ",".join(["1"] * 100000) + "]"
    assert main(["train", "debug/tiny_coco", "--work-dir", str(tmp_path / "run"),
                 "--no-progress", "--set", huge]) == 2
    assert "optim.lr" in _one_line_error(capsys)
