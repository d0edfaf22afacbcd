"""Pieces every Autoflow resource shares: the model base, metadata, conditions and durations.

Models are pydantic v2 with camelCase aliases, so Python code reads ``step.continue_on_error``
while manifests, CRDs and JSON Schemas say ``continueOnError``. ``x-kubernetes-*`` keywords
ride along in ``json_schema_extra`` and are copied into the generated CRDs by
``autoflow.crds.generate``.
"""

from __future__ import annotations

import datetime
import re
from typing import Annotated, Any, Literal

import pydantic
from pydantic import alias_generators

GROUP = "autoflow.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# An API object (or a part of one) as JSON: what the operator and the Kubernetes layer pass.
JSONDict = dict[str, Any]

# Names are DNS-1123 labels/subdomains as Kubernetes has them.
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
Name = Annotated[str, pydantic.Field(min_length=1, max_length=253, pattern=NAME_PATTERN)]

# A duration: "500ms", "10s", "1m30s", "2h", or a plain number of seconds.
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h|d))+$|^[0-9]+(\.[0-9]+)?$"
DURATION_MAX_LENGTH = 64
_DURATION_RE = re.compile(DURATION_PATTERN)
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def owner_reference(obj: JSONDict, kind: str, *, controller: bool = True) -> JSONDict:
    """An ownerReference to ``obj`` (an Autoflow resource of ``kind``): its dependents go
    when it goes. A controller reference also blocks the owner's deletion until they are gone."""
    meta_ = obj["metadata"]
    ref: JSONDict = {
        "apiVersion": obj.get("apiVersion") or API_VERSION,
        "kind": kind,
        "name": meta_["name"],
        "uid": meta_["uid"],
    }
    if controller:
        ref.update(controller=True, blockOwnerDeletion=True)
    return ref


def timestamp(ts: float) -> str:
    """Epoch seconds as a status timestamp: RFC 3339, UTC, whole seconds (``...T12:00:00Z``)."""
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def epoch(text: Any, *, lenient: bool = False) -> float | None:
    """A status timestamp as epoch seconds; None when absent. Text that is not RFC 3339 raises
    ValueError, or gives None with ``lenient`` (for values people write, such as annotations)."""
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        if lenient:
            return None
        raise


def parse_duration(value: str | float | int) -> float:
    """Seconds in a duration string (``"1m30s"`` → 90.0); plain numbers are seconds."""
    if isinstance(value, int | float):
        return float(value)
    text = value.strip()
    try:
        return float(text)
    except ValueError:
        pass
    total, pos = 0.0, 0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"{value!r} is not a duration (examples: 500ms, 10s, 1m30s, 2h)")
    return total


def _whole_seconds(value: Any) -> Any:
    # A CRD field can be an integer or a string, never a float (x-kubernetes-int-or-string),
    # so a duration is written the same way in every place: 1.5 must be "1.5s" or "1500ms".
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration (examples: 500ms, 10s, 1m30s, 2h)")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(
                f"{value!r} is not a duration: write it as a string such as '{value}s'"
            )
        return int(value)
    return value


def _check_duration(value: str | int) -> str | int:
    if isinstance(value, str) and not _DURATION_RE.fullmatch(value):
        raise ValueError(f"{value!r} is not a duration (examples: 500ms, 10s, 1m30s, 2h)")
    parse_duration(value)
    return value


Duration = Annotated[
    Annotated[
        str,
        pydantic.Field(
            max_length=DURATION_MAX_LENGTH, json_schema_extra={"pattern": DURATION_PATTERN}
        ),
    ]
    | Annotated[int, pydantic.Field(ge=0)],
    pydantic.BeforeValidator(_whole_seconds),
    pydantic.AfterValidator(_check_duration),
    pydantic.Field(
        json_schema_extra={"x-kubernetes-int-or-string": True},
        description="Duration such as 500ms, 10s, 1m30s, 2h, or a whole number of seconds.",
    ),
]


class Model(pydantic.BaseModel):
    """Base of all API types: camelCase aliases, unknown fields rejected, names accepted too."""

    model_config = pydantic.ConfigDict(
        alias_generator=alias_generators.to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=False,
    )

    def dump(self) -> dict[str, Any]:
        """The manifest form: aliases, no unset defaults, JSON-compatible values."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class ObjectMeta(pydantic.BaseModel):
    """The parts of Kubernetes metadata Autoflow reads; everything else is kept as is."""

    model_config = pydantic.ConfigDict(
        alias_generator=alias_generators.to_camel, populate_by_name=True, extra="allow"
    )

    name: Name | None = None
    namespace: str | None = None
    uid: str | None = None
    generation: int | None = None
    resource_version: str | None = None
    labels: dict[str, str] = pydantic.Field(default_factory=dict)
    annotations: dict[str, str] = pydantic.Field(default_factory=dict)


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(Model):
    """A Kubernetes condition: keyed by ``type`` in the status ``conditions`` list."""

    type: str = pydantic.Field(max_length=316)
    status: ConditionStatus
    reason: str = pydantic.Field(default="", max_length=1024)
    message: str = pydantic.Field(default="", max_length=32768)
    observed_generation: int | None = None
    last_transition_time: datetime.datetime | None = None


Conditions = Annotated[
    list[Condition],
    pydantic.Field(
        default_factory=list,
        max_length=16,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    ),
]


class LocalObjectReference(Model):
    """A reference to another object in the same namespace."""

    name: Name


class Resource(Model):
    """Common envelope of the four kinds; subclasses pin ``kind`` and add spec and status."""

    model_config = pydantic.ConfigDict(extra="forbid")

    api_version: Literal["autoflow.dev/v1alpha1"] = "autoflow.dev/v1alpha1"
    metadata: ObjectMeta = pydantic.Field(default_factory=ObjectMeta)

    @property
    def ref(self) -> str:
        """``Kind/name`` as messages name a resource."""
        kind = getattr(self, "kind", type(self).__name__)
        return f"{kind}/{self.metadata.name or '<unnamed>'}"
