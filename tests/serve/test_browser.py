"""A real browser on the real server: headless Chromium (Debian's `chromium`) driven by Playwright.

It searches, plays a track (the audio element's clock advances), clicks a recommendation, follows the radio, walks
a path, draws the map and clicks a point. Screenshots go to the test's temporary folder, and also to
$MUSIMILAR_SCREENSHOTS when it is set (that is how docs/serve.md's pictures are made).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from real_server import start_server, stop

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
STEP_MS = 15_000
VIEWPORT = {"width": 1280, "height": 800}

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists() and not os.environ.get("MUSIMILAR_REQUIRE_BROWSER"),
    reason="needs Debian's chromium (.ci/run installs it, and sets MUSIMILAR_REQUIRE_BROWSER so it never skips)",
)


@pytest.fixture(scope="module")
def server_url(served_home, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`musimilar serve` started for real on a free loopback port."""
    server = start_server(served_home[0], tmp_path_factory.mktemp("browser") / "serve.log")
    try:
        yield server.url
    finally:
        stop(server.process)


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
