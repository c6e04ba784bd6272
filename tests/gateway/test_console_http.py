"""`/console` over HTTP, through the real gateway (CONTRACT §12): the page at
every console path, each file under `gateway/console/assets/` with its type
and entity tag, 304 and HEAD, the contract's 404, path tricks that must
never reach a file outside the assets folder, open with API_TOKENS set,
absent from /openapi.json; and static checks over the files themselves (no
inline script or style, no HTML parsing of strings, no other host, every
asset reachable from the page).

The gateway here is the one `python -m gateway` runs, on a free port, with
upstreams that are never called: the console is the gateway's own page and
needs neither service. The token test runs the whole stack, so that the API
it guards is really there."""

from __future__ import annotations

import asyncio
import hashlib
import posixpath
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from gateway.config import Settings
from gateway.server import create_server
from research_common.auth import Tokens
from tests.fixtures.stack import guarded_stack

# The async tests share one event loop, and one gateway, per module.
module_loop = pytest.mark.asyncio(loop_scope="module")

ROOT = Path(__file__).resolve().parents[2]
CONSOLE = ROOT / "gateway" / "console"
ASSETS = CONSOLE / "assets"
PAGE = (CONSOLE / "index.html").read_bytes()
# The page's policy, spelled out: scripts and styles from the gateway only
# (no inline script, no inline style, no other host), API calls to it only.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# What each kind of asset is served as; a file of any other kind would not
# be served at all.
TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json",
}
EXPERIMENT_ID = "0b7e4e0c-3f1d-4a53-9d7e-2a8f6c1e5b90"
TOKEN = "console-token.1"


def asset_files() -> list[Path]:
    """Every file under gateway/console/assets, walked now (the views are
    added to it while the console grows)."""
    return sorted(path for path in ASSETS.rglob("*") if path.is_file())


def asset_url(path: Path) -> str:
    return "/console/assets/" + path.relative_to(ASSETS).as_posix()


def entity_tag(payload: bytes) -> str:
    """The file's tag: a digest of its bytes, so that any change to the
    file (an upgrade) changes it and a browser's copy is revalidated."""
    return '"' + hashlib.blake2b(payload, digest_size=12).hexdigest() + '"'


def not_found_body(path: str, method: str = "GET") -> dict[str, object]:
    message = f"no route for {method} {path}"
    return {"code": 5, "message": message, "detail": message, "details": []}


@dataclass(frozen=True)
class Served:
    http: httpx.AsyncClient
    port: int


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served() -> AsyncIterator[Served]:
    """The gateway on a free port (its upstreams are never called): once a module."""
    settings = Settings(
        experiments_address="127.0.0.1:9", tracking_address="127.0.0.1:9", shutdown_grace=1
    )
    server, port = create_server(settings, "127.0.0.1:0")
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            yield Served(http, port)
    finally:
        await server.stop()


# --- the page -----------------------------------------------------------------


PAGE_PATHS = [
    "/console",
    "/console/",
    f"/console/experiments/{EXPERIMENT_ID}",
    "/console/runs",
    "/console/compare?kind=runs&ids=a,b&baseline=a",
]


@module_loop
@pytest.mark.parametrize("path", PAGE_PATHS)
async def test_every_console_path_answers_the_page(served: Served, path: str) -> None:
    response = await served.http.get(path)
    assert response.status_code == 200
    assert response.content == PAGE
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["content-security-policy"] == CSP
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["etag"] == entity_tag(PAGE)


@module_loop
async def test_the_page_is_revalidated_by_its_tag(served: Served) -> None:
    tag = entity_tag(PAGE)
    for asked in (tag, f"W/{tag}", f'"other", {tag}', "*"):
        response = await served.http.get("/console/runs", headers={"If-None-Match": asked})
        assert response.status_code == 304, asked
        assert response.content == b""
        assert response.headers["etag"] == tag
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["content-security-policy"] == CSP
    changed = await served.http.get("/console", headers={"If-None-Match": '"before-upgrade"'})
    assert changed.status_code == 200
    assert changed.content == PAGE


@module_loop
async def test_head_answers_the_page_without_a_body(served: Served) -> None:
    got = await served.http.get("/console/experiments")
    head = await served.http.head("/console/experiments")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == str(len(PAGE))
    for name in ("content-type", "etag", "cache-control", "content-security-policy"):
        assert head.headers[name] == got.headers[name], name


# --- the assets ---------------------------------------------------------------


@module_loop
async def test_every_asset_is_served_with_its_type_and_tag(served: Served) -> None:
    files = asset_files()
    assert {path.name for path in files} >= {"app.js", "api.js", "dom.js", "style.css"}
    tags: dict[str, str] = {}
    for path in files:
        url = asset_url(path)
        payload = path.read_bytes()
        assert path.suffix in TYPES, f"{url}: the gateway serves no {path.suffix} file"
        response = await served.http.get(url)
        assert response.status_code == 200, url
        assert response.content == payload, url
        assert response.headers["content-type"] == TYPES[path.suffix], url
        assert response.headers["x-content-type-options"] == "nosniff", url
        assert response.headers["cache-control"] == "no-cache", url
        assert response.headers["etag"] == entity_tag(payload), url
        tags[url] = response.headers["etag"]

        again = await served.http.get(url, headers={"If-None-Match": tags[url]})
        assert again.status_code == 304, url
        assert again.content == b"", url
        assert again.headers["etag"] == tags[url], url
        assert again.headers["cache-control"] == "no-cache", url
        assert "content-length" not in again.headers or again.headers["content-length"] == "0"

        head = await served.http.head(url)
        assert head.status_code == 200, url
        assert head.content == b"", url
        assert head.headers["content-length"] == str(len(payload)), url
        assert head.headers["content-type"] == TYPES[path.suffix], url
        assert head.headers["etag"] == tags[url], url
    # Files with different bytes never share a tag.
    contents = {path.read_bytes() for path in files}
    assert len(set(tags.values())) == len(contents)


@module_loop
async def test_an_unknown_asset_is_the_contracts_404(served: Served) -> None:
    for path in ("/console/assets/nope.js", "/console/assets/views/nope.js"):
        response = await served.http.get(path)
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/json"
        assert response.json() == not_found_body(path)
        head = await served.http.head(path)
        assert head.status_code == 404
        assert head.content == b""


# --- path tricks --------------------------------------------------------------


async def raw_get(port: int, target: str) -> tuple[int, dict[str, str], bytes]:
    """GET `target` exactly as written (httpx would remove dot segments
    before sending): status, headers, body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    assert "transfer-encoding" not in headers
    assert len(body) == int(headers["content-length"])
    return int(status_line.split()[1]), headers, body


APP_JS = (ASSETS / "app.js").read_bytes()
# (target as sent, what the gateway answers): "404" the contract's 404,
# "page" index.html, "app.js" that asset. An asset is looked up by its exact
# name in a table of the files read at start-up, never by a path on disk, so
# a dot segment, encoded or not, names nothing there.
TRICKS = [
    ("/console/assets/../index.html", "404"),
    ("/console/assets/%2e%2e/console.py", "404"),
    ("/console/assets/%2E%2E/%2E%2E/console.py", "404"),
    ("/console/assets/..%2Findex.html", "404"),
    ("/console/assets/%2e%2e%2f%2e%2e%2fconsole.py", "404"),
    ("/console/assets/%2Fetc%2Fpasswd", "404"),
    ("/console/assets/./app.js", "404"),
    ("/console/assets/app.js%00", "404"),
    ("/console/assets/views/", "404"),
    ("/console/assets/views", "404"),
    ("/console/assets/", "404"),
    ("/console/assets", "404"),
    # An empty segment matches no route at all.
    ("/console/assets//app.js", "404"),
    # An encoded slash is decoded into the name: the same asset, nothing else.
    ("/console/assets%2Fapp.js", "app.js"),
    ("/console/assets%2F..%2Findex.html", "404"),
    # Not under assets/: the page (the console's router says "not found").
    ("/console/../gateway/console.py", "page"),
    ("/console/%2e%2e/%2e%2e/etc/passwd", "page"),
    ("/console/index.html", "page"),
    ("/console/console.py", "page"),
]


@module_loop
@pytest.mark.parametrize(("target", "expected"), TRICKS)
async def test_path_tricks_never_leave_the_assets_folder(
    served: Served, target: str, expected: str
) -> None:
    status, headers, body = await raw_get(served.port, target)
    if expected == "404":
        assert status == 404
        assert headers["content-type"] == "application/json"
        assert body.startswith(b'{"code":5,"message":"no route for GET ')
    elif expected == "page":
        assert status == 200
        assert body == PAGE
        assert headers["content-security-policy"] == CSP
    else:
        assert status == 200
        assert body == APP_JS
        assert headers["content-type"] == TYPES[".js"]
    # Whatever the answer, no byte of a file outside the assets came back.
    assert (ROOT / "gateway" / "console.py").read_bytes()[:200] not in body


@module_loop
async def test_a_path_that_is_not_utf8_is_400(served: Served) -> None:
    status, headers, body = await raw_get(served.port, "/console/assets/%ff")
    assert status == 400
    assert headers["content-type"] == "application/json"
    message = b"the path is not valid UTF-8 once percent-decoded"
    assert body.startswith(b'{"code":3,"message":"' + message + b'"')


# --- tokens and the API document ----------------------------------------------


@module_loop
async def test_with_tokens_the_console_is_open_and_the_api_is_not(tmp_path: Path) -> None:
    async with guarded_stack(tmp_path, Tokens((TOKEN,))) as (http, _):
        for path in ("/console", "/console/runs", f"/console/experiments/{EXPERIMENT_ID}"):
            page = await http.get(path)
            assert page.status_code == 200, path
            assert page.content == PAGE
        for file in asset_files():
            asset = await http.get(asset_url(file))
            assert asset.status_code == 200, file
            assert asset.content == file.read_bytes()
        # Nothing secret in a missing asset: the same 404 as without tokens.
        missing = await http.get("/console/assets/nope.js")
        assert missing.status_code == 404
        assert missing.json() == not_found_body("/console/assets/nope.js")

        refused = await http.get("/api/v1/experiments")
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert refused.json()["code"] == 16
        allowed = await http.get(
            "/api/v1/experiments", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert allowed.status_code == 200
        assert allowed.json() == []


@module_loop
async def test_the_api_document_does_not_list_the_console(served: Served) -> None:
    document = (await served.http.get("/openapi.json")).json()
    paths = list(document["paths"])
    assert paths, "the document lists the API"
    assert [path for path in paths if path.startswith("/console")] == []
    assert "console" not in str(document["paths"]).lower()


# --- the files themselves -----------------------------------------------------


class _Page(HTMLParser):
    """Every element of index.html with its attributes, and the text inside
    each <script> and <style>."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.inline: dict[str, list[str]] = {"script": [], "style": []}
        self._inside: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))
        if tag in self.inline:
            self._inside = tag

    def handle_endtag(self, tag: str) -> None:
        if tag == self._inside:
            self._inside = None

    def handle_data(self, data: str) -> None:
        if self._inside is not None and data.strip():
            self.inline[self._inside].append(data)


def parsed_page() -> _Page:
    page = _Page()
    page.feed(PAGE.decode())
    page.close()
    return page


def test_the_page_has_no_inline_script_or_style() -> None:
    page = parsed_page()
    scripts = [attributes for tag, attributes in page.elements if tag == "script"]
    assert scripts, "the page loads its script"
    for attributes in scripts:
        assert attributes.get("type") == "module", attributes
        assert (attributes.get("src") or "").startswith("/console/assets/"), attributes
    assert page.inline == {"script": [], "style": []}
    for tag, attributes in page.elements:
        assert "style" not in attributes, tag
        handlers = [name for name in attributes if name.startswith("on")]
        assert handlers == [], (tag, handlers)
        for name in ("src", "href", "action"):
            value = attributes.get(name)
            if value is not None and value != "data:,":  # the empty icon
                # The gateway's own paths or a fragment: never another host.
                assert value.startswith(("/", "#")), value
                assert not value.startswith("//"), value
                assert not value.lower().startswith("javascript:"), value


def console_files() -> list[Path]:
    return sorted(path for path in CONSOLE.rglob("*") if path.is_file())


# A line that is only a comment (`// ...`, `/* ...`, ` * ...`, `<!-- ...`):
# comments may name what the code must never do.
_COMMENT_LINE = re.compile(r"^\s*(//|/\*|\*|<!--)")
_BLOCK_COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)
FORBIDDEN = {
    "innerHTML": re.compile(r"(\.|\[\s*[\"'`])\s*innerHTML\b"),
    "outerHTML": re.compile(r"(\.|\[\s*[\"'`])\s*outerHTML\b"),
    "insertAdjacentHTML": re.compile(r"\binsertAdjacentHTML\b"),
    "document.write": re.compile(r"\bdocument\s*\.\s*write(ln)?\b"),
    "eval(": re.compile(r"(?<![\w.$])eval\s*\("),
    "new Function": re.compile(r"\bnew\s+Function\s*\("),
    "string timer": re.compile(r"\bset(Timeout|Interval)\s*\(\s*[\"'`]"),
}


def code_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Numbered lines of `path` that are not comment lines (CSS block
    comments removed first)."""
    text = path.read_text()
    if path.suffix == ".css":
        text = _BLOCK_COMMENT.sub(lambda match: "\n" * match.group().count("\n"), text)
    for number, line in enumerate(text.splitlines(), 1):
        if not _COMMENT_LINE.match(line):
            yield number, line


def test_no_file_turns_a_string_into_html_or_code() -> None:
    found = [
        f"{path.relative_to(CONSOLE)}:{number}: {name}: {line.strip()}"
        for path in console_files()
        for number, line in code_lines(path)
        for name, pattern in FORBIDDEN.items()
        if pattern.search(line)
    ]
    assert found == []


_URL = re.compile(r"\b(?:https?:)?//[A-Za-z0-9.-]+\.[A-Za-z]{2,}[^\s\"'`)]*")
# XML namespaces are names, not addresses: nothing is fetched from them.
_NAMESPACES = ("http://www.w3.org/",)


def test_nothing_is_asked_of_another_host() -> None:
    found = [
        f"{path.relative_to(CONSOLE)}:{number}: {url}"
        for path in console_files()
        for number, line in code_lines(path)
        for url in _URL.findall(line)
        if not url.startswith(_NAMESPACES)
    ]
    assert found == []


# How files name other files: index.html by attribute (absolute paths),
# scripts by string literal (static and dynamic imports, and module paths
# kept in tables such as the shell's routes), stylesheets by url() and @import.
_ATTRIBUTE_REFERENCE = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")
_SCRIPT_REFERENCE = re.compile(
    r"""(["'`])((?:\.{1,2}/|/console/assets/)[^"'`\s]*?\.(?:js|css|json|svg|png|ico))\1"""
)
_STYLE_REFERENCE = re.compile(r"""(?:url\(\s*["']?|@import\s+["'])([^"')\s]+)""")


def references(name: str, text: str) -> set[str]:
    """The asset names (relative to the console folder, e.g.
    `assets/views/runs.js`) that the file `name` refers to."""
    if name.endswith(".html"):
        found = _ATTRIBUTE_REFERENCE.findall(text)
    elif name.endswith(".js"):
        found = [match[1] for match in _SCRIPT_REFERENCE.findall(text)]
    elif name.endswith(".css"):
        found = _STYLE_REFERENCE.findall(text)
    else:
        found = []
    names = set()
    for reference in found:
        reference = reference.split("?", 1)[0].split("#", 1)[0]
        # In a stylesheet a bare name is relative too; in a module it would
        # be a package name, which a browser cannot load (the reader never
        # finds one: its pattern wants ./, ../ or /console/assets/).
        relative = reference.startswith(".") or (
            name.endswith(".css") and ":" not in reference and not reference.startswith("/")
        )
        if reference.startswith("/console/"):
            names.add(reference.removeprefix("/console/"))
        elif relative:
            names.add(posixpath.normpath(posixpath.join(posixpath.dirname(name), reference)))
    return names


def reference_graph() -> dict[str, set[str]]:
    files = {"index.html": PAGE.decode()}
    for path in asset_files():
        files[f"assets/{path.relative_to(ASSETS).as_posix()}"] = path.read_text()
    return {name: references(name, text) for name, text in files.items()}


def test_every_asset_is_reachable_from_the_page() -> None:
    graph = reference_graph()
    reached = {"index.html"}
    waiting = ["index.html"]
    while waiting:
        for name in graph.get(waiting.pop(), set()):
            if name not in reached:
                reached.add(name)
                waiting.append(name)
    unreached = sorted(set(graph) - reached)
    assert unreached == [], "assets that nothing loads"


def test_every_reference_names_an_asset() -> None:
    """A module or stylesheet that names a file which is not there (a typo,
    a view not yet written) would fail in the browser."""
    graph = reference_graph()
    dangling = sorted(
        f"{name} -> {reference}"
        for name, found in graph.items()
        for reference in found
        if reference not in graph and (name != "index.html" or reference.startswith("assets/"))
    )
    assert dangling == []


def test_the_reference_reader_reads_every_form() -> None:
    text = """
        import { h } from "../dom.js";
        export { api } from './api.js';
        const view = await import("./views/compare.js");
        const ROUTES = [[/^x$/, "runs", "./views/runs.js"]];
        const away = "https://example.com/x.js";
    """
    assert references("assets/views/runs.js", text) == {
        "assets/dom.js",
        "assets/views/api.js",
        "assets/views/views/compare.js",
        "assets/views/views/runs.js",
    }
    assert references("assets/app.js", text) == {
        "dom.js",  # outside the assets: test_every_reference_names_an_asset refuses it
        "assets/api.js",
        "assets/views/compare.js",
        "assets/views/runs.js",
    }
    style = """@import "./records.css"; .x { background: url('views/a.svg'); }"""
    assert references("assets/style.css", style) == {"assets/records.css", "assets/views/a.svg"}
    page = """<link href="/console/assets/style.css"><a href="/console/runs">"""
    assert references("index.html", page) == {"assets/style.css", "runs"}
