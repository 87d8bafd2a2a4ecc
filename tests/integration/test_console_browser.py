"""The console in a real browser (Debian's headless Chromium through chromium-driver)
against the real daemon on loopback, by running ``scripts/screenshot-console``: the
README's screenshot and this test take the same path. The script's report says what the
page showed at each step: a breach turning the rule red (refreshed by the page's own
script, no reload), an incident appearing with its rollback, a silence refused for a
misspelt rule then added from the form, then expired; a form posted from another site
(with a stolen CSRF token) refused; and the page fitting a phone."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.console_browser import available

REPO = Path(__file__).resolve().parents[2]
RED = "rgb(217, 45, 32)"  # --red in console.css
GREEN = "rgb(6, 118, 71)"

pytestmark = pytest.mark.integration


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_the_console_in_a_browser(tmp_path: Path) -> None:
    missing = available()
    if missing is not None:
        if os.environ.get("CI"):
            pytest.fail(missing)  # CI must not silently test less
        pytest.skip(missing)
    shot, report_path = tmp_path / "console.png", tmp_path / "steps.json"
    done = subprocess.run(
        [
            "bash",
            str(REPO / "scripts" / "screenshot-console"),
            "--out",
            str(shot),
            "--report",
            str(report_path),
            "--warmup",
            "0",
        ],
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    steps = json.loads(report_path.read_text())
    assert steps["before"] in ("inactive", "pending")
    assert steps["after"] == "firing"
    assert steps["before_border"] != RED
    assert steps["after_border"] == RED  # the breach turned the rule red
    assert steps["incident"].endswith("-error-rate")
    assert "detected" in steps["timeline"]
    assert "rollback finished" in steps["timeline"]
    assert "live" in steps["target"]
    assert "rollback to" in steps["target"]
    assert "did you mean error-rate" in steps["refused"]
    assert "rule=error-rate" in steps["added"]
    assert "active" in steps["added"]
    assert steps["added_url"] == "?done=added"
    assert "expired" in steps["expired"]
    assert "403" in steps["cross_site"]["refused"]
    assert "not from this server's own page" in steps["cross_site"]["refused"]
    assert steps["cross_site"]["silences"] == 1  # the expired one; nothing new
    phone = steps["phone"]
    assert phone["scroll"] <= phone["inner"], phone  # no sideways scrolling on a phone
    width, height = png_size(shot.read_bytes())
    assert width == 1280
    assert height > 900
