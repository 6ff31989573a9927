"""`gaze label` end to end in a real browser: Debian's chromium driven by Playwright (headless).

Three images (one with two persons, one looking outside); the server is killed in the middle of
the second person and restarted; the labelling finishes, the page's export button writes the
dataset, and `gaze data check` passes it. Needs /usr/bin/chromium (`.ci/run` installs it): when it
is missing this test fails, on purpose, rather than skip.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from gazecli.core.data.gazefollow import read_gazefollow
from tests.helpers import run_cli, write_image

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run"]


def launch_browser(playwright):
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} not found: the browser test needs Debian's chromium "
                    f"(apt-get install -y chromium; .ci/run installs it)")
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


class LabelServer:
    """`gaze label IMAGES --out ROOT --port 0` in a child process; `url` once it listens."""

    def __init__(self, images: Path, root: Path, *extra: str):
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
        repo = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = repo + os.pathsep + env.get("PYTHONPATH", "")
        self.process = subprocess.Popen([sys.executable, "-m", "gazecli", "label", str(images), "--out", str(root),
                                         "--port", "0", *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True, env=env)
        seen = []
        deadline = time.monotonic() + 120
        self.url = None
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            seen.append(line)
            found = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
            if found:
                self.url = found.group(1)
                break
        if self.url is None:
            self.kill()
            raise AssertionError("gaze label did not print its address:\n" + "".join(seen))
        self.printed = "".join(seen)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)  # no clean shutdown: only the journal survives
        self.process.wait(timeout=30)


class Page:
    """Labelling gestures in image pixels (the page's zoom is read back)."""

    def __init__(self, page, url: str):
        self.page = page
        page.goto(url)
        self.wait()

    def wait(self) -> None:
        self.page.wait_for_function("window.gazeLabel && window.gazeLabel.ready")
        self.page.evaluate("window.gazeLabel.idle()")

    def info(self) -> dict:
        self.page.evaluate("window.gazeLabel.idle()")
        return self.page.evaluate("({key: gazeLabel.key, status: gazeLabel.status, persons: gazeLabel.persons, "
                                  "zoom: gazeLabel.zoom})")

    def screen(self, x: float, y: float) -> tuple[float, float]:
        box = self.page.locator("#canvas").bounding_box()
        zoom = self.page.evaluate("gazeLabel.zoom")
        return box["x"] + x * zoom, box["y"] + y * zoom

    def drag(self, x1, y1, x2, y2) -> None:
        mouse = self.page.mouse
        mouse.move(*self.screen(x1, y1))
        mouse.down()
        mouse.move(*self.screen(x2, y2), steps=4)
        mouse.up()
        self.page.evaluate("window.gazeLabel.idle()")

    def click(self, x, y) -> None:
        self.page.mouse.click(*self.screen(x, y))
        self.page.evaluate("window.gazeLabel.idle()")

    def key(self, name: str) -> None:
        self.page.keyboard.press(name)
        self.page.evaluate("window.gazeLabel.idle()")
        self.wait()

    def message(self) -> tuple[str, str]:
        m = self.page.locator("#message")
        return m.get_attribute("class") or "", m.inner_text()


def test_label_three_images_with_a_server_kill_then_export_and_check(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="the browser test needs playwright (dev extra)")
    images = tmp_path / "photos"
    write_image(images / "img0.png", width=200, height=150, seed=0)  # two persons
    write_image(images / "img1.png", width=160, height=120, seed=1)  # one person looking outside
    write_image(images / "img2.jpg", width=120, height=160, seed=2)  # one person
    root = tmp_path / "labels"

    with sync_api.sync_playwright() as playwright:
        browser = launch_browser(playwright)
        try:
            server = LabelServer(images, root)
            assert "labelling 3 images (0 done, 0 skipped)" in server.printed
            page = Page(browser.new_page(viewport={"width": 1000, "height": 800}), server.url)
            assert page.info()["key"] == "img0.png"
            page.drag(20, 30, 50, 62)
            page.click(150, 100)
            page.drag(120, 20, 146, 50)  # the second person's head: then the server dies
            journal = root / "journal.jsonl"
            assert len(journal.read_text().splitlines()) == 3
            server.kill()

            server = LabelServer(images, root)
            page = Page(browser.new_page(viewport={"width": 1000, "height": 800}), server.url)
            state = page.info()
            assert state["key"] == "img0.png" and state["persons"] == 2 and state["status"] == "open"
            page.click(30, 140)  # the second person's gaze
            page.key("ArrowRight")  # finishes img0
            assert page.info()["key"] == "img1.png"

            page.click(80, 60)  # a gaze before any head box: refused, shown, nothing written
            kind, text = page.message()
            assert kind == "error" and "draw a head box first" in text
            assert len(journal.read_text().splitlines()) == 5

            second = Page(browser.new_page(), server.url)  # a concurrent second tab
            kind, text = second.message()
            assert kind == "error" and "another browser tab" in text
            second.click(80, 60)
            assert len(journal.read_text().splitlines()) == 5
            second.page.close()

            page.drag(60, 10, 90, 44)
            page.key("o")
            page.key("ArrowRight")
            assert page.info()["key"] == "img2.jpg"
            page.drag(40, 20, 70, 52)
            page.click(100, 150)
            page.key("u")  # undo the gaze point ...
            assert page.info()["status"] == "open"
            page.click(90, 140)  # ... and give another
            page.key("ArrowRight")
            assert page.info()["status"] == "done"
            assert "3 / 3 images done · 4 persons labelled (1 outside)" in page.page.locator("#progress").inner_text()
            page.page.click("#export")
            page.page.evaluate("window.gazeLabel.idle()")
            kind, text = page.message()
            assert kind == "info" and "exported 3 images (2 train, 1 test; 4 persons)" in text
            page.page.screenshot(path=str(tmp_path / "page.png"))
            server.kill()
        finally:
            browser.close()

    dataset = root / "dataset"
    code, out, err = run_cli("data", "check", dataset)
    assert code == 0 and "ok" in out, err
    train, test = read_gazefollow(dataset, "train"), read_gazefollow(dataset, "test")
    assert len(train) + len(test) == 4 and int((train.inout == 0).sum()) == 1
    sources = dict(line.split(",") for line in (dataset / "label_sources.csv").read_text().splitlines()[1:])
    by_image = {}
    for table in (train, test):
        for i, p in enumerate(table.path):
            by_image.setdefault(sources[p], []).append((table.head_box_xyxy_px[i], table.gaze_xy_norm[i, 0]))
    assert sorted(by_image) == ["img0.png", "img1.png", "img2.jpg"] and len(by_image["img0.png"]) == 2
    # what was clicked, to within a screen pixel (the zoom is above 1 here)
    heads = sorted(h.tolist() for h, _ in by_image["img0.png"])
    np.testing.assert_allclose(heads, [[20, 30, 50, 62], [120, 20, 146, 50]], atol=1.0)
    (head, gaze), = by_image["img2.jpg"]
    np.testing.assert_allclose(gaze, [90 / 120, 140 / 160], atol=0.01)
    (head, gaze), = by_image["img1.png"]
    assert np.isnan(gaze).all()
