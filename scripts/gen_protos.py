"""Generate the Python stubs (messages, gRPC, and their .pyi types) from protos/.

Run it through `make protos`. Output goes to `gen/`, which is never edited by
hand and never committed. Third-party protos are not committed either: the
google/api annotations come from the installed googleapis-common-protos package
and the well-known types from grpcio-tools. The google/api files are also copied
to `.build/proto-deps/` so that `buf lint` can resolve imports offline.

Beside the stubs it writes `gen/research/descriptors.binpb`, a FileDescriptorSet
with source info: the descriptors compiled into the stubs carry no comments, and
the gateway's OpenAPI document takes its descriptions from the proto comments.
"""

from __future__ import annotations

import shutil
import sys
from importlib import resources
from pathlib import Path

from google.api import annotations_pb2
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
GEN = ROOT / "gen"
# Written into gen/research/; read by gateway/openapi/comments.py.
DESCRIPTOR_SET_NAME = "descriptors.binpb"
PROTO_DEPS = ROOT / ".build" / "proto-deps"
# The googleapis files our protos import, directly or through each other.
GOOGLE_API_FILES = ("annotations.proto", "http.proto")


def main() -> int:
    # `google` is a namespace package spread over several distributions, so
    # locate google/api through one of its modules rather than the package.
    googleapis_root = Path(annotations_pb2.__file__).resolve().parents[2]
    wkt_root = Path(str(resources.files("grpc_tools"))) / "_proto"

    deps_api = PROTO_DEPS / "google" / "api"
    deps_api.mkdir(parents=True, exist_ok=True)
    for name in GOOGLE_API_FILES:
        shutil.copyfile(googleapis_root / "google" / "api" / name, deps_api / name)

    shutil.rmtree(GEN, ignore_errors=True)
    (GEN / "research").mkdir(parents=True)
    # mypy-protobuf's plugins are installed next to this interpreter; name them
    # explicitly so that the venv need not be on PATH.
    bin_dir = Path(sys.executable).parent
    plugins = [
        f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
    ]
    sources = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    args = [
        "grpc_tools.protoc",
        f"-I{PROTOS}",
        f"-I{googleapis_root}",
        f"-I{wkt_root}",
        *plugins,
        f"--python_out={GEN}",
        f"--mypy_out={GEN}",
        f"--grpc_python_out={GEN}",
        f"--mypy_grpc_out={GEN}",
        # Imports included: one self-contained set, comments of every file.
        f"--descriptor_set_out={GEN / 'research' / DESCRIPTOR_SET_NAME}",
        "--include_source_info",
        "--include_imports",
        *sources,
    ]
    if protoc.main(args) != 0:
        print("gen_protos: protoc failed", file=sys.stderr)
        return 1
    # Regular packages (not namespace packages), so that setuptools, mypy and
    # the import system all find them the same way.
    for directory in [GEN / "research", *(GEN / "research").rglob("*")]:
        if directory.is_dir():
            (directory / "__init__.py").touch()
    (GEN / "research" / "py.typed").touch()
    print(f"gen_protos: {len(sources)} files -> {GEN.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
