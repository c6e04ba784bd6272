"""The comments of the `.proto` files, by the full name of what they document.

The descriptors compiled into the Python stubs carry no source info, so the
comments come from the FileDescriptorSet that `scripts/gen_protos.py` writes
beside the stubs (`research/descriptors.binpb`, with `--include_source_info`).
Without that file the OpenAPI document is the same, only without descriptions.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

from google.protobuf import descriptor_pb2
from google.protobuf.message import DecodeError

log = logging.getLogger("gateway.openapi")

DESCRIPTOR_SET_NAME = "descriptors.binpb"

# Field numbers of the descriptor.proto paths that source info locates.
_FILE_MESSAGE, _FILE_ENUM, _FILE_SERVICE = 4, 5, 6
_MESSAGE_FIELD, _MESSAGE_NESTED, _MESSAGE_ENUM = 2, 3, 4
_SERVICE_METHOD = 2

SourcePath = tuple[int, ...]


class Comments:
    """Leading (else trailing) comments keyed by full name: `pkg.Message`,
    `pkg.Message.field`, `pkg.Service`, `pkg.Service.Method`, `pkg.Enum`."""

    def __init__(self, by_name: dict[str, str] | None = None) -> None:
        self._by_name = by_name or {}

    def __len__(self) -> int:
        return len(self._by_name)

    def get(self, full_name: str) -> str | None:
        return self._by_name.get(full_name)

    @classmethod
    def from_descriptor_set(cls, data: bytes) -> Comments:
        files = descriptor_pb2.FileDescriptorSet.FromString(data).file
        by_name: dict[str, str] = {}
        for file in files:
            by_name.update(_file_comments(file))
        return cls(by_name)

    @classmethod
    def load(cls, path: Path | None = None) -> Comments:
        """The comments of the set at `path` (by default the generated one);
        none when it is absent or unreadable, which is logged."""
        path = path or default_descriptor_set()
        if path is None or not path.is_file():
            log.warning("no %s: the OpenAPI document has no descriptions", DESCRIPTOR_SET_NAME)
            return cls()
        try:
            return cls.from_descriptor_set(path.read_bytes())
        except (OSError, DecodeError) as error:
            log.warning("cannot read %s (%s): no descriptions", path, error)
            return cls()


def default_descriptor_set() -> Path | None:
    """`descriptors.binpb` of the generated `research` package, if importable."""
    try:
        folder = resources.files("research")
    except ModuleNotFoundError:
        return None
    return Path(str(folder / DESCRIPTOR_SET_NAME))


def _file_comments(file: descriptor_pb2.FileDescriptorProto) -> dict[str, str]:
    texts: dict[SourcePath, str] = {}
    for location in file.source_code_info.location:
        text = _clean(location.leading_comments or location.trailing_comments)
        if text:
            texts[tuple(location.path)] = text
    prefix = f"{file.package}." if file.package else ""
    named: list[tuple[str, SourcePath]] = []
    for index, message in enumerate(file.message_type):
        named += _message_names(message, prefix + message.name, (_FILE_MESSAGE, index))
    for index, enum in enumerate(file.enum_type):
        named.append((prefix + enum.name, (_FILE_ENUM, index)))
    for index, service in enumerate(file.service):
        service_name = prefix + service.name
        named.append((service_name, (_FILE_SERVICE, index)))
        for number, method in enumerate(service.method):
            path = (_FILE_SERVICE, index, _SERVICE_METHOD, number)
            named.append((f"{service_name}.{method.name}", path))
    return {name: texts[path] for name, path in named if path in texts}


def _message_names(
    message: descriptor_pb2.DescriptorProto, name: str, path: SourcePath
) -> Iterable[tuple[str, SourcePath]]:
    yield name, path
    for index, field in enumerate(message.field):
        yield f"{name}.{field.name}", (*path, _MESSAGE_FIELD, index)
    for index, nested in enumerate(message.nested_type):
        yield from _message_names(nested, f"{name}.{nested.name}", (*path, _MESSAGE_NESTED, index))
    for index, enum in enumerate(message.enum_type):
        yield f"{name}.{enum.name}", (*path, _MESSAGE_ENUM, index)


def _clean(comment: str) -> str:
    """A `//` comment's text: protoc keeps the space after `//` on each line."""
    lines = [line[1:] if line.startswith(" ") else line for line in comment.splitlines()]
    return "\n".join(line.rstrip() for line in lines).strip()
