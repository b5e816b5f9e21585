"""Checkpoint formats: official .pth, transformers VitPose, MAE, ViTPose+ split, bad files."""

from __future__ import annotations

import logging

import pytest
import torch
import torch.nn.functional as F

import vitpose
from vitpose.checkpoints import (
    hf_to_official,
    infer_config,
    load_local_weights,
    load_pretrained_backbone,
    load_state_dict_strict,
    official_to_hf,
    save_hf_pretrained,
    split_vitpose_plus,
)
from vitpose.errors import CheckpointError, DownloadError
from vitpose.models import build_model

TINY = dict(embed_dim=32, depth=2, num_heads=2, img_size=(64, 48))


def _randomise(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random non-trivial values everywhere (incl. BN statistics), so mis-mapping shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.dtype.is_floating_point:
                if name.endswith("running_var") or ("norm" in name and name.endswith("weight")):
                    t.copy_(torch.rand(t.shape, generator=g) + 0.5)
                elif t.ndim >= 2:  # unit-scale activations: std 1/sqrt(fan-in)
                    fan_in = t[0].numel() if not name.endswith("deconv_layers.0.weight") and \
                        "deconv" not in name else t.shape[0] * 4
                    t.copy_(torch.randn(t.shape, generator=g) / fan_in ** 0.5)
                else:
                    t.copy_(torch.randn(t.shape, generator=g) * 0.2)
            else:
                t.fill_(7)
    return model


# ----------------------------------------------------------------------------- official files

def test_official_pth_roundtrip_and_architecture_inference(tmp_path, fixtures_dir):
    fx = torch.load(fixtures_dir / "parity_vit_classic.pt", weights_only=True)
    path = tmp_path / "official.pth"
    sd = dict(fx["state_dict"])
    sd["backbone.cls_token"] = torch.zeros(1, 1, 64)  # present in multi-dataset releases, unused
    torch.save({"state_dict": sd, "meta": {"epoch": 210, "mmcv_version": "1.3.9"}}, path)
    model = vitpose.load_model(str(path), num_heads=4)
    assert model.cfg.embed_dim == 64 and model.cfg.depth == 2 and model.cfg.decoder == "classic"
    assert model.cfg.heads[0].deconv_filters == (32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(fx["input"]), fx["output"], atol=1e-4, rtol=1e-4)
    # the same file into an explicitly built model
    other = build_model(fx["config"]["official_model_cfg"])
    load_local_weights(other, path)
    with torch.no_grad():
        torch.testing.assert_close(other.eval()(fx["input"]), fx["output"], atol=1e-4, rtol=1e-4)


def test_save_checkpoint_and_module_prefix(tmp_path):
    model = _randomise(build_model("vitpose-b-simple", **TINY)).eval()
    path = vitpose.save_checkpoint(model, tmp_path / "ours.pth")
    again = vitpose.load_model(str(path))  # the recorded config gives the 2 attention heads
    assert again.cfg == model.cfg
    x = torch.randn(1, 3, 64, 48)
    with torch.no_grad():
        torch.testing.assert_close(again(x), model(x))
    # DataParallel / DDP prefixes are stripped
    wrapped = {"model": {"module." + k: v for k, v in model.state_dict().items()}}
    fresh = build_model("vitpose-b-simple", **TINY)
    load_local_weights(fresh, wrapped)
    with torch.no_grad():
        torch.testing.assert_close(fresh.eval()(x), model(x))


# ----------------------------------------------------------------------------- bad files

def test_truncated_file(tmp_path):
    model = build_model("vitpose-b", **TINY)
    good = vitpose.save_checkpoint(model, tmp_path / "good.pth")
    bad = tmp_path / "truncated.pth"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_local_weights(build_model("vitpose-b", **TINY), bad)


def test_not_a_checkpoint(tmp_path):
    txt = tmp_path / "notes.pth"
    txt.write_text("hello, I am not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable"):
        vitpose.load_model(str(txt))
    listing = tmp_path / "list.pth"
    torch.save([1, 2, 3], listing)
    with pytest.raises(CheckpointError, match="not a state dict"):
        vitpose.load_model(str(listing))
    foreign = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, foreign)
    with pytest.raises(CheckpointError, match="unrecognised checkpoint layout"):
        vitpose.load_model(str(foreign))
    with pytest.raises(CheckpointError, match="not found|neither"):
        vitpose.load_model(str(tmp_path / "missing" / "file.pth"))


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_unsafe_pickle_is_refused(tmp_path):
    p = tmp_path / "evil.pth"
    torch.save({"state_dict": {}, "payload": _Evil()}, p)
    with pytest.raises(CheckpointError, match="would run code") as err:
        vitpose.load_model(str(p))
    assert "weights_only" not in str(err.value) and "vitpose convert" not in str(err.value)


def test_wrong_architecture_names_keys_and_shapes(tmp_path):
    small = vitpose.save_checkpoint(build_model("vitpose-b", **TINY), tmp_path / "b.pth")
    target = build_model("vitpose-b-simple", embed_dim=48, depth=3, num_heads=2, img_size=(64, 48))
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(CheckpointError) as err:
        load_local_weights(target, small)
    msg = str(err.value)
    assert "missing keys" in msg and "backbone.blocks.2.norm1.weight" in msg
    assert "unexpected keys" in msg and "keypoint_head.deconv_layers.0.weight" in msg
    assert "shape mismatches" in msg and "backbone.pos_embed" in msg
    # nothing was half-loaded
    for k, v in target.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_offline_hub_gives_advice(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DownloadError, match="--weights PATH"):
        vitpose.load_model("vitpose-b-simple")
    with pytest.raises(DownloadError, match="OneDrive"):
        vitpose.load_model("vitpose-l")  # published on OneDrive only
    with pytest.raises(DownloadError, match="never released"):
        vitpose.load_model("vitpose-g")
    with pytest.raises(DownloadError, match="not in the Hugging Face cache"):
        vitpose.load_weights(build_model("vitpose-b", **TINY), "someone/some-vitpose")
    # the file-level loader never reaches the hub (checkpoints sits below hub)
    with pytest.raises(CheckpointError, match="not found"):
        load_local_weights(build_model("vitpose-b", **TINY), "someone/some-vitpose")


# ----------------------------------------------------------------------------- transformers

transformers = pytest.importorskip("transformers")


def _hf_model(simple: bool, experts: int = 1, part: int = 8):
    from transformers import VitPoseBackboneConfig, VitPoseConfig, VitPoseForPoseEstimation
    bb = VitPoseBackboneConfig(image_size=[64, 48], patch_size=[16, 16], hidden_size=32,
                               num_hidden_layers=2, num_attention_heads=2, mlp_ratio=4,
                               num_experts=experts, part_features=part, layer_norm_eps=1e-6,
                               out_indices=[2])
    cfg = VitPoseConfig(backbone_config=bb, use_simple_decoder=simple, num_labels=17)
    cfg._attn_implementation = "eager"
    model = VitPoseForPoseEstimation(cfg)
    return _randomise(model, seed=3 + experts + simple).eval()


def _hf_heatmaps(model, x, dataset_index=None):
    with torch.no_grad():
        if dataset_index is None:
            return model(pixel_values=x).heatmaps
        return model(pixel_values=x, dataset_index=dataset_index).heatmaps


@pytest.mark.parametrize("simple", [True, False])
def test_transformers_checkpoint_loads_with_same_heatmaps(tmp_path, simple):
    ref = _hf_model(simple)
    ref.save_pretrained(tmp_path / "hf")
    ours = vitpose.load_model(str(tmp_path / "hf"))
    assert ours.cfg.decoder == ("simple" if simple else "classic")
    assert ours.cfg.layer_norm_eps == 1e-6
    x = torch.randn(2, 3, 64, 48)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), _hf_heatmaps(ref, x), atol=1e-5, rtol=1e-5)
    # load_local_weights into an explicit model too
    explicit = build_model("vitpose-b-simple" if simple else "vitpose-b", **TINY)
    load_local_weights(explicit, tmp_path / "hf")
    with torch.no_grad():
        torch.testing.assert_close(explicit.eval()(x), _hf_heatmaps(ref, x), atol=1e-5, rtol=1e-5)


def test_transformers_moe_checkpoint(tmp_path):
    ref = _hf_model(simple=False, experts=6, part=8)
    ref.save_pretrained(tmp_path / "hf_plus")
    ours = vitpose.load_model(str(tmp_path / "hf_plus"))
    assert ours.cfg.num_experts == 6 and ours.cfg.part_features == 8
    assert len(ours.heads) == 1  # the transformers layout keeps only the COCO head
    x = torch.randn(3, 3, 64, 48)
    idx = torch.tensor([0, 3, 5])
    with torch.no_grad():
        feats = ours.forward_features(x, idx)
        torch.testing.assert_close(ours.keypoint_head(feats), _hf_heatmaps(ref, x, idx),
                                   atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="no head for dataset 'ap10k'"):
        ours(x, "ap10k")


@pytest.mark.parametrize("variant,experts", [("vitpose-b-simple", 1), ("vitpose-b", 1),
                                             ("vitpose-plus-b", 6)])
def test_our_model_saved_in_transformers_layout(tmp_path, variant, experts):
    from transformers import VitPoseForPoseEstimation
    ours = _randomise(build_model(variant, **TINY)).eval()
    save_hf_pretrained(ours, tmp_path / "export")
    ref = VitPoseForPoseEstimation.from_pretrained(tmp_path / "export",
                                                   attn_implementation="eager").eval()
    x = torch.randn(2, 3, 64, 48)
    idx = torch.tensor([0, 0]) if experts > 1 else None
    with torch.no_grad():
        torch.testing.assert_close(_hf_heatmaps(ref, x, idx), ours(x), atol=1e-5, rtol=1e-5)


def test_hf_mapping_is_a_bijection():
    sd = _randomise(build_model("vitpose-b", **TINY)).state_dict()
    back = hf_to_official(official_to_hf(sd))
    assert list(back) == list(sd) or set(back) == set(sd)
    for k in sd:
        assert torch.equal(back[k], sd[k]), k


# ----------------------------------------------------------------------------- MAE

def test_mae_checkpoint_initialises_backbone(tmp_path, caplog):
    c, depth = 32, 2
    mae = {"cls_token": torch.randn(1, 1, c), "pos_embed": torch.randn(1, 1 + 14 * 14, c),
           "patch_embed.proj.weight": torch.randn(c, 3, 16, 16),
           "patch_embed.proj.bias": torch.randn(c), "norm.weight": torch.ones(c),
           "norm.bias": torch.zeros(c), "mask_token": torch.zeros(1, 1, 16),
           "decoder_embed.weight": torch.randn(16, c), "decoder_pred.weight": torch.randn(48, 16)}
    ref_model = build_model("vitpose-b", embed_dim=c, depth=depth, num_heads=2)
    for k, v in ref_model.backbone.state_dict().items():
        if k.startswith("blocks."):
            mae[k] = torch.randn_like(v)
    path = tmp_path / "mae_pretrain_vit_tiny.pth"
    torch.save({"model": mae}, path)
    model = build_model("vitpose-b", embed_dim=c, depth=depth, num_heads=2)  # 256x192: 16x12 grid
    with caplog.at_level(logging.INFO, logger="vitpose.checkpoints"):
        ignored = load_pretrained_backbone(model, path)
    assert set(ignored) == {"cls_token", "norm.weight", "norm.bias", "mask_token",
                            "decoder_embed.weight", "decoder_pred.weight"}
    assert "ignored 6 keys" in caplog.text
    pos = model.backbone.pos_embed.detach()
    assert pos.shape == (1, 193, c)
    torch.testing.assert_close(pos[:, :1], mae["pos_embed"][:, :1])  # class slot kept as is
    grid = mae["pos_embed"][:, 1:].reshape(1, 14, 14, c).permute(0, 3, 1, 2)
    expected = F.interpolate(grid, size=(16, 12), mode="bicubic", align_corners=False)
    torch.testing.assert_close(pos[:, 1:], expected.permute(0, 2, 3, 1).reshape(1, 192, c))
    torch.testing.assert_close(model.backbone.blocks[1].attn.qkv.weight, mae["blocks.1.attn.qkv.weight"])
    assert torch.all(model.backbone.last_norm.weight == 1)  # not in MAE: default init

    # a pose checkpoint given as MAE weights: one clear error pointing to model.weights
    pose = tmp_path / "pose.pth"
    torch.save({"state_dict": ref_model.state_dict()}, pose)
    with pytest.raises(CheckpointError, match="model.weights"):
        load_pretrained_backbone(model, pose)
    torch.save({"model": {k: v for k, v in ref_model.state_dict().items()
                          if not k.startswith("keypoint_head")}}, pose)
    with pytest.raises(CheckpointError, match="not a square grid.*model.weights"):
        load_pretrained_backbone(model, pose)


def test_mae_patch14_is_padded_and_experts_initialised(tmp_path):
    c = 32
    mae = {"pos_embed": torch.randn(1, 1 + 16 * 16, c),
           "patch_embed.proj.weight": torch.randn(c, 3, 14, 14),
           "patch_embed.proj.bias": torch.randn(c)}
    model = build_model("vitpose-plus-b", embed_dim=c, depth=1, num_heads=2, part_features=8)
    for k, v in model.backbone.state_dict().items():
        if k.startswith("blocks.") and ".experts." not in k:
            mae[k] = torch.randn(128 if "fc2.weight" not in k else c, *v.shape[1:]) \
                if "fc2" in k else torch.randn_like(v)
    mae["blocks.0.mlp.fc2.weight"] = torch.randn(c, 128)
    mae["blocks.0.mlp.fc2.bias"] = torch.randn(c)
    load_pretrained_backbone(model, {"model": mae})
    w = model.backbone.patch_embed.proj.weight
    assert w.shape[-1] == 16 and torch.all(w[..., 0, :] == 0) and torch.all(w[..., :, -1] == 0)
    torch.testing.assert_close(w[..., 1:15, 1:15], mae["patch_embed.proj.weight"])
    mlp = model.backbone.blocks[0].mlp
    torch.testing.assert_close(mlp.fc2.weight, mae["blocks.0.mlp.fc2.weight"][:24])
    for e in mlp.experts:
        torch.testing.assert_close(e.weight, mae["blocks.0.mlp.fc2.weight"][24:])


# ----------------------------------------------------------------------------- ViTPose+ split

def test_split_matches_official_tool_without_its_leftovers(fixtures_dir):
    fx = torch.load(fixtures_dir / "parity_vit_moe.pt", weights_only=True)
    ms = fx["model_split"]
    ours = split_vitpose_plus(fx["state_dict"])
    assert sorted(ours) == sorted(f.removesuffix(".pth") for f in ms["files_written"])
    for task, keys in ms["keys_by_task"].items():
        # the official tool leaves experts (and, in coco.pth, associate heads) behind
        official = [(k, s) for k, s, _ in keys
                    if ".mlp.experts." not in k and not k.startswith("associate_keypoint_heads.")]
        assert [(k, list(v.shape)) for k, v in ours[task].items()] == \
            [(k, list(s)) for k, s in official], task
        assert not any("experts" in k or "associate" in k for k in ours[task])
    for task, sd in ms["state_dict_by_task"].items():
        for k, v in ours[task].items():
            assert torch.equal(v, sd[k]), (task, k)
    # each split loads into a plain ViTPose of the same size and gives the recorded heatmaps
    for task, ref in ms["heatmaps_by_task"].items():
        cfg = infer_config(ours[task], num_heads=4)
        assert not cfg.is_moe
        plain = vitpose.ViTPose(cfg).eval()
        load_local_weights(plain, ours[task])
        with torch.no_grad():
            torch.testing.assert_close(plain(fx["input"]), ref, atol=1e-4, rtol=1e-4)


def test_full_plus_checkpoint_into_single_dataset_model(fixtures_dir, tmp_path):
    fx = torch.load(fixtures_dir / "parity_vit_moe.pt", weights_only=True)
    moe = build_model(fx["config"]["official_model_cfg"]).eval()
    moe.load_state_dict(fx["state_dict"])
    path = tmp_path / "plus.pth"
    torch.save({"state_dict": fx["state_dict"]}, path)
    plain_cfg = infer_config(split_vitpose_plus(fx["state_dict"])["aic"], num_heads=4)
    single = vitpose.ViTPose(plain_cfg)
    load_local_weights(single, path, dataset="aic")
    with torch.no_grad():
        torch.testing.assert_close(single.eval()(fx["input"]), moe(fx["input"], "aic"),
                                   atol=1e-5, rtol=1e-5)
    # the original tool's split files (with leftover experts) load into a plain model too
    leftover = dict(fx["model_split"]["state_dict_by_task"]["aic"])
    single2 = vitpose.ViTPose(plain_cfg)
    load_local_weights(single2, leftover)
    with torch.no_grad():
        torch.testing.assert_close(single2.eval()(fx["input"]), moe(fx["input"], "aic"),
                                   atol=1e-5, rtol=1e-5)


# --------------------------------------------------------------------------------------------
# load_model: laid out on the meta device, the file's tensors assigned (no random
# initialisation, no second copy), the file memory-mapped (a training checkpoint's optimiser
# state is never read)
# --------------------------------------------------------------------------------------------


def test_load_model_does_not_initialise_what_the_file_overwrites(tmp_path, monkeypatch):
    model = _randomise(build_model("vitpose-b-simple", **TINY))
    path = vitpose.save_checkpoint(model, tmp_path / "m.pth")

    def guarded(real):
        def init(tensor, *args, **kwargs):
            assert tensor.is_meta, "random initialisation of weights that the file replaces"
            return real(tensor, *args, **kwargs)
        return init

    for name in ("trunc_normal_", "normal_", "uniform_", "kaiming_uniform_", "constant_"):
        monkeypatch.setattr(torch.nn.init, name, guarded(getattr(torch.nn.init, name)))
    loaded = vitpose.load_model(str(path))
    for (k, a), b in zip(model.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert b.device.type == "cpu" and b.dtype == torch.float32 and torch.equal(a, b), k
    x = torch.randn(1, 3, 64, 48)
    assert torch.equal(model.eval()(x), loaded(x))


def test_load_model_reads_legacy_files_and_casts_half_tensors(tmp_path):
    model = _randomise(build_model("vitpose-b-simple", **TINY))
    sd = {k: v.half() for k, v in model.state_dict().items()}
    path = tmp_path / "legacy.pth"
    torch.save({"state_dict": sd}, path, _use_new_zipfile_serialization=False)
    loaded = vitpose.load_model(str(path), num_heads=2)
    for k, v in loaded.state_dict().items():
        assert v.dtype == torch.float32 and torch.equal(v, sd[k].float()), k


def test_assigned_tensors_shared_in_the_file_are_not_tied(tmp_path):
    model = build_model("vitpose-b-simple", **TINY)
    sd = dict(model.state_dict())
    w = sd["backbone.blocks.0.attn.qkv.bias"]
    sd["backbone.blocks.1.attn.qkv.bias"] = w  # one tensor under two keys
    with torch.device("meta"):
        target = vitpose.ViTPose(model.cfg)
    load_state_dict_strict(target, sd, "test", assign=True)
    a = target.backbone.blocks[0].attn.qkv.bias
    b = target.backbone.blocks[1].attn.qkv.bias
    assert torch.equal(a, b) and a.data_ptr() != b.data_ptr()
