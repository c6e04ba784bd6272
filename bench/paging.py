"""Walking a list to its end, page after page, the way a client does: by
the `Link` header (the gateway), by `next_page_token` (the gRPC façade) or
by MLflow's own `page_token` (MLflow's REST API). Each walk returns the run
ids in the order the pages gave them, so that walks can be checked against
each other, and the time of the whole walk.

HTTP walks run on one keep-alive `http.client` connection in a worker
thread and are timed inside that thread, as `bench.http_timing` is, so that
handing the walk to a thread is not part of its time."""

from __future__ import annotations

import http.client
import json
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from research.tracking.v1 import tracking_pb2, tracking_pb2_grpc

# One link-value of RFC 8288: `<target>` then its `;`-separated parameters,
# up to the comma that starts the next link-value (or the end).
_LINK_VALUE = re.compile(r"<([^>]*)>((?:\s*;\s*[^;,]*)*)")
_REL = re.compile(r"""rel\s*=\s*(?:"([^"]*)"|([^\s;,"]+))""", re.IGNORECASE)


def next_link(header: str | None) -> str | None:
    """The target of the link whose relation types include `next` in a
    `Link` header, or None when there is none (the last page)."""
    if not header:
        return None
    for target, parameters in _LINK_VALUE.findall(header):
        for quoted, bare in _REL.findall(parameters):
            # `rel` may hold several relation types, space-separated.
            if "next" in (quoted or bare).lower().split():
                return str(target)
    return None


@dataclass(frozen=True)
class Walk:
    milliseconds: float
    run_ids: list[str]
    requests: int


class HttpWalker:
    """Sequential requests on one keep-alive connection to `base_url`."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self._connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)

    def _fresh(self) -> None:
        """A new connection before each walk, outside its time: the servers
        close a keep-alive connection left idle for a few seconds (uvicorn:
        5 s), as it is while the other side of a round walks."""
        self._connection.close()
        self._connection.connect()

    def _request(
        self, method: str, path: str, body: bytes | None
    ) -> tuple[dict[str, Any], str | None]:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        self._connection.request(method, path, body=body, headers=headers)
        response = self._connection.getresponse()
        payload = response.read()
        if response.status != 200:
            raise RuntimeError(f"{method} {path} answered {response.status}: {payload[:200]!r}")
        return json.loads(payload), response.getheader("Link")

    def walk_links(self, path: str) -> Walk:
        """GET `path`, then every `Link: <…>; rel="next"` to the last page
        (the gateway's ListRuns: `runs[].run_id`)."""
        self._fresh()
        run_ids: list[str] = []
        requests = 0
        started = time.perf_counter()
        following: str | None = path
        while following is not None:
            body, link = self._request("GET", following, None)
            requests += 1
            run_ids += [run["run_id"] for run in body.get("runs", [])]
            following = next_link(link)
        return Walk((time.perf_counter() - started) * 1000, run_ids, requests)

    def walk_search(self, path: str, search: dict[str, Any]) -> Walk:
        """POST `search` to MLflow's `runs/search`, then again with each
        `next_page_token` it answers (an offset) until it answers none."""
        self._fresh()
        run_ids: list[str] = []
        requests = 0
        started = time.perf_counter()
        token: str | None = None
        while True:
            question = search if token is None else {**search, "page_token": token}
            body, _ = self._request("POST", path, json.dumps(question).encode())
            requests += 1
            run_ids += [run["info"]["run_id"] for run in body.get("runs", [])]
            token = body.get("next_page_token") or None
            if token is None:
                return Walk((time.perf_counter() - started) * 1000, run_ids, requests)

    def close(self) -> None:
        self._connection.close()


async def walk_grpc(stub: tracking_pb2_grpc.TrackingServiceAsyncStub, page_size: int) -> Walk:
    """TrackingService.ListRuns from the first page, following
    `next_page_token` until it is empty."""
    run_ids: list[str] = []
    requests = 0
    started = time.perf_counter()
    token = ""
    while True:
        reply = await stub.ListRuns(
            tracking_pb2.ListRunsRequest(page_size=page_size, page_token=token), timeout=30
        )
        requests += 1
        run_ids += [run.run_id for run in reply.runs]
        token = reply.next_page_token
        if not token:
            return Walk((time.perf_counter() - started) * 1000, run_ids, requests)
