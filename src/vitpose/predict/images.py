"""The image job: a single image, a folder or a glob -> a COCO results JSON (+ drawn images),
journalled as it goes so that an interrupted run continues where it stopped."""

from __future__ import annotations

import logging
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from ..errors import InputError, OutputError, VitPoseError
from ..inference.builder import BoxSource
from ..inference.io import InputSpec, read_image
from ..inference.pipeline import Estimator, PoseResult
from ..inference.results import ResumableResults
from .options import (
    PredictOptions,
    build_box_source,
    build_estimator,
    expected_crops,
    run_settings,
)
from .outputs import (
    ResultSink,
    check_not_inputs,
    check_outputs,
    check_writable,
    draw_result,
    drawn_paths,
    export_notes,
    input_keys,
    nonfinite_message,
    output_sinks,
    write_image,
)
from .report import Interrupted, Notify, Summary, log_notice

__all__ = ["concat_entries", "estimate_image", "estimate_images", "image_source", "run_images"]

log = logging.getLogger("vitpose.predict")


def concat_entries(values: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The results file of an image run from its journal's values (one list per image)."""
    return [entry for entries in values for entry in entries]


def image_source(spec: InputSpec) -> str:
    """The input as the journal records it (absolute, except a glob)."""
    return str(Path(spec.spec).expanduser().resolve()) if spec.kind != "glob" else spec.spec


def estimate_image(estimator: Estimator, boxes: BoxSource, image: np.ndarray,
                   path: str | None, image_id: Any) -> PoseResult:
    """One decoded image through the box source and the estimator (the demo's image tab and
    `vitpose.Predictor` on an array); non-finite instances are dropped (said in `warnings`)."""
    b, labels = boxes.labeled(path, image)
    result = estimator(image, b, image_id=image_id, labels=labels)
    if path is not None:
        result.source = str(path)
    result.drop_nonfinite()
    return result


def estimate_images(estimator: Estimator, boxes: BoxSource, paths: Sequence[Path],
                    keys: dict[Path, str], max_pixels: int, *, first: np.ndarray | None = None,
                    skip: Callable[[Path, VitPoseError], None] | None = None,
                    ) -> Iterator[tuple[Path, np.ndarray, PoseResult]]:
    """``(path, image, result)`` for each image file, in order, crops batched across images:
    read (within the pixel budget), boxed by ``boxes``, estimated. An image that cannot be
    read or boxed goes to ``skip(path, error)`` (without it, the error is raised); ``first``:
    the first image, already decoded."""
    queued: deque[tuple[Path, np.ndarray]] = deque()  # results come back in input order

    def items():
        for n, path in enumerate(paths):
            try:
                image = first if n == 0 and first is not None else \
                    read_image(path, max_pixels=max_pixels)
                b, labels = boxes.labeled(str(path), image)
            except VitPoseError as e:
                if skip is None:
                    raise
                skip(path, e)
                continue
            queued.append((path, image))
            yield image, b, boxes.image_id(path, default=keys[path]), labels

    for result in estimator.predict_many(items()):
        path, image = queued.popleft()
        result.source = str(path)
        yield path, image, result


def run_images(opts: PredictOptions, spec: InputSpec, max_pixels: int, *,
               notify: Notify = log_notice, sinks: Sequence[ResultSink] = (),
               estimator: Estimator | None = None, boxes: BoxSource | None = None) -> Summary:
    """Images: a COCO results JSON (+ drawn images). Exit code 0, or 1 when some files of a
    folder/glob could not be read (they are skipped and listed) or some predictions were not
    finite; a single unreadable input is an error (`InputError`) raised before any model is
    loaded or any output written. A rerun of an interrupted run continues it. ``sinks`` get
    every new result (`ResultSink`); ``estimator`` / ``boxes``: already built ones."""
    out_dir = Path(opts.out_dir)
    results_path = Path(opts.out) if opts.out else out_dir / "results.json"
    keys = input_keys(spec)
    drawn = {} if opts.no_draw else drawn_paths(out_dir, keys)
    check_not_inputs([results_path, *drawn.values()], spec.image_paths)
    results = ResumableResults(results_path, run_settings(opts, input=image_source(spec)),
                               overwrite=opts.overwrite, flatten=concat_entries)
    if not results.resumed:
        check_outputs(list(drawn.values()), opts.overwrite)
    todo = [p for p in spec.image_paths
            if keys[p] not in results.done or (not opts.no_draw and not drawn[p].exists())]
    total = len(spec.image_paths)
    single = total == 1
    first = read_image(todo[0], max_pixels=max_pixels) if single and todo else None
    for folder in {results_path.parent, out_dir} if drawn else {results_path.parent}:
        check_writable(folder)
    earlier = total - len(todo)
    if results.resumed:
        notify(f"resuming: {earlier} of {total} image(s) already done "
               f"(journal {results.partial}); doing the other {len(todo)}")
    summary = Summary()
    sinks = [*output_sinks(opts, "images", out_dir, results_path, done=results.done,
                           spec=spec), *sinks]
    failed: list[str] = []
    n_instances = n_done = n_nonfinite = 0
    nonfinite_images: set[str] = set()
    t0 = time.perf_counter()
    complete = False
    if todo:
        boxes = boxes if boxes is not None else build_box_source(opts)
        _check_detections_match(boxes, todo)
        estimator = estimator if estimator is not None else build_estimator(
            opts, crops=expected_crops(opts, len(todo), boxes), images=todo,
            boxes=boxes)
    results.start()

    def skip(path: Path, e: VitPoseError) -> None:
        log.error("skipping %s: %s", path, e)
        failed.append(str(path))

    bar = tqdm(total=len(todo), unit="img", disable=len(todo) < 4, file=sys.stderr)
    try:
        with logging_redirect_tqdm():
            done = estimate_images(estimator, boxes, todo, keys, max_pixels, first=first,
                                   skip=None if single else skip) if todo else ()
            for path, image, result in done:
                dropped = result.drop_nonfinite()
                if dropped:
                    n_nonfinite += dropped
                    nonfinite_images.add(keys[path])
                if not opts.no_draw:  # drawn first: a journalled image always has its drawing
                    write_image(drawn[path], draw_result(estimator, opts, image, result))
                results.add(keys[path], result.to_coco())
                for sink in sinks:
                    sink.add(keys[path], result, image)
                n_instances += len(result.instances)
                n_done += 1
                bar.update(1)
        complete = True
    except KeyboardInterrupt:
        raise Interrupted(
            f"interrupted after {earlier + n_done} of {total} image(s); their results are "
            f"saved in {results_path}; rerun the same command to continue (--overwrite starts "
            "afresh)") from None
    finally:
        bar.close()
        try:
            results.finish(order=[keys[p] for p in spec.image_paths], complete=complete)
        except OutputError as e:
            if complete:
                raise
            log.error("%s", e)
        finally:
            for sink in sinks:  # after the results file: a sink may read it whole
                sink.close(complete)
    dt = time.perf_counter() - t0
    if results.resumed and earlier:  # the whole run's counts, the new part in brackets
        n_all = sum(len(results.done[keys[p]]) for p in spec.image_paths
                    if keys[p] in results.done)
        head = (f"{earlier + n_done} image(s) ({n_done} new, {earlier} from the interrupted "
                f"run), {n_all} instance(s)")
    else:
        head = f"{n_done} image(s), {n_instances} instance(s)"
    summary.lines.append(f"{head} in {dt:.1f} s -> {results_path}"
                         + ("" if opts.no_draw else f", drawn images in {out_dir}"))
    summary.counts.update(images=n_done, earlier=earlier, instances=n_instances,
                          failed=len(failed))
    export_notes(sinks, summary)
    if boxes is not None:
        note = boxes.nobody_note("image(s)")
        if note:
            summary.note(note)
        _missing_detections(boxes, n_done, summary)
    if n_nonfinite:
        summary.warn(nonfinite_message(n_nonfinite, len(nonfinite_images), "image(s)",
                                       results_path))
    if failed:
        shown = ", ".join(failed[:5]) + (" ..." if len(failed) > 5 else "")
        summary.warn(f"{len(failed)} of {total} file(s) could not be read and were "
                     f"skipped: {shown}")
    return summary


def _missing_detections(boxes: BoxSource, n_done: int, summary: Summary) -> None:
    """Inputs without an entry in --det-file / --boxes-json: one line."""
    if boxes.missing and boxes.mapping is not None:
        summary.note(f"{len(boxes.missing)} of {n_done} image(s) have no entry in the detections "
                     f"file (no poses there), e.g. {boxes.missing[0]}")


def _check_detections_match(boxes: BoxSource, paths: list[Path]) -> None:
    """A detections file that matches none of the inputs is a user error, said before the
    run, with what to pass."""
    if boxes.mapping is None or not paths or any(boxes.covers(str(p)) for p in paths):
        return
    int_keys = bool(boxes.mapping) and all(isinstance(k, int) for k in boxes.mapping)
    hint = ("it is keyed by integer image ids: pass --images-file, the COCO annotation file "
            "that maps the file names to those ids" if int_keys and not boxes.image_ids else
            "check that it belongs to these images")
    raise InputError(f"the detections file matches none of the {len(paths)} input image(s) "
                     f"(e.g. {paths[0].name}): {hint}")
