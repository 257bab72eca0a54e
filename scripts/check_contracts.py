#!/usr/bin/env python3
"""Check the wire contracts under contracts/.

What it checks:
  * contracts/odds-update.v1.schema.json, contracts/ws-protocol.schema.json and
    contracts/feed-protocol.v2.schema.json are valid JSON Schema 2020-12 documents
    (check_schema), and their relative $refs point at the OddsUpdate schema's $id.
  * every contracts/examples/valid/*.json is a valid OddsUpdate v1 frame;
  * every contracts/examples/invalid/<code>__<description>.json is invalid for exactly one
    reason, and that reason is <code> (the reason codes of the Swift validator);
  * at least one invalid example exists per reason code, and at least 8 valid examples;
  * contracts/examples/ws/{valid,invalid}/*.json against the WebSocket protocol schema;
  * contracts/examples/feed/{valid,invalid}/*.json against the supplier feed schema
    (odds-feed/2): valid ones must pass, invalid ones must fail (the schema, or the rule it
    cannot express: a snapshot frame's index is at most its markets). The payload string of
    a valid `snapshot` frame, and of a valid `odds` frame whose file name does not contain
    `fault`, must be a valid OddsUpdate v1 frame written as the simulator writes it (compact,
    sorted keys); a valid `odds` example named `*fault*` must carry a payload that is NOT a
    valid OddsUpdate (it shows fault injection inside a valid envelope). The examples must
    cover every frame type, every hello recovery kind and every snapshot reason, and there
    must be at least 8 invalid ones;
  * contracts/asyncapi.yaml and contracts/openapi.yaml parse and their $refs resolve; every
    asyncapi message example validates against its message's payload schema (feed frame
    examples also get the payload check above) and its headers against the message's
    headers schema.

Numbers are parsed with parse_float=decimal.Decimal (schema and examples) so that
`multipleOf: 0.001` is exact. NaN/Infinity literals are rejected as malformed JSON, as a
strict JSON parser does. Frames over 16384 bytes are 'oversize' (checked by size, since JSON
Schema cannot express it).

Usage: python3 scripts/check_contracts.py [--root REPO_ROOT] [--quiet]
Output: one line per checked file, then `contracts: N passed, M failed`; exit 1 on any failure.
"""
from __future__ import annotations

import argparse
import decimal
import json
import sys
from pathlib import Path
from urllib.parse import urljoin, urldefrag

try:
    import jsonschema
    from jsonschema import Draft202012Validator, FormatChecker
    from jsonschema.validators import extend
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012
    import yaml
except ImportError as exc:  # pragma: no cover - environment problem, not a contract problem
    print(f"check_contracts: missing Python package: {exc} "
          "(need jsonschema>=4.18, rfc3339-validator, PyYAML)", file=sys.stderr)
    sys.exit(2)

MAX_FRAME_BYTES = 16384

REASON_CODES = [
    "malformed_json", "not_an_object", "oversize", "missing_field", "unknown_field",
    "wrong_type", "invalid_event_id", "invalid_market", "invalid_team", "invalid_source",
    "empty_odds", "invalid_selection", "missing_selection", "unknown_selection",
    "price_out_of_range", "price_precision", "invalid_status", "invalid_version",
    "invalid_updated_at",
]

FIELD_REASONS = {
    "event_id": "invalid_event_id",
    "market": "invalid_market",
    "home_team": "invalid_team",
    "away_team": "invalid_team",
    "source": "invalid_source",
    "status": "invalid_status",
    "updated_at": "invalid_updated_at",
    "version": "invalid_version",
}


FEED_FRAME_TYPES = ["hello", "odds", "snapshot_start", "snapshot", "snapshot_complete", "alive"]
FEED_RECOVERIES = ["replay", "snapshot", "live"]
FEED_SNAPSHOT_REASONS = ["requested", "unknown_epoch", "too_old", "ahead"]
FEED_SCHEMA_FILE = "feed-protocol.v2.schema.json"


class MalformedJSON(ValueError):
    pass


def _reject_constant(name: str):
    raise MalformedJSON(f"non-standard JSON literal {name}")


def parse_json(data: bytes):
    """Strict JSON parse: UTF-8, no NaN/Infinity, floats as Decimal."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedJSON(f"not UTF-8: {exc}") from exc
    try:
        return json.loads(text, parse_float=decimal.Decimal, parse_constant=_reject_constant)
    except MalformedJSON:
        raise
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        raise MalformedJSON(str(exc)) from exc


def _is_integer(checker, instance) -> bool:
    # JSON Schema: "integer" is any number with a zero fractional part. Python's json gives
    # int for 42, and (with parse_float=Decimal) Decimal for 42.0 / 4.2e1.
    if isinstance(instance, bool):
        return False
    if isinstance(instance, int):
        return True
    if isinstance(instance, decimal.Decimal):
        return instance.is_finite() and instance == instance.to_integral_value()
    return False


def make_validator_class():
    type_checker = Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer)
    return extend(Draft202012Validator, type_checker=type_checker)


def error_reason(err: jsonschema.ValidationError) -> str:
    """Map one jsonschema error on an OddsUpdate object to the validator's reason code."""
    path = list(err.absolute_path)
    kw = err.validator
    schema_path = list(err.absolute_schema_path)
    if not path:
        return {
            "type": "not_an_object",
            "required": "missing_field",
            "additionalProperties": "unknown_field",
        }.get(kw, f"unmapped({kw} at top level)")
    field = path[0]
    if kw == "type":
        # A non-integral number for version is a bad version, not a bad type.
        if field == "version" and len(path) == 1 and isinstance(err.instance, (int, decimal.Decimal)) \
                and not isinstance(err.instance, bool):
            return "invalid_version"
        return "wrong_type"
    if field == "odds":
        if len(path) == 1:
            if kw == "minProperties":
                return "empty_odds"
            if kw == "maxProperties":
                return "invalid_selection"  # more than 32 selections (no dedicated code)
            if kw == "required":
                return "missing_selection"
            if "propertyNames" in schema_path:
                return "unknown_selection" if kw == "enum" else "invalid_selection"
            return f"unmapped(odds {kw})"
        if kw in ("exclusiveMinimum", "minimum", "maximum", "exclusiveMaximum"):
            return "price_out_of_range"
        if kw == "multipleOf":
            return "price_precision"
        return f"unmapped(odds price {kw})"
    if field in FIELD_REASONS:
        return FIELD_REASONS[field]
    return f"unmapped({field} {kw})"


def frame_reasons(data: bytes, validator) -> tuple[set[str], list[str]]:
    """All reason codes that apply to one raw frame, plus human-readable details."""
    reasons: set[str] = set()
    details: list[str] = []
    if len(data) > MAX_FRAME_BYTES:
        reasons.add("oversize")
        details.append(f"{len(data)} bytes > {MAX_FRAME_BYTES}")
    try:
        obj = parse_json(data)
    except MalformedJSON as exc:
        reasons.add("malformed_json")
        details.append(str(exc))
        return reasons, details
    if not isinstance(obj, dict):
        reasons.add("not_an_object")
        details.append(f"top-level JSON value is {type(obj).__name__}")
        return reasons, details
    errors = list(validator.iter_errors(obj))
    # A wrong JSON type is the only reason for its location: e.g. status null also fails the
    # enum, but the validator reports wrong_type (types are checked before values).
    type_paths = {tuple(e.absolute_path) for e in errors if e.validator == "type"}
    for err in errors:
        if err.validator != "type" and tuple(err.absolute_path) in type_paths:
            continue
        reasons.add(error_reason(err))
        loc = "/".join(str(p) for p in err.absolute_path) or "<root>"
        details.append(f"{loc}: {err.message}")
    return reasons, details


class Report:
    def __init__(self, quiet: bool = False):
        self.passed = 0
        self.failed = 0
        self.quiet = quiet

    def ok(self, what: str, note: str = "") -> None:
        self.passed += 1
        if not self.quiet:
            print(f"PASS {what}" + (f"  ({note})" if note else ""))

    def fail(self, what: str, why: str) -> None:
        self.failed += 1
        print(f"FAIL {what}: {why}")


def load_json_file(path: Path):
    return parse_json(path.read_bytes())


def check_schema_file(path: Path, rep: Report, rel: str):
    try:
        schema = load_json_file(path)
        Draft202012Validator.check_schema(schema, format_checker=FormatChecker())
    except MalformedJSON as exc:
        rep.fail(rel, f"not valid JSON: {exc}")
        return None
    except jsonschema.SchemaError as exc:
        rep.fail(rel, f"not a valid 2020-12 schema: {exc.message}")
        return None
    if schema.get("$schema") != "https://json-schema.org/draft/2020-12/schema":
        rep.fail(rel, "$schema must be https://json-schema.org/draft/2020-12/schema")
        return None
    rep.ok(rel, "valid JSON Schema 2020-12")
    return schema


def check_odds_examples(root: Path, validator, rep: Report) -> None:
    ex = root / "contracts" / "examples"
    valid = sorted((ex / "valid").glob("*.json"))
    invalid = sorted((ex / "invalid").glob("*.json"))
    if len(valid) >= 8:
        rep.ok("examples/valid", f"{len(valid)} files")
    else:
        rep.fail("examples/valid", f"need at least 8 valid examples, found {len(valid)}")

    for path in valid:
        rel = f"examples/valid/{path.name}"
        reasons, details = frame_reasons(path.read_bytes(), validator)
        if reasons:
            rep.fail(rel, f"expected valid, got {sorted(reasons)}: {'; '.join(details)}")
        else:
            rep.ok(rel, "valid")

    seen: set[str] = set()
    for path in invalid:
        rel = f"examples/invalid/{path.name}"
        code, sep, _ = path.stem.partition("__")
        if not sep or code not in REASON_CODES:
            rep.fail(rel, f"file name must be <code>__<description>.json with code in {REASON_CODES}")
            continue
        seen.add(code)
        reasons, details = frame_reasons(path.read_bytes(), validator)
        if not reasons:
            rep.fail(rel, "expected invalid, but it is valid")
        elif reasons != {code}:
            rep.fail(rel, f"must violate exactly the rule '{code}', violates {sorted(reasons)}: "
                          f"{'; '.join(details)}")
        else:
            rep.ok(rel, f"invalid: {code}")

    missing = [c for c in REASON_CODES if c not in seen]
    if missing:
        rep.fail("examples/invalid", f"no example for reason code(s): {', '.join(missing)}")
    else:
        rep.ok("examples/invalid", f"{len(invalid)} files cover all {len(REASON_CODES)} reason codes")


def check_ws_examples(root: Path, validator, rep: Report) -> None:
    ex = root / "contracts" / "examples" / "ws"
    for kind in ("valid", "invalid"):
        for path in sorted((ex / kind).glob("*.json")):
            rel = f"examples/ws/{kind}/{path.name}"
            try:
                obj = load_json_file(path)
            except MalformedJSON as exc:
                if kind == "invalid":
                    rep.ok(rel, "invalid: malformed JSON")
                else:
                    rep.fail(rel, f"not valid JSON: {exc}")
                continue
            errors = list(validator.iter_errors(obj))
            if kind == "valid" and errors:
                best = jsonschema.exceptions.best_match(errors)
                rep.fail(rel, f"expected valid: {best.message}")
            elif kind == "invalid" and not errors:
                rep.fail(rel, "expected invalid, but it is valid")
            else:
                rep.ok(rel, kind)


def feed_frame_problems(obj, validator) -> list[str]:
    """Why one parsed supplier feed frame is not a valid odds-feed/2 server frame ([] = valid)."""
    errors = list(validator.iter_errors(obj))
    if errors:
        frame_type = obj.get("type") if isinstance(obj, dict) else None
        if frame_type in FEED_FRAME_TYPES:
            # Frames are discriminated by type: the errors of that frame's definition say more
            # than the oneOf summary.
            branch = validator.evolve(schema={"$ref": f"{validator.schema['$id']}#/$defs/{frame_type}"})
            errors = list(branch.iter_errors(obj)) or errors
        problems = []
        for err in errors:
            loc = "/".join(str(p) for p in err.absolute_path) or "<root>"
            message = err.message if len(err.message) <= 120 else err.message[:117] + "..."
            problems.append(f"{loc}: {message}")
        return problems
    if obj.get("type") == "snapshot" and obj["index"] > obj["markets"]:
        # JSON Schema cannot compare two members of one object.
        return [f"index: {obj['index']} is above markets {obj['markets']}"]
    return []


def canonical_odds_text(text: str) -> str:
    """The text the simulator writes for this OddsUpdate: compact JSON, keys sorted."""
    return json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def feed_payload_problem(frame: dict, name: str, odds_validator) -> tuple[str | None, str]:
    """Check the OddsUpdate text inside a valid feed frame. Returns (problem, note)."""
    frame_type = frame.get("type")
    if frame_type not in ("odds", "snapshot"):
        return None, ""
    payload = frame["payload"]
    reasons, details = frame_reasons(payload.encode("utf-8"), odds_validator)
    if frame_type == "odds" and "fault" in name:
        if not reasons:
            return "a '*fault*' odds example must carry a payload that is not a valid OddsUpdate", ""
        return None, f"faulty payload: {', '.join(sorted(reasons))}"
    if reasons:
        return f"payload is not a valid OddsUpdate v1: {sorted(reasons)}: {'; '.join(details)}", ""
    if canonical_odds_text(payload) != payload:
        return "payload is not written as the simulator writes it (compact JSON, sorted keys)", ""
    return None, "payload valid OddsUpdate v1"


def check_feed_examples(root: Path, validator, odds_validator, rep: Report) -> None:
    ex = root / "contracts" / "examples" / "feed"
    seen_types: set[str] = set()
    seen_recoveries: set[str] = set()
    seen_reasons: set[str] = set()
    seen_fault = False
    invalid_count = 0
    for kind in ("valid", "invalid"):
        for path in sorted((ex / kind).glob("*.json")):
            rel = f"examples/feed/{kind}/{path.name}"
            try:
                obj = load_json_file(path)
            except MalformedJSON as exc:
                if kind == "invalid":
                    invalid_count += 1
                    rep.ok(rel, "invalid: malformed JSON")
                else:
                    rep.fail(rel, f"not valid JSON: {exc}")
                continue
            problems = feed_frame_problems(obj, validator)
            if kind == "invalid":
                invalid_count += 1
                if problems:
                    rep.ok(rel, f"invalid: {problems[0]}")
                else:
                    rep.fail(rel, "expected invalid, but it is valid")
                continue
            if problems:
                rep.fail(rel, f"expected valid: {'; '.join(problems)}")
                continue
            problem, note = feed_payload_problem(obj, path.stem, odds_validator)
            if problem:
                rep.fail(rel, problem)
                continue
            seen_types.add(obj["type"])
            if obj["type"] == "hello":
                seen_recoveries.add(obj["recovery"])
                if "reason" in obj:
                    seen_reasons.add(obj["reason"])
            if obj["type"] == "odds" and "fault" in path.stem:
                seen_fault = True
            rep.ok(rel, "valid" + (f"; {note}" if note else ""))

    missing = [f"frame type {t}" for t in FEED_FRAME_TYPES if t not in seen_types]
    missing += [f"hello recovery {r}" for r in FEED_RECOVERIES if r not in seen_recoveries]
    missing += [f"hello reason {r}" for r in FEED_SNAPSHOT_REASONS if r not in seen_reasons]
    if not seen_fault:
        missing.append("odds frame with a faulty payload (*fault*)")
    if missing:
        rep.fail("examples/feed/valid", f"no valid example for: {', '.join(missing)}")
    else:
        rep.ok("examples/feed/valid", "every frame type, recovery kind and snapshot reason covered")
    if invalid_count >= 8:
        rep.ok("examples/feed/invalid", f"{invalid_count} files")
    else:
        rep.fail("examples/feed/invalid", f"need at least 8 invalid examples, found {invalid_count}")


def _resolve_pointer(doc, pointer: str):
    node = doc
    if pointer in ("", "/"):
        return node
    for raw in pointer.lstrip("/").split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, list):
            node = node[int(part)]
        else:
            node = node[part]
    return node


def _iter_refs(node, where="#"):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str):
                yield where, v
            else:
                yield from _iter_refs(v, f"{where}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _iter_refs(v, f"{where}/{i}")


def _decimalize(node):
    """YAML gives binary floats; use Decimal like the JSON loader so multipleOf is exact."""
    if isinstance(node, float):
        return decimal.Decimal(repr(node))
    if isinstance(node, dict):
        return {k: _decimalize(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_decimalize(v) for v in node]
    return node


def check_asyncapi_examples(doc: dict, base_uri: str, registry, cls, rep: Report, rel: str,
                            odds_validator=None) -> None:
    """Validate every message example payload against that message's payload schema; the
    examples of supplier feed messages also get the feed payload check."""
    registry = registry.with_resource(base_uri, Resource.from_contents(_decimalize(doc), DRAFT202012))
    messages = (doc.get("components") or {}).get("messages") or {}
    for name, msg in messages.items():
        for i, example in enumerate(msg.get("examples") or []):
            what = f"{rel} example {name}[{example.get('name', i)}]"
            if "headers" in example:
                if "headers" not in msg:
                    rep.fail(f"{what} headers", "example has headers, the message defines none")
                else:
                    schema = {"$ref": f"{base_uri}#/components/messages/{name}/headers"}
                    errors = list(cls(schema, format_checker=FormatChecker(), registry=registry)
                                  .iter_errors(_decimalize(example["headers"])))
                    if errors:
                        rep.fail(f"{what} headers", jsonschema.exceptions.best_match(errors).message)
                    else:
                        rep.ok(f"{what} headers", "headers valid")
            if "payload" not in example:
                continue
            schema = {"$ref": f"{base_uri}#/components/messages/{name}/payload"}
            errors = list(cls(schema, format_checker=FormatChecker(), registry=registry)
                          .iter_errors(_decimalize(example["payload"])))
            if errors:
                rep.fail(what, jsonschema.exceptions.best_match(errors).message)
                continue
            payload_ref = (msg.get("payload") or {}).get("$ref", "")
            if odds_validator is not None and FEED_SCHEMA_FILE in payload_ref:
                problem, note = feed_payload_problem(example["payload"], str(example.get("name", "")),
                                                     odds_validator)
                if problem:
                    rep.fail(what, problem)
                    continue
                if note:
                    rep.ok(what, f"payload valid; {note}")
                    continue
            rep.ok(what, "payload valid")


def check_yaml_doc(root: Path, rel: str, rep: Report, kind: str, expect: dict):
    path = root / "contracts" / rel
    if not path.exists():
        rep.fail(rel, "missing")
        return
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        rep.fail(rel, f"YAML does not parse: {exc}")
        return
    if not isinstance(doc, dict):
        rep.fail(rel, "top level must be a mapping")
        return
    version = str(doc.get(kind, ""))
    if not version.startswith(expect["version_prefix"]):
        rep.fail(rel, f"'{kind}' must be {expect['version_prefix']}x, got {version!r}")
        return
    problems = []
    section = doc.get(expect["section"]) or {}
    for name in expect["required"]:
        if name not in section:
            problems.append(f"{expect['section']}.{name} missing")
    for where, ref in _iter_refs(doc):
        target, frag = urldefrag(ref)
        try:
            if not target:
                _resolve_pointer(doc, frag)
            else:
                file = (path.parent / target).resolve()
                if not file.exists():
                    problems.append(f"{where}: $ref {ref!r}: file not found")
                    continue
                if frag:
                    other = load_json_file(file) if file.suffix == ".json" \
                        else yaml.safe_load(file.read_text(encoding="utf-8"))
                    _resolve_pointer(other, frag)
        except (KeyError, IndexError, ValueError, TypeError):
            problems.append(f"{where}: $ref {ref!r} does not resolve")
    if problems:
        rep.fail(rel, "; ".join(problems))
        return None
    rep.ok(rel, f"{kind} {version}, {len(list(_iter_refs(doc)))} $refs resolve")
    return doc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    ap.add_argument("--quiet", action="store_true", help="print failures and the summary only")
    args = ap.parse_args()
    root: Path = args.root
    rep = Report(args.quiet)

    fc = FormatChecker()
    if "date-time" not in fc.checkers:
        rep.fail("environment", "jsonschema FormatChecker has no date-time checker "
                                "(pip install rfc3339-validator)")
    else:
        rep.ok("environment", "date-time format checker available")

    odds_schema = check_schema_file(root / "contracts" / "odds-update.v1.schema.json", rep,
                                    "odds-update.v1.schema.json")
    ws_path = root / "contracts" / "ws-protocol.schema.json"
    ws_schema = check_schema_file(ws_path, rep, "ws-protocol.schema.json") if ws_path.exists() else None
    feed_path = root / "contracts" / FEED_SCHEMA_FILE
    if feed_path.exists():
        feed_schema = check_schema_file(feed_path, rep, FEED_SCHEMA_FILE)
    else:
        feed_schema = None
        rep.fail(FEED_SCHEMA_FILE, "missing")

    cls = make_validator_class()
    registry = None
    if odds_schema is not None:
        resources = [(odds_schema["$id"], Resource.from_contents(odds_schema, DRAFT202012))]
        if ws_schema is not None:
            resources.append((ws_schema["$id"], Resource.from_contents(ws_schema, DRAFT202012)))
        if feed_schema is not None:
            resources.append((feed_schema["$id"], Resource.from_contents(feed_schema, DRAFT202012)))
        registry = Registry().with_resources(resources)
        odds_validator = cls(odds_schema, format_checker=fc, registry=registry)
        check_odds_examples(root, odds_validator, rep)
        if ws_schema is not None:
            # the relative $ref must point at the OddsUpdate schema's $id
            ref_target = urljoin(ws_schema["$id"], "odds-update.v1.schema.json")
            if ref_target != odds_schema["$id"]:
                rep.fail("ws-protocol.schema.json", f"$ref base {ref_target} != {odds_schema['$id']}")
            check_ws_examples(root, cls(ws_schema, format_checker=fc, registry=registry), rep)
        if feed_schema is not None:
            ref_target = urljoin(feed_schema["$id"], "odds-update.v1.schema.json")
            if ref_target != odds_schema["$id"]:
                rep.fail(FEED_SCHEMA_FILE, f"$ref base {ref_target} != {odds_schema['$id']}")
            check_feed_examples(root, cls(feed_schema, format_checker=fc, registry=registry),
                                odds_validator, rep)

    asyncapi = check_yaml_doc(root, "asyncapi.yaml", rep, "asyncapi", {
        "version_prefix": "3.",
        "section": "channels",
        "required": ["odds_updates", "odds_updates_dlq", "odds_updates_broadcast", "odds_ws", "supplier_feed"],
    })
    if asyncapi is not None and registry is not None and ws_schema is not None and feed_schema is not None:
        base = urljoin(odds_schema["$id"], "asyncapi.yaml")
        check_asyncapi_examples(asyncapi, base, registry, cls, rep, "asyncapi.yaml", odds_validator)
    if (root / "contracts" / "openapi.yaml").exists():
        check_yaml_doc(root, "openapi.yaml", rep, "openapi", {
            "version_prefix": "3.",
            "section": "paths",
            "required": ["/v1/events", "/v1/events/{id}/markets", "/v1/events/{id}/odds",
                         "/v1/events/{id}/odds/history", "/healthz", "/readyz", "/metrics"],
        })

    print(f"contracts: {rep.passed} passed, {rep.failed} failed")
    return 1 if rep.failed else 0


if __name__ == "__main__":
    sys.exit(main())
