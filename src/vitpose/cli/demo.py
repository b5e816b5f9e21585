"""`vitpose demo`: a local web page for images and videos (Gradio, the extra ``vitpose[demo]``).

Binds to 127.0.0.1 (this computer only) unless ``--host`` says otherwise; uploads above
``--max-upload-mb`` are refused and videos stop after ``--max-frames`` frames.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import signal
import sys

from .predict import add_model_arguments


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_arguments(p)
    p.set_defaults(model=None)  # no --model: the menu offers ViTPose-B and ViTPose+-B heads
    for action in p._actions:
        if action.dest == "model":
            action.help = ("variant name (see `vitpose models`), checkpoint path or hub id "
                           "(default: a menu of ViTPose-B for people and ViTPose+-B for people, "
                           "whole bodies and animals, released weights fetched on first use)")
    p.add_argument("--detector", default="auto",
                   help="default box source in the page, any detector of `vitpose predict`: "
                        "auto = D-FINE-N, downloaded on first use (offline: HOG), dfine-s, "
                        "rtdetr, hog, whole-image, a Hugging Face id or folder (default: "
                        "%(default)s; when it finds nobody the whole image is used)")
    p.add_argument("--det-interval", type=int, default=1, metavar="N",
                   help="video tab: run the detector every N frames, following people from "
                        "their poses in between, as `vitpose predict --det-interval` "
                        "(default: %(default)s)")
    p.add_argument("--webcam-det-interval", type=int, default=5, metavar="N",
                   help="webcam tab: run the detector every N frames, following people from "
                        "their poses in between (default: %(default)s)")
    p.add_argument("--host", default="127.0.0.1",
                   help="interface to listen on (default: %(default)s, this computer only; "
                        "0.0.0.0 opens the demo to the network)")
    p.add_argument("--port", type=int, default=None,
                   help="TCP port (default: the first free one from 7860)")
    p.add_argument("--max-upload-mb", type=float, default=100.0,
                   help="largest accepted upload in MB (default: %(default)s)")
    p.add_argument("--max-frames", type=int, default=300,
                   help="a video stops after this many frames (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=16,
                   help="person crops per model call (default: %(default)s)")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _stop(signum, frame) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # a local demo phones nobody
    try:
        import gradio  # noqa: F401
    except ImportError:
        from ..demo.app import gradio_missing_message
        print(f"error: {gradio_missing_message()}", file=sys.stderr)
        return 2
    import cv2

    from ..demo.app import PoseDemo, build_app, launch_app

    # the server decodes, draws and encodes beside the model (webcam frames, videos): OpenCV's
    # own thread pool would compete with the model's threads, as in `vitpose predict VIDEO`
    cv2.setNumThreads(1)

    if args.port is not None and not 0 < args.port < 65536:
        print(f"error: --port must be in 1..65535, got {args.port}", file=sys.stderr)
        return 2
    if not _is_loopback(args.host):
        print(f"warning: listening on {args.host}: anyone who can reach this computer can use "
              "the demo and upload files to it", file=sys.stderr)
    from ..errors import VitPoseError
    try:
        demo = PoseDemo(args.model, args.weights, args.dataset, device=args.device,
                        dtype=args.dtype, detector=args.detector, max_frames=args.max_frames,
                        max_upload_mb=args.max_upload_mb, batch_size=args.batch_size,
                        det_interval=args.det_interval,
                        webcam_det_interval=args.webcam_det_interval,
                        backend=getattr(args, "backend", "auto"),
                        threads=getattr(args, "threads", None))
    except VitPoseError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    app = build_app(demo)
    print(f"vitpose demo: models: {'; '.join(demo.model_labels)}", flush=True)
    signal.signal(signal.SIGTERM, _stop)  # `kill` stops it like Ctrl-C: server closed, files gone
    try:
        launch_app(app, host=args.host, port=args.port, max_upload_mb=args.max_upload_mb)
    except OSError as e:
        where = f"port {args.port}" if args.port else "a free port from 7860"
        print(f"error: cannot listen on {args.host}, {where} ({e}); choose another with --port",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    finally:
        app.close()
    return 0
