"""The hub side (`vitpose.hub.fetch`): offline rules and messages, as the commands show them.

No test reaches the network: ``HF_HOME`` is an empty folder, and where a test needs the hub to
answer (unreachable, missing, a download) ``huggingface_hub`` is patched.
"""

from __future__ import annotations

import time
from pathlib import Path
from unittest import mock

import huggingface_hub
import huggingface_hub.constants  # noqa: F401 - imported now, not under a test's env
import pytest

import vitpose
from vitpose import hub
from vitpose.cli.main import main
from vitpose.errors import DownloadError

TINY = dict(embed_dim=32, depth=2, num_heads=2, img_size=(64, 48))


@pytest.fixture()
def empty_hf_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "hf_home"
    home.mkdir()
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return home


@pytest.fixture()
def no_network(monkeypatch):
    """The hub is unreachable (as on an offline machine); every online download is counted."""
    calls = {"probe": 0, "download": 0}

    def probe(*args, **kwargs):
        calls["probe"] += 1
        raise OSError("[Errno -2] Name or service not known")

    def download(real):
        def wrapper(*args, **kwargs):
            if not kwargs.get("local_files_only"):
                calls["download"] += 1
                raise AssertionError("an online download was attempted (it would retry for ~25 s)")
            return real(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(huggingface_hub, "get_hf_file_metadata", probe)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download",
                        download(huggingface_hub.hf_hub_download))
    monkeypatch.setattr(huggingface_hub, "snapshot_download",
                        download(huggingface_hub.snapshot_download))
    return calls


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and "Retrying in" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def _fill_cache(cache: Path, repo: str, files: dict[str, bytes]) -> None:
    """The Hugging Face cache layout (``models--owner--name/{refs,snapshots}``) by hand."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    root = cache / ("models--" + repo.replace("/", "--"))
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(commit)
    snap = root / "snapshots" / commit
    snap.mkdir(parents=True)
    for name, data in files.items():
        (snap / name).write_bytes(data)


def _tiny_hf_folder(tmp_path: Path) -> Path:
    model = vitpose.build_model("vitpose-b-simple", **TINY)
    return vitpose.save_hf_pretrained(model, tmp_path / "tiny_hf")


# ----------------------------------------------------------------------------- offline mode

def test_offline_without_cache_says_not_in_the_cache(empty_hf_home, monkeypatch, tmp_path,
                                                     capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()
    assert main(["export", "--hf", str(tmp_path / "out")]) == 2
    assert time.perf_counter() - started < 5
    line = _one_line_error(capsys)
    assert "not in the Hugging Face cache" in line and str(empty_hf_home) in line
    assert "could not download" not in line
    assert "--weights PATH" in line and "HF_HUB_OFFLINE=1" in line
    assert "vitpose-b-simple" in line and not (tmp_path / "out").exists()


def test_offline_error_does_not_advise_setting_what_is_set(empty_hf_home, monkeypatch,
                                                           tmp_path, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["export", "--hf", str(tmp_path / "out")]) == 2
    line = _one_line_error(capsys)
    assert "HF_HUB_OFFLINE=1 forbids downloading" in line
    assert line.count("HF_HUB_OFFLINE") == 1 and "set HF_HUB_OFFLINE" not in line
    assert "--weights PATH" in line and "Hugging Face cache here" in line


def test_offline_with_a_filled_cache_loads_from_it(empty_hf_home, monkeypatch, tmp_path, capsys):
    folder = _tiny_hf_folder(tmp_path)
    _fill_cache(empty_hf_home / "hub", "someone/tiny-vitpose",
                {f.name: f.read_bytes() for f in folder.iterdir()})
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = vitpose.load_model("someone/tiny-vitpose")
    assert model.cfg.embed_dim == 32 and model.cfg.num_heads == 2
    assert main(["export", "--model", "someone/tiny-vitpose", "--hf", str(tmp_path / "o")]) == 0
    assert (tmp_path / "o" / "model.safetensors").is_file()


# ----------------------------------------------------------------------------- unreachable hub

def test_unreachable_hub_fails_fast_with_one_message(empty_hf_home, no_network, tmp_path,
                                                     capsys):
    """export / a hub file: one quick request without retries, then our message."""
    started = time.perf_counter()
    assert main(["export", "--hf", str(tmp_path / "out")]) == 2
    line = _one_line_error(capsys)
    assert "hub is unreachable" in line and "--weights PATH" in line
    assert "HF_HUB_OFFLINE=1" in line
    assert main(["export", "--model", "nielsr/vitpose-original-checkpoints/vitpose-b.pth",
                 "--hf", str(tmp_path / "out")]) == 2
    assert "hub is unreachable" in _one_line_error(capsys)
    assert time.perf_counter() - started < 5
    assert no_network == {"probe": 2, "download": 0}


def test_vitpose_test_unreachable_hub(empty_hf_home, no_network, data_dir, tmp_path, capsys):
    assert main(["test", "debug/tiny_coco", "--data-root", str(data_dir), "--weights",
                 "someone/tiny-vitpose", "--work-dir", str(tmp_path / "w")]) == 2
    line = _one_line_error(capsys)
    assert "'someone/tiny-vitpose'" in line and "hub is unreachable" in line
    assert no_network["download"] == 0


def test_vitpose_test_checks_data_before_weights(empty_hf_home, no_network, tmp_path, capsys):
    """No data: say so, without fetching (or failing to fetch) any weights first."""
    assert main(["test", "debug/tiny_coco", "--data-root", str(tmp_path / "nowhere"),
                 "--weights", "someone/tiny-vitpose"]) == 2
    line = _one_line_error(capsys)
    assert "not found" in line and "--data-root" in line and "hub" not in line
    assert no_network == {"probe": 0, "download": 0}


def test_unreachable_hub_uses_the_cached_copy(empty_hf_home, no_network, tmp_path, caplog):
    folder = _tiny_hf_folder(tmp_path)
    _fill_cache(empty_hf_home / "hub", "someone/tiny-vitpose",
                {f.name: f.read_bytes() for f in folder.iterdir()})
    model = vitpose.load_model("someone/tiny-vitpose")
    assert model.cfg.embed_dim == 32
    assert "using the cached" in caplog.text


def test_missing_repository_is_not_found_not_offline(empty_hf_home, monkeypatch):
    from huggingface_hub.utils import RepositoryNotFoundError

    def probe(*args, **kwargs):
        raise RepositoryNotFoundError("404 Client Error: Repository Not Found",
                                      response=mock.MagicMock(status_code=404))

    monkeypatch.setattr(huggingface_hub, "get_hf_file_metadata", probe)
    with pytest.raises(DownloadError, match="not found on the Hugging Face hub") as err:
        hub.fetch("someone/no-such-repo")
    assert "offline" not in str(err.value).lower()


def test_reachable_hub_downloads_through_fetch(empty_hf_home, monkeypatch, tmp_path):
    """The one public entry point (also for detectors): a reachable hub downloads normally."""
    folder = _tiny_hf_folder(tmp_path)
    monkeypatch.setattr(huggingface_hub, "get_hf_file_metadata", lambda *a, **k: None)
    seen = {}

    def snapshot(repo_id, **kwargs):
        if kwargs.get("local_files_only"):
            raise huggingface_hub.utils.LocalEntryNotFoundError("not cached")
        seen.update(kwargs, repo_id=repo_id)
        return str(folder)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot)
    assert hub.fetch("PekingU/rtdetr_r50vd_coco_o365") == folder
    assert seen["repo_id"] == "PekingU/rtdetr_r50vd_coco_o365"
    assert Path(seen["cache_dir"]) == empty_hf_home / "hub"
    assert "*.json" in seen["allow_patterns"]


# ----------------------------------------------------------------------------- local names

@pytest.mark.parametrize("spec", ["nope.pth", "ck/nope.pth", "./nope.pth"])
def test_missing_local_file_is_not_found_not_a_download(empty_hf_home, no_network, tmp_path,
                                                        monkeypatch, capsys, spec):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ck").mkdir()
    assert main(["export", "--model", spec, "--hf", str(tmp_path / "out")]) == 2
    line = _one_line_error(capsys)
    assert line == f"error: checkpoint file not found: {spec}"
    assert no_network == {"probe": 0, "download": 0}


def test_unknown_model_name_is_one_line(empty_hf_home, no_network, tmp_path, capsys):
    assert main(["export", "--model", "vitpose-x", "--hf", str(tmp_path / "out")]) == 2
    assert "neither an existing checkpoint file nor a model variant" in _one_line_error(capsys)


@pytest.mark.parametrize("spec", ["nope.pth", "ck/nope.pth"])
def test_predict_with_a_missing_model_file(empty_hf_home, no_network, tmp_path, monkeypatch,
                                           capsys, spec):
    """Where users meet it: `vitpose predict IMG --model nope.pth` is one line, writes nothing."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ck").mkdir()
    image = Path(__file__).resolve().parents[2] / "examples" / "000000000785.jpg"
    assert main(["predict", str(image), "--model", spec, "--box", "0,0,10,10",
                 "--out-dir", str(tmp_path / "out")]) == 2
    assert _one_line_error(capsys) == f"error: checkpoint file not found: {spec}"
    assert not (tmp_path / "out").exists() and no_network == {"probe": 0, "download": 0}
