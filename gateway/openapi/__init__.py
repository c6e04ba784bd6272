"""The gateway's OpenAPI 3.0.3 document (`GET /openapi.json`), built at
start-up from the bindings the router serves.

- `document.py` assembles the document: paths, operations, components;
- `schemas.py` writes the message schemas (output and input forms);
- `parameters.py` the path and query parameters of an operation;
- `errors.py` the `Error` schema and the shared error responses;
- `comments.py` reads the proto comments that become descriptions.

Callers outside the package need only the two names below.
"""

from __future__ import annotations

from gateway.openapi.comments import Comments
from gateway.openapi.document import build_document

__all__ = ["Comments", "build_document"]
