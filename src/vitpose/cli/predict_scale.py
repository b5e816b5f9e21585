"""`vitpose predict` at scale: one job over all the ranks of a ``torchrun`` launch, JSON-lines
results (``--out results.jsonl``) and video collections (a list file or a folder of videos).

`vitpose.cli.predict.run` hands a run here when `wanted` says so. The job:

1. rank 0 lists the inputs once, reads every journal of earlier attempts (any world size) and
   writes the plan (``P.plan.jsonl``: every input in order, each marked done or to do);
2. every rank streams the plan and takes the inputs still to do, round-robin; images are read
   and decoded in worker threads (``--read-workers``) ahead of the model;
3. each rank journals its results to ``P.rank0000r.partial.jsonl`` as it goes (one line per
   input), and counts into a job-wide counter that drives one progress bar on rank 0;
4. when every rank is done, rank 0 merges the journals into ``P`` (the same file a single
   process writes; ``.jsonl``: one result per line), removes them and prints the summary.

A rerun of the same command after a crash or a pre-empted node, on any number of ranks, does
exactly what no journal holds. A user error on any rank (bad option, missing model) is one
message from rank 0 and exit code 2 on every rank. See docs/SCALE_OUT.md.
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import logging
import os
import sys
import time
import uuid
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from .. import distributed as dist
from ..errors import InputError, OutputError, VitPoseError
from ..inference import sharding
from ..inference.io import iter_inputs, read_image
from ..inference.results import ResumableResults

log = logging.getLogger("vitpose.predict")

#: Test hook: ``"RANK:N"`` makes rank RANK exit hard (``os._exit(17)``) once it has journalled
#: N images, as a pre-empted node would. Used by tests/test_predict_distributed.py only.
EXIT_AFTER_ENV = "VITPOSE_TEST_EXIT_AFTER"
_POLL_S = 0.2


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The scale-out options of `vitpose predict`."""
    g = p.add_argument_group("scale-out (torchrun; see docs/SCALE_OUT.md)")
    g.add_argument("--read-workers", type=int, default=2, metavar="N",
                   help="threads reading and decoding images ahead of the model in a sharded "
                        "run (torchrun or --out *.jsonl); 0 reads in the main thread "
                        "(default: %(default)s)")


def _results_path(args: argparse.Namespace) -> Path:
    return Path(args.out) if args.out else Path(args.out_dir) / "results.json"


def wanted(args: argparse.Namespace) -> bool:
    """True when this run goes through the sharded path: launched by torchrun, JSON-lines
    results, a video collection as INPUT, or per-rank journals of an interrupted sharded run
    for these outputs (so a plain rerun continues it)."""
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        return True
    if args.out and args.out.lower().endswith(".jsonl"):
        return True
    if sharding.find_videos(args.input) is not None:
        return True
    return any(".rank" in p.name for p in sharding.journal_paths(_results_path(args)))


def run(args: argparse.Namespace, max_pixels: int) -> int:
    """The sharded run on this rank; returns its exit code (see the module docstring)."""
    if args.read_workers < 0:
        raise InputError(f"--read-workers must be 0 or more, got {args.read_workers}")
    dist.init_distributed(backend=dist.backend_for(args.device))
    try:
        if dist.is_enabled() and args.device == "cuda":
            args.device = f"cuda:{dist.local_device_index()}"  # one GPU per process
        return _run(args, max_pixels)
    finally:
        dist.destroy_distributed()


def _agree(error: BaseException | None) -> BaseException | None:
    """Every rank's error (None: fine), gathered: the first one, the same on every rank."""
    errors = dist.all_gather_object(error)
    return next((e for e in errors if e is not None), None)


def _run(args: argparse.Namespace, max_pixels: int) -> int:
    rank = dist.get_rank()
    plan: dict[str, Any] | None = None
    error: VitPoseError | None = None
    if rank == 0:
        try:
            plan = _plan(args)
        except VitPoseError as e:
            error = e
    plan, error = dist.broadcast_object((plan, error))
    if error is not None:  # reported once, by rank 0; the other ranks exit with the same code
        if rank == 0:
            raise error
        return 2
    assert plan is not None
    if plan["kind"] == "videos":
        return _videos(args, plan)
    return _images(args, plan, max_pixels)


# ---------------------------------------------------------------------------------------------
# The plan (rank 0)
# ---------------------------------------------------------------------------------------------

def _plan(args: argparse.Namespace) -> dict[str, Any]:
    from .predict import _check_writable, _run_settings
    videos = sharding.find_videos(args.input)
    if videos is None:
        spec = iter_inputs(args.input)  # the one listing of the job
        if spec.kind in ("webcam", "stream"):
            raise InputError(f"a {spec.kind} cannot be split among processes: run it as one "
                             "process (without torchrun and --out *.jsonl)")
        if spec.kind == "video":
            videos = [Path(str(spec.video_source))]
    if videos is not None:
        return _plan_videos(args, videos)
    out_dir = Path(args.out_dir)
    results_path = _results_path(args)
    source = str(Path(spec.spec).expanduser().resolve()) if spec.kind != "glob" else spec.spec
    settings = json.loads(json.dumps(_run_settings(args, input=source)))
    from .predict import _check_outputs, _drawn_paths, _input_keys
    keys = _input_keys(spec)
    drawn = {} if args.no_draw else _drawn_paths(out_dir, keys)
    journals = sharding.journal_paths(results_path)
    if args.overwrite:
        sharding.remove_run_files(results_path)
        journals, done = [], set()
    else:
        if not journals and results_path.exists():
            raise InputError(f"output already exists: {results_path} (the run is complete; "
                             "pass --overwrite to replace it)")
        done = sharding.journal_keys(journals, settings)
        if not journals:
            _check_outputs(list(drawn.values()), False)
    for folder in {results_path.parent, out_dir} if drawn else {results_path.parent}:
        _check_writable(folder)
    rows = ((str(p), keys[p], str(drawn[p]) if drawn else None,
             keys[p] not in done or (bool(drawn) and not drawn[p].exists()))
            for p in spec.image_paths)
    path = sharding.plan_path(results_path)
    counts = sharding.write_plan(path, rows, {"input": source})
    log.info("listed %d image(s), %d to do, into %s", counts["total"], counts["todo"], path)
    return {"kind": "images", "results": str(results_path), "plan": str(path),
            "settings": settings, "journals": [str(j) for j in journals],
            "run_id": uuid.uuid4().hex, **counts}


def _plan_videos(args: argparse.Namespace, videos: list[Path]) -> dict[str, Any]:
    """Whole videos per rank; each video keeps its usual outputs (and its own journal, so a
    half-done video is continued by whichever rank gets it on the rerun)."""
    from .predict import _check_writable
    if args.out:
        raise InputError("--out names one results file; the videos of a list or folder each "
                         "get their own (<name>_frames.json) in --out-dir")
    out_dir = Path(args.out_dir)
    index_path = out_dir / "videos.json"
    if index_path.exists() and not args.overwrite \
            and not sharding.plan_path(index_path).exists():
        raise InputError(f"output already exists: {index_path} (the run is complete; pass "
                         "--overwrite to replace it)")
    root = Path(os.path.commonpath([str(v.resolve().parent) for v in videos]))
    seen: dict[str, Path] = {}
    rows = []
    for video in videos:
        rel = Path(os.path.relpath(video.resolve(), root))
        folder = out_dir / rel.parent
        json_path = folder / f"{video.stem}_frames.json"
        name = str(json_path).casefold()
        if name in seen:
            raise InputError(f"{seen[name]} and {video} would both write {json_path}: rename "
                             "one of them")
        seen[name] = video
        partial = json_path.with_name(json_path.name + ".partial.jsonl")
        todo = args.overwrite or partial.exists() or not json_path.exists()
        rows.append((str(video), rel.as_posix(), str(folder), todo))
    _check_writable(out_dir)
    path = sharding.plan_path(index_path)
    counts = sharding.write_plan(path, rows, {"input": args.input})
    return {"kind": "videos", "results": str(index_path), "plan": str(path),
            "run_id": uuid.uuid4().hex, **counts}


# ---------------------------------------------------------------------------------------------
# Progress across ranks
# ---------------------------------------------------------------------------------------------

class _Progress:
    """Counts this rank's finished inputs into the job-wide counter; on rank 0 one bar shows
    the global count."""

    def __init__(self, run_id: str, total: int, unit: str) -> None:
        self.key = f"{run_id}/done"
        self.run_id = run_id
        self.bar = tqdm(total=total, unit=unit, file=sys.stderr,
                        disable=dist.get_rank() != 0 or total < 2)

    def tick(self) -> None:
        done = dist.counter_add(self.key, 1)
        if dist.get_rank() == 0:
            self.bar.update(done - self.bar.n)

    def finish(self, stats: dict[str, Any]) -> list[dict[str, Any]] | None:
        """Publishes this rank's `stats`; on rank 0 waits for every rank (updating the bar)
        and returns all of them, by rank. Never blocks the other ranks: they leave at once."""
        dist.shared_set(f"{self.run_id}/stats/{dist.get_rank()}", stats)
        dist.counter_add(f"{self.run_id}/finished", 1)
        if dist.get_rank() != 0:
            self.bar.close()
            return None
        world = dist.get_world_size()
        while dist.counter_add(f"{self.run_id}/finished", 0) < world:
            self.bar.update(dist.counter_add(self.key, 0) - self.bar.n)
            time.sleep(_POLL_S)
        self.bar.update(dist.counter_add(self.key, 0) - self.bar.n)
        self.bar.close()
        return [dist.shared_get(f"{self.run_id}/stats/{r}") for r in range(world)]


def _exit_after() -> int | None:
    """The test hook `EXIT_AFTER_ENV` for this rank: the image count to die after, or None."""
    raw = os.environ.get(EXIT_AFTER_ENV)
    if not raw:
        return None
    rank, _, n = raw.partition(":")
    return int(n) if int(rank) == dist.get_rank() else None


# ---------------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------------

def _images(args: argparse.Namespace, plan: dict[str, Any], max_pixels: int) -> int:
    from .predict import (
        _concat,
        _nonfinite_message,
        _write_image,
        box_source,
        build_estimator,
    )
    rank, world = dist.get_rank(), dist.get_world_size()
    results_path, path = Path(plan["results"]), Path(plan["plan"])
    total, todo = plan["total"], plan["todo"]
    if rank == 0 and plan["journals"]:
        print(f"resuming: {total - todo} of {total} image(s) already done (journals "
              f"{results_path}.*partial.jsonl); doing the other {todo} on {world} "
              "process(es)", file=sys.stderr)
    error: VitPoseError | None = None
    try:  # every rank with work builds its model; any failure is one message from rank 0
        if todo > rank:
            boxes = box_source(args)
            estimator = build_estimator(args)
    except VitPoseError as e:
        error = e
    error = _agree(error)
    if error is not None:
        if rank == 0:
            raise error
        return 2
    journal = ResumableResults(sharding.shard_path(results_path, rank), plan["settings"])
    journal.start()
    progress = _Progress(plan["run_id"], todo, "img")
    exit_after = _exit_after()
    failed: list[str] = []
    n_done = n_instances = n_nonfinite = nonfinite_images = 0
    queued: deque[tuple[sharding.PlanRow, np.ndarray]] = deque()
    t0 = time.perf_counter()

    def read(row: sharding.PlanRow) -> np.ndarray:
        return read_image(row.path, max_pixels=max_pixels)

    def skip(row: sharding.PlanRow, e: Exception) -> None:
        if not isinstance(e, VitPoseError):
            raise e
        log.error("skipping %s: %s", row.path, e)
        failed.append(row.path)
        progress.tick()

    def items():
        rows = sharding.assigned_rows(path, rank, world)
        for row, image, e in sharding.prefetch(read, rows, workers=args.read_workers):
            if e is not None:
                skip(row, e)
                continue
            try:
                b, labels = boxes.labeled(row.path, image)
            except VitPoseError as e:
                skip(row, e)
                continue
            queued.append((row, image))
            yield image, b, boxes.image_id(Path(row.path), default=row.key), labels

    try:
        for result in estimator.predict_many(items()) if todo > rank else ():
            row, image = queued.popleft()
            result.source = row.path
            dropped = result.drop_nonfinite()
            if dropped:
                n_nonfinite += dropped
                nonfinite_images += 1
            if row.drawn:  # drawn first: a journalled image always has its drawing
                _write_image(Path(row.drawn), estimator.draw(image, result, args.kpt_thr))
            journal.add(row.key, result.to_coco())
            n_instances += len(result.instances)
            n_done += 1
            progress.tick()
            if exit_after is not None and n_done >= exit_after:
                os._exit(17)
    except KeyboardInterrupt:
        if rank == 0:
            print(f"interrupted; the results so far are journalled next to {results_path}; "
                  "rerun the same command (on any number of processes) to continue "
                  "(--overwrite starts afresh)", file=sys.stderr)
        raise
    del journal  # flushed line by line; dropping it closes the file
    stats = {"images": n_done, "instances": n_instances, "failed": len(failed),
             "failed_names": failed[:5], "nonfinite": n_nonfinite,
             "nonfinite_images": nonfinite_images, "seconds": time.perf_counter() - t0}
    everyone = progress.finish(stats)
    if everyone is None:
        return 0
    wall = time.perf_counter() - t0
    journals = sharding.journal_paths(results_path)
    order = (row.key for row in sharding.iter_plan(path))
    sharding.merge_journals(results_path, journals, plan["settings"], order, _concat)
    sharding.remove_run_files(results_path)
    n = sum(s["images"] for s in everyone)
    n_instances_all = sum(s["instances"] for s in everyone)
    n_failed = sum(s["failed"] for s in everyone)
    rate = n / wall if wall > 0 else 0.0
    shares = " + ".join(str(s["images"]) for s in everyone)
    print(f"{n} image(s), {n_instances_all} instance(s), {n_failed} failed, in {wall:.1f} s "
          f"({rate:.2f} image(s)/s on {world} process(es), {shares} image(s) per process) -> "
          f"{results_path}" + ("" if args.no_draw else f", drawn images in {args.out_dir}"))
    rc = 0
    n_nonfinite = sum(s["nonfinite"] for s in everyone)
    if n_nonfinite:
        print("warning: " + _nonfinite_message(
            n_nonfinite, sum(s["nonfinite_images"] for s in everyone), "image(s)",
            results_path), file=sys.stderr)
        rc = 1
    if n_failed:
        names = [name for s in everyone for name in s["failed_names"]]
        shown = ", ".join(names[:5]) + (" ..." if n_failed > 5 else "")
        print(f"{n_failed} of {total} file(s) could not be read and were skipped: {shown}",
              file=sys.stderr)
        rc = 1
    return rc


# ---------------------------------------------------------------------------------------------
# Videos
# ---------------------------------------------------------------------------------------------

def _videos(args: argparse.Namespace, plan: dict[str, Any]) -> int:
    from .predict import _run_video
    rank, world = dist.get_rank(), dist.get_world_size()
    path = Path(plan["plan"])
    if rank == 0 and plan["total"] > plan["todo"]:
        print(f"resuming: {plan['total'] - plan['todo']} of {plan['total']} video(s) already "
              f"done; doing the other {plan['todo']} on {world} process(es)", file=sys.stderr)
    progress = _Progress(plan["run_id"], plan["todo"], "video")
    failed: list[str] = []
    warned = done = 0
    t0 = time.perf_counter()
    from . import predict as single
    frame_bars = single.tqdm
    # no per-video frame bars (one per rank, interleaved): the job's bar, on rank 0, counts videos
    single.tqdm = functools.partial(tqdm, disable=True)
    try:
        for row in sharding.assigned_rows(path, rank, world):
            vargs = copy.copy(args)
            vargs.input, vargs.out, vargs.out_dir = row.path, None, row.drawn
            try:
                rc = _run_video(vargs, iter_inputs(row.path), Path(row.drawn))
                warned += rc != 0
                done += 1
            except VitPoseError as e:
                log.error("skipping %s: %s", row.path, e)
                failed.append(row.path)
            progress.tick()
    finally:
        single.tqdm = frame_bars
    stats = {"videos": done, "failed": len(failed), "failed_names": failed[:5],
             "warned": warned}
    everyone = progress.finish(stats)
    if everyone is None:
        return 0
    wall = time.perf_counter() - t0
    index = []
    for row in sharding.iter_plan(path):
        frames = Path(row.drawn) / f"{Path(row.path).stem}_frames.json"
        if frames.exists():
            video = Path(row.drawn) / f"{Path(row.path).stem}_pose.mp4"
            index.append({"video": row.path, "frames": str(frames),
                          "drawn": str(video) if video.exists() else None})
    results_path = Path(plan["results"])
    try:
        results_path.write_text(json.dumps(index, indent=1))
    except OSError as e:
        raise OutputError(f"cannot write {results_path}: {e.strerror or e}") from None
    path.unlink(missing_ok=True)
    n = sum(s["videos"] for s in everyone)
    n_failed = sum(s["failed"] for s in everyone)
    shares = " + ".join(str(s["videos"]) for s in everyone)
    print(f"{n} video(s), {n_failed} failed, in {wall:.1f} s on {world} process(es), {shares} "
          f"video(s) per process -> {results_path}")
    if n_failed:
        names = [name for s in everyone for name in s["failed_names"]]
        print(f"{n_failed} of {plan['total']} video(s) could not be processed: "
              + ", ".join(names[:5]) + (" ..." if n_failed > 5 else ""), file=sys.stderr)
    return 1 if n_failed or any(s["warned"] for s in everyone) else 0

