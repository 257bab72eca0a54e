#!/usr/bin/env python3
"""Check a running odds-service against contracts/openapi.yaml.

For each request in the case list it checks that the answered status is documented for that
operation, that the Content-Type matches the documented media type, and that the body validates
against the documented schema (JSON Schema 2020-12, $refs into odds-update.v1.schema.json
resolved, formats such as date-time checked). It also checks that every operation of the
document was exercised.

The caller seeds the data: an event with at least one market and history (--event, --market)
and an event id that does not exist (--unknown-event).

Usage:
  python3 scripts/check_openapi.py --base-url http://127.0.0.1:8080 --metrics-url http://127.0.0.1:9095 \
      --event MATCH_001 --market 1x2 [--unknown-event NOPE_1] [--root REPO_ROOT]
Output: one line per request, then `openapi: N passed, M failed`; exit 1 on any failure.
"""
from __future__ import annotations

import argparse
import decimal
import json
import re
import sys
import urllib.error
import urllib.request
from pathlib import Path

try:
    from jsonschema import Draft202012Validator, FormatChecker
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012
    import yaml
except ImportError as exc:  # pragma: no cover
    print(f"check_openapi: missing Python package: {exc} (need jsonschema>=4.18, PyYAML)", file=sys.stderr)
    sys.exit(2)


def load_registry(root: Path):
    contracts = root / "contracts"
    openapi_path = contracts / "openapi.yaml"
    document = yaml.safe_load(openapi_path.read_text())
    openapi_uri = openapi_path.resolve().as_uri()
    resources = [(openapi_uri, Resource(contents=document, specification=DRAFT202012))]
    for schema_path in contracts.glob("*.schema.json"):
        contents = json.loads(schema_path.read_text(), parse_float=decimal.Decimal)
        resource = Resource.from_contents(contents, default_specification=DRAFT202012)
        resources.append((schema_path.resolve().as_uri(), resource))
        if "$id" in contents:
            resources.append((contents["$id"], resource))
    return document, openapi_uri, Registry().with_resources(resources)


def pointer_escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def resolve_local(document, node):
    """Follows a local '#/...' $ref (responses, parameters) inside the document."""
    while isinstance(node, dict) and "$ref" in node and node["$ref"].startswith("#/"):
        target = document
        for token in node["$ref"][2:].split("/"):
            target = target[token.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def match_operation(document, path: str):
    for template in document["paths"]:
        regex = "^" + re.sub(r"\{[^/]+\}", "[^/]+", re.escape(template).replace(r"\{", "{").replace(r"\}", "}")) + "$"
        if re.match(regex, path):
            return template
    return None


def fetch(url: str):
    request = urllib.request.Request(url, headers={"Accept": "*/*"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type", ""), error.read()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--metrics-url", required=True)
    parser.add_argument("--event", required=True)
    parser.add_argument("--market", required=True)
    parser.add_argument("--unknown-event", default="NO_SUCH_EVENT_0")
    parser.add_argument("--root", default=str(Path(__file__).resolve().parent.parent))
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()

    document, openapi_uri, registry = load_registry(Path(args.root))
    e, m, u = args.event, args.market, args.unknown_event
    api, ops = args.base_url.rstrip("/"), args.metrics_url.rstrip("/")
    cases = [
        (api, "/v1/events", 200), (api, "/v1/events?limit=1", 200), (api, "/v1/events?limit=0", 400),
        (api, "/v1/events?limit=1001", 400), (api, "/v1/events?limit=ten", 400),
        (api, f"/v1/events/{e}/markets", 200), (api, f"/v1/events/{u}/markets", 404),
        (api, "/v1/events/bad%20id/markets", 400), (api, f"/v1/events/{'x' * 65}/markets", 400),
        (api, f"/v1/events/{e}/odds", 200), (api, f"/v1/events/{u}/odds", 404), (api, "/v1/events/bad%24/odds", 400),
        (api, f"/v1/events/{e}/odds/history?market={m}", 200),
        (api, f"/v1/events/{e}/odds/history?market={m}&limit=1", 200),
        (api, f"/v1/events/{e}/odds/history?market=no_such_market", 200),
        (api, f"/v1/events/{e}/odds/history", 400), (api, f"/v1/events/{e}/odds/history?market=BAD", 400),
        (api, f"/v1/events/{e}/odds/history?market={m}&limit=0", 400),
        (api, f"/v1/events/{e}/odds/history?market={m}&limit=1001", 400),
        (api, f"/v1/events/{u}/odds/history?market={m}", 404),
        (api, "/v1/events/bad%20id/odds/history?market=1x2", 400),
        (api, "/openapi.yaml", 200), (api, "/", 200),
        (ops, "/healthz", 200), (ops, "/readyz", 200), (ops, "/metrics", 200),
    ]
    passed = failed = 0
    exercised = set()
    for base, path, expected in cases:
        problems = []
        status, content_type, body = fetch(base + path)
        template = match_operation(document, path.split("?")[0])
        if status != expected:
            problems.append(f"status {status}, expected {expected}")
        if template is None:
            problems.append("path not in the document")
        else:
            exercised.add(template)
            responses = document["paths"][template]["get"]["responses"]
            documented = responses.get(str(status))
            if documented is None:
                problems.append(f"status {status} not documented (documented: {sorted(responses)})")
            else:
                documented = resolve_local(document, documented)
                content = documented.get("content")
                if content:
                    media = content_type.split(";")[0].strip()
                    if media not in content:
                        problems.append(f"content type {media!r} not documented ({sorted(content)})")
                    elif media == "application/json":
                        pointer = "/".join(["#", "paths", pointer_escape(template), "get", "responses", str(status)])
                        if "$ref" in responses[str(status)]:
                            pointer = responses[str(status)]["$ref"]
                        schema_ref = openapi_uri + pointer + "/content/application~1json/schema"
                        validator = Draft202012Validator({"$ref": schema_ref}, registry=registry,
                                                         format_checker=FormatChecker())
                        try:
                            instance = json.loads(body, parse_float=decimal.Decimal)
                        except ValueError as error:
                            problems.append(f"body is not JSON: {error}")
                        else:
                            for error in validator.iter_errors(instance):
                                problems.append(f"schema: {'/'.join(map(str, error.absolute_path))}: {error.message}")
        if problems:
            failed += 1
            print(f"FAIL GET {path} -> {status}: " + "; ".join(problems[:5]))
        else:
            passed += 1
            if not args.quiet:
                print(f"ok   GET {path} -> {status}")
    missing = sorted(set(document["paths"]) - exercised)
    if missing:
        failed += 1
        print(f"FAIL operations never exercised: {missing}")
    print(f"openapi: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
