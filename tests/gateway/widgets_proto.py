"""A service the gateway knows nothing about, compiled at test time.

`demo.widgets.v1.WidgetService` exercises every `google.api.http` feature the
gateway claims to route generically: path variables (plain, nested
`{widget.name}`, multi-segment `{path=shelves/**}`), a custom verb
(`:cancel`, `:tag`), `body: "*"`, a body bound to a message field and to a
repeated field (a bare JSON array), `response_body` on a message field and
on a repeated field, query parameters onto the remaining fields (string,
int32, int64, bool, repeated string, enum by name, nested `filter.color`),
a `custom` HTTP method, `additional_bindings`, and the
`research.http.v1.response` rule (201 + Location, created_field, 204,
etag_field) and `research.http.v1.request` rule (If-Match onto a field,
If-None-Match), on `Versioned` resources with an int64 path variable.
`Widget.parent` makes the message recursive.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from types import ModuleType

from google.api import annotations_pb2
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[2]
PROTO_PATH = "demo/widgets/v1/widgets.proto"
SERVICE = "demo.widgets.v1.WidgetService"

WIDGETS_PROTO = """\
syntax = "proto3";

package demo.widgets.v1;

import "google/api/annotations.proto";
import "google/protobuf/field_mask.proto";
import "google/protobuf/struct.proto";
import "google/protobuf/timestamp.proto";
import "research/http/v1/response.proto";

service WidgetService {
  // Nested path variable; response_body on a message field; an additional
  // binding with a route of its own (and no response_body).
  rpc GetWidget(GetWidgetRequest) returns (GetWidgetResponse) {
    option (google.api.http) = {
      get: "/v1/shelves/{shelf}/widgets/{widget.name}"
      response_body: "widget"
      additional_bindings {get: "/v1/widgets/{widget.name}"}
    };
  }
  // body onto a message field; the update mask comes from the body's keys.
  rpc UpdateWidget(UpdateWidgetRequest) returns (Widget) {
    option (google.api.http) = {
      patch: "/v1/shelves/{shelf}/widgets/{widget.name}"
      body: "widget"
    };
  }
  rpc DeleteWidget(DeleteWidgetRequest) returns (DeleteWidgetResponse) {
    option (google.api.http) = {delete: "/v1/shelves/{shelf}/widgets/{name}"};
    option (research.http.v1.response) = {status: 204};
  }
  // A literal segment where GetWidget has a variable, declared after it.
  rpc ListFeatured(ListWidgetsRequest) returns (ListWidgetsResponse) {
    option (google.api.http) = {get: "/v1/shelves/{shelf}/widgets/featured"};
  }
  // Query parameters; response_body on a repeated field (a bare array).
  rpc ListWidgets(ListWidgetsRequest) returns (ListWidgetsResponse) {
    option (google.api.http) = {
      get: "/v1/shelves/{shelf}/widgets"
      response_body: "widgets"
    };
  }
  rpc CreateWidget(CreateWidgetRequest) returns (CreateWidgetResponse) {
    option (google.api.http) = {
      post: "/v1/shelves/{shelf}/widgets"
      body: "*"
    };
    option (research.http.v1.response) = {
      status: 201
      location: "/v1/shelves/{shelf}/widgets/{widget.name}"
    };
  }
  // body onto a repeated field: the body is a bare JSON array.
  rpc TagWidgets(TagWidgetsRequest) returns (TagWidgetsResponse) {
    option (google.api.http) = {
      post: "/v1/shelves/{shelf}/widgets:tag"
      body: "names"
    };
  }
  // A custom verb on the same shape as GetWidget's route.
  rpc CancelWidget(CancelWidgetRequest) returns (Widget) {
    option (google.api.http) = {
      post: "/v1/shelves/{shelf}/widgets/{name}:cancel"
      body: "*"
    };
  }
  // A custom HTTP method and a multi-segment variable.
  rpc SearchWidgets(SearchWidgetsRequest) returns (ListWidgetsResponse) {
    option (google.api.http) = {
      custom: {kind: "SEARCH", path: "/v1/{path=shelves/**}"}
      body: "filter"
    };
  }
  rpc ImportWidget(ImportWidgetRequest) returns (ImportWidgetResponse) {
    option (google.api.http) = {
      post: "/v1/widgets:import"
      body: "*"
      response_body: "widget"
    };
    option (research.http.v1.response) = {
      created_field: "created"
      location: "/v1/widgets/{widget.name}"
    };
  }
  // Aborts with the status it is asked for.
  rpc Fail(FailRequest) returns (FailResponse) {
    option (google.api.http) = {
      post: "/v1/failures"
      body: "*"
    };
  }
  // No google.api.http rule: not routed.
  rpc Hidden(FailRequest) returns (FailResponse);
  // ETag from a field of the message response_body picks; If-None-Match.
  rpc GetVersioned(GetVersionedRequest) returns (GetVersionedResponse) {
    option (google.api.http) = {
      get: "/v1/versioned/{name}"
      response_body: "versioned"
    };
    option (research.http.v1.response) = {etag_field: "versioned.etag"};
    option (research.http.v1.request) = {if_none_match: true};
  }
  // If-Match onto a request field beside a body bound to a message field.
  rpc UpdateVersioned(UpdateVersionedRequest) returns (Versioned) {
    option (google.api.http) = {
      patch: "/v1/versioned/{versioned.name}"
      body: "versioned"
    };
    option (research.http.v1.response) = {etag_field: "etag"};
    option (research.http.v1.request) = {if_match_field: "etag"};
  }
  // If-Match on a 204.
  rpc DeleteVersioned(DeleteVersionedRequest) returns (DeleteWidgetResponse) {
    option (google.api.http) = {delete: "/v1/versioned/{name}"};
    option (research.http.v1.response) = {status: 204};
    option (research.http.v1.request) = {if_match_field: "etag"};
  }
  // A custom verb on the shape of the routes above; body "*" and If-Match.
  rpc RestoreVersioned(RestoreVersionedRequest) returns (Versioned) {
    option (google.api.http) = {
      post: "/v1/versioned/{name}:restore"
      body: "*"
    };
    option (research.http.v1.response) = {etag_field: "etag"};
    option (research.http.v1.request) = {if_match_field: "etag"};
  }
  // An int64 path variable.
  rpc GetVersion(GetVersionRequest) returns (Versioned) {
    option (google.api.http) = {get: "/v1/versioned/{name}/versions/{version}"};
  }
}

enum Color {
  COLOR_UNSPECIFIED = 0;
  RED = 1;
  GREEN = 2;
  BLUE = 3;
}

enum View {
  VIEW_UNSPECIFIED = 0;
  BASIC = 1;
  FULL = 2;
}

message Widget {
  string name = 1;
  Color color = 2;
  int32 size = 3;
  optional string note = 4;
  repeated string tags = 5;
  google.protobuf.Struct attributes = 6;
  map<string, double> scores = 7;
  int64 serial = 8;
  bytes blob = 9;
  google.protobuf.Timestamp made_at = 10;
  optional double weight = 11;
  map<string, int32> counts = 12;
  google.protobuf.Value extra = 13;
  Widget parent = 14;
}

message Filter {
  Color color = 1;
  optional int32 min_size = 2;
}

message GetWidgetRequest {
  string shelf = 1;
  Widget widget = 2;
  View view = 3;
}

message GetWidgetResponse {
  Widget widget = 1;
}

message UpdateWidgetRequest {
  string shelf = 1;
  Widget widget = 2;
  google.protobuf.FieldMask update_mask = 3;
}

message DeleteWidgetRequest {
  string shelf = 1;
  string name = 2;
  bool force = 3;
}

message DeleteWidgetResponse {}

message ListWidgetsRequest {
  string shelf = 1;
  string name_prefix = 2;
  int32 page_size = 3;
  repeated string labels = 4;
  View view = 5;
  Filter filter = 6;
  optional bool include_hidden = 7;
  int64 since = 8;
}

message ListWidgetsResponse {
  repeated Widget widgets = 1;
  int32 total = 2;
}

message CreateWidgetRequest {
  string shelf = 1;
  Widget widget = 2;
  bool validate_only = 3;
}

message CreateWidgetResponse {
  string shelf = 1;
  Widget widget = 2;
}

message TagWidgetsRequest {
  string shelf = 1;
  repeated string names = 2;
  Color color = 3;
}

message TagWidgetsResponse {
  repeated string tagged = 1;
}

message CancelWidgetRequest {
  string shelf = 1;
  string name = 2;
  string reason = 3;
}

message SearchWidgetsRequest {
  string path = 1;
  Filter filter = 2;
  int32 limit = 3;
  // Not a FieldMask: a plain string query parameter of that name.
  string update_mask = 4;
}

message ImportWidgetRequest {
  string source = 1;
  bool exists = 2;
}

message ImportWidgetResponse {
  Widget widget = 1;
  bool created = 2;
}

message FailRequest {
  string code = 1;
  string message = 2;
  // Attach a google.rpc.BadRequest naming this field.
  string bad_field = 3;
}

message FailResponse {}

message Versioned {
  string name = 1;
  string etag = 2;
  int64 version = 3;
  string note = 4;
}

message GetVersionedRequest {
  string name = 1;
}

message GetVersionedResponse {
  Versioned versioned = 1;
}

message UpdateVersionedRequest {
  Versioned versioned = 1;
  string etag = 2;
  google.protobuf.FieldMask update_mask = 3;
}

message DeleteVersionedRequest {
  string name = 1;
  string etag = 2;
}

message RestoreVersionedRequest {
  string name = 1;
  string etag = 2;
  string reason = 3;
}

message GetVersionRequest {
  string name = 1;
  int64 version = 2;
}
"""


def _include_paths(directory: Path) -> list[str]:
    # As scripts/gen_protos.py: google/api from googleapis-common-protos, the
    # well-known types from grpcio-tools, research/http from protos/.
    googleapis = Path(annotations_pb2.__file__).resolve().parents[2]
    well_known = Path(str(resources.files("grpc_tools"))) / "_proto"
    return [f"-I{directory}", f"-I{ROOT / 'protos'}", f"-I{googleapis}", f"-I{well_known}"]


@contextmanager
def widgets_module(directory: Path) -> Iterator[ModuleType]:
    """Write the proto into `directory`, compile it there, and import the
    generated `widgets_pb2` (its imports, `research.http.v1.response_pb2`
    among them, come from the installed packages). On exit the directory
    leaves sys.path and the module sys.modules; the descriptors stay in the
    default pool, where importing the same file again is harmless."""
    with proto_module(directory, PROTO_PATH, WIDGETS_PROTO) as module:
        yield module


@contextmanager
def proto_module(directory: Path, path: str, source: str) -> Iterator[ModuleType]:
    """Compile the proto `source` as `path` (e.g. "demo/x/v1/x.proto") in
    `directory` and import its `_pb2` module, as `widgets_module` does. Its
    package must be one no other test file uses: the default pool keeps
    every file it saw."""
    written = directory / path
    written.parent.mkdir(parents=True, exist_ok=True)
    written.write_text(source)
    args = ["grpc_tools.protoc", *_include_paths(directory), f"--python_out={directory}"]
    if protoc.main([*args, path]) != 0:
        raise RuntimeError(f"protoc failed on {written}")
    module = path.removesuffix(".proto").replace("/", ".") + "_pb2"
    top = module.split(".", 1)[0]
    sys.path.insert(0, str(directory))
    importlib.invalidate_caches()
    try:
        yield importlib.import_module(module)
    finally:
        sys.path.remove(str(directory))
        for name in [n for n in sys.modules if n == top or n.startswith(f"{top}.")]:
            del sys.modules[name]
