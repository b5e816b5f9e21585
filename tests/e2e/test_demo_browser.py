"""`vitpose demo` end to end in a real browser: Debian's Chromium driven by Selenium.

The command is started on loopback with a tiny random model; the browser uploads the sample
image, waits for the result and checks the drawn image and the JSON (17 keypoints per instance);
a corrupt upload must show the error message in the page, an oversized one the size limit; a
video upload must give a playable video and per-frame JSON; the webcam tab, with Chromium's fake
camera playing the sample video, must show poses and the measured frames per second. Screenshots
are saved in
``test-artifacts/`` (or ``$VITPOSE_TEST_ARTIFACTS``). Every wait is bounded. The test skips,
saying why, only where Chromium or its driver is not installed (``.ci/install-browser``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

import vitpose

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("VITPOSE_TEST_ARTIFACTS", ROOT / "test-artifacts"))
SERVER_START_S = 90  # imports of torch + gradio on a busy 2-core machine
RESULT_S = 60
UPLOAD_MB = 1  # the samples are smaller

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None)
CHROMEDRIVER = shutil.which("chromedriver")
if CHROMIUM is None or CHROMEDRIVER is None:
    pytest.skip("Debian's chromium and chromium-driver are not installed (run "
                ".ci/install-browser; it needs apt-get and root)", allow_module_level=True)
pytest.importorskip("selenium", reason="selenium (dev extra) is not installed")
pytest.importorskip("gradio", reason="gradio (the vitpose[demo] extra) is not installed")

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import WebDriverException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 10) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`vitpose demo` on 127.0.0.1 with a tiny model; yields its URL."""
    tmp = tmp_path_factory.mktemp("demo-server")
    model = tmp / "tiny.pt"
    vitpose.save_checkpoint(vitpose.build_model("vitpose-b-simple", embed_dim=32, depth=2,
                                                num_heads=2), model)
    port = _free_port()
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1",
               TMPDIR=str(tmp), GRADIO_TEMP_DIR=str(tmp / "gradio"))
    log_path = tmp / "server.log"
    log = log_path.open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "vitpose.cli", "demo", "--model", str(model), "--device", "cpu",
         "--port", str(port), "--max-frames", "3", "--max-upload-mb", str(UPLOAD_MB)],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + SERVER_START_S
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"vitpose demo exited with {proc.returncode}:\n"
                            f"{log_path.read_text()[-3000:]}")
            try:
                _get(url, timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"vitpose demo did not answer within {SERVER_START_S} s:\n"
                                f"{log_path.read_text()[-3000:]}")
                time.sleep(0.5)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)  # `vitpose demo` closes the server like on Ctrl-C
        try:
            rc = proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
            rc = "killed after 15 s"
        log.close()
        assert rc == 0, f"vitpose demo did not stop cleanly ({rc}):\n{log_path.read_text()[-3000:]}"


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,1700", "--no-first-run", "--disable-extensions",
                f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(arg)
    try:
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    except WebDriverException as e:  # installed but cannot start: a real failure, say why
        pytest.fail(f"chromium ({CHROMIUM}) with {CHROMEDRIVER} does not start: {e.msg}")
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


def _open(driver, url: str, tab: str | None = None) -> None:
    driver.get(url)
    wait = WebDriverWait(driver, 30)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#image-input input[type=file]"))
    if tab:
        driver.find_element(By.XPATH, f"//button[@role='tab' and contains(., '{tab}')]").click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#video-input input[type=file]"))


def _upload_and_run(driver, prefix: str, path: Path) -> str:
    """Uploads a file into ``#<prefix>-input``, presses run, returns the status text."""
    driver.find_element(By.CSS_SELECTOR, f"#{prefix}-input input[type=file]").send_keys(str(path))
    WebDriverWait(driver, 30).until(  # the upload is done when the file is listed
        lambda d: path.name in "".join(d.find_element(By.ID, f"{prefix}-input").text.split()))
    status = driver.find_element(By.ID, f"{prefix}-status")
    driver.find_element(By.ID, f"{prefix}-run").click()
    # the final status says "N instance(s)" / "N frame(s)" or "Error: ..." (while running, a
    # progress text shows there)
    WebDriverWait(driver, RESULT_S).until(
        lambda d: any(w in status.text for w in ("instance(s)", "frame(s) ·", "Error")))
    return status.text


def _set_threshold(driver, value: str) -> None:
    box = driver.find_element(By.CSS_SELECTOR, "#kpt-thr input[type=number]")
    box.clear()
    box.send_keys(value)
    box.send_keys("\t")
    WebDriverWait(driver, 5).until(
        lambda d: d.find_element(By.CSS_SELECTOR, "#kpt-thr input[type=range]")
        .get_attribute("value") == value)


def _link(driver, elem_id: str) -> str:
    links = WebDriverWait(driver, 10).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, f"#{elem_id} a[href]"))
    return links[0].get_attribute("href")


def test_image_upload_gives_drawn_image_and_json(server, browser, data_dir):
    sample = data_dir / "coco" / "000000000785.jpg"
    _open(browser, server)
    _set_threshold(browser, "0")  # draw every keypoint of the random model
    status = _upload_and_run(browser, "image", sample)
    browser.save_screenshot(str(ARTIFACTS / "demo-image.png"))
    assert "Error" not in status and "instance(s)" in status, status

    img = browser.find_element(By.CSS_SELECTOR, "#image-output img")
    WebDriverWait(browser, 10).until(
        lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth",
                                   img))
    assert browser.execute_script("return [arguments[0].naturalWidth, "
                                  "arguments[0].naturalHeight]", img) == [640, 425]
    import cv2

    drawn = cv2.imdecode(np.frombuffer(_get(img.get_attribute("src")), np.uint8),
                         cv2.IMREAD_COLOR)
    original = cv2.imread(str(sample))
    assert drawn.shape == original.shape
    assert np.abs(drawn.astype(int) - original).max() > 100  # poses and box drawn on it

    results = json.loads(_get(_link(browser, "image-json")))
    assert isinstance(results, list) and results
    for r in results:
        assert len(r["keypoints"]) == 17 * 3 and r["image_id"] == sample.name
    table = browser.find_element(By.ID, "image-table").text
    # threshold 0 reached the handler: every keypoint with a score >= 0 is counted as shown
    # (a random tiny model can give a negative heatmap maximum)
    # (the JSON rounds scores to 3 decimals, so a score within 5e-4 of 0 may count either way)
    scores = np.asarray(results[0]["keypoints"]).reshape(17, 3)[:, 2]
    shown = re.findall(r"(\d+)/17", table)
    assert shown, table
    assert int((scores > 5e-4).sum()) <= int(shown[0]) <= int((scores >= -5e-4).sum()), table


def test_corrupt_upload_shows_error(server, browser, tmp_path):
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0" + bytes(np.random.default_rng(0).integers(
        0, 256, 4000, dtype=np.uint8)))
    _open(browser, server)
    status = _upload_and_run(browser, "image", corrupt)
    browser.save_screenshot(str(ARTIFACTS / "demo-image-error.png"))
    assert "Error" in status and "cannot decode image file" in status, status
    assert "corrupt.jpg" in status and "/tmp" not in status  # no server-side path shown
    # the server is still there for the next upload
    assert _get(server, timeout=5)


def test_oversized_upload_is_refused_in_the_page(server, browser, tmp_path):
    big = tmp_path / "big.jpg"
    big.write_bytes(bytes(int(UPLOAD_MB * 1.5 * 2**20)))
    _open(browser, server)
    browser.find_element(By.CSS_SELECTOR, "#image-input input[type=file]").send_keys(str(big))
    WebDriverWait(browser, 20).until(
        lambda d: "exceed the maximum allowed size" in d.find_element(By.TAG_NAME, "body").text)
    browser.save_screenshot(str(ARTIFACTS / "demo-upload-too-large.png"))
    assert _get(server, timeout=5)


def test_video_upload_gives_video_and_json(server, browser, data_dir):
    clip = data_dir / "video" / "demo.mp4"
    if not clip.is_file():
        pytest.skip(f"{clip} is absent")
    _open(browser, server, tab="Video")
    status = _upload_and_run(browser, "video", clip)
    browser.save_screenshot(str(ARTIFACTS / "demo-video.png"))
    assert "Error" not in status and "3 frame(s)" in status, status
    video = browser.find_element(By.CSS_SELECTOR, "#video-output video")
    WebDriverWait(browser, 20).until(
        lambda d: d.execute_script("return arguments[0].readyState >= 1", video))
    assert browser.execute_script("return arguments[0].error", video) is None  # it plays
    assert browser.execute_script("return arguments[0].videoWidth", video) > 0
    frames = json.loads(_get(_link(browser, "video-json")))
    assert [f["frame"] for f in frames] == [0, 1, 2]
    assert all(len(i["keypoints"]) == 51 for f in frames for i in f["instances"])
    mp4 = _get(_link(browser, "video-mp4"))
    assert mp4[4:8] == b"ftyp"


def _y4m(video: Path, out: Path, size_wh: tuple[int, int] = (640, 360)) -> Path:
    """The frames of `video` as a Y4M file (I420), what Chromium's fake camera plays (looped)."""
    import cv2

    cap = cv2.VideoCapture(str(video))
    w, h = size_wh
    with out.open("wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F10:1 Ip A1:1 C420jpeg\n".encode())
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            frame = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)
            f.write(b"FRAME\n" + cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())
    cap.release()
    return out


@pytest.fixture(scope="module")
def camera_browser(tmp_path_factory, data_dir):
    """Chromium whose camera is a fake device playing the sample video, permission granted."""
    clip = data_dir / "video" / "demo.mp4"
    if not clip.is_file():
        pytest.skip(f"{clip} is absent")
    tmp = tmp_path_factory.mktemp("camera")
    feed = _y4m(clip, tmp / "camera.y4m")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,1300", "--no-first-run", "--disable-extensions",
                "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-video-capture={feed}",
                f"--user-data-dir={tmp / 'profile'}"):
        options.add_argument(arg)
    try:
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    except WebDriverException as e:
        pytest.fail(f"chromium ({CHROMIUM}) with {CHROMEDRIVER} does not start: {e.msg}")
    driver.set_page_load_timeout(30)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


def _click_button(driver, root, text: str, timeout: float = 20) -> None:
    def find(d):
        for b in root.find_elements(By.TAG_NAME, "button"):
            if b.is_displayed() and text in b.text:
                return b
        return None

    WebDriverWait(driver, timeout).until(find).click()


def test_webcam_tab_shows_poses_live_with_fps(server, camera_browser):
    driver = camera_browser
    _open(driver, server)
    driver.find_element(By.XPATH, "//button[@role='tab' and contains(., 'Webcam')]").click()
    cam = WebDriverWait(driver, 20).until(lambda d: d.find_element(By.ID, "webcam-input"))
    _click_button(driver, cam, "Click to Access Webcam")
    _click_button(driver, cam, "Record")  # starts streaming frames to the server
    status = driver.find_element(By.ID, "webcam-status")
    # a few frames went through the pipeline: the page shows the measured rate
    WebDriverWait(driver, RESULT_S).until(
        lambda d: re.search(r"\d+\.\d frames/s", status.text))
    text = status.text
    # the drawn frames replace each other: look up the current one until it has loaded
    width = WebDriverWait(driver, 20).until(lambda d: d.execute_script(
        "const i = document.querySelector('#webcam-output img');"
        "return i && i.complete ? i.naturalWidth : 0;"))
    driver.save_screenshot(str(ARTIFACTS / "demo-webcam.png"))
    assert "Error" not in text and "instance(s)" in text, text
    fps = float(re.search(r"(\d+\.\d) frames/s", text).group(1))
    assert fps > 0, text
    assert width == 640  # the camera frame (the sample video at 640x360), drawn
    _click_button(driver, cam, "Stop")
    assert _get(server, timeout=5)  # the server is still there
