"""UpdateExperiment's rules (CONTRACT §5, AIP-134): which fields a request
replaces (its update_mask, or the fields it sets), which it may not touch
(write-once lineage, output-only fields), and the values to store."""

from __future__ import annotations

from typing import Any

from experiments_svc import validation as check
from experiments_svc.convert import has_field
from experiments_svc.models import WRITE_ONCE_FIELDS
from research.experiments.v1 import experiments_pb2
from research_common.errors import InvalidArgument, echo

# Update rules by field of Experiment (CONTRACT §5).
WRITABLE = ("mlflow_run_id", "parameters", "metrics", "artifacts")
OUTPUT_ONLY = ("id", "created_at", "updated_at", "revision", "etag", "deleted_at")


def _is_populated(message: experiments_pb2.Experiment, name: str) -> bool:
    """Whether a gRPC caller set the field (the implied mask of AIP-134)."""
    field = message.DESCRIPTOR.fields_by_name[name]
    if field.has_presence:
        return has_field(message, name)
    return bool(getattr(message, name))


def update_paths(request: experiments_pb2.UpdateExperimentRequest) -> list[str]:
    """The fields to replace: the mask's paths, or the populated fields when
    no mask is given. Anything but a writable field is refused by name, and
    so is a field set outside the mask: nothing sent is dropped silently."""
    fields = request.experiment.DESCRIPTOR.fields_by_name
    populated = [name for name in fields if _is_populated(request.experiment, name)]
    for name in populated:
        if name in WRITE_ONCE_FIELDS:  # with or without a mask
            raise _write_once(name)
    paths = list(dict.fromkeys(request.update_mask.paths)) or populated
    for path in paths:
        if path in WRITABLE:
            continue
        if path in WRITE_ONCE_FIELDS:
            raise _write_once(path)
        if path in OUTPUT_ONLY:
            raise InvalidArgument.field(path, "is output only and cannot be updated")
        head = path.split(".", 1)[0]
        if head in WRITABLE:
            raise InvalidArgument.field(
                "update_mask", f"can only replace whole fields; got {echo(path)}, use {head!r}"
            )
        raise InvalidArgument.field("update_mask", f"names an unknown field {echo(path)}")
    outside = [name for name in populated if name not in paths]
    if outside:
        raise InvalidArgument.field(
            outside[0],
            f"is set but update_mask ({', '.join(paths)}) does not name it: name every "
            "field to replace in the mask, or send no mask",
        )
    return paths


def _write_once(name: str) -> InvalidArgument:
    return InvalidArgument.field(
        name, "is write-once: lineage fields cannot change after the experiment is recorded"
    )


def changes_of(experiment: experiments_pb2.Experiment, paths: list[str]) -> dict[str, Any]:
    """Stored values for the fields to replace; an unset field clears."""
    changes: dict[str, Any] = {}
    for path in paths:
        if path == "mlflow_run_id":
            present = experiment.HasField("mlflow_run_id")
            changes[path] = check.check_text(path, experiment.mlflow_run_id) if present else None
        elif path == "artifacts":
            changes[path] = check.check_artifacts(experiment.artifacts)
        else:  # parameters, metrics
            changes[path] = check.struct_to_json(getattr(experiment, path), path)
    return changes
