"""Model architecture: numerical parity with the official implementation and exact key layouts."""

from __future__ import annotations

import json

import pytest
import torch

import vitpose
from vitpose.models import VARIANTS, build_model, list_models

TOL = dict(atol=1e-4, rtol=1e-4)


def _load(fixtures_dir, name):
    return torch.load(fixtures_dir / f"parity_vit_{name}.pt", weights_only=True)


@pytest.mark.parametrize("name", ["classic", "simple"])
def test_official_parity_plain(fixtures_dir, name):
    fx = _load(fixtures_dir, name)
    model = build_model(fx["config"]["official_model_cfg"]).eval()
    model.load_state_dict(fx["state_dict"], strict=True)
    assert model.cfg.decoder == name
    with torch.no_grad():
        torch.testing.assert_close(model.backbone(fx["input"]), fx["backbone_output"], **TOL)
        torch.testing.assert_close(model(fx["input"]), fx["output"], **TOL)


def test_official_parity_moe_every_dataset_and_mixed(fixtures_dir):
    fx = _load(fixtures_dir, "moe")
    model = build_model(fx["config"]["official_model_cfg"]).eval()
    model.load_state_dict(fx["state_dict"], strict=True)
    assert model.datasets == ("coco", "aic", "mpii", "ap10k", "apt36k", "wholebody")
    assert [h.num_keypoints for h in model.cfg.heads] == [17, 14, 16, 17, 17, 133]
    with torch.no_grad():
        for index, ref in fx["backbone_output_by_dataset_index"].items():
            torch.testing.assert_close(model.backbone(fx["input"], torch.tensor([index] * 2)), ref,
                                       **TOL)
            torch.testing.assert_close(model.backbone(fx["input"], index), ref, **TOL)
            torch.testing.assert_close(model.backbone(fx["input"], model.datasets[index]), ref,
                                       **TOL)
            # the same through the model, by index and by name
            torch.testing.assert_close(model.forward_features(fx["input"], index), ref, **TOL)
            torch.testing.assert_close(
                model.forward_features(fx["input"], model.datasets[index]), ref, **TOL)
        torch.testing.assert_close(
            model.forward_features(fx["input"], fx["mixed_dataset_index"]),
            fx["backbone_output_mixed"], **TOL)


def test_moe_heads_follow_dataset_index(fixtures_dir):
    fx = _load(fixtures_dir, "moe")
    model = build_model(fx["config"]["official_model_cfg"]).eval()
    model.load_state_dict(fx["state_dict"], strict=True)
    x = fx["input"]
    with torch.no_grad():
        assert model(x, "mpii").shape == (2, 16, 32, 24)
        assert model(x, 5).shape == (2, 133, 32, 24)
        parts = model.forward_heads(x, torch.tensor([3, 5]))
        assert sorted(parts) == [3, 5]
        rows, hm = parts[5]
        assert rows.tolist() == [1] and hm.shape == (1, 133, 32, 24)
        # equal to running each sample alone
        torch.testing.assert_close(hm, model(x[1:], 5), **TOL)
        # 3 (ap10k) and 4 (apt36k) both have 17 keypoints: a mixed batch stacks
        mixed = model(x, [3, 4])
        torch.testing.assert_close(mixed[0], model(x[:1], 3)[0], **TOL)
        torch.testing.assert_close(mixed[1], model(x[1:], 4)[0], **TOL)
        with pytest.raises(ValueError, match="forward_heads"):
            model(x, [0, 5])
        with pytest.raises(ValueError, match="unknown dataset"):
            model(x, "horses")


def test_moe_routing_is_computed_once_per_forward(monkeypatch):
    """The experts of a mixed batch are grouped once per forward, not once per block (each
    grouping is a device sync on a GPU), and a one-dataset batch needs no grouping at all."""
    torch.manual_seed(0)
    model = build_model("vitpose-plus-b", embed_dim=32, depth=4, num_heads=2,
                        img_size=(64, 48)).eval()
    x = torch.randn(2, 3, 64, 48)
    with torch.no_grad():
        ref_3, ref_4 = model.forward_features(x[:1], 3), model.forward_features(x[1:], 4)
        calls = []
        original = torch.Tensor.tolist
        monkeypatch.setattr(torch.Tensor, "tolist",
                            lambda t: calls.append(t.shape) or original(t))
        mixed = model.forward_features(x, torch.tensor([3, 4]))
        assert len(model.backbone.blocks) > 2 and len(calls) <= 2, calls
        calls.clear()
        model.forward_features(x, "ap10k")
        assert calls == []
    torch.testing.assert_close(mixed, torch.cat([ref_3, ref_4]), **TOL)


def _official_cfg(entry):
    cfg = {"type": entry["model_type"], "backbone": dict(entry["backbone"]),
           "keypoint_head": entry["keypoint_head"]}
    if entry.get("associate_keypoint_head"):
        cfg["associate_keypoint_head"] = entry["associate_keypoint_head"]
    return cfg


def test_every_released_config_has_the_official_keys(fixtures_dir):
    data = json.loads((fixtures_dir / "checkpoint_keys.json").read_text())
    assert len(data["variants"]) >= 43
    for name, entry in data["variants"].items():
        with torch.device("meta"):
            model = build_model(_official_cfg(entry))
        got = {k: list(v.shape) for k, v in model.state_dict().items()}
        assert list(got) == list(entry["state_dict"]), name
        assert got == entry["state_dict"], name
        assert sum(p.numel() for p in model.parameters()) == entry["num_params"], name


def test_variant_names_match_the_readme_configs(fixtures_dir):
    data = json.loads((fixtures_dir / "checkpoint_keys.json").read_text())["variants"]
    pairs = {
        "vitpose-s": "ViTPose_small_coco_256x192",
        "vitpose-b": "ViTPose_base_coco_256x192",
        "vitpose-l": "ViTPose_large_coco_256x192",
        "vitpose-h": "ViTPose_huge_coco_256x192",
        "vitpose-s-simple": "ViTPose_small_simple_coco_256x192__with_simple_decoder",
        "vitpose-b-simple": "ViTPose_base_simple_coco_256x192",
        "vitpose-l-simple": "ViTPose_large_simple_coco_256x192",
        "vitpose-h-simple": "ViTPose_huge_simple_coco_256x192",
        "vitpose-plus-b": "vitPose+_base_coco+aic+mpii+ap10k+apt36k+wholebody_256x192_udp",
        "vitpose-plus-l": "vitPose+_large_coco+aic+mpii+ap10k+apt36k+wholebody_256x192_udp",
        "vitpose-plus-h": "vitPose+_huge_coco+aic+mpii+ap10k+apt36k+wholebody_256x192_udp",
        "vitpose-b-wholebody": None,
    }
    for ours, official in pairs.items():
        if official is None:
            continue
        with torch.device("meta"):
            model = build_model(ours)
        got = {k: list(v.shape) for k, v in model.state_dict().items()}
        assert got == data[official]["state_dict"], ours
    # The released ViTPose+-S has P = 96, not the 192 of its config (reference §1.11).
    with torch.device("meta"):
        plus_s = build_model("vitpose-plus-s")
    assert plus_s.state_dict()["backbone.blocks.0.mlp.fc2.weight"].shape == (288, 1536)
    # The original config file names work too.
    with torch.device("meta"):
        ap10k = build_model("ViTPose_large_ap10k_256x192")
    got = {k: list(v.shape) for k, v in ap10k.state_dict().items()}
    assert got == data["ViTPose_large_ap10k_256x192"]["state_dict"]
    assert ap10k.datasets == ("ap10k",)


@pytest.mark.parametrize("name,millions", [("vitpose-s", 24.29), ("vitpose-b", 89.99),
                                           ("vitpose-l", 308.54), ("vitpose-h", 637.21)])
def test_parameter_counts(name, millions):
    with torch.device("meta"):
        model = build_model(name)
    assert sum(p.numel() for p in model.parameters()) / 1e6 == pytest.approx(millions, abs=0.01)


def test_all_variants_build_and_giant_is_documented():
    for name in list_models():
        with torch.device("meta"):
            model = build_model(name)
        assert isinstance(model, vitpose.ViTPose)
    with torch.device("meta"):
        giant = build_model("vitpose-g")
    assert giant.input_size == (576, 432)
    assert 0.9e9 < sum(p.numel() for p in giant.backbone.parameters()) < 1.1e9
    assert set(VARIANTS) == set(list_models())
    with pytest.raises(ValueError, match="unknown model"):
        build_model("vitpose-xxl")


def test_loose_names_and_overrides():
    tiny = dict(embed_dim=32, depth=2, num_heads=2, img_size=(64, 48))
    m = build_model("ViTPose_B_Simple", **tiny)
    assert m.cfg.decoder == "simple" and m.cfg.embed_dim == 32
    assert build_model("vitpose+-b", **tiny).cfg.is_moe
    custom = build_model("vitpose-b", num_keypoints=5, dataset="mine", **tiny)
    assert custom.datasets == ("mine",)
    x = torch.randn(2, 3, 64, 48)
    assert custom(x).shape == (2, 5, 16, 12)
    assert custom.backbone(x).shape == (2, 32, 4, 3)
    with pytest.raises(ValueError, match="unknown model options"):
        build_model("vitpose-b", depthh=3)
    with pytest.raises(ValueError, match="img_size"):
        custom(torch.randn(1, 3, 256, 192))


def test_drop_path_and_checkpointing_train():
    m = build_model("vitpose-plus-b", embed_dim=32, depth=3, num_heads=2, img_size=(64, 48),
                    part_features=8, drop_path_rate=0.2, use_checkpoint=True).train()
    x = torch.randn(4, 3, 64, 48)
    parts = m.forward_heads(x, torch.tensor([0, 0, 1, 5]))
    loss = sum(hm.square().mean() for _, hm in parts.values())
    loss.backward()
    assert m.backbone.blocks[0].mlp.experts[5].weight.grad is not None
    assert m.backbone.blocks[0].mlp.experts[3].weight.grad is None  # dataset 3 not in the batch
    assert m.associate_keypoint_heads[0].final_layer.weight.grad is not None


@pytest.mark.parametrize("kernel", [1, 3])
def test_simple_head_upsample_conv_equals_conv_of_upsampled(kernel):
    """The factored simple decoder (taps before the x4 upsampling) equals the official order."""
    import torch.nn.functional as F

    from vitpose.models import HeatmapHead
    head = HeatmapHead(32, 17, num_deconv_layers=0, num_deconv_filters=(), num_deconv_kernels=(),
                       final_conv_kernel=kernel, upsample=4)
    torch.nn.init.normal_(head.final_layer.weight, std=0.1)
    torch.nn.init.normal_(head.final_layer.bias, std=0.1)
    x = torch.randn(2, 32, 16, 12)
    up = F.interpolate(F.relu(x), scale_factor=4, mode="bilinear", align_corners=False)
    torch.testing.assert_close(head(x), head.final_layer(up), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("simple", [True, False])
def test_heatmaps_leave_autocast_in_float32(simple):
    """Under bf16 autocast the layer that makes the heatmaps runs in float32 on the cast-up
    features, so the heatmaps are not rounded to bf16 (ties would move their arg-max)."""
    from vitpose.models import HeatmapHead
    if simple:
        head = HeatmapHead(32, 17, num_deconv_layers=0, num_deconv_filters=(),
                           num_deconv_kernels=(), final_conv_kernel=3, upsample=4)
    else:
        head = HeatmapHead(32, 17, num_deconv_filters=(16, 16))
    torch.nn.init.normal_(head.final_layer.weight, std=0.1)
    head.eval()
    x = torch.randn(2, 32, 16, 12).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = head(x)
        inner = head.deconv_layers(x)  # what the final layer receives (bf16 for classic)
    assert out.dtype == torch.float32
    ref = head(x.float()) if simple else head.final_layer(inner.float())
    assert torch.equal(out, ref)
    # a model cast to bf16 by hand keeps computing in bf16
    assert head.bfloat16()(x).dtype == torch.bfloat16


def test_patch_embedding_leaves_autocast_in_float32():
    """Under bf16 autocast the pixels are not rounded to bf16 before the patch embedding."""
    from vitpose.models.precision import float32_layers
    model = build_model("vitpose-b", embed_dim=32, depth=1, num_heads=2, img_size=(64, 48)).eval()
    pe = model.backbone.patch_embed
    x = torch.randn(2, 3, 64, 48)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        tokens = pe(x)
        heatmaps = model(x)
    assert tokens.dtype == torch.float32 and heatmaps.dtype == torch.float32
    assert torch.equal(tokens, pe(x))
    assert {id(m) for m in float32_layers(model)} == {id(pe.proj),
                                                      id(model.keypoint_head.final_layer)}


def test_the_model_owns_its_input_normalisation():
    """The official normalisation (mmcv ``Normalize``: ImageNet mean/std times 255 on RGB) is
    defined once, on the model."""
    from vitpose.models import PIXEL_MEAN, PIXEL_STD, ViTPose
    assert ViTPose.pixel_mean == PIXEL_MEAN == (0.485, 0.456, 0.406)
    assert ViTPose.pixel_std == PIXEL_STD == (0.229, 0.224, 0.225)
    image = torch.randint(0, 256, (2, 3, 8, 6)).float()
    mmcv = (image - torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)) \
        / torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)
    model = build_model("vitpose-b", embed_dim=32, depth=1, num_heads=2, img_size=(64, 48))
    torch.testing.assert_close(model.normalize(image), mmcv, rtol=1e-5, atol=1e-5)
