#!/usr/bin/env python3
"""Checks what schemathesis does not, around a schemathesis run against a running odds-service.

schemathesis (run by `make test`, see README "Tests") checks every answer against the document
the service serves. It cannot tell whether that document is the one in contracts/, nor whether
the run reached the answers that matter. This script checks:

1. served document: `GET /openapi.yaml` is contracts/openapi.yaml made self-contained. It has
   no $ref into another file, every $ref resolves, and once every $ref of both documents is
   replaced by its target (the source's refs into odds-update.v1.schema.json included), both
   say the same; the served document only adds the bundled `components/schemas` entries.
2. coverage (with --har, schemathesis' HAR report): every operation of the document answered
   2xx at least once (the seeded events were found), with a table of statuses per operation.

Usage:
  python3 scripts/check_openapi.py --base-url http://127.0.0.1:8080 [--har schemathesis-report/har-*.json] [--root REPO_ROOT]
Output: one line per check, then `openapi: N passed, M failed`; exit 1 on any failure.
"""
from __future__ import annotations

import argparse
import collections
import decimal
import json
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

try:
    import yaml
except ImportError as exc:  # pragma: no cover
    print(f"check_openapi: missing Python package: {exc} (need PyYAML)", file=sys.stderr)
    sys.exit(2)

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace", "query"}


def pointer_get(document, pointer: str):
    node = document
    if pointer in ("", "/"):
        return node
    for token in pointer.lstrip("/").split("/"):
        token = urllib.parse.unquote(token).replace("~1", "/").replace("~0", "~")
        node = node[int(token)] if isinstance(node, list) else node[token]
    return node


class Dereferencer:
    """Replaces every `$ref` by its target, following refs into files beside the document."""

    def __init__(self, document, path: Path | None):
        self.files = {path.resolve() if path else None: document}

    def load(self, path: Path | None):
        if path not in self.files:
            text = path.read_text(encoding="utf-8")
            self.files[path] = json.loads(text, parse_float=decimal.Decimal) if path.suffix == ".json" else yaml.safe_load(text)
        return self.files[path]

    def resolve(self, node, path: Path | None, problems: list, where: str = "#", stack=()):
        if isinstance(node, list):
            return [self.resolve(item, path, problems, f"{where}/{i}", stack) for i, item in enumerate(node)]
        if not isinstance(node, dict):
            return node
        result = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                target, _, fragment = value.partition("#")
                file = path if not target else (path.parent / target).resolve() if path else None
                if target and path is None:
                    problems.append(f"{where}: $ref {value!r} points outside the document")
                    result[key] = value
                    continue
                identity = (file, fragment)
                if identity in stack:
                    result[key] = {"$cycle": value}
                    continue
                try:
                    resolved = pointer_get(self.load(file), fragment)
                except (KeyError, IndexError, ValueError, TypeError, OSError):
                    problems.append(f"{where}: $ref {value!r} does not resolve")
                    result[key] = value
                    continue
                result[key] = self.resolve(resolved, file, problems, value, stack + (identity,))
            else:
                result[key] = self.resolve(value, path, problems, f"{where}/{key}", stack)
        return result


def fetch(url: str):
    request = urllib.request.Request(url, headers={"Accept": "*/*"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type", ""), error.read()


def check_served_document(base_url: str, root: Path):
    """Returns (problems, served document or None)."""
    source_path = (root / "contracts" / "openapi.yaml").resolve()
    source = yaml.safe_load(source_path.read_text(encoding="utf-8"))
    status, content_type, body = fetch(base_url.rstrip("/") + "/openapi.yaml")
    if status != 200:
        return [f"GET /openapi.yaml answered {status}"], None
    if content_type.split(";")[0].strip() != "application/yaml":
        return [f"GET /openapi.yaml is {content_type!r}, not application/yaml"], None
    served = yaml.safe_load(body.decode("utf-8"))
    # JSON numbers (the bundled schemas) and YAML numbers compare as the same values.
    served = json.loads(json.dumps(served), parse_float=decimal.Decimal)
    source_numbers = json.loads(json.dumps(source), parse_float=decimal.Decimal)
    problems: list[str] = []
    resolved_served = Dereferencer(served, None).resolve(served, None, problems)
    source_problems: list[str] = []
    resolved_source = Dereferencer(source_numbers, source_path).resolve(source_numbers, source_path, source_problems)
    problems += [f"contracts/openapi.yaml: {p}" for p in source_problems]
    for key in sorted(set(resolved_source) | set(resolved_served)):
        if key == "components":
            continue
        if resolved_source.get(key) != resolved_served.get(key):
            problems.append(f"served `{key}` differs from contracts/openapi.yaml once $refs are resolved")
    source_components = resolved_source.get("components", {})
    served_components = resolved_served.get("components", {})
    for section in sorted(set(source_components) | set(served_components)):
        mine, theirs = source_components.get(section, {}), served_components.get(section, {})
        for name in sorted(set(mine) | set(theirs)):
            if name not in theirs:
                problems.append(f"components/{section}/{name} is missing from the served document")
            elif name not in mine:
                if section != "schemas":
                    problems.append(f"served components/{section}/{name} is not in contracts/openapi.yaml")
            elif mine[name] != theirs[name]:
                problems.append(f"components/{section}/{name} differs from contracts/openapi.yaml once $refs are resolved")
    return problems, served


def template_regex(template: str) -> re.Pattern:
    parts = re.split(r"(\{[^/{}]+\})", template)
    return re.compile("^" + "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts) + "$")


def check_coverage(document, har_path: Path):
    """Returns (problems, table lines)."""
    operations = [(method.upper(), template) for template, item in document["paths"].items()
                  for method in item if method in HTTP_METHODS]
    # Literal paths first, so /v1/events/{id}/odds does not take /v1/events/{id}/odds/history.
    matchers = [(method, template, template_regex(template)) for method, template in operations]
    statuses: dict[tuple[str, str], collections.Counter] = {op: collections.Counter() for op in operations}
    entries = json.loads(har_path.read_text(encoding="utf-8"))["log"]["entries"]
    for entry in entries:
        method = entry["request"]["method"].upper()
        path = urllib.parse.urlsplit(entry["request"]["url"]).path
        for op_method, template, regex in matchers:
            if op_method == method and regex.match(path):
                statuses[(op_method, template)][entry["response"]["status"]] += 1
                break
    problems, table = [], []
    for op in operations:
        counts = statuses[op]
        table.append(f"{op[0]} {op[1]}: " + (", ".join(f"{s}×{n}" for s, n in sorted(counts.items())) or "no request"))
        if not any(200 <= status < 300 for status in counts):
            problems.append(f"{op[0]} {op[1]} never answered 2xx in the run ({dict(counts) or 'no request'})")
    return problems, table, len(entries)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", required=True, help="public port of a running odds-service")
    parser.add_argument("--har", type=Path, help="schemathesis HAR report of a run against that service")
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()

    passed = failed = 0

    def report(name: str, problems: list[str], detail: str = ""):
        nonlocal passed, failed
        if problems:
            failed += 1
            print(f"FAIL {name}: " + "; ".join(problems[:10]))
        else:
            passed += 1
            if not args.quiet:
                print(f"ok   {name}" + (f" ({detail})" if detail else ""))

    problems, served = check_served_document(args.base_url, args.root)
    report("served document is contracts/openapi.yaml, self-contained", problems)
    if served is not None and args.har is not None:
        problems, table, requests = check_coverage(served, args.har)
        if not args.quiet:
            for line in table:
                print(f"     {line}")
        report("every operation answered 2xx in the schemathesis run", problems, f"{requests} requests")
    print(f"openapi: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
