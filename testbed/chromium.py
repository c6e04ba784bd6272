"""The headless Chromium that the page tests (tests/fixtures/browser.py) and
the console benchmark (bench/console.py) drive through Playwright: Debian's
`chromium` package, never a browser Playwright downloads. One place for
where it is found and the flags it runs with, so that the benchmark measures
the browser the tests check."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

# Headless, and no background traffic of Chromium's own competing with the
# page.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class ChromiumMissing(Exception):
    """No Chromium executable where it was looked for; the message says where."""


def find_chromium() -> str:
    """The Chromium executable: $CHROMIUM, else `chromium` on the PATH,
    else Debian's /usr/bin/chromium; ChromiumMissing when it is not a file."""
    found = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(found).is_file():
        raise ChromiumMissing(f"no Chromium at {found} (apt-get install chromium)")
    return found
