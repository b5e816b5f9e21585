"""`vitpose <command>`: one entry point, one module per command, one place for error handling.

Library code raises `vitpose.errors.VitPoseError` for user mistakes; here each becomes a single
``error: ...`` line and exit code 2 (no traceback). Ctrl-C exits with 130 after the command has
saved what it had. A closed output pipe (``vitpose models --json | head``) ends the command
quietly.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from ..errors import VitPoseError

#: command -> (module under vitpose.cli, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "predict": ("predict", "poses for images, folders, videos or a webcam"),
    "test": ("test", "evaluate a model on a benchmark split (dist_test.sh equivalent)"),
    "evaluate": ("evaluate", "score an existing results file against ground truth"),
    "train": ("train", "train or fine-tune from a config (dist_train.sh equivalent)"),
    "split": ("split", "split a ViTPose+ checkpoint into per-dataset checkpoints"),
    "export": ("export", "export a model to ONNX or the transformers layout"),
    "bench": ("bench", "measure throughput and memory"),
    "demo": ("demo", "local web demo for images and video"),
    "models": ("models", "list model variants and released weights"),
}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("vitpose")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vitpose", description="ViTPose / ViTPose+ pose estimation: predict, test, train, "
                                    "export.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_text) in COMMANDS.items():
        try:
            mod = importlib.import_module(f"vitpose.cli.{module}")
        except ModuleNotFoundError as e:
            if e.name != f"vitpose.cli.{module}":
                raise
            continue  # command not part of this build
        p = sub.add_parser(name, help=help_text, description=help_text)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        rc = int(args._run(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, inside the try, not at exit
        return rc
    except VitPoseError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of our output went away (`| head`): stop quietly. Python would report the
        # failed flush of stdout at exit, so stdout is pointed at /dev/null first.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, as a shell reports a command killed by a closed pipe


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
