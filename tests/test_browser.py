"""The demo hub as a browser sees it: headless Chromium renders the page, its tabs and a screenshot.

Needs the Debian ``chromium`` package (``make browser`` installs it); skipped, saying why, when it is not on PATH.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not on PATH (install it with `make browser`)"),
]

# No sandbox (root in CI), nothing fetched besides the page itself, virtual time so Gradio's JS finishes rendering.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--hide-scrollbars",
    "--virtual-time-budget=15000",
]
TIMEOUT_S = 120


def run_chromium(url: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    """Run headless Chromium on ``url`` with a fresh profile folder; fail with its stderr if it fails."""
    command = [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, url]
    result = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    assert result.returncode == 0, f"chromium exited with {result.returncode}:\n{result.stderr[-3000:]}"
    return result


def rendered_tab_labels(dom: str) -> list[str]:
    """Labels of the rendered tab buttons (``role="tab"``); the served HTML has none before Gradio's JS runs."""
    return [label.strip() for label in re.findall(r'<button[^>]*role="tab"[^>]*>([^<]*)<', dom)]


def test_page_renders_the_tabs(demo_server, tmp_path):
    dom = run_chromium(demo_server.url, tmp_path / "profile", "--dump-dom").stdout
    labels = rendered_tab_labels(dom)
    assert {"Models", "About"} <= set(labels), f"tabs rendered: {labels}"
    assert labels.index("Models") < labels.index("About")


def test_screenshot_is_a_real_picture(demo_server, tmp_path):
    from PIL import Image, ImageStat

    shot = tmp_path / "demo.png"
    run_chromium(demo_server.url, tmp_path / "profile", "--window-size=1280,900", f"--screenshot={shot}")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    with Image.open(shot) as image:
        image.load()
        assert image.size == (1280, 900)
        gray = image.convert("L")
    low, high = gray.getextrema()
    assert high - low > 100, f"blank screenshot (grey levels {low}..{high})"
    assert ImageStat.Stat(gray).stddev[0] > 5, "screenshot is nearly uniform: the page did not render"
    colours = gray.getcolors(maxcolors=256) or []
    assert len(colours) > 20, f"only {len(colours)} grey levels: text and widgets did not render"
