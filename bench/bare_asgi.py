"""The ceiling of the gateway's server library: a bare ASGI responder on
uvicorn, configured as the gateway's server is (httptools parser, asyncio
loop, no access log), answering every request with one fixed JSON body.

    BARE_ADDR=127.0.0.1:8001 BARE_BODY_FILE=body.json python -m bench.bare_asgi
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import uvicorn

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def responder(body: bytes) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def main() -> None:
    host, _, port = os.environ.get("BARE_ADDR", "127.0.0.1:8001").rpartition(":")
    body_file = os.environ.get("BARE_BODY_FILE")
    body = Path(body_file).read_bytes() if body_file else b'{"status": "ok"}'
    uvicorn.run(
        responder(body),
        host=host,
        port=int(port),
        http="httptools",
        loop="asyncio",
        lifespan="off",
        access_log=False,
        server_header=False,
        log_config=None,
    )


if __name__ == "__main__":
    main()
