"""Fixtures of the browser tests of the review page and its judged view: a headless Chromium (``driver``) and the
page served on a free loopback port (``served``, from the requesting module's ``world``: ``{"path": bank, ...}``)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from chromium import start_chromium  # tests/adt/chromium.py
from review_serving import opener_for

from adt.review_page import make_server


@pytest.fixture()
def driver(tmp_path_factory: pytest.TempPathFactory):
    drv = start_chromium(tmp_path_factory.mktemp("chromium-profile"), "1280,1400")
    yield drv
    drv.quit()


@pytest.fixture()
def served(world: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The module's world with its bank's review page served on a free loopback port (``url``)."""
    server = make_server(opener_for(world["path"]), port=0, quiet=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {**world, "url": server.url}
    server.shutdown()
    server.server_close()
