"""Frames per second of the demo's Webcam tab in a real browser: Gradio's streaming, the image
encoding both ways and the browser included (what `scripts/bench_detect.py --parts C` leaves
out). Random weights (speed does not depend on them; no hub access needed).

    python scripts/bench_webcam_page.py [--size s] [--seconds 30] [--engine openvino/bfloat16]

The page is `build_app` around a `PoseDemo` whose model is ViTPose-SIZE on the given engine
(OpenVINO bf16: what ``--backend auto`` picks where bf16 passes the accuracy gate) and whose
detector is the D-FINE-N network on ``--det-engine auto`` with one fixed box out (random
weights find nobody), as in `bench_detect.py`. Headless Chromium's fake camera plays the
sample video (640x360); the script reads the rate the page shows (the tab's own measure: 30
frames between handler completions) every 2 s, with the tab's flip test off (its default) and
then on. Needs Chromium, chromedriver and selenium (``.ci/install-browser``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "scripts"))


def serve(size: str, engine: str, port: int) -> None:
    """The page with the injected model and detector, on 127.0.0.1:port (blocks)."""
    import functools

    import bench_detect as b
    import cv2

    from vitpose.demo import app
    from vitpose.demo.app import build_app, launch_app
    from vitpose.inference.video import IntervalBoxes

    cv2.setNumThreads(1)  # as `vitpose demo` does
    # random weights: every keypoint counts as found, so the person is followed between
    # detector passes (as with real weights and a visible person)
    app.IntervalBoxes = functools.partial(IntervalBoxes, kpt_thr=-1.0, min_keypoints=0)
    box = np.array([[200, 40, 240, 300, 0.9]], np.float32)
    det = b.FixedBoxes(b.random_detector("dfine-n", engine="auto"), box)
    variant = f"vitpose-{size}-simple"
    backend, dtype = engine.split("/")
    demo = b._webcam_demo(variant, b._engine_estimator(variant, backend, dtype, 16), det, 5)
    print(f"detector engine {det.detector.engine}", flush=True)
    launch_app(build_app(demo), port=port, block=True, quiet=False)


def y4m(video: Path, out: Path, size_wh: tuple[int, int] = (640, 360), fps: int = 30) -> Path:
    """The frames of `video` as a Y4M file (I420) at `fps`, what Chromium's fake camera plays
    (looped; the browser test's feed, at a camera's rate)."""
    import cv2

    cap = cv2.VideoCapture(str(video))
    w, h = size_wh
    with out.open("wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            frame = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)
            f.write(b"FRAME\n" + cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())
    cap.release()
    return out


def measure(url: str, seconds: float, feed: Path) -> dict[str, list[float]]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,1300", "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={feed}",
                f"--user-data-dir={tempfile.mkdtemp()}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)

    def click(root, text: str) -> None:
        WebDriverWait(driver, 30).until(lambda d: next(
            (b for b in root.find_elements(By.TAG_NAME, "button")
             if b.is_displayed() and text in b.text), None)).click()

    try:
        driver.get(url)
        WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.ID, "image-input"))
        driver.find_element(By.XPATH, "//button[@role='tab' and contains(., 'Webcam')]").click()
        cam = WebDriverWait(driver, 30).until(lambda d: d.find_element(By.ID, "webcam-input"))
        click(cam, "Click to Access Webcam")
        click(cam, "Record")
        status = driver.find_element(By.ID, "webcam-status")
        out: dict[str, list[float]] = {}
        for flip in ("off", "on"):
            if flip == "on":
                driver.find_element(By.CSS_SELECTOR, "#webcam-flip-test input").click()
            time.sleep(5)  # a new stream state, and the rate of the new setting
            values = []
            t_end = time.monotonic() + seconds
            while time.monotonic() < t_end:
                found = re.search(r"(\d+\.\d) frames/s", status.text)
                if found:
                    values.append(float(found.group(1)))
                time.sleep(2)
            out[f"flip={flip}"] = values
            print(flip, values, flush=True)
        return out
    finally:
        driver.quit()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="s")
    p.add_argument("--engine", default="openvino/bfloat16")
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--port", type=int, default=7931)
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve:
        serve(args.size, args.engine, args.port)
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="vitpose-page-"))
    feed = y4m(ROOT.parent / "shared" / "data" / "video" / "demo.mp4", tmp / "camera.y4m")
    load_before = os.getloadavg()
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", GRADIO_TEMP_DIR=str(tmp / "g"))
    server = subprocess.Popen([sys.executable, __file__, "--serve", "--size", args.size,
                               "--engine", args.engine, "--port", str(args.port)], env=env)
    try:
        import urllib.request
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{args.port}/", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the page did not start") from None
                time.sleep(1)
        rates = measure(f"http://127.0.0.1:{args.port}/", args.seconds, feed)
    finally:
        server.terminate()
        server.wait(timeout=30)
    report = {"size": args.size, "engine": args.engine, "load_before": load_before,
              "load_after": os.getloadavg(),
              **{k: {"median": statistics.median(v) if v else None, "readings": v}
                 for k, v in rates.items()}}
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
