"""The architecture comes from the weights file (recorded config, transformers config.json,
official keys), never from a name beside it; what a file cannot be is one clear message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import vitpose
from vitpose.cli.main import main
from vitpose.errors import CheckpointError
from vitpose.models import build_model

ROOT = Path(__file__).resolve().parents[2]
IMAGE = ROOT / "examples" / "000000000785.jpg"
TINY = dict(embed_dim=32, depth=2, num_heads=2, img_size=(64, 48))


def _official_file(path: Path, variant: str, **overrides) -> Path:
    """An official-layout file (``{'state_dict', 'meta'}``, no recorded config) of `variant`'s
    shapes; constant tensors (one stored value each, so ViT-S files are small and fast), which
    is all the architecture checks need."""
    with torch.device("meta"):
        like = build_model(variant, **overrides).state_dict()
    torch.save({"state_dict": {k: torch.zeros((), dtype=v.dtype).expand(v.shape)
                               for k, v in like.items()},
                "meta": {"mmcv_version": "1.3.9"}}, path)
    return path


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith(
        ("WARNING", "INFO"))]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def _hf_folder(tmp_path: Path, name: str = "hf", edit=None, **overrides) -> Path:
    model = vitpose.build_model("vitpose-b-simple", **{**TINY, **overrides})
    folder = vitpose.save_hf_pretrained(model, tmp_path / name)
    if edit is not None:
        cfg = json.loads((folder / "config.json").read_text())
        edit(cfg)
        (folder / "config.json").write_text(json.dumps(cfg))
    return folder


# ----------------------------------------------------------------------------- names vs files

def test_a_name_that_contradicts_an_official_file_is_refused(tmp_path, capsys):
    small = _official_file(tmp_path / "vitpose_small.pth", "vitpose-s")
    out = tmp_path / "out"
    assert main(["export", "--model", "vitpose-l-simple", "--weights", str(small),
                 "--hf", str(out)]) == 2
    line = _one_line_error(capsys)
    assert "ViTPose-S (width 384, 12 blocks, 12 heads)" in line and "classic decoder" in line
    assert "'vitpose-l-simple'" in line and not out.exists()
    # a classic name for a simple-decoder file
    simple = _official_file(tmp_path / "vitpose_small_simple.pth", "vitpose-s-simple")
    assert main(["export", "--model", "vitpose-s", "--weights", str(simple), "--hf",
                 str(out)]) == 2
    assert "different decoder" in _one_line_error(capsys)


def test_official_files_get_the_released_head_count(tmp_path):
    """Official keys do not record heads: the released variant of that shape gives them."""
    from vitpose.checkpoints import checkpoint_config, read_checkpoint
    simple = _official_file(tmp_path / "s_simple.pth", "vitpose-s-simple")
    found = checkpoint_config(read_checkpoint(simple))[0]
    assert found.num_heads == 12 and found.decoder == "simple"
    named = vitpose.load_model("vitpose-s-simple", weights=str(simple))  # agrees: fine
    assert named.cfg == found
    other = _official_file(tmp_path / "b2.pth", "vitpose-b", depth=2)  # no such release
    obj = read_checkpoint(other)
    assert checkpoint_config(obj)[0].num_heads == 12  # 64-channel heads, with a warning
    assert checkpoint_config(obj, num_heads=8)[0].num_heads == 8


def test_a_name_that_contradicts_a_transformers_folder_is_refused(tmp_path):
    folder = _hf_folder(tmp_path)
    with pytest.raises(CheckpointError, match="contradicts the weights"):
        vitpose.load_model("vitpose-b-simple", weights=str(folder))


def test_num_heads_that_contradicts_a_recorded_config_is_refused(tmp_path):
    path = vitpose.save_checkpoint(build_model("vitpose-b", **TINY), tmp_path / "ours.pth")
    with pytest.raises(CheckpointError, match="recorded config has 2 heads"):
        vitpose.load_model(str(path), num_heads=4)


# ----------------------------------------------------------------------------- transformers

def test_weights_alone_use_the_transformers_config_heads(tmp_path, capsys):
    """The default --model no longer overrides num_attention_heads (4 heads of width 64)."""
    folder = _hf_folder(tmp_path, embed_dim=64, num_heads=4)
    out = tmp_path / "export"
    assert main(["export", "--weights", str(folder), "--hf", str(out)]) == 0
    assert json.loads((out / "config.json").read_text())["backbone_config"][
        "num_attention_heads"] == 4
    assert main(["predict", str(IMAGE), "--weights", str(folder), "--box", "0,0,200,300",
                 "--no-draw", "--device", "cpu", "--dtype", "float32", "--out-dir",
                 str(tmp_path / "pred")]) == 0
    assert json.loads((tmp_path / "pred" / "results.json").read_text())


def test_out_indices_pick_the_block_transformers_reads(tmp_path):
    """A transformers model whose features come from block 1 of 3 computes the same heatmaps."""
    transformers = pytest.importorskip("transformers")
    bb = transformers.VitPoseBackboneConfig(
        image_size=[64, 48], patch_size=[16, 16], hidden_size=32, num_hidden_layers=3,
        num_attention_heads=2, layer_norm_eps=1e-6, out_indices=[1])
    cfg = transformers.VitPoseConfig(backbone_config=bb, use_simple_decoder=True, num_labels=17)
    torch.manual_seed(0)
    ref = transformers.VitPoseForPoseEstimation(cfg).eval()
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    ref.save_pretrained(tmp_path / "hf", safe_serialization=True)
    ours = vitpose.load_model(str(tmp_path / "hf"))
    assert ours.cfg.depth == 1
    x = torch.randn(2, 3, 64, 48)
    with torch.no_grad():
        expected = ref(pixel_values=x).heatmaps
        torch.testing.assert_close(ours(x), expected, atol=1e-5, rtol=1e-5)
    # load_weights into a model built for that depth uses the same rule
    explicit = build_model("vitpose-b-simple", **{**TINY, "depth": 1})
    vitpose.load_weights(explicit, tmp_path / "hf")
    with torch.no_grad():
        torch.testing.assert_close(explicit.eval()(x), expected, atol=1e-5, rtol=1e-5)


def _set(path: str, value):
    def edit(cfg):
        node = cfg
        *parents, last = path.split(".")
        for p in parents:
            node = node[p]
        node[last] = value
    return edit


@pytest.mark.parametrize("field,value,message", [
    ("backbone_config.qkv_bias", False, "qkv_bias"),
    ("backbone_config.patch_size", [8, 8], "patch_size"),
    ("backbone_config.mlp_ratio", 2, "mlp_ratio"),
    ("backbone_config.hidden_size", 64, "hidden_size"),
    ("backbone_config.num_hidden_layers", 1, "1-block backbone"),
    ("backbone_config.num_attention_heads", 5, "does not divide"),
    ("backbone_config.num_experts", 6, "num_experts"),
    ("backbone_config.image_size", [128, 96], "does not match an input"),
    ("backbone_config.hidden_act", "relu", "hidden_act"),
    ("backbone_config.out_indices", [0], "not supported"),
    ("use_simple_decoder", False, "use_simple_decoder"),
    ("scale_factor", 2, "scale_factor"),
    ("model_type", "vit", "not a transformers VitPose"),
    ("id2label", {"0": "a", "1": "b"}, "num_labels"),
])
def test_transformers_config_fields_are_honoured_or_refused(tmp_path, capsys, field, value,
                                                            message):
    folder = _hf_folder(tmp_path, edit=_set(field, value))
    assert main(["export", "--weights", str(folder), "--hf", str(tmp_path / "o")]) == 2
    assert message in _one_line_error(capsys)


def test_transformers_config_heads_are_used(tmp_path):
    folder = _hf_folder(tmp_path, edit=_set("backbone_config.num_attention_heads", 4))
    assert vitpose.load_model(str(folder)).cfg.num_heads == 4


def test_transformers_eps_rule_is_kept(tmp_path):
    folder = _hf_folder(tmp_path, edit=_set("backbone_config.layer_norm_eps", 1e-12))
    assert vitpose.load_model(str(folder)).cfg.layer_norm_eps == 1e-6


# ----------------------------------------------------------------------------- one line each

def test_config_json_that_is_a_list(tmp_path, capsys):
    folder = _hf_folder(tmp_path)
    (folder / "config.json").write_text("[1, 2, 3]")
    assert main(["export", "--weights", str(folder), "--hf", str(tmp_path / "o")]) == 2
    assert "holds a JSON list" in _one_line_error(capsys)


@pytest.mark.parametrize("field,value", [("num_heads", 0), ("num_heads", "x"),
                                         ("depth", -1), ("heads", 3), ("img_size", [64])])
def test_recorded_config_that_is_invalid(tmp_path, capsys, field, value):
    path = vitpose.save_checkpoint(build_model("vitpose-b", **TINY), tmp_path / "ours.pth")
    obj = torch.load(path, weights_only=True)
    cfg = json.loads(obj["meta"]["vitpose_config"])
    cfg[field] = value
    obj["meta"]["vitpose_config"] = json.dumps(cfg)
    torch.save(obj, path)
    assert main(["export", "--model", str(path), "--hf", str(tmp_path / "o")]) == 2
    assert "recorded model config" in _one_line_error(capsys)


def test_random_bytes_are_not_called_an_unsafe_pickle(tmp_path, capsys):
    path = tmp_path / "random.pth"
    path.write_bytes(torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(1),
                                   dtype=torch.uint8).numpy().tobytes())
    assert main(["export", "--model", str(path), "--hf", str(tmp_path / "o")]) == 2
    line = _one_line_error(capsys)
    assert "not a readable PyTorch checkpoint" in line
    for wrong in ("unsafe", "weights_only", "vitpose convert", "Python object"):
        assert wrong not in line
