"""Headless Chromium for the browser tests (Debian's chromium + chromium-driver, driven by selenium): one
launch recipe for the report's tests and the review page's."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

CHROMEDRIVER = Path("/usr/bin/chromedriver")
needs_chromium = pytest.mark.skipif(not CHROMEDRIVER.exists() or shutil.which("chromium") is None,
                                    reason="needs Debian's chromium and chromium-driver (make install as root)")


def start_chromium(profile: Path, window: str = "1280,1600") -> Any:
    """A headless Chromium with its own profile folder and the browser console logged (tests read errors)."""
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", f"--window-size={window}", f"--user-data-dir={profile}"):
        opts.add_argument(arg)
    opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
