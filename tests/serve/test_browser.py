"""A real browser on the real server: headless Chromium (Debian's `chromium`) driven by Playwright.

It searches, plays a track (the audio element's clock advances), clicks a recommendation, follows the radio, walks
a path, draws the map and clicks a point. Screenshots go to the test's temporary folder, and also to
$MUSIMILAR_SCREENSHOTS when it is set (that is how docs/serve.md's pictures are made).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
    "--use-angle=swiftshader",  # WebGL (the map) drawn on the CPU
    "--enable-unsafe-swiftshader",
]
START_SECONDS = 60
STEP_MS = 15_000
VIEWPORT = {"width": 1280, "height": 800}

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists() and not os.environ.get("MUSIMILAR_REQUIRE_BROWSER"),
    reason="needs Debian's chromium (.ci/run installs it, and sets MUSIMILAR_REQUIRE_BROWSER so it never skips)",
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server_url(served_home) -> Iterator[str]:
    """`musimilar serve` started for real on a free loopback port."""
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MUSIMILAR_")}
    command = [sys.executable, "-m", "musimilar", "serve", "--home", str(served_home[0]), "--port", str(port)]
    process = subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, process)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def _wait_until_up(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"serve exited: {process.stdout.read().decode() if process.stdout else ''}")
        try:
            with urllib.request.urlopen(f"{url}/api/status", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"serve did not answer within {START_SECONDS} s")


@pytest.fixture
def page(tmp_path: Path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_page(viewport=VIEWPORT)
            context.set_default_timeout(STEP_MS)
            yield context
        finally:
            browser.close()


def shoot(page, tmp_path: Path, name: str) -> None:
    page.screenshot(path=str(tmp_path / f"{name}.png"))
    extra = os.environ.get("MUSIMILAR_SCREENSHOTS")
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(extra) / f"{name}.png"))


def playing_id(page) -> str:
    return page.evaluate("document.querySelector('#player').src.split('/').slice(-2)[0]")


def wait_for_playback(page, after_seconds: float = 0.3) -> None:
    page.wait_for_function(
        f"() => {{ const p = document.querySelector('#player'); return !p.paused && p.currentTime > {after_seconds}; }}"
    )


def test_find_hear_follow_walk_and_map(page, server_url: str, served_home, tmp_path: Path) -> None:
    tracks = served_home[2]
    style = tracks[0].style
    page.goto(server_url)
    page.wait_for_selector("#tracks-table tr.track-row")
    page.fill("#search", style)
    page.wait_for_function(
        f"document.querySelectorAll('#tracks-table tr.track-row').length === {sum(t.style == style for t in tracks)}"
    )
    page.click("#tracks-table tr.track-row >> nth=0")
    wait_for_playback(page)
    page.wait_for_selector("#neighbours li")
    shoot(page, tmp_path, "serve-library")

    first = playing_id(page)
    neighbour = page.get_attribute("#neighbours li >> nth=0", "data-id")
    page.click("#neighbours li >> nth=0")
    page.wait_for_function(f"document.querySelector('#player').src.endsWith('/{neighbour}/audio')")
    wait_for_playback(page)
    assert playing_id(page) == neighbour != first

    page.click("#radio-start")
    page.wait_for_selector("#radio-list li >> nth=1")
    radio_next = page.get_attribute("#radio-list li >> nth=1", "data-id")
    page.wait_for_function(f"document.querySelector('#player').src.endsWith('/{radio_next}/audio')")
    wait_for_playback(page)
    page.click("#radio-skip")
    page.wait_for_selector("#radio-list li >> nth=2")
    played = page.eval_on_selector_all("#radio-list li", "items => items.map(i => i.dataset.id)")
    assert len(played) == len(set(played)) == 3 and played[1] == radio_next
    shoot(page, tmp_path, "serve-radio")

    other_style = next(t.style for t in tracks if t.style != style)
    far = page.evaluate(f"fetch('/api/tracks?q={other_style}&limit=1').then(r => r.json())")["tracks"][0]["track_id"]
    page.click("#tab-path")
    page.fill("#path-start", str(first))
    page.fill("#path-end", str(far))
    page.fill("#path-steps", "5")
    page.click("#path-go")
    page.wait_for_selector("#path-list li >> nth=4")
    shoot(page, tmp_path, "serve-path")

    page.click("#tab-map")
    page.wait_for_selector("#map-plot[data-ready='1']")
    page.wait_for_selector("#map-plot canvas")
    point = page.evaluate(
        """() => {
            const plot = document.querySelector('#map-plot'), layout = plot._fullLayout, trace = plot.data[0];
            const box = plot.getBoundingClientRect();
            return { id: String(trace.customdata[0]),
                     x: box.left + layout._size.l + layout.xaxis.l2p(trace.x[0]),
                     y: box.top + layout._size.t + layout.yaxis.l2p(trace.y[0]) };
        }"""
    )
    page.mouse.move(point["x"], point["y"])
    page.mouse.click(point["x"], point["y"])
    page.wait_for_function(f"document.querySelector('#player').src.endsWith('/{point['id']}/audio')")
    shoot(page, tmp_path, "serve-map")
    assert "PCA" in page.inner_text("#map-caption")
