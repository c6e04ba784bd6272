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
from gateway.errors import HttpError, not_found_route
from gateway.http import Raw
from gateway.openapi import Comments, build_document

OPENAPI = "/openapi.json"
DOCS = "/docs"
ASSETS = "/docs/assets/"
ASSETS_ROUTE = ASSETS + "{file}"  # one metrics label for every asset
DOCS_PATHS = frozenset({OPENAPI, DOCS, DOCS + "/"})
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
    """The answers of the documentation paths, built once."""

    def __init__(self, bindings: Sequence[Binding], comments: Comments | None = None) -> None:
        self.document = build_document(bindings, comments or Comments.load())
        self.openapi = Raw(orjson.dumps(self.document), "application/json")
        init = _INIT.encode()
        title = html.escape(self.document["info"]["title"])
        page = _PAGE.replace("$title", title).replace("$init", _INIT)
        self.page = Raw(page.encode(), HTML)
        digest = base64.b64encode(hashlib.sha256(init).digest()).decode()
        self.page_headers = [
            ("content-security-policy", _CSP.format(digest=digest)),
            ("x-content-type-options", "nosniff"),
        ]
        self.folder = swagger_ui_folder()
        # The names that may be asked for: the folder's files at start-up,
        # less its HTML pages, which would be served without this page's CSP.
        self.assets = frozenset(
            p.name
            for p in (self.folder.iterdir() if self.folder is not None else ())
            if p.is_file() and p.suffix in _ASSET_TYPES
        )
        self._cache: dict[str, Raw] = {}

    @staticmethod
    def serves(path: str) -> bool:
        return path in DOCS_PATHS or path.startswith(ASSETS)

    @staticmethod
    def label(path: str) -> str:
        """The route label of a served path (logs and metrics)."""
        if path.startswith(ASSETS):
            return ASSETS_ROUTE
        return OPENAPI if path == OPENAPI else DOCS

    def answer(self, path: str) -> tuple[str, Raw, list[tuple[str, str]]]:
        """(route label, body, headers) for a GET of `path` (`serves(path)`
        is true); HttpError 404 for an asset that is not there."""
        if path == OPENAPI:
            return OPENAPI, self.openapi, [("cache-control", "no-cache")]
        if path in DOCS_PATHS:
            if self.folder is None:
                message = f"{DOCS} needs the {SWAGGER_UI_PACKAGE} package (swagger-ui-py)"
                raise HttpError(404, grpc.StatusCode.NOT_FOUND, message)
            return DOCS, self.page, [*self.page_headers, ("cache-control", "no-cache")]
        name = path[len(ASSETS) :]
        if self.folder is None or name not in self.assets:
            raise not_found_route("GET", path)
        asset = self._cache.get(name)
        if asset is None:
            payload = (self.folder / name).read_bytes()
            asset = Raw(payload, _ASSET_TYPES[Path(name).suffix])
            self._cache[name] = asset
        headers = [("cache-control", "public, max-age=3600"), ("x-content-type-options", "nosniff")]
        return ASSETS_ROUTE, asset, headers
