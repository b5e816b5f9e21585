"""`vitpose predict` under `torchrun --nproc_per_node 2` (Gloo, CPU, one thread each): the
merged results equal a single-process run, a killed rank is followed by a rerun that does exactly
the missing part (on another number of processes), a corrupt file is reported once, a user error
on the ranks is one message; plus the pieces of `vitpose.inference.sharding` on their own.

The model is the tiny random ViTPose of tests/tiny_models.py, written to a checkpoint file.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from tiny_models import tiny_simple_model

import vitpose
from vitpose import distributed
from vitpose.cli.main import main
from vitpose.inference import sharding
from vitpose.inference.threads import map_ahead

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return vitpose.save_checkpoint(tiny_simple_model(), tmp_path_factory.mktemp("ckpt") / "t.pth")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in TORCHRUN_VARS}
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), str(HERE),
                                                      env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def _predict(nproc: int | None, *args: object, module: str = "vitpose", **env: str
             ) -> subprocess.CompletedProcess:
    """``vitpose predict ARGS --device cpu``: under torchrun with `nproc` processes, or as one
    plain process (None); ``module`` runs another entry (the fault injector `preempted_rank`)."""
    launcher = [sys.executable] if nproc is None else [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
        "--master_addr", "127.0.0.1", "--master_port", str(_free_port())]
    cmd = [*launcher, "-m", module, "predict", *map(str, args), "--device", "cpu"]
    return subprocess.run(cmd, check=False, cwd=ROOT, env=_env(**env), capture_output=True,
                          text=True, timeout=300)


def _sorted(results: list[dict]) -> list[dict]:
    return sorted(results, key=lambda r: (str(r["image_id"]), r["bbox"], r["score"]))


def _write_images(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        p = folder / f"img{i}.png"
        cv2.imwrite(str(p), rng.integers(0, 256, (64, 48, 3), dtype=np.uint8))
        paths.append(p)
    return paths


# ---------------------------------------------------------------------------------------------
# Two processes under torchrun
# ---------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_two_processes_equal_one_on_sample_images_with_det_file(data_dir, ckpt, tmp_path):
    coco = data_dir / "coco"
    # one named engine: `auto` calibrates per thread count, so 1 and 2 processes (1 thread
    # each) could pick engines that agree to float32 rounding only
    opts = ["--model", ckpt, "--det-file", coco / "test_coco_det_AP_H_56.json",
            "--images-file", coco / "test_coco.json", "--backend", "torch"]
    assert main(["predict", str(coco), *map(str, opts), "--out-dir", str(tmp_path / "one"),
                 "--device", "cpu"]) == 0
    proc = _predict(2, coco, *opts, "--out-dir", tmp_path / "two")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # one summary, by rank 0, for the whole job; each process did half of the images
    assert proc.stdout.count("image(s)/s") == 1
    assert "4 image(s), 118 instance(s), 0 failed" in proc.stdout
    assert "on 2 process(es), 2 + 2 image(s) per process" in proc.stdout
    assert proc.stderr.count("listed 4 image(s), 4 to do") == 1  # by rank 0 alone
    one = json.loads((tmp_path / "one" / "results.json").read_text())
    two = json.loads((tmp_path / "two" / "results.json").read_text())
    assert len(two) == 118 and two == one  # same instances, ids and even order
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == \
        sorted(p.name for p in (tmp_path / "one").iterdir())  # drawings; no journal left


@pytest.mark.slow
def test_killed_rank_then_rerun_does_exactly_the_missing_part(ckpt, tmp_path):
    images = _write_images(tmp_path / "in", 10)
    opts = ["--model", ckpt, "--box", "4,4,40,56", "--batch-size", "1", "--backend", "torch"]
    assert main(["predict", str(tmp_path / "in"), *map(str, opts), "--device", "cpu",
                 "--out-dir", str(tmp_path / "ref"), "--no-draw"]) == 0
    reference = json.loads((tmp_path / "ref" / "results.json").read_text())
    out = tmp_path / "out"
    # rank 1 dies hard after journalling 2 images (a pre-empted node); torchrun then stops rank 0
    killed = _predict(2, tmp_path / "in", *opts, "--out-dir", out, "--out", out / "r.jsonl",
                      module="preempted_rank", PREEMPT_RANK_AFTER="1:2")
    assert killed.returncode != 0
    assert not (out / "r.jsonl").exists()
    journals = sharding.journal_paths(out / "r.jsonl")
    assert [j.name for j in journals][-1] == "r.jsonl.rank00001.partial.jsonl"
    settings = json.loads(journals[0].read_text().splitlines()[0])["settings"]
    done = sharding.journal_keys(journals, settings)
    assert 2 <= len(done) < len(images)
    drawn_before = {key: (out / key.replace(".png", "_pose.png")).stat().st_mtime_ns
                    for key in done}
    # the rerun: the same command as one plain process (another world size) finishes the job
    rerun = _predict(None, tmp_path / "in", *opts, "--out-dir", out, "--out", out / "r.jsonl")
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    missing = len(images) - len(done)
    assert (f"resuming: {len(done)} of {len(images)} image(s) already done" in rerun.stderr)
    assert f"{missing} image(s), {missing} instance(s), 0 failed" in rerun.stdout
    merged = [json.loads(line) for line in (out / "r.jsonl").read_text().splitlines()]
    assert _sorted(merged) == _sorted(reference)
    assert sharding.journal_paths(out / "r.jsonl") == []
    assert not sharding.plan_path(out / "r.jsonl").exists()
    # the images done before the kill were neither estimated nor drawn again
    for key, mtime in drawn_before.items():
        assert (out / key.replace(".png", "_pose.png")).stat().st_mtime_ns == mtime
    assert len(list(out.glob("*_pose.png"))) == len(images)


@pytest.mark.slow
def test_corrupt_file_is_reported_once_and_the_rest_is_done(ckpt, tmp_path):
    _write_images(tmp_path / "in", 5)
    (tmp_path / "in" / "img2.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    proc = _predict(2, tmp_path / "in", "--model", ckpt, "--box", "4,4,40,56", "--no-draw",
                    "--out-dir", tmp_path / "out")
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    output = proc.stdout + proc.stderr
    assert output.count("skipping") == 1 and "img2.png" in output
    assert output.count("1 of 5 file(s) could not be read and were skipped") == 1
    assert "4 image(s), 4 instance(s), 1 failed" in proc.stdout
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert sorted(r["image_id"] for r in results) == ["img0.png", "img1.png", "img3.png",
                                                      "img4.png"]


@pytest.mark.slow  # a fourth launch of two processes (about 5 s on a quiet 2-core machine)
def test_user_error_on_every_rank_is_one_message(ckpt, tmp_path):
    _write_images(tmp_path / "in", 2)
    proc = _predict(2, tmp_path / "in", "--model", tmp_path / "missing.pth", "--box",
                    "4,4,40,56", "--out-dir", tmp_path / "out")
    assert proc.returncode != 0
    assert proc.stderr.count("error: ") == 1, proc.stderr[-3000:]
    assert "checkpoint file not found" in proc.stderr and "missing.pth" in proc.stderr
    # no traceback of ours (torchrun adds its own report of a worker's non-zero exit)
    assert "vitpose/cli" not in proc.stderr and "distributed_c10d" not in proc.stderr


# ---------------------------------------------------------------------------------------------
# One process: JSON lines, video lists, reruns
# ---------------------------------------------------------------------------------------------

def test_jsonl_output_and_complete_run(ckpt, tmp_path, capsys):
    _write_images(tmp_path / "in", 3)
    args = ["predict", str(tmp_path / "in"), "--model", str(ckpt), "--box", "4,4,40,56",
            "--no-draw", "--device", "cpu", "--out", str(tmp_path / "r.jsonl")]
    assert main([*args, "--read-workers", "0"]) == 0
    lines = (tmp_path / "r.jsonl").read_text().splitlines()
    assert [json.loads(line)["image_id"] for line in lines] == ["img0.png", "img1.png",
                                                                "img2.png"]
    capsys.readouterr()
    assert main(args) == 2  # complete: like a single-process run, --overwrite to redo
    assert "the run is complete" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0
    assert (tmp_path / "r.jsonl").read_text().splitlines() == lines  # read-ahead: same


def test_journals_of_another_run_need_the_same_options_or_overwrite(ckpt, tmp_path, capsys):
    _write_images(tmp_path / "in", 2)
    out = tmp_path / "r.jsonl"
    stale = tmp_path / "r.jsonl.rank00003.partial.jsonl"  # left by a run on 4+ processes
    stale.write_text(json.dumps({"vitpose_journal": 1, "settings": {"model": "other"}}) + "\n"
                     + json.dumps({"key": "img0.png", "value": []}) + "\n")
    args = ["predict", str(tmp_path / "in"), "--model", str(ckpt), "--box", "4,4,40,56",
            "--no-draw", "--device", "cpu", "--out", str(out)]
    assert main(args) == 2  # a plain command continues a sharded run: its journals are checked
    err = capsys.readouterr().err
    assert "r.jsonl.rank00003.partial.jsonl holds an interrupted run with other settings" in err
    assert "--overwrite" in err and not out.exists()
    assert main([*args, "--overwrite"]) == 0
    assert len(out.read_text().splitlines()) == 2 and not stale.exists()


def test_single_process_journal_is_continued_under_torchrun(ckpt, tmp_path, monkeypatch,
                                                            capsys):
    from vitpose.inference.pipeline import PoseEstimator
    _write_images(tmp_path / "in", 5)
    args = ["predict", str(tmp_path / "in"), "--model", str(ckpt), "--box", "4,4,40,56",
            "--batch-size", "1", "--device", "cpu"]
    assert main([*args, "--out-dir", str(tmp_path / "ref")]) == 0
    calls = {"n": 0}
    real_crops = PoseEstimator.crops

    def crops(self, image, boxes):  # Ctrl-C while the 3rd image is being prepared
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_crops(self, image, boxes)

    monkeypatch.setattr(PoseEstimator, "crops", crops)
    out = tmp_path / "out"
    assert main([*args, "--out-dir", str(out)]) == 130  # a plain run, interrupted
    assert (out / "results.json.partial.jsonl").exists()
    # the same command as a (one-process) torchrun job: the plain run's journal is read
    for name, value in dict(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1",
                            MASTER_PORT=str(_free_port())).items():
        monkeypatch.setenv(name, value)
    capsys.readouterr()
    calls["n"] = -100
    assert main([*args, "--out-dir", str(out)]) == 0
    assert calls["n"] == -100 + 3 and not distributed.is_enabled()
    captured = capsys.readouterr()
    assert "resuming: 2 of 5 image(s) already done" in captured.err
    assert "3 image(s), 3 instance(s), 0 failed" in captured.out
    assert (out / "results.json").read_text() == (tmp_path / "ref" / "results.json").read_text()
    assert sharding.journal_paths(out / "results.json") == []
    assert sorted(p.name for p in out.iterdir()) == sorted(
        p.name for p in (tmp_path / "ref").iterdir())


def test_video_list_each_video_whole(data_dir, ckpt, tmp_path, capsys):
    (tmp_path / "a").mkdir()
    shutil.copy(data_dir / "video" / "demo.mp4", tmp_path / "a" / "clip.mp4")
    listing = tmp_path / "videos.txt"
    listing.write_text(f"# two videos\n{data_dir / 'video' / 'demo.mp4'}\na/clip.mp4\n\n")
    args = ["predict", str(listing), "--model", str(ckpt), "--box", "10,10,200,300",
            "--max-frames", "2", "--no-draw", "--device", "cpu", "--out-dir",
            str(tmp_path / "out")]
    assert main(args) == 0
    assert "2 video(s), 0 failed" in capsys.readouterr().out
    index = json.loads((tmp_path / "out" / "videos.json").read_text())
    assert [Path(e["frames"]).name for e in index] == ["demo_frames.json", "clip_frames.json"]
    for entry in index:
        assert len(json.loads(Path(entry["frames"]).read_text())) == 2
    capsys.readouterr()
    assert main(args) == 2 and "the run is complete" in capsys.readouterr().err


@pytest.mark.slow  # two processes decoding two videos (about 10 s on a quiet 2-core machine)
def test_video_folder_on_two_processes_whole_videos_each(data_dir, ckpt, tmp_path):
    (tmp_path / "videos").mkdir()
    for name in ("one.mp4", "two.mp4"):
        shutil.copy(data_dir / "video" / "demo.mp4", tmp_path / "videos" / name)
    proc = _predict(2, tmp_path / "videos", "--model", ckpt, "--box", "10,10,200,300",
                    "--max-frames", "3", "--backend", "torch", "--out-dir", tmp_path / "out")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "2 video(s), 0 failed" in proc.stdout and "1 + 1 video(s) per process" in proc.stdout
    single = tmp_path / "single"
    assert main(["predict", str(tmp_path / "videos" / "one.mp4"), "--model", str(ckpt), "--box",
                 "10,10,200,300", "--max-frames", "3", "--backend", "torch",
                 "--out-dir", str(single), "--device", "cpu"]) == 0
    for name in ("one", "two"):  # each video whole, with the tracks of a single-process run
        frames = json.loads((tmp_path / "out" / f"{name}_frames.json").read_text())
        assert frames == json.loads((single / "one_frames.json").read_text())
        assert (tmp_path / "out" / f"{name}_pose.mp4").stat().st_size > 0


def test_video_list_with_a_missing_file_is_an_error(tmp_path, capsys):
    (tmp_path / "v.txt").write_text("nope.mp4\n")
    assert main(["predict", str(tmp_path / "v.txt"), "--device", "cpu"]) == 2
    assert "line 1: no such video file 'nope.mp4'" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# The pieces
# ---------------------------------------------------------------------------------------------

def test_output_names_of_a_large_folder_take_linear_time(tmp_path):
    from vitpose.predict.outputs import drawn_paths as _drawn_paths
    keys = {tmp_path / f"d{i % 7}" / f"img{i}.jpg": f"d{i % 7}/img{i}.jpg" for i in range(20000)}
    keys[tmp_path / "d0" / "img0.JPG"] = "d0/img0.JPG"  # meets d0/img0.jpg
    start = time.perf_counter()
    drawn = _drawn_paths(tmp_path / "out", keys)
    took = time.perf_counter() - start
    assert len(set(drawn.values())) == len(keys)
    assert drawn[tmp_path / "d0" / "img0.JPG"].name == "img0.JPG_pose.jpg"
    # a list of len(keys) candidate names per image made this quadratic: minutes for 20k
    assert took < 15, f"{took:.1f} s for {len(keys)} names"


def test_round_robin_over_the_missing_inputs(tmp_path):
    rows = [(f"/x/{i}.jpg", f"{i}.jpg", None, i % 3 != 0) for i in range(10)]
    counts = sharding.write_plan(tmp_path / "p.jsonl", iter(rows), {"input": "/x"})
    assert counts == {"total": 10, "todo": 6}
    shares = [[r.key for r in sharding.assigned_rows(tmp_path / "p.jsonl", rank, 4)]
              for rank in range(4)]
    assert shares == [["1.jpg", "7.jpg"], ["2.jpg", "8.jpg"], ["4.jpg"], ["5.jpg"]]
    assert [r.index for r in sharding.iter_plan(tmp_path / "p.jsonl")] == list(range(10))


def test_journals_of_any_world_size_are_read_and_merged(tmp_path):
    from vitpose.inference.results import ResumableResults
    out = tmp_path / "results.json"
    settings = {"model": "m"}
    for rank, keys in ((0, ["a", "c"]), (2, ["b", "c"])):
        journal = ResumableResults(sharding.shard_path(out, rank), settings)
        journal.start()
        for key in keys:
            journal.add(key, [{"image_id": key, "rank": rank}])
        del journal
    with open(sharding.journal_paths(out)[-1], "ab") as fh:
        fh.write(b'{"key": "d", "val')  # torn last line of a killed rank: not done
    journals = sharding.journal_paths(out)
    assert [j.name for j in journals] == ["results.json.rank00000.partial.jsonl",
                                          "results.json.rank00002.partial.jsonl"]
    assert sharding.journal_keys(journals, settings) == {"a", "b", "c"}
    flat = lambda values: [e for v in values for e in v]
    assert sharding.merge_journals(out, journals, settings, ["c", "b", "a"], flat) == 3
    assert json.loads(out.read_text()) == [{"image_id": "c", "rank": 2},
                                           {"image_id": "b", "rank": 2},
                                           {"image_id": "a", "rank": 0}]
    lines = tmp_path / "results.jsonl"
    assert sharding.merge_journals(lines, journals, settings, [], flat) == 3
    assert sorted(lines.read_text().splitlines()) == sorted(
        json.dumps(e) for e in json.loads(out.read_text()))
    with pytest.raises(vitpose.errors.InputError, match="other settings.*--overwrite"):
        sharding.journal_keys(journals, {"model": "other"})
    sharding.remove_run_files(out)
    assert sharding.journal_paths(out) == []


def test_map_ahead_keeps_order_bounds_memory_and_hands_back_errors():
    started: list[int] = []
    lock = threading.Lock()

    def work(i: int) -> int:
        with lock:
            started.append(i)
        if i == 3:
            raise ValueError("bad")
        time.sleep(0.01 * (5 - i % 5))  # later items finish first
        return i * 10

    def items():
        yield from range(8)

    got = []
    for item, value, error in map_ahead(work, items(), workers=2, depth=3):
        with lock:
            assert len(started) <= item + 3 + 1  # never more than `depth` ahead
        got.append((item, value, type(error).__name__ if error else None))
    assert got == [(i, None if i == 3 else i * 10, "ValueError" if i == 3 else None)
                   for i in range(8)]
    assert list(map_ahead(work, [1], workers=0)) == [(1, 10, None)]


def test_find_videos(tmp_path):
    (tmp_path / "v").mkdir()
    for name in ("b.mp4", "a.avi", ".hidden.mp4", "notes.md"):
        (tmp_path / "v" / name).write_bytes(b"x")
    assert sharding.find_videos(str(tmp_path / "v")) == [tmp_path / "v" / "a.avi",
                                                         tmp_path / "v" / "b.mp4"]
    (tmp_path / "v" / "c.jpg").write_bytes(b"x")
    assert sharding.find_videos(str(tmp_path / "v")) is None  # an image folder
    assert sharding.find_videos(str(tmp_path / "v" / "b.mp4")) is None
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(vitpose.errors.InputError, match="names no video"):
        sharding.find_videos(str(tmp_path / "empty.txt"))


def test_counter_and_shared_values_without_a_process_group():
    assert not distributed.is_enabled()
    start = distributed.counter_add("test/n", 0)
    assert distributed.counter_add("test/n", 2) == start + 2
    distributed.shared_set("test/v", {"a": (1, 2)})
    assert distributed.shared_get("test/v") == {"a": [1, 2]}
