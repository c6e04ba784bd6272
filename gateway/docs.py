"""`GET /openapi.json` and the interactive page over it, `GET /docs`.

The document is built once, at start-up, from the bindings the router
serves, and kept as the bytes every request gets. The page is Swagger UI
from the files of the installed `swagger-ui-py` package (no CDN: the
gateway may run where there is no internet), served under `/docs/assets/`
by exact file name only; nothing else on disk can be named.
"""

from __future__ import annotations

import base64
import hashlib
import html
import importlib.util
from collections.abc import Sequence
from pathlib import Path

import grpc
import orjson

from gateway.bindings import Binding
from gateway.endpoints import Route, page
from gateway.errors import HttpError, not_found_route
from gateway.http import Receive, Request
from gateway.openapi import Comments, build_document
from gateway.responses import JSON, Response

OPENAPI = "/openapi.json"
DOCS = "/docs"
# One route (and metrics label) for everything under the asset folder, so
# that every such path is the documentation's to answer (404 for what is not
# an asset), token or none.
ASSETS_ROUTE = "/docs/assets/{file=**}"
SWAGGER_UI_PACKAGE = "swagger_ui"  # from the `swagger-ui-py` distribution

HTML = "text/html; charset=utf-8"
_ASSET_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".map": "application/json",
    ".png": "image/png",
}
_INIT = """\
window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: "$url",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout"
  });
};
""".replace("$url", OPENAPI)
_PAGE = """\
<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>$title</title>
  <link rel="stylesheet" href="/docs/assets/swagger-ui.css">
  <link rel="icon" type="image/png" href="/docs/assets/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/assets/swagger-ui-bundle.js"></script>
  <script>$init</script>
</body>
</html>
"""
# The page may load only what the gateway serves: a stray CDN or tracker
# reference fails loudly instead of leaking calls. Swagger UI sets inline
# styles and draws some icons as data: URIs; the one inline script is ours.
_CSP = (
    "default-src 'none'; script-src 'self' 'sha256-{digest}'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)


def swagger_ui_folder() -> Path | None:
    """The folder of Swagger UI's built files, found without importing the
    package (its __init__ pulls in web-framework adapters we do not use)."""
    spec = importlib.util.find_spec(SWAGGER_UI_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "static"
    return folder if (folder / "swagger-ui-bundle.js").is_file() else None


class ApiDocs:
    """The documentation pages, built once, as routes of the gateway."""

    def __init__(self, bindings: Sequence[Binding], comments: Comments | None = None) -> None:
        self.document = build_document(bindings, comments or Comments.load())
        self.openapi = Response.raw(
            orjson.dumps(self.document), JSON, [("cache-control", "no-cache")]
        )
        init = _INIT.encode()
        title = html.escape(self.document["info"]["title"])
        page_html = _PAGE.replace("$title", title).replace("$init", _INIT)
        digest = base64.b64encode(hashlib.sha256(init).digest()).decode()
        self.page = Response.raw(
            page_html.encode(),
            HTML,
            [
                ("content-security-policy", _CSP.format(digest=digest)),
                ("x-content-type-options", "nosniff"),
                ("cache-control", "no-cache"),
            ],
        )
        self.folder = swagger_ui_folder()
        # The names that may be asked for: the folder's files at start-up,
        # less its HTML pages, which would be served without this page's CSP.
        self.assets = frozenset(
            p.name
            for p in (self.folder.iterdir() if self.folder is not None else ())
            if p.is_file() and p.suffix in _ASSET_TYPES
        )
        self._cache: dict[str, Response] = {}

    def routes(self) -> list[Route]:
        """`/openapi.json`, `/docs` and `/docs/assets/{file}`: open to all."""
        return [
            page(OPENAPI, self._openapi, "OpenAPI document"),
            page(DOCS, self._docs, "API documentation"),
            page(ASSETS_ROUTE, self._asset, "API documentation assets"),
        ]

    async def _openapi(self, request: Request, receive: Receive, _: dict[str, str]) -> Response:
        return self.openapi

    async def _docs(self, request: Request, receive: Receive, _: dict[str, str]) -> Response:
        if self.folder is None:
            message = f"{DOCS} needs the {SWAGGER_UI_PACKAGE} package (swagger-ui-py)"
            raise HttpError(404, grpc.StatusCode.NOT_FOUND, message)
        return self.page

    async def _asset(
        self, request: Request, receive: Receive, variables: dict[str, str]
    ) -> Response:
        name = variables["file"]
        # An asset is named exactly: not with a trailing slash, which the
        # router would otherwise take as the same path.
        exact = not request.path.endswith("/")
        if self.folder is None or name not in self.assets or not exact:
            raise not_found_route(request.method, request.path)
        asset = self._cache.get(name)
        if asset is None:
            asset = Response.raw(
                (self.folder / name).read_bytes(),
                _ASSET_TYPES[Path(name).suffix],
                [("cache-control", "public, max-age=3600"), ("x-content-type-options", "nosniff")],
            )
            self._cache[name] = asset
        return asset
