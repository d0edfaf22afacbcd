"""The generated CRDs, JSON Schemas and API reference (DESIGN §1, "One source of truth").

Four concerns: the committed files are exactly what the generator makes from the models (drift);
every CRD schema is structural and bounded as the apiserver and its CEL cost budget want; the
manifests users write pass both the pydantic models and the generated schemas, and what the
models reject the schemas reject too; the converter refuses what it cannot express.
The real apiserver tier installs these CRDs separately; here the schemas are checked with the
``jsonschema`` package, reading ``x-kubernetes-int-or-string`` as the apiserver does.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from autoflow.crds import generate, integration, meta, run, schedule, schemas, workflow

try:
    import jsonschema
except ImportError:  # the test extra lacks it: the schema-level checks still run
    jsonschema = None  # type: ignore[assignment]  # tested below before any use

needs_jsonschema = pytest.mark.skipif(jsonschema is None, reason="needs jsonschema (test extra)")

CRDS = {c["spec"]["names"]["kind"]: c for c in generate.crds()}
MODELS: dict[str, type[meta.Resource]] = {k.name: k.model for k in generate.KINDS}
REGENERATE = "run `python -m autoflow.crds.generate --docs` and commit the result"

# Nodes exempt from a check, and why. Everything else must pass.
OWNED_BY_KUBERNETES = {
    ".metadata": "Kubernetes validates metadata itself; a CRD may only say `type: object`",
    ".apiVersion": "the apiserver checks it against the CRD's group and versions",
    ".kind": "the apiserver checks it against the CRD's names",
}

WORKFLOW = """
apiVersion: autoflow.dev/v1alpha1
kind: Workflow
metadata:
  name: order-alerts
  namespace: shop
spec:
  description: Post big orders to Slack and store every order in Postgres.
  inputs:
    orderId: {type: string, required: true, description: The shop's order id.}
    threshold: {type: number, default: 100}
    channel: {type: string, enum: ["#orders", "#sales"], default: "#orders"}
  triggers:
    - webhook:
        path: /orders
        auth: {hmac: {preset: github}}
        secretRef: {name: shop-webhook, key: secret}
        deliveryId: {header: X-Delivery}
        inputs: {orderId: "${ body.order.id }"}
        response: {mode: sync, timeout: 10s, output: total, statusCode: 201}
    - nats: {subject: shop.orders.created, stream: SHOP, consumer: orders, integration: shop-nats}
  steps:
    - id: fetch
      name: Fetch the order
      uses: http.request
      with: {method: GET, url: "https://shop.example/api/orders/${ inputs.orderId }"}
      retry: {maxAttempts: 5, initialDelay: 500ms, maxDelay: 30s, multiplier: 1.5}
      timeout: 10s
      ui: {x: 0, y: 0}
    - id: notify
      uses: slack.postMessage
      needs: [fetch]
      if: "${ steps.fetch.output.body.total > inputs.threshold }"
      integration: slack-ops
      with:
        channel: "${ inputs.channel }"
        blocks: [{type: section, text: {type: mrkdwn, text: "*Big order*"}}]
      ui: {x: 240.5, y: -80}
    - id: store
      uses: postgres.execute
      needs: [fetch]
      integration: orders-db
      with: {sql: "insert into orders (id, total) values ($1, $2)", params: [1, 2.5, null]}
    - id: tag
      uses: http.request
      needs: [notify, store]
      if: true
      foreach: "${ steps.fetch.output.body.items }"
      concurrency: 4
      continueOnError: true
      timeout: 30
      with: {method: POST, url: "https://shop.example/api/tags", json: {item: "${ item }"}}
    - id: audit
      uses: core.log
      needs: []
      foreach: [created, tagged]
      with: {message: "${ item }"}
  onError:
    - id: alert
      uses: core.log
      with: {message: "order ${ inputs.orderId } failed: ${ error.message }"}
  finally:
    - id: done
      uses: core.log
      with: {message: finished}
  outputs: {total: "${ steps.fetch.output.body.total }"}
  timeout: 5m
  retry: {maxAttempts: 2}
  concurrency: {maxRuns: 10, policy: Queue}
  runtime:
    mode: job
    image: ghcr.io/example/autoflow:1.0
    serviceAccountName: autoflow-runner
    resources: {requests: {cpu: 100m, memory: 128Mi}, limits: {memory: 256Mi}}
    nodeSelector: {kubernetes.io/os: linux}
    tolerations: [{key: dedicated, operator: Equal, value: automation, effect: NoSchedule}]
    env: {LOG_LEVEL: info}
status:
  observedGeneration: 3
  conditions:
    - type: Ready
      status: "True"
      reason: Valid
      message: 5 steps, 2 triggers
      observedGeneration: 3
      lastTransitionTime: "2025-03-01T09:00:00Z"
  lastRun: order-alerts-x7k2p
  lastRunPhase: Succeeded
  runsTotal: 12
  runsSucceeded: 11
  runsFailed: 1
"""

WORKFLOW_RUN = """
apiVersion: autoflow.dev/v1alpha1
kind: WorkflowRun
metadata: {name: order-alerts-x7k2p, namespace: shop}
spec:
  workflowRef: {name: order-alerts}
  inputs: {orderId: A-1001, threshold: 250, tags: [vip], nested: {any: [1, "two"]}}
status:
  observedGeneration: 1
  conditions:
    - type: Succeeded
      status: "True"
      reason: StepsSucceeded
      lastTransitionTime: "2025-03-01T09:00:05Z"
  phase: Succeeded
  startedAt: "2025-03-01T09:00:00Z"
  finishedAt: "2025-03-01T09:00:05.250000Z"
  workflowGeneration: 3
  jobName: order-alerts-x7k2p
  steps:
    - id: fetch
      phase: Succeeded
      attempts: 1
      startedAt: "2025-03-01T09:00:00Z"
      output: {status: 200}
    - {id: notify, phase: Skipped, message: condition was false}
    - {id: store, phase: Succeeded, attempts: 2, output: "[truncated]", outputTruncated: true}
  outputs: 420.5
"""

SCHEDULE = """
apiVersion: autoflow.dev/v1alpha1
kind: Schedule
metadata: {name: weekday-report, namespace: shop}
spec:
  cron: "0 9 * * 1-5"
  timezone: Europe/Berlin
  workflowRef: {name: order-alerts}
  inputs: {orderId: daily}
  concurrencyPolicy: Forbid
  catchUp: {policy: Latest, maxRuns: 3}
  startingDeadlineSeconds: 300
  suspend: false
  successfulRunsHistoryLimit: 5
status:
  conditions: [{type: Ready, status: "True"}]
  lastScheduleTime: "2025-03-03T08:00:00Z"
  nextScheduleTime: "2025-03-04T08:00:00Z"
  active: [weekday-report-1741000000]
"""

INTEGRATION = """
apiVersion: autoflow.dev/v1alpha1
kind: Integration
metadata: {name: slack-ops, namespace: shop}
spec:
  type: slack
  description: The ops workspace.
  settings: {baseUrl: "https://slack.com/api", retries: 2, headers: {X-Team: ops}}
  secretRef: {name: slack-bot, keys: [clientSecret]}
  oauth2:
    grantType: client_credentials
    tokenUrl: https://slack.com/api/oauth.v2.access
    clientId: "1234.5678"
    scopes: ["chat:write", "channels:read"]
    tokenSecretName: slack-ops-token
  rateLimit: {requests: 50, per: 1m}
  maxConcurrency: 4
  healthCheck: {interval: 10m, enabled: true}
status:
  conditions: [{type: Ready, status: "False", reason: AuthFailed, message: invalid_auth}]
  lastCheckTime: "2025-03-01T09:00:00Z"
"""

EXAMPLES = {
    "Workflow": WORKFLOW,
    "WorkflowRun": WORKFLOW_RUN,
    "Schedule": SCHEDULE,
    "Integration": INTEGRATION,
}


def manifest(kind: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(EXAMPLES[kind])
    return loaded


def openapi_schema(kind: str) -> dict[str, Any]:
    schema: dict[str, Any] = CRDS[kind]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


# --- drift ------------------------------------------------------------------------------------


def test_committed_crds_are_what_the_models_generate() -> None:
    files = generate.crd_files()
    stale = generate.differing(files)
    assert not stale, f"CRDs out of date with the models: {[p.name for p in stale]}; {REGENERATE}"
    orphans = set(generate.CRD_DIR.glob(f"{meta.GROUP}_*.yaml")) - set(files)
    assert not orphans, f"CRD files no model generates (delete them): {sorted(orphans)}"


def test_committed_api_reference_is_what_the_models_generate() -> None:
    stale = generate.differing({generate.DOCS_FILE: generate.markdown_reference()})
    assert not stale, f"docs/api-reference.md is out of date with the models; {REGENERATE}"


def test_check_flag_names_the_files_that_differ(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = tmp_path / "api.md"
    args = ["--crd-dir", str(tmp_path), "--docs", "--docs-file", str(docs)]
    assert generate.main(["--check", *args]) == 1  # nothing written yet
    assert generate.main(args) == 0
    assert sorted(p.name for p in tmp_path.glob("*.yaml")) == sorted(
        k.filename for k in generate.KINDS
    )
    assert generate.main(["--check", *args]) == 0
    capsys.readouterr()

    edited = tmp_path / "autoflow.dev_schedules.yaml"
    edited.write_text(edited.read_text() + "# hand edit\n")
    assert generate.main(["--check", *args]) == 1
    err = capsys.readouterr().err
    assert "autoflow.dev_schedules.yaml" in err and "python -m autoflow.crds.generate" in err
    assert "workflows.yaml" not in err


def test_files_are_single_documents_that_concatenate_into_a_stream() -> None:
    texts = list(generate.crd_files().values())
    for text in texts:
        assert text.startswith("# Generated by")
        assert len(list(yaml.safe_load_all(text))) == 1
    docs = list(yaml.safe_load_all("".join(texts)))
    assert [d["metadata"]["name"] for d in docs] == [k.crd_name for k in generate.KINDS]
    assert docs == generate.crds()


# --- the CRDs beyond the schema -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "plural", "short"),
    [
        ("Workflow", "workflows", "wf"),
        ("WorkflowRun", "workflowruns", "wfr"),
        ("Integration", "integrations", "intg"),
        ("Schedule", "schedules", "sched"),
    ],
)
def test_names_scope_and_version(kind: str, plural: str, short: str) -> None:
    crd = CRDS[kind]
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["metadata"]["name"] == f"{plural}.autoflow.dev"
    spec = crd["spec"]
    assert spec["group"] == "autoflow.dev" and spec["scope"] == "Namespaced"
    assert spec["names"] == {
        "kind": kind,
        "listKind": f"{kind}List",
        "plural": plural,
        "singular": kind.lower(),
        "shortNames": [short],
        "categories": ["autoflow"],
    }
    [version] = spec["versions"]
    assert version["name"] == "v1alpha1" and version["served"] and version["storage"]
    assert version["subresources"] == {"status": {}}


def _resolve_json_path(schema: dict[str, Any], path: str) -> dict[str, Any]:
    node = schema
    for part in re.sub(r"\[\?\(@\.\w+==\"\w+\"\)\]", "[]", path).strip(".").split("."):
        name, is_list = part.removesuffix("[]"), part.endswith("[]")
        node = node["properties"][name]
        if is_list:
            node = node["items"]
    return node


@pytest.mark.parametrize("kind", sorted(CRDS))
def test_printer_columns_point_at_fields_of_their_type(kind: str) -> None:
    columns = CRDS[kind]["spec"]["versions"][0]["additionalPrinterColumns"]
    assert columns[-1] == {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
    schema = openapi_schema(kind)
    for column in columns[:-1]:
        field = _resolve_json_path(schema, column["jsonPath"])
        expected = {"date": "string", "string": "string", "boolean": "boolean"}[column["type"]]
        assert field.get("type") == expected, column
        if column["type"] == "date":
            assert field.get("format") == "date-time", column


def test_printer_columns_asked_for() -> None:
    names = {
        k: [c["name"] for c in CRDS[k]["spec"]["versions"][0]["additionalPrinterColumns"]]
        for k in CRDS
    }
    assert names == {
        "Workflow": ["Ready", "Reason", "Last Run", "Age"],
        "WorkflowRun": ["Workflow", "Phase", "Started", "Finished", "Age"],
        "Integration": ["Type", "Ready", "Reason", "Last Check", "Age"],
        "Schedule": ["Cron", "Timezone", "Suspend", "Last", "Next", "Age"],
    }


# --- structural and bounded ---------------------------------------------------------------------

FORBIDDEN_KEYWORDS = {
    "$ref",
    "$defs",
    "anyOf",
    "oneOf",
    "allOf",
    "not",
    "title",
    "const",
    "examples",
    "discriminator",
    "$schema",
    "nullable",
    "uniqueItems",
}

Node = tuple[str, str, dict[str, Any]]  # path, level (root, field, item), schema


def _nodes(schema: dict[str, Any], path: str = "", level: str = "root") -> list[Node]:
    found = [(path, level, schema)]
    for name, child in schema.get("properties", {}).items():
        found += _nodes(child, f"{path}.{name}", "field")
    if isinstance(schema.get("additionalProperties"), dict):
        found += _nodes(schema["additionalProperties"], f"{path}.*", "field")
    if isinstance(schema.get("items"), dict):
        found += _nodes(schema["items"], f"{path}[]", "item")
    return found


def _all_nodes() -> list[Node]:
    return [
        (f"{kind}{path}", level, node)
        for kind in sorted(CRDS)
        for path, level, node in _nodes(openapi_schema(kind))
    ]


def _owned_by_kubernetes(path: str) -> bool:
    return any(path == f"{kind}{field}" for kind in CRDS for field in OWNED_BY_KUBERNETES)


ALL_NODES = _all_nodes()


def structural_problems(path: str, level: str, node: dict[str, Any]) -> Iterator[str]:
    preserve = node.get("x-kubernetes-preserve-unknown-fields")
    int_or_string = node.get("x-kubernetes-int-or-string")
    if FORBIDDEN_KEYWORDS & set(node):
        yield f"{path}: forbidden keywords {sorted(FORBIDDEN_KEYWORDS & set(node))}"
    if not (node.get("type") or preserve or int_or_string):
        yield f"{path}: needs a type or an x-kubernetes escape hatch"
    if int_or_string and ("type" in node or preserve):
        yield f"{path}: int-or-string goes without type and preserve-unknown-fields"
    if preserve not in (None, True):
        yield f"{path}: preserve-unknown-fields must be true or absent"
    extra = node.get("additionalProperties")
    if extra is not None and not isinstance(extra, dict):
        yield f"{path}: additionalProperties: {extra}"
    if extra is not None and "properties" in node:
        yield f"{path}: properties and additionalProperties together"
    if node.get("type") == "array" and "items" not in node:
        yield f"{path}: an array needs items"
    free_form = node.get("type") == "object" and "properties" not in node and extra is None
    if free_form and not preserve and not _owned_by_kubernetes(path):
        yield f"{path}: a free-form object without preserve-unknown-fields is pruned empty"
    if level == "root":
        properties = node["properties"]
        if properties["metadata"] != {"type": "object"}:
            yield f"{path}: metadata may only be {{type: object}}"
        if {properties["apiVersion"]["type"], properties["kind"]["type"]} != {"string"}:
            yield f"{path}: apiVersion and kind are strings"


def unbounded_problems(path: str, level: str, node: dict[str, Any]) -> Iterator[str]:
    kind = node.get("type")
    if kind == "array" and "maxItems" not in node:
        yield f"{path}: a list needs maxItems"
    # A date-time is bounded by its format (and is a timestamp, not a string, to CEL).
    free_string = kind == "string" and "enum" not in node and node.get("format") != "date-time"
    if free_string and "maxLength" not in node and not _owned_by_kubernetes(path):
        yield f"{path}: a string needs maxLength"
    if node.get("x-kubernetes-int-or-string") and "maxLength" not in node:
        yield f"{path}: the string form of an int-or-string needs maxLength"
    if isinstance(node.get("additionalProperties"), dict) and "maxProperties" not in node:
        yield f"{path}: a map needs maxProperties"


def list_map_problems(path: str, level: str, node: dict[str, Any]) -> Iterator[str]:
    keys = node.get("x-kubernetes-list-map-keys")
    if not keys:
        return
    items = node.get("items", {})
    if node.get("x-kubernetes-list-type") != "map" or items.get("type") != "object":
        yield f"{path}: list-map keys need list-type map and object items"
    for key in keys:
        if key not in items.get("required", []):
            yield f"{path}: map key {key!r} must be a required field"
        elif items["properties"][key].get("type") not in ("string", "integer", "boolean"):
            yield f"{path}: map key {key!r} must be a scalar"


def _cel_visible(node: dict[str, Any]) -> bool:
    # The apiserver gives CEL no type for an untyped preserve-unknown-fields node: a rule
    # naming such a field does not compile, and the CRD is refused.
    return bool(node.get("type") or node.get("x-kubernetes-int-or-string"))


def cel_problems(path: str, level: str, node: dict[str, Any]) -> Iterator[str]:
    for rule in node.get("x-kubernetes-validations", []):
        if not rule.get("message") or "\n" in rule["message"]:
            yield f"{path}: rule {rule['rule']!r} needs a one-line message"
        for name in re.findall(r"\b(?:self|oldSelf)\.(\w+)", rule["rule"]):
            field = node.get("properties", {}).get(name)
            if field is None:
                yield f"{path}: rule names unknown field {name!r}"
            elif not _cel_visible(field):
                yield f"{path}: rule names {name!r}, which is untyped and invisible to CEL"
        if "oldSelf" in rule["rule"] and "[]" in path:
            # Old and new list items cannot be matched, except in lists of type map.
            yield f"{path}: transition rule under a list"


CHECKS = [structural_problems, unbounded_problems, list_map_problems, cel_problems]


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_every_schema_node_passes(
    check: Callable[[str, str, dict[str, Any]], Iterator[str]],
) -> None:
    problems = [p for path, level, node in ALL_NODES for p in check(path, level, node)]
    assert not problems, "\n".join(problems)


UNTYPED = {"x-kubernetes-preserve-unknown-fields": True}
BAD_NODES = [
    (structural_problems, {"anyOf": [{"type": "string"}, {"type": "null"}]}),
    (structural_problems, {"type": "object", "additionalProperties": False}),
    (structural_problems, {"type": "object"}),
    (unbounded_problems, {"type": "string"}),
    (unbounded_problems, {"type": "array", "items": {"type": "integer"}}),
    (
        list_map_problems,
        {
            "type": "array",
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["id"],
            "items": {"type": "object", "properties": {"id": {"type": "string"}}},
        },
    ),
    (
        cel_problems,
        {
            "type": "object",
            "properties": {"foreach": UNTYPED},
            "x-kubernetes-validations": [{"rule": "has(self.foreach)", "message": "m"}],
        },
    ),
]


@pytest.mark.parametrize(("check", "node"), BAD_NODES)
def test_the_checks_catch_what_they_look_for(
    check: Callable[[str, str, dict[str, Any]], Iterator[str]], node: dict[str, Any]
) -> None:
    assert list(check("Thing.spec.x", "field", node))


def test_the_rules_asked_for_are_there() -> None:
    def rules(kind: str, path: str) -> list[str]:
        node = _resolve_json_path(openapi_schema(kind), path)
        return [r["rule"] for r in node.get("x-kubernetes-validations", [])]

    assert "self.workflowRef == oldSelf.workflowRef" in rules("WorkflowRun", ".spec")
    step_rules = rules("Workflow", ".spec.steps[]")
    assert "!has(self.needs) || !self.needs.exists(n, n == self.id)" in step_rules
    assert rules("Workflow", ".spec.onError[]") == step_rules
    assert _resolve_json_path(openapi_schema("Schedule"), ".spec.timezone")["minLength"] == 1


def test_defaults_only_where_printer_columns_show_them() -> None:
    for kind in generate.KINDS:
        defaults = {
            path.removeprefix(kind.name).lstrip("."): node["default"]
            for path, _, node in ALL_NODES
            if path.startswith(f"{kind.name}.") and "default" in node
        }
        assert set(defaults) == set(kind.server_defaults), kind.name
        for path, value in defaults.items():
            model: Any = kind.model
            for part in path.split("."):
                field = next(f for n, f in model.model_fields.items() if (f.alias or n) == part)
                model = field.annotation
            assert value == field.default, path


# --- manifests: models and schemas agree --------------------------------------------------------


def _strict(schema: Any) -> Any:
    """The schema as a server with strict field validation applies it (kubectl's default)."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) for k, v in schema.items() if k != "properties"}
    if "properties" in schema:
        out["properties"] = {n: _strict(s) for n, s in schema["properties"].items()}
        if not schema.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    return out


def _int_or_string(validator: Any, value: Any, instance: Any, schema: Any) -> Any:
    # The apiserver reads x-kubernetes-int-or-string as `type: [integer, string]`.
    if value and (isinstance(instance, bool) or not isinstance(instance, int | str)):
        yield jsonschema.ValidationError(f"{instance!r} is neither an integer nor a string")


@functools.cache
def crd_validator_class() -> Any:
    """Draft 4 is OpenAPI 3.0's schema dialect (boolean exclusiveMinimum and all)."""
    # types-jsonschema leaves validators.extend unannotated.
    return jsonschema.validators.extend(  # type: ignore[no-untyped-call]
        jsonschema.Draft4Validator, {"x-kubernetes-int-or-string": _int_or_string}
    )


def crd_errors(kind: str, document: Any) -> list[str]:
    validator = crd_validator_class()(
        _strict(openapi_schema(kind)), format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER
    )
    return [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(document)
    ]


def json_schema_errors(kind: str, document: Any) -> list[str]:
    schema = generate.json_schemas(include_status=True)[kind]
    validator = jsonschema.Draft202012Validator(schema)
    return [e.message for e in validator.iter_errors(document)]


def model_accepts(kind: str, document: Any) -> bool:
    try:
        MODELS[kind].model_validate(document)
    except pydantic.ValidationError:
        return False
    return True


@needs_jsonschema
@pytest.mark.parametrize("kind", sorted(EXAMPLES))
def test_examples_pass_models_crd_schema_and_json_schema(kind: str) -> None:
    document = manifest(kind)
    resource = MODELS[kind].model_validate(document)
    assert crd_errors(kind, document) == []
    assert json_schema_errors(kind, document) == []
    # What the models write back (the operator's status patches) passes the CRD too.
    assert crd_errors(kind, resource.dump()) == []
    assert MODELS[kind].model_validate(resource.dump()) == resource


def test_the_workflow_example_is_a_dag() -> None:
    wf = workflow.Workflow.model_validate(manifest("Workflow"))
    needs = {s.id: s.needs for s in wf.spec.steps}
    assert needs["tag"] == ["notify", "store"] and needs["audit"] == []
    assert wf.spec.steps[1].if_ == "${ steps.fetch.output.body.total > inputs.threshold }"
    assert wf.spec.steps[3].if_ is True and wf.spec.steps[4].foreach == ["created", "tagged"]


def _with(kind: str, path: str, value: Any) -> dict[str, Any]:
    document = copy.deepcopy(manifest(kind))
    *parents, last = path.split(".")
    node: Any = document
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    if value is _DELETE:
        del node[last]
    else:
        node[int(last) if last.isdigit() else last] = value
    return document


_DELETE = object()

REJECTED_BY_BOTH = [
    ("Workflow", "spec.steps.0.timeout", 1.5),  # a float duration: write "1.5s"
    ("Workflow", "spec.steps.0.timeout", "10 s"),
    ("Workflow", "spec.steps.0.timeout", -1),
    ("Workflow", "spec.steps.0.timeout", True),
    ("Workflow", "spec.steps.0.id", "fetch order"),
    ("Workflow", "spec.steps.0.uses", "http"),
    ("Workflow", "spec.steps", []),
    ("Workflow", "spec.steps.1.needs", [f"s{i}" for i in range(65)]),
    ("Workflow", "spec.steps.1.if", "x" * 5000),
    ("Workflow", "spec.steps.0.retry.maxAttempts", 0),
    ("Workflow", "spec.steps.0.ui.z", 1),
    ("Workflow", "spec.runtime.executor", "Lambda"),
    ("Workflow", "spec.inputs.orderId.type", "date"),
    ("Workflow", "spec.triggers.0.webhook.secretRef.name", "Not_A_Name"),
    ("Workflow", "spec.unknownField", 1),
    ("Workflow", "status.conditions.0.status", "Maybe"),
    ("WorkflowRun", "spec.workflowRef", _DELETE),
    ("WorkflowRun", "spec.cancel", "maybe"),
    ("WorkflowRun", "status.phase", "Exploded"),
    ("WorkflowRun", "status.steps.0.phase", "Done"),
    ("WorkflowRun", "status.steps.0.attempts", "many"),
    ("Schedule", "spec.timezone", ""),
    ("Schedule", "spec.cron", ""),
    ("Schedule", "spec.concurrencyPolicy", "Sometimes"),
    ("Schedule", "spec.catchUp.maxRuns", 0),
    ("Schedule", "spec.startingDeadlineSeconds", -5),
    ("Integration", "spec.type", "Slack"),
    ("Integration", "spec.rateLimit.requests", 0),
    ("Integration", "spec.rateLimit.per", 0.5),
    ("Integration", "spec.oauth2.grantType", "password"),
    ("Integration", "spec.secretRef.keys", ["k" * 300]),
    ("Integration", "spec.settings", "not an object"),
]


@needs_jsonschema
@pytest.mark.parametrize(("kind", "path", "value"), REJECTED_BY_BOTH, ids=lambda v: str(v)[:30])
def test_what_the_models_reject_the_crd_rejects(kind: str, path: str, value: Any) -> None:
    document = _with(kind, path, value)
    assert not model_accepts(kind, document)
    assert crd_errors(kind, document), f"the CRD accepts {path}={value!r}"


@needs_jsonschema
def test_what_only_the_models_can_check() -> None:
    # `if` and `foreach` are untyped in the CRD, so these reach the models (which refuse them).
    for path, value in [("spec.steps.1.if", {"op": "gt"}), ("spec.steps.3.foreach", 7)]:
        document = _with("Workflow", path, value)
        assert crd_errors("Workflow", document) == []
        assert not model_accepts("Workflow", document)
    # concurrency without foreach: CEL cannot see the untyped foreach, the model checks it.
    document = _with("Workflow", "spec.steps.0.concurrency", 2)
    assert crd_errors("Workflow", document) == []
    with pytest.raises(pydantic.ValidationError, match="concurrency applies to foreach steps"):
        workflow.Workflow.model_validate(document)


DURATION_NODE = _resolve_json_path(openapi_schema("Workflow"), ".spec.timeout")


@needs_jsonschema
@given(
    st.one_of(
        st.text(alphabet="0123456789.mshd -e", max_size=10),
        st.integers(min_value=-5, max_value=10**6),
        st.floats(allow_nan=False, allow_infinity=False, min_value=0, max_value=1000),
        st.from_regex(meta.DURATION_PATTERN, fullmatch=True),
    )
)
def test_durations_mean_the_same_to_models_and_crd(value: Any) -> None:
    adapter = pydantic.TypeAdapter(meta.Duration)
    try:
        adapter.validate_python(value)
        models_accept = True
    except pydantic.ValidationError:
        models_accept = False
    validator = crd_validator_class()(DURATION_NODE)
    # A whole float such as 2.0 is an integer in JSON; the models store it as 2.
    whole = isinstance(value, float) and value.is_integer()
    crd_accepts = validator.is_valid(int(value) if whole else value)
    if isinstance(value, str) and len(value) > meta.DURATION_MAX_LENGTH:
        assert not models_accept and not crd_accepts
    else:
        assert models_accept == crd_accepts, value


# --- JSON Schemas for the web UI and the AI assistant -------------------------------------------


@needs_jsonschema
def test_json_schemas_are_standalone_draft_2020_12() -> None:
    exported = generate.json_schemas()
    assert sorted(exported) == sorted(MODELS)
    for kind, schema in exported.items():
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["$id"] == f"https://autoflow.dev/schemas/v1alpha1/{kind.lower()}.json"
        assert "status" not in schema["properties"]
        assert "x-kubernetes" not in str(schema)
        refs = set(re.findall(r"#/\$defs/(\w+)", str(schema)))
        assert refs == set(schema.get("$defs", {})), kind  # every def used, every ref defined
    assert "Step" in exported["Workflow"]["$defs"]


@needs_jsonschema
def test_json_schema_without_status_refuses_nothing_a_user_writes() -> None:
    for kind in EXAMPLES:
        document = manifest(kind)
        document.pop("status")
        schema = generate.json_schemas()[kind]
        assert list(jsonschema.Draft202012Validator(schema).iter_errors(document)) == []


# --- the API reference ------------------------------------------------------------------------


def test_api_reference_documents_every_kind_and_type_with_working_links() -> None:
    text = generate.markdown_reference()
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", heading.lower()).replace(" ", "-")
        for heading in re.findall(r"^#+ (.+)$", text, flags=re.MULTILINE)
    }
    for kind in MODELS:
        assert f"\n## {kind}\n" in text
    for name in ("WorkflowSpec", "Step", "Retry", "Condition", "StepStatus", "OAuth2", "CatchUp"):
        assert f"\n### {name}\n" in text
    links = set(re.findall(r"\]\(#([^)]+)\)", text))
    assert links <= anchors, links - anchors
    assert text.count("\n### Condition\n") == 1  # shared types once
    assert "a step cannot need itself" in text


# --- the converter refuses what a structural schema cannot say ---------------------------------


def _resource(field_type: Any, field: Any = None) -> type[meta.Resource]:
    spec = pydantic.create_model(
        "Spec", __base__=meta.Model, value=(field_type, field if field is not None else ...)
    )
    return pydantic.create_model("Thing", __base__=meta.Resource, spec=(spec, ...))


@pytest.mark.parametrize(
    ("field_type", "field", "message"),
    [
        (str | float, None, "needs x-kubernetes-int-or-string or"),
        (
            str | float,
            pydantic.Field(json_schema_extra={"x-kubernetes-int-or-string": True}),
            "holds only string and integer",
        ),
        (dict[str, Any], None, "needs x-kubernetes-preserve-unknown-fields"),
        (tuple[int, str], None, "tuples"),
        (set[str], None, "uniqueItems"),
        (str, pydantic.Field(json_schema_extra={"propertyNames": {}}), "no equivalent"),
    ],
)
def test_unstructural_models_fail_the_generator(field_type: Any, field: Any, message: str) -> None:
    with pytest.raises(schemas.SchemaError, match=message) as failure:
        schemas.structural(_resource(field_type, field))
    assert failure.value.path == "spec.value"


def test_any_becomes_preserve_unknown_fields_without_type() -> None:
    schema = schemas.structural(_resource(list[Any], pydantic.Field(max_length=3)))
    assert schema["properties"]["spec"]["properties"]["value"] == {
        "type": "array",
        "maxItems": 3,
        "items": {"x-kubernetes-preserve-unknown-fields": True},
    }


def test_exclusive_bounds_use_the_openapi_3_0_form() -> None:
    schema = schemas.structural(_resource(int, pydantic.Field(gt=0, lt=10)))
    assert schema["properties"]["spec"]["properties"]["value"] == {
        "type": "integer",
        "minimum": 0,
        "exclusiveMinimum": True,
        "maximum": 10,
        "exclusiveMaximum": True,
    }


def test_kept_defaults_must_exist() -> None:
    with pytest.raises(schemas.SchemaError, match="not there"):
        schemas.structural(schedule.Schedule, ["spec.nothing"])
    with pytest.raises(schemas.SchemaError, match="has none"):
        schemas.structural(schedule.Schedule, ["spec.cron"])


def test_every_kind_module_is_generated() -> None:
    assert {k.model for k in generate.KINDS} == {
        workflow.Workflow,
        run.WorkflowRun,
        integration.Integration,
        schedule.Schedule,
    }
