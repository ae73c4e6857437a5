"""Open brightflow's HTML pages in a real browser: Debian's Chromium, headless, driven by Playwright.

Tests that check what a person sees and does on a page (the brightness explorer) open it with
:func:`open_page` and drive it with Playwright's mouse and keyboard.

- The browser: ``$BRIGHTFLOW_CHROMIUM``, else Debian's ``/usr/bin/chromium`` (``sudo
  ci/chromium-up.sh`` installs it). Playwright (pinned in requirements.txt) only drives it
  (``executable_path``); its own browser download is never used.
- Each page opens in a fresh browser with a new, empty profile, with the flags that keep Chromium
  from reaching the network on its own (as root it also needs ``--no-sandbox``).
- Every console message, page error and request is recorded (:class:`PageEvents`), so a test
  can assert that a page made no JavaScript error and no network request.
- :func:`browser_or_skip` skips a test with the reason where the browser cannot run here;
  ``BRIGHTFLOW_REQUIRE_BROWSER=1`` (set by .ci/run) turns that skip into a failure.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

DEBIAN_CHROMIUM = Path("/usr/bin/chromium")

#: Chromium's flags: headless (Playwright adds --headless), no sandbox (it runs as root in CI), no
#: GPU, and no traffic of its own (background networking, component updates, sync, QUIC).
CHROMIUM_FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)

#: URL schemes a self-contained page may load: itself, inline data, and blobs it makes (downloads).
LOCAL_SCHEMES = ("file:", "data:", "blob:")


def chromium_path():
    """The Chromium to run: ``$BRIGHTFLOW_CHROMIUM``, else Debian's, else None."""
    named = os.environ.get("BRIGHTFLOW_CHROMIUM")
    if named:
        return Path(named)
    return DEBIAN_CHROMIUM if DEBIAN_CHROMIUM.is_file() else None


def browser_problem():
    """Why the browser tests cannot run here (a sentence), or None when they can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (make venv installs it from requirements.txt)"
    chromium = chromium_path()
    if chromium is None:
        return f"Chromium is not installed ({DEBIAN_CHROMIUM} missing; install it with: sudo ci/chromium-up.sh)"
    if not chromium.is_file():
        return f"BRIGHTFLOW_CHROMIUM={chromium} is not a file"
    return None


def browser_or_skip():
    """Skip the calling test where the browser cannot run; fail instead with BRIGHTFLOW_REQUIRE_BROWSER=1."""
    problem = browser_problem()
    if problem:
        if os.environ.get("BRIGHTFLOW_REQUIRE_BROWSER") == "1":
            pytest.fail(f"BRIGHTFLOW_REQUIRE_BROWSER=1 but {problem}")
        pytest.skip(problem)


@dataclass
class PageEvents:
    """What a page did: console messages ``(type, text)``, uncaught errors, and every URL requested."""

    console: list = field(default_factory=list)
    page_errors: list = field(default_factory=list)
    requests: list = field(default_factory=list)

    @property
    def console_errors(self):
        return [text for kind, text in self.console if kind == "error"]

    @property
    def network_requests(self):
        """Requests to anything but the page itself, inline data and its own blobs."""
        return [url for url in self.requests if not url.startswith(LOCAL_SCHEMES)]


@contextmanager
def open_page(path, viewport=(1300, 1100), ready="() => true", timeout_ms=60_000):
    """Open ``path`` (an HTML file) from a ``file://`` URL in headless Chromium.

    Parameters
    ----------
    path : path
        The page.
    viewport : (width, height)
        The window's size in CSS pixels.
    ready : str
        A JavaScript function (as text) that returns true once the page is ready; waited for.
    timeout_ms : int
        Longest wait for the page and for ``ready``.

    Yields
    ------
    (playwright.sync_api.Page, PageEvents)
        The page, and the record of its console, errors and requests (kept up to date). The
        browser is closed on leaving the block.
    """
    from playwright.sync_api import sync_playwright

    events = PageEvents()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium_path()), args=list(CHROMIUM_FLAGS))
        try:
            page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]}, accept_downloads=True)
            page.set_default_timeout(timeout_ms)
            page.on("console", lambda message: events.console.append((message.type, message.text)))
            page.on("pageerror", lambda error: events.page_errors.append(str(error)))
            page.on("request", lambda request: events.requests.append(request.url))
            page.goto(Path(path).resolve().as_uri())
            page.wait_for_function(ready)
            yield page, events
        finally:
            browser.close()
