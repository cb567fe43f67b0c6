"""The demo hub as a browser sees it: headless Chromium renders the page and its tabs, and a user's first click (an
example photo, then Rotate) shows the rotated photo with the pose measured on it.

Needs the Debian ``chromium`` package (``make browser`` installs it); skipped, saying why, when it is not on PATH.
The click-through test drives Chromium with the DevTools protocol over ``--remote-debugging-pipe`` (standard
library only). With ``FACEHUB_DEMO_SCREENSHOT=path`` it also saves its screenshot there: that is how
docs/demo.png is taken (``FACEHUB_DEMO_SCREENSHOT=docs/demo.png pytest tests/test_browser.py -k example``).
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import re
import select
import shutil
import subprocess
import time
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not on PATH (install it with `make browser`)"),
]

# No sandbox (root in CI), nothing fetched besides the page itself.
BROWSER_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--hide-scrollbars",
]
# One-shot runs (--dump-dom, --screenshot) also get virtual time, so Gradio's JS finishes rendering first.
CHROMIUM_FLAGS = [*BROWSER_FLAGS, "--virtual-time-budget=15000"]
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
    assert labels == ["Rotate", "Reconstruct 3D", "Swap", "Generate", "Compare", "Models", "About"], \
        f"tabs rendered: {labels}"


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


def _above_nine(fd: int) -> int:
    """A duplicate of ``fd`` numbered 10 or more (close-on-exec), the original closed."""
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return high


class DevTools:
    """Headless Chromium driven with the DevTools protocol over ``--remote-debugging-pipe``: JSON messages separated
    by NUL bytes, written to the browser's fd 3 and read from its fd 4 (a shell ``exec`` puts the pipes there)."""

    def __init__(self, profile: Path, width: int, height: int):
        to_browser, self._write = os.pipe()
        self._read, from_browser = os.pipe()
        # Move the browser's ends above 9 first, so that the shell's "3<&N 4>&M" cannot overwrite one with the other.
        to_browser, from_browser = (_above_nine(fd) for fd in (to_browser, from_browser))
        flags = " ".join([*BROWSER_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
                          "--remote-debugging-pipe", "about:blank"])
        command = f"exec {CHROMIUM} {flags} 3<&{to_browser} 4>&{from_browser} {to_browser}<&- {from_browser}>&-"
        self.process = subprocess.Popen(["bash", "-c", command], pass_fds=(to_browser, from_browser),
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser)
        os.close(from_browser)
        self._buffer, self._next_id, self.session = b"", 0, None
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)

    def send(self, method: str, timeout: float = 60, **params):
        """Run one DevTools command and return its result (events in between are skipped)."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if self.session and not method.startswith("Target."):
            message["sessionId"] = self.session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self._next_id:
                    assert "error" not in reply, f"{method}: {reply['error']}"
                    return reply.get("result", {})
            ready, _, _ = select.select([self._read], [], [], max(0.0, deadline - time.monotonic()))
            assert ready, f"chromium did not answer {method} within {timeout} s"
            chunk = os.read(self._read, 1 << 20)
            assert chunk, "chromium closed the DevTools pipe"
            self._buffer += chunk

    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page."""
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True)["result"]
        return result.get("value")

    def wait_for(self, expression: str, timeout: float = 90, what: str = "") -> None:
        """Poll ``expression`` until it is truthy; fail saying ``what`` did not happen."""
        deadline = time.monotonic() + timeout
        while not self.evaluate(expression):
            assert time.monotonic() < deadline, f"timed out waiting for {what or expression}"
            time.sleep(0.25)

    def screenshot(self) -> bytes:
        return base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"])

    def close(self) -> None:
        self.process.kill()
        self.process.wait(timeout=30)
        os.close(self._write)
        os.close(self._read)


@pytest.fixture(scope="module")
def real_demo():
    """The demo as ``facehub demo`` serves it, over the real embedded defaults (the screenshot shows today's demo)."""
    from ports import free_port

    from facehub.apps.demo import launch
    from facehub.apps.registry import DemoContext
    from facehub.hub import resolver

    port = free_port()
    ctx = DemoContext(device="cpu")
    with pytest.MonkeyPatch.context() as patch:
        # demo_server, alive for this whole file, points the embedded defaults at test models; this demo serves the
        # package's own.
        patch.setattr(resolver, "EMBEDDED_DEFAULTS_DIR", Path(resolver.__file__).resolve().parent / "defaults")
        demo = launch(host="127.0.0.1", port=port, ctx=ctx, block=False)
        try:
            yield f"http://127.0.0.1:{port}/"
        finally:
            demo.close()
            ctx.close()


def test_an_example_photo_rotates_and_says_what_was_measured(real_demo, tmp_path):
    from PIL import Image, ImageStat

    browser = DevTools(tmp_path / "profile", 1280, 1000)
    try:
        browser.send("Page.navigate", url=real_demo)
        browser.wait_for("document.querySelectorAll('#facehub-rotate-examples button').length >= 3",
                         what="the example photos")
        browser.evaluate("document.querySelector('#facehub-rotate-examples button').click()")
        browser.wait_for("!!document.querySelector('#facehub-rotate-photo img')", what="the example in the photo box")
        browser.evaluate("document.querySelector('#facehub-rotate-button').click()")
        browser.wait_for("document.querySelector('#facehub-rotate-status').innerText.includes('Measured on the')",
                         timeout=180, what="the rotation's status")
        browser.wait_for("!!document.querySelector('#facehub-rotate-result img')", what="the rotated photo")
        status = browser.evaluate("document.querySelector('#facehub-rotate-status').innerText")
        time.sleep(1.0)  # let the result image finish drawing
        png = browser.screenshot()
    finally:
        browser.close()
    assert "towards the requested pose (yaw +25.0, pitch +0.0" in status
    assert re.search(r"Measured on the result: yaw [+-]\d+\.\d, pitch [+-]\d+\.\d", status), status
    shot = tmp_path / "demo.png"
    shot.write_bytes(png)
    with Image.open(shot) as image:
        assert image.size == (1280, 1000)
        assert ImageStat.Stat(image.convert("L")).stddev[0] > 20, "the screenshot shows no photos"
    target = os.environ.get("FACEHUB_DEMO_SCREENSHOT")
    if target:
        Path(target).write_bytes(png)
