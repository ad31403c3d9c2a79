"""The page in a real headless browser (Playwright driving the system's Chromium).

Uploads a sample photo, draws a box, re-runs, downloads the mask and checks it is the mask the
library gives for that photo and box; then paints a background stroke and checks it is kept.
With ``IEM_SERVE_SCREENSHOT=path.png`` the test also
saves a screenshot of the page (docs/images/serve.png is made that way).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from iem.config import IEMConfig
from iem.data import sample_paths
from iem.pipeline import segment_bytes
from iem.serve import ServeSettings, create_app

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (the 'test' extra) is not installed")
uvicorn = pytest.importorskip("uvicorn", reason="uvicorn (the 'serve' extra) is not installed")

#: Debian's chromium package (installed by .ci/run); Playwright never downloads a browser here.
CHROMIUM = os.environ.get("IEM_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SIZE = 64


@pytest.fixture(scope="module")
def server():
    """The app on uvicorn in a thread, on a free loopback port."""
    settings = ServeSettings(size=SIZE)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(create_app(settings), log_level="warning")
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not instance.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert instance.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    instance.should_exit = True
    thread.join(10)
    sock.close()


@pytest.fixture(scope="module")
def browser():
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set IEM_CHROMIUM)")
    with sync_api.sync_playwright() as playwright:
        try:
            launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        except Exception as err:  # a browser that cannot start here is a skip, with the reason
            pytest.skip(f"Chromium at {CHROMIUM} cannot start: {str(err).splitlines()[0]}")
        yield launched
        launched.close()


def drag(page, area, start, end):
    """Press at ``start`` and release at ``end``, both fractions of the element's box."""
    page.mouse.move(area["x"] + start[0] * area["width"], area["y"] + start[1] * area["height"])
    page.mouse.down()
    page.mouse.move(area["x"] + end[0] * area["width"], area["y"] + end[1] * area["height"], steps=8)
    page.mouse.up()


def rerun_and_download(page, card, runs, path):
    """Press Re-run, wait for run number ``runs``, download the mask; ``(H, W)`` bool."""
    card.locator(".run").click()
    sync_api.expect(card).to_have_attribute("data-runs", str(runs), timeout=90_000)
    with page.expect_download() as download:
        card.locator(".dl-mask").click()
    download.value.save_as(path)
    assert download.value.suggested_filename == "coffee.mask.png"
    return np.asarray(Image.open(path)) > 0


def test_upload_draw_a_box_rerun_and_download(server, browser, tmp_path):
    photo_path = next(p for p in sample_paths() if p.stem == "coffee")
    page = browser.new_page(viewport={"width": 1280, "height": 820}, accept_downloads=True)
    requested = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(server + "/")
    assert page.locator("#preset option").count() >= 2

    page.set_input_files("#files", str(photo_path))
    card = page.locator(".card").first
    sync_api.expect(card).to_have_attribute("data-state", "done", timeout=90_000)
    assert card.locator(".overlay").evaluate("c => c.width") == Image.open(photo_path).width

    area = card.locator(".marks").bounding_box()
    drag(page, area, (0.3, 0.15), (0.7, 0.6))
    mask = rerun_and_download(page, card, 2, tmp_path / "mask.png")
    box = tuple(float(v) for v in card.get_attribute("data-box").split(","))
    width, height = Image.open(photo_path).size
    assert abs(box[0] - 0.3 * width) < 0.02 * width and abs(box[3] - 0.6 * height) < 0.02 * height
    expected = segment_bytes(photo_path.read_bytes(), IEMConfig.preset(ServeSettings().preset), SIZE, "cpu", box=box)
    assert np.array_equal(mask, expected)
    assert 0.02 < mask.mean() < 0.9

    with page.expect_download() as cut:
        card.locator(".dl-cutout").click()
    cut.value.save_as(tmp_path / "cut.png")
    alpha = np.asarray(Image.open(tmp_path / "cut.png"))[..., 3] > 0
    assert np.array_equal(alpha, mask)

    # A background stroke across the cup: re-run, and the stroke's pixels are background.
    page.check("input[value=background]")
    drag(page, area, (0.42, 0.3), (0.56, 0.3))
    after = rerun_and_download(page, card, 3, tmp_path / "stroked.png")
    row, left, right = round(0.3 * height), round(0.43 * width), round(0.55 * width)
    assert mask[row, left:right].all() and not after[row, left:right].any()

    assert all(url.startswith(server) or url.startswith("blob:") for url in requested), requested
    if os.environ.get("IEM_SERVE_SCREENSHOT"):
        page.screenshot(path=os.environ["IEM_SERVE_SCREENSHOT"], full_page=True)
    page.close()
