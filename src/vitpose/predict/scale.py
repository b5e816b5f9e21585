"""The predict job at scale: one job over all the ranks of a ``torchrun`` launch, JSON-lines
results (``--out results.jsonl``) and video collections (a list file or a folder of videos).

`vitpose.predict.run` hands a run here when `wanted` says so. The job:

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

import dataclasses
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
from ..errors import InputError, VitPoseError
from ..fileio import atomic_write_json
from ..inference import sharding
from ..inference.io import iter_inputs, read_image
from ..inference.results import ResumableResults
from ..inference.threads import map_ahead
from .images import concat_entries, image_source
from .options import (
    PredictOptions,
    build_box_source,
    build_estimator,
    expected_crops,
    run_settings,
)
from .outputs import (
    check_not_inputs,
    check_outputs,
    check_writable,
    drawn_paths,
    input_keys,
    nonfinite_message,
    write_image,
)
from .report import Interrupted, Notify, Summary, log_notice
from .video import run_video

__all__ = ["run_sharded", "wanted"]

log = logging.getLogger("vitpose.predict")

_POLL_S = 0.2


def _results_path(opts: PredictOptions) -> Path:
    return Path(opts.out) if opts.out else Path(opts.out_dir) / "results.json"


def wanted(opts: PredictOptions) -> bool:
    """True when this run goes through the sharded path: launched by torchrun, JSON-lines
    results, a video collection as INPUT, or per-rank journals of an interrupted sharded run
    for these outputs (so a plain rerun continues it)."""
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        return True
    if opts.out and opts.out.lower().endswith(".jsonl"):
        return True
    if sharding.find_videos(opts.input) is not None:
        return True
    return any(".rank" in p.name for p in sharding.journal_paths(_results_path(opts)))


def run_sharded(opts: PredictOptions, max_pixels: int, *, notify: Notify = log_notice
                ) -> Summary:
    """The sharded run on this rank; its summary (lines only on rank 0; see the module
    docstring)."""
    dist.init_distributed(backend=dist.backend_for(opts.device))
    try:
        if dist.is_enabled() and opts.device == "cuda":
            opts = dataclasses.replace(opts, device=f"cuda:{dist.local_device_index()}")
        return _run(opts, max_pixels, notify)
    finally:
        dist.destroy_distributed()


def _agree(error: BaseException | None) -> BaseException | None:
    """Every rank's error (None: fine), gathered: the first one, the same on every rank."""
    errors = dist.all_gather_object(error)
    return next((e for e in errors if e is not None), None)


def _run(opts: PredictOptions, max_pixels: int, notify: Notify) -> Summary:
    rank = dist.get_rank()
    plan: dict[str, Any] | None = None
    error: VitPoseError | None = None
    if rank == 0:
        try:
            plan = _plan(opts)
        except VitPoseError as e:
            error = e
    plan, error = dist.broadcast_object((plan, error))
    if error is not None:  # reported once, by rank 0; the other ranks exit with the same code
        if rank == 0:
            raise error
        return Summary(exit_code=2)
    assert plan is not None
    if plan["kind"] == "videos":
        return _videos(opts, plan, max_pixels, notify)
    return _images(opts, plan, max_pixels, notify)


# ---------------------------------------------------------------------------------------------
# The plan (rank 0)
# ---------------------------------------------------------------------------------------------

def _plan(opts: PredictOptions) -> dict[str, Any]:
    videos = sharding.find_videos(opts.input)
    if videos is None:
        spec = iter_inputs(opts.input)  # the one listing of the job
        if spec.kind in ("webcam", "stream"):
            raise InputError(f"a {spec.kind} cannot be split among processes: run it as one "
                             "process (without torchrun and --out *.jsonl)")
        if spec.kind == "video":
            videos = [Path(str(spec.video_source))]
    if videos is not None:
        return _plan_videos(opts, videos)
    out_dir = Path(opts.out_dir)
    results_path = _results_path(opts)
    source = image_source(spec)
    settings = json.loads(json.dumps(run_settings(opts, input=source)))
    keys = input_keys(spec)
    drawn = {} if opts.no_draw else drawn_paths(out_dir, keys)
    check_not_inputs([results_path, *drawn.values()], spec.image_paths)
    journals = sharding.journal_paths(results_path)
    if opts.overwrite:
        sharding.remove_run_files(results_path)
        journals, done = [], set()
    else:
        if not journals and results_path.exists():
            raise InputError(f"output already exists: {results_path} (the run is complete; "
                             "pass --overwrite to replace it)")
        done = sharding.journal_keys(journals, settings)
        if not journals:
            check_outputs(list(drawn.values()), False)
    for folder in {results_path.parent, out_dir} if drawn else {results_path.parent}:
        check_writable(folder)
    rows = ((str(p), keys[p], str(drawn[p]) if drawn else None,
             keys[p] not in done or (bool(drawn) and not drawn[p].exists()))
            for p in spec.image_paths)
    path = sharding.plan_path(results_path)
    counts = sharding.write_plan(path, rows, {"input": source})
    log.info("listed %d image(s), %d to do, into %s", counts["total"], counts["todo"], path)
    return {"kind": "images", "results": str(results_path), "plan": str(path),
            "settings": settings, "journals": [str(j) for j in journals],
            "run_id": uuid.uuid4().hex, **counts}


def _plan_videos(opts: PredictOptions, videos: list[Path]) -> dict[str, Any]:
    """Whole videos per rank; each video keeps its usual outputs (and its own journal, so a
    half-done video is continued by whichever rank gets it on the rerun)."""
    if opts.out:
        raise InputError("--out names one results file; the videos of a list or folder each "
                         "get their own (<name>_frames.json) in --out-dir")
    out_dir = Path(opts.out_dir)
    index_path = out_dir / "videos.json"
    if index_path.exists() and not opts.overwrite \
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
        todo = opts.overwrite or partial.exists() or not json_path.exists()
        rows.append((str(video), rel.as_posix(), str(folder), todo))
    check_writable(out_dir)
    path = sharding.plan_path(index_path)
    counts = sharding.write_plan(path, rows, {"input": opts.input})
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


# ---------------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------------

def _images(opts: PredictOptions, plan: dict[str, Any], max_pixels: int, notify: Notify
            ) -> Summary:
    rank, world = dist.get_rank(), dist.get_world_size()
    results_path, path = Path(plan["results"]), Path(plan["plan"])
    total, todo = plan["total"], plan["todo"]
    if rank == 0 and plan["journals"]:
        notify(f"resuming: {total - todo} of {total} image(s) already done (journals "
               f"{results_path}.*partial.jsonl); doing the other {todo} on {world} "
               "process(es)")
    error: VitPoseError | None = None
    try:  # every rank with work builds its model; any failure is one message from rank 0
        if todo > rank:
            boxes = build_box_source(opts)
            estimator = build_estimator(opts, crops=expected_crops(opts, todo, boxes))
    except VitPoseError as e:
        error = e
    error = _agree(error)
    if error is not None:
        if rank == 0:
            raise error
        return Summary(exit_code=2)
    journal = ResumableResults(sharding.shard_path(results_path, rank), plan["settings"])
    journal.start()
    progress = _Progress(plan["run_id"], todo, "img")
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
        for row, image, e in map_ahead(read, rows, workers=opts.read_workers):
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
                write_image(Path(row.drawn), estimator.draw(image, result, opts.kpt_thr))
            journal.add(row.key, result.to_coco())
            n_instances += len(result.instances)
            n_done += 1
            progress.tick()
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted; the results so far are journalled next to "
                          f"{results_path}; rerun the same command (on any number of "
                          "processes) to continue (--overwrite starts afresh)") from None
    del journal  # flushed line by line; dropping it closes the file
    stats = {"images": n_done, "instances": n_instances, "failed": len(failed),
             "failed_names": failed[:5], "nonfinite": n_nonfinite,
             "nonfinite_images": nonfinite_images, "seconds": time.perf_counter() - t0}
    everyone = progress.finish(stats)
    if everyone is None:
        return Summary()
    wall = time.perf_counter() - t0
    journals = sharding.journal_paths(results_path)
    order = (row.key for row in sharding.iter_plan(path))
    sharding.merge_journals(results_path, journals, plan["settings"], order, concat_entries)
    sharding.remove_run_files(results_path)
    n = sum(s["images"] for s in everyone)
    n_instances_all = sum(s["instances"] for s in everyone)
    n_failed = sum(s["failed"] for s in everyone)
    rate = n / wall if wall > 0 else 0.0
    shares = " + ".join(str(s["images"]) for s in everyone)
    summary = Summary(counts={"images": n, "instances": n_instances_all, "failed": n_failed})
    summary.lines.append(
        f"{n} image(s), {n_instances_all} instance(s), {n_failed} failed, in {wall:.1f} s "
        f"({rate:.2f} image(s)/s on {world} process(es), {shares} image(s) per process) -> "
        f"{results_path}" + ("" if opts.no_draw else f", drawn images in {opts.out_dir}"))
    n_nonfinite = sum(s["nonfinite"] for s in everyone)
    if n_nonfinite:
        summary.warn(nonfinite_message(
            n_nonfinite, sum(s["nonfinite_images"] for s in everyone), "image(s)",
            results_path))
    if n_failed:
        names = [name for s in everyone for name in s["failed_names"]]
        shown = ", ".join(names[:5]) + (" ..." if n_failed > 5 else "")
        summary.warn(f"{n_failed} of {total} file(s) could not be read and were skipped: "
                     f"{shown}")
    return summary


# ---------------------------------------------------------------------------------------------
# Videos
# ---------------------------------------------------------------------------------------------

def _videos(opts: PredictOptions, plan: dict[str, Any], max_pixels: int, notify: Notify
            ) -> Summary:
    rank, world = dist.get_rank(), dist.get_world_size()
    path = Path(plan["plan"])
    if rank == 0 and plan["total"] > plan["todo"]:
        notify(f"resuming: {plan['total'] - plan['todo']} of {plan['total']} video(s) already "
               f"done; doing the other {plan['todo']} on {world} process(es)")
    progress = _Progress(plan["run_id"], plan["todo"], "video")
    failed: list[str] = []
    warned = done = 0
    t0 = time.perf_counter()
    for row in sharding.assigned_rows(path, rank, world):
        vopts = dataclasses.replace(opts, input=row.path, out=None, out_dir=row.drawn)
        try:
            # no per-video frame bars (one per rank, interleaved): the job's bar, on rank 0,
            # counts videos
            result = run_video(vopts, iter_inputs(row.path), Path(row.drawn), max_pixels,
                               notify=notify, progress=False)
            warned += result.exit_code != 0
            done += 1
        except VitPoseError as e:
            log.error("skipping %s: %s", row.path, e)
            failed.append(row.path)
        progress.tick()
    stats = {"videos": done, "failed": len(failed), "failed_names": failed[:5],
             "warned": warned}
    everyone = progress.finish(stats)
    if everyone is None:
        return Summary()
    wall = time.perf_counter() - t0
    index = []
    for row in sharding.iter_plan(path):
        frames = Path(row.drawn) / f"{Path(row.path).stem}_frames.json"
        if frames.exists():
            video = Path(row.drawn) / f"{Path(row.path).stem}_pose.mp4"
            index.append({"video": row.path, "frames": str(frames),
                          "drawn": str(video) if video.exists() else None})
    results_path = Path(plan["results"])
    atomic_write_json(results_path, index, indent=1)
    path.unlink(missing_ok=True)
    n = sum(s["videos"] for s in everyone)
    n_failed = sum(s["failed"] for s in everyone)
    shares = " + ".join(str(s["videos"]) for s in everyone)
    summary = Summary(counts={"videos": n, "failed": n_failed})
    summary.lines.append(f"{n} video(s), {n_failed} failed, in {wall:.1f} s on {world} "
                         f"process(es), {shares} video(s) per process -> {results_path}")
    if n_failed:
        names = [name for s in everyone for name in s["failed_names"]]
        summary.warn(f"{n_failed} of {plan['total']} video(s) could not be processed: "
                     + ", ".join(names[:5]) + (" ..." if n_failed > 5 else ""))
    if any(s["warned"] for s in everyone):
        summary.exit_code = 1
    return summary

