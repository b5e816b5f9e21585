"""Typed experiment configs: packaged YAML files, _base_ inheritance, overrides, errors, dump."""

from __future__ import annotations

from pathlib import Path

import pytest

from vitpose.errors import ConfigError
from vitpose.training.config import (
    CONFIG_DIR,
    ExperimentConfig,
    config_from_dict,
    config_to_dict,
    dump_config,
    find_config,
    list_configs,
    load_config,
    load_config_dict,
)

COCO_B = "coco/vitpose_b_coco_256x192"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# --------------------------------------------------------------------------------------------
# Packaged configs
# --------------------------------------------------------------------------------------------


def test_every_packaged_config_loads_and_round_trips(tmp_path: Path) -> None:
    names = list_configs()
    assert len(names) >= 60
    for name in names:
        cfg = load_config(name)
        assert isinstance(cfg, ExperimentConfig)
        assert cfg.description, name
        out = dump_config(cfg, tmp_path / f"{name}.yaml")
        assert load_config(out) == cfg, name
    # Bases load on their own too (every missing value has a default).
    for path in sorted((CONFIG_DIR / "_base_").glob("*.yaml")):
        load_config(path)


def test_expected_files_exist() -> None:
    names = set(list_configs())
    for size in "sblh":
        assert f"coco/vitpose_{size}_coco_256x192" in names
        assert f"coco/vitpose_{size}_simple_coco_256x192" in names
        assert f"plus/vitpose_plus_{size}_coco_aic_mpii_ap10k_apt36k_wholebody" in names
        for ds in ("ochuman", "mpii", "aic", "ap10k", "apt36k", "wholebody", "interhand2d"):
            assert f"eval/{ds}_vitpose_plus_{size}" in names
    for size in "blh":
        assert f"multitask/vitpose_{size}_coco_aic_mpii" in names
        assert f"multitask/vitpose_{size}_coco_aic_mpii_crowdpose" in names
        assert f"eval/crowdpose_vitpose_{size}_coco_aic_mpii_crowdpose" in names
    assert "debug/tiny_coco" in names
    assert not any(n.startswith(("_base_", "datasets/")) for n in names)


# Hyper-parameters from ref §1.1 (drop path, layer decay) and §2.1-2.3.
@pytest.mark.parametrize(
    "size, drop_path, layer_decay",
    [("s", 0.1, 0.8), ("b", 0.3, 0.75), ("l", 0.5, 0.8), ("h", 0.55, 0.85)],
)
def test_coco_recipe(size: str, drop_path: float, layer_decay: float) -> None:
    for suffix, variant in (("", f"vitpose-{size}"), ("_simple", f"vitpose-{size}-simple")):
        cfg = load_config(f"coco/vitpose_{size}{suffix}_coco_256x192")
        assert cfg.model.variant == variant
        assert cfg.model.drop_path_rate == drop_path
        assert cfg.optim.layer_decay == layer_decay
        assert (cfg.optim.lr, cfg.optim.weight_decay, cfg.optim.clip_grad) == (5e-4, 0.1, 1.0)
        assert cfg.optim.betas == (0.9, 0.999)
        sched = cfg.schedule
        assert (sched.epochs, sched.warmup_iters, sched.warmup_ratio) == (210, 500, 0.001)
        assert (sched.steps, sched.gamma) == ([170, 200], 0.1)
        assert (cfg.data.batch_size, cfg.data.val_batch_size, cfg.data.workers) == (64, 32, 4)
        assert cfg.data.image_size == (256, 192) and cfg.data.heatmap_size == (64, 48)
        (val,) = cfg.data.val
        assert not val.use_gt_bbox and val.use_udp and val.det_bbox_thr == 0.0
        assert val.det_file.endswith("COCO_val2017_detections_AP_H_56_person.json")
        assert (cfg.test.decode, cfg.test.flip_test, cfg.test.shift_heatmap) == ("udp", True, False)
        assert (cfg.test.vis_thr, cfg.test.oks_thr) == (0.2, 0.9)
        assert cfg.runtime.amp == "none"


@pytest.mark.parametrize("size, layer_decay", [("s", 0.8), ("b", 0.75), ("l", 0.8), ("h", 0.8)])
def test_plus_recipe(size: str, layer_decay: float) -> None:
    cfg = load_config(f"plus/vitpose_plus_{size}_coco_aic_mpii_ap10k_apt36k_wholebody")
    assert cfg.model.variant == f"vitpose-plus-{size}"
    assert cfg.optim.lr == 1e-3 and cfg.optim.layer_decay == layer_decay
    assert cfg.data.batch_size == 128 and cfg.data.workers == 8
    train = {ds.name: ds for ds in cfg.data.train}
    assert [ds.dataset_index for ds in cfg.data.train] == [0, 1, 2, 3, 4, 5]
    assert list(train) == ["coco", "aic", "mpii", "ap10k", "apt36k", "wholebody"]
    assert cfg.model.heads == list(train)
    assert train["coco"].use_udp and train["mpii"].use_udp and not train["mpii"].half_body
    assert not any(train[n].use_udp for n in ("aic", "ap10k", "apt36k", "wholebody"))
    # The official base-size animal configs swap these roots; ours do not.
    assert train["ap10k"].ann_file.startswith("ap10k/")
    assert train["ap10k"].img_prefix == "ap10k/data/"
    assert train["apt36k"].ann_file.startswith("apt36k/")
    assert train["apt36k"].img_prefix == "apt36k/"


def test_eval_settings_follow_the_config_matrix() -> None:
    # (config, gt boxes, udp, shift_heatmap, dataset_index, decode) from ref §2.8.
    rows = [
        ("eval/ochuman_vitpose_b_coco_aic_mpii", True, False, True, 0, "default"),
        ("eval/mpii_vitpose_plus_s", True, True, False, 2, "udp"),
        ("eval/aic_vitpose_l_coco_aic_mpii_crowdpose", True, False, True, 1, "default"),
        ("eval/crowdpose_vitpose_h_coco_aic_mpii_crowdpose", False, False, True, 3, "default"),
        ("eval/ap10k_vitpose_plus_b", True, False, True, 3, "default"),
        ("eval/apt36k_vitpose_plus_l", True, False, True, 4, "default"),
        ("eval/wholebody_vitpose_plus_h", False, False, True, 5, "default"),
        ("eval/interhand2d_vitpose_plus_b", True, False, True, 0, "default"),
    ]
    for name, gt, udp, shift, index, decode in rows:
        cfg = load_config(name)
        (val,) = cfg.data.val
        assert (val.use_gt_bbox, val.use_udp, val.dataset_index) == (gt, udp, index), name
        test = cfg.test
        assert (test.shift_heatmap, test.decode, test.flip_test) == (shift, decode, True), name
        if not gt:
            assert val.det_file
    crowd = load_config("eval/crowdpose_vitpose_b_coco_aic_mpii_crowdpose")
    assert crowd.model.heads == ["coco", "aic", "mpii", "crowdpose"]
    assert crowd.data.val[0].det_file.endswith("det_for_crowd_test_0.1_0.5.json")
    hand = load_config("eval/interhand2d_vitpose_plus_h")
    assert hand.schedule.epochs == 60 and hand.schedule.steps == [40, 50]
    assert hand.data.train[0].rot_factor == 90.0 and hand.data.train[0].scale_factor == 0.3
    assert hand.data.train[0].box_padding == 1.5 and not hand.data.train[0].half_body
    assert hand.runtime.best_metric == "AUC"
    assert load_config("eval/mpii_vitpose_plus_b").runtime.best_metric == "PCKh"


def test_tiny_config_points_at_the_sample(data_dir: Path) -> None:
    cfg = load_config("debug/tiny_coco")
    assert (cfg.model.embed_dim, cfg.model.depth, cfg.model.num_heads) == (32, 2, 2)
    assert cfg.model.img_size == (64, 48) == cfg.data.image_size
    root = Path(__file__).resolve().parents[2]
    for ds in cfg.data.train + cfg.data.val:
        assert (root / cfg.data.resolve(ds.ann_file)).is_file()
        assert (root / cfg.data.resolve(ds.img_prefix)).is_dir()
    assert (root / cfg.data.resolve(cfg.data.val[0].det_file)).is_file()


def test_bf16_proxy_configs_load(data_dir: Path) -> None:
    """scripts/bf16_proxy (docs/PERFORMANCE.md): ViTPose-B simple on the sample, two stages."""
    root = Path(__file__).resolve().parents[2]
    one = load_config(str(root / "scripts/bf16_proxy/stage1.yaml"))
    two = load_config(str(root / "scripts/bf16_proxy/stage2.yaml"))
    for cfg in (one, two):
        assert cfg.model.variant == "vitpose-b-simple" and cfg.runtime.amp == "bf16"
        for ds in cfg.data.train + cfg.data.val:
            assert (root / cfg.data.resolve(ds.ann_file)).is_file()
    assert one.data.train[0].rot_factor > 0 and two.data.train[0].rot_factor == 0
    assert not two.data.train[0].flip and two.model.weights == "work/bf16_proxy_1/latest.pth"


def test_find_config_by_short_name_and_path() -> None:
    assert find_config("vitpose_b_coco_256x192") == CONFIG_DIR / f"{COCO_B}.yaml"
    assert find_config(f"{COCO_B}.yaml") == CONFIG_DIR / f"{COCO_B}.yaml"
    assert find_config(CONFIG_DIR / f"{COCO_B}.yaml") == CONFIG_DIR / f"{COCO_B}.yaml"
    with pytest.raises(ConfigError, match="coco/vitpose_b_coco_256x192"):
        find_config("vitpose_b_coco")  # a close match is suggested


# --------------------------------------------------------------------------------------------
# Overrides
# --------------------------------------------------------------------------------------------


def test_overrides_use_yaml_scalars_lists_and_indices() -> None:
    cfg = load_config(
        COCO_B,
        [
            "optim.lr=1e-3",
            "schedule.steps=[100, 150]",
            "data.root=/datasets",
            "data.val.0.det_bbox_thr=0.5",
            "model.pretrained=mae_pretrain_vit_base.pth",
            "optim.clip_grad=null",
            "runtime.amp=bf16",
            "data.image_size=[256, 192]",
        ],
    )
    assert cfg.optim.lr == 1e-3 and isinstance(cfg.optim.lr, float)
    assert cfg.schedule.steps == [100, 150]
    assert cfg.data.val[0].det_bbox_thr == 0.5
    assert cfg.model.pretrained == "mae_pretrain_vit_base.pth"
    assert cfg.optim.clip_grad is None
    assert cfg.runtime.amp == "bf16"
    assert cfg.data.resolve("coco/val2017/") == Path("/datasets/coco/val2017/")
    assert cfg.data.resolve("/abs/file.json") == Path("/abs/file.json")
    # int given for a float field is accepted and becomes a float
    assert load_config(COCO_B, ["optim.weight_decay=0"]).optim.weight_decay == 0.0


def test_override_replaces_a_list_item_and_a_list() -> None:
    cfg = load_config(
        COCO_B,
        ["data.train=[{name: mpii, ann_file: a.json, img_prefix: imgs/, use_udp: true}]"],
    )
    (train,) = cfg.data.train
    # a written MPII entry gets MPII's own recipe (no half-body), not the COCO one
    assert (train.name, train.ann_file, train.half_body) == ("mpii", "a.json", False)
    cfg = load_config(COCO_B, ["data.train.0={name: aic, ann_file: b.json, img_prefix: i/}"])
    assert cfg.data.train[0].name == "aic" and cfg.data.train[0].use_udp is False


def test_two_overrides_that_must_change_together() -> None:
    # Switching the val crop to the classic affine is only valid with a non-UDP decode (and
    # the COCO config's explicit shift_heatmap=false must follow: the classic decode shifts).
    cfg = load_config(COCO_B, ["data.val.0.use_udp=false", "test.decode=default",
                               "test.shift_heatmap=true"])
    assert cfg.test.decode == "default"
    with pytest.raises(ConfigError, match="use_udp"):
        load_config(COCO_B, ["data.val.0.use_udp=false"])


@pytest.mark.parametrize(
    "override, fragments",
    [
        ("optim.lrr=1", ["optim.lrr", "lr, betas, weight_decay, layer_decay, clip_grad", "'lr'"]),
        ("modle.variant=x", ["modle", "allowed keys at the top level", "model"]),
        ("data.val.0.det_fil=x", ["data.val.0.det_fil", "det_file"]),
        ("optim.lr=fast", ["optim.lr", "expected a number", "fast"]),
        ("data.batch_size=1.5", ["data.batch_size", "integer"]),
        ("runtime.seed=true", ["runtime.seed", "integer"]),
        ("test.flip_test=1", ["test.flip_test", "true or false"]),
        ("runtime.amp=fp8", ["runtime.amp", "'none', 'bf16', 'fp16'"]),
        ("optim.betas=[0.9]", ["optim.betas", "expected 2 values"]),
        ("model.variant=3", ["model.variant", "string"]),
        ("data.val.3.det_file=x", ["index 3 out of range", "data.val"]),
        ("optim.lr.x=1", ["optim.lr", "not a section"]),
        ("optim.lr", ["key.path=value"]),
        ("data.train.0.name=cocoo", ["data.train.0.name", "unknown dataset", "'coco'"]),
        ("optim.layer_decay=1.5", ["optim.layer_decay", "(0, 1]"]),
        ("model.img_size=[128, 96]", ["model.img_size", "data.image_size"]),
    ],
)
def test_bad_overrides_are_rejected_with_the_key_named(override: str, fragments: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(COCO_B, [override])
    for fragment in fragments:
        assert fragment in str(info.value), (fragment, str(info.value))


# --------------------------------------------------------------------------------------------
# Files: unknown keys, wrong types, _base_
# --------------------------------------------------------------------------------------------


def test_unknown_key_in_a_file_is_rejected(tmp_path: Path) -> None:
    base = CONFIG_DIR / f"{COCO_B}.yaml"
    path = _write(tmp_path / "bad.yaml", f"_base_: {base}\noptim:\n  lr_rate: 1\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "optim.lr_rate" in message and "layer_decay" in message and str(path) in message


def test_wrong_type_in_a_nested_list_item(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "bad.yaml",
        "data:\n  train:\n    - {name: coco, ann_file: a.json, img_prefix: i/, flip: maybe}\n",
    )
    with pytest.raises(ConfigError, match=r"data\.train\.0\.flip: expected true or false"):
        load_config(path)
    path = _write(tmp_path / "bad2.yaml", "data:\n  train:\n    - {name: coco}\n")
    with pytest.raises(ConfigError, match=r"missing key 'data\.train\.0\.ann_file'"):
        load_config(path)


def test_base_inheritance_lists_only_differences(tmp_path: Path) -> None:
    _write(
        tmp_path / "base" / "parent.yaml",
        "description: parent\noptim:\n  lr: 2.0e-4\n  layer_decay: 0.9\n"
        "schedule:\n  steps: [1, 2, 3]\n  epochs: 5\n",
    )
    _write(tmp_path / "base" / "other.yaml", "runtime:\n  seed: 7\noptim:\n  layer_decay: 0.5\n")
    child = _write(
        tmp_path / "exp" / "child.yaml",
        "_base_: [../base/parent.yaml, ../base/other.yaml]\n"
        "optim:\n  lr: 1e-3\nschedule:\n  steps: [4]\n",
    )
    cfg = load_config(child)
    assert cfg.description == "parent"
    assert cfg.optim.lr == 1e-3  # child wins; "1e-3" is read as a float
    assert cfg.optim.layer_decay == 0.5  # later base wins over earlier base
    assert cfg.optim.weight_decay == 0.1  # dataclass default
    assert cfg.schedule.steps == [4] and cfg.schedule.epochs == 5  # lists are replaced
    assert cfg.runtime.seed == 7
    raw = load_config_dict(child)
    assert "_base_" not in raw and raw["schedule"] == {"steps": [4], "epochs": 5}


def test_base_can_name_a_packaged_config(tmp_path: Path) -> None:
    path = _write(tmp_path / "mine.yaml", f"_base_: {COCO_B}\ndata:\n  batch_size: 16\n")
    cfg = load_config(path)
    assert cfg.model.variant == "vitpose-b" and cfg.data.batch_size == 16
    assert cfg.optim.layer_decay == 0.75


def test_base_cycle_and_missing_base(tmp_path: Path) -> None:
    _write(tmp_path / "a.yaml", "_base_: b.yaml\n")
    _write(tmp_path / "b.yaml", "_base_: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(tmp_path / "a.yaml")
    _write(tmp_path / "c.yaml", "_base_: nowhere.yaml\n")
    with pytest.raises(ConfigError, match="nowhere.yaml"):
        load_config(tmp_path / "c.yaml")
    _write(tmp_path / "d.yaml", "optim: [1, 2\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(tmp_path / "d.yaml")


def test_dict_round_trip_and_no_base_in_dicts(tmp_path: Path) -> None:
    cfg = load_config("eval/wholebody_vitpose_plus_s", ["model.weights=/w/plus_s.pth"])
    data = config_to_dict(cfg)
    assert data["data"]["image_size"] == [256, 192]  # plain lists, no tuples
    assert config_from_dict(data) == cfg
    with pytest.raises(ConfigError, match="_base_"):
        config_from_dict({"_base_": "x.yaml"})
    dumped = dump_config(cfg, tmp_path / "sub" / "resolved.yaml")
    text = dumped.read_text()
    assert "_base_" not in text and "image_size: [256, 192]" in text
    assert load_config(dumped) == cfg


def test_shift_heatmap_is_checked_not_dropped() -> None:
    """test.shift_heatmap used to be accepted and ignored (the shift follows the decoding). A
    value that contradicts the decoding is now an error; the official pairing is accepted."""
    assert load_config("coco/vitpose_b_coco_256x192").test.shift_heatmap is False
    assert load_config("coco/vitpose_b_coco_256x192", ["test.shift_heatmap=null"]).test \
        .shift_heatmap is None
    with pytest.raises(ConfigError, match=r"test.shift_heatmap=true with test.decode='udp'"):
        load_config("coco/vitpose_b_coco_256x192", ["test.shift_heatmap=true"])
    assert load_config("eval/aic_vitpose_b_coco_aic_mpii").test.shift_heatmap is True
    with pytest.raises(ConfigError, match="set it to true"):
        load_config("eval/aic_vitpose_b_coco_aic_mpii", ["test.shift_heatmap=false"])


def test_center_jitter_settings_are_checked() -> None:
    cfg = load_config("coco/vitpose_b_coco_256x192")
    assert cfg.data.train[0].center_jitter == "per_box"  # the official regime by default
    with pytest.raises(ConfigError, match="center_jitter_prob"):
        load_config("coco/vitpose_b_coco_256x192", ["data.train.0.center_jitter_prob=1.5"])
    with pytest.raises(ConfigError, match="center_jitter"):
        load_config("coco/vitpose_b_coco_256x192", ["data.train.0.center_jitter=per_epoch"])
