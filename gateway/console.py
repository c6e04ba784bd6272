"""`GET /console`: the research console (CONTRACT §12), a single page that
speaks only to `/api/v1`, from the files under `gateway/console/` that ship
with the gateway (no CDN, nothing fetched at run time).

Every file is read once, at start-up, with its entity tag (a digest of its
bytes): assets are answered with `ETag` and `Cache-Control: no-cache`, so a
browser keeps them and asks again cheaply (304) after an upgrade changes
them. `/console/assets/<path>` names a file exactly; any other path under
`/console` is the page itself, so that the console's own URLs
(`/console/experiments/<id>`) can be opened, bookmarked and reloaded. The
page's Content-Security-Policy allows scripts and styles from the gateway
only: no inline script, no other host.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from gateway.bindings import RequestRule
from gateway.endpoints import Route, page
from gateway.errors import not_found_route
from gateway.http import Receive, Request
from gateway.preconditions import read_conditions
from gateway.responses import Response

CONSOLE = "/console"
# One route for everything under /console: assets by exact name, the page
# for every other path.
CONSOLE_ROUTE = "/console/{path=**}"
FOLDER = Path(__file__).parent / "console"
ASSETS = "assets/"
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json",
}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_REVALIDATE = RequestRule(if_none_match=True)


def _tagged(payload: bytes, content_type: str, extra: list[tuple[str, str]]) -> Response:
    tag = hashlib.blake2b(payload, digest_size=12).hexdigest()
    headers = [
        ("etag", f'"{tag}"'),
        ("cache-control", "no-cache"),
        ("x-content-type-options", "nosniff"),
        *extra,
    ]
    return Response.raw(payload, content_type, headers)


class Console:
    """The console's files, read once, as routes of the gateway."""

    def __init__(self, folder: Path = FOLDER) -> None:
        self.folder = folder
        self.assets: dict[str, Response] = {}
        for path in sorted((folder / ASSETS).rglob("*")):
            content_type = TYPES.get(path.suffix)
            if path.is_file() and content_type is not None:
                name = path.relative_to(folder).as_posix()
                self.assets[name] = _tagged(path.read_bytes(), content_type, [])
        self.page = _tagged(
            (folder / "index.html").read_bytes(),
            TYPES[".html"],
            [("content-security-policy", CSP), ("referrer-policy", "same-origin")],
        )

    def routes(self) -> list[Route]:
        """`/console` and everything under it: open to all, like /docs (the
        page asks for a token when /api/v1 does)."""
        return [
            page(CONSOLE, self._page, "Research console"),
            page(CONSOLE_ROUTE, self._path, "Research console"),
        ]

    async def _page(self, request: Request, receive: Receive, _: dict[str, str]) -> Response:
        return _conditional(self.page, request)

    async def _path(
        self, request: Request, receive: Receive, variables: dict[str, str]
    ) -> Response:
        path = variables["path"]
        if path.startswith(ASSETS) or path == ASSETS.rstrip("/"):
            asset = self.assets.get(path)
            if asset is None:
                raise not_found_route(request.method, request.path)
            return _conditional(asset, request)
        return _conditional(self.page, request)


def _conditional(response: Response, request: Request) -> Response:
    """304 with the same headers when `If-None-Match` names the file's tag."""
    etag = dict(response.headers)["etag"].strip('"')
    if read_conditions(_REVALIDATE, request).not_modified(etag):
        return Response(304, b"", response.headers)
    return response
