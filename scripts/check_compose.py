#!/usr/bin/env python3
"""Static checks of the Docker Compose stack in compose/ (no Docker engine needed).

Checks that compose/docker-compose.yml parses and has the expected services (kafka in KRaft
mode, kafka-init creating the topics, redis, postgres, migrations, prometheus, grafana) with
healthchecks and valid depends_on conditions; that bind-mounted files exist and `$` is
escaped in shell commands; that prometheus/prometheus.yml scrapes the four services' metrics
ports; and that the Grafana data source, dashboard provider and dashboard JSON parse and fit
together.

Usage: python3 scripts/check_compose.py [--root REPO_ROOT] [--quiet]
Output: one line per check, then `compose: N passed, M failed`; exit 1 on any failure.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

try:
    import yaml
except ImportError:  # pragma: no cover
    print("check_compose: PyYAML is required (pip install PyYAML)", file=sys.stderr)
    sys.exit(2)

EXPECTED_SERVICES = ["kafka", "kafka-init", "redis", "postgres", "migrations", "prometheus", "grafana"]
NEEDS_HEALTHCHECK = ["kafka", "redis", "postgres", "prometheus", "grafana"]
SCRAPE_TARGETS = {
    "supplier-simulator": "supplier-simulator:9094",
    "odds-service": "odds-service:9095",
    "odds-ingest": "odds-ingest:9096",
    "odds-processor": "odds-processor:9097",
}
TOPICS = {"odds_updates": 12, "odds_updates_dlq": 1}
DASHBOARD_METRICS = [
    "odds_ingest_received_total",
    "odds_processor_applied_total",
    "odds_processor_consumer_lag",
    "odds_e2e_latency_seconds_bucket",
    "odds_ws_connections",
    "odds_invalid_total",
    "odds_dlq_total",
]
DEPENDS_CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}


class Checker:
    def __init__(self, quiet: bool):
        self.passed = 0
        self.failed = 0
        self.quiet = quiet

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        if ok:
            self.passed += 1
            if not self.quiet:
                print(f"PASS {name}")
        else:
            self.failed += 1
            print(f"FAIL {name}" + (f": {detail}" if detail else ""))
        return ok

    def info(self, text: str) -> None:
        if not self.quiet:
            print(f"INFO {text}")


def load_yaml(path: Path):
    with path.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


def as_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return "\n".join(str(v) for v in value)
    return str(value)


def env_of(svc: dict) -> dict:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        out = {}
        for item in env:
            k, _, v = str(item).partition("=")
            out[k] = v
        return out
    return {k: ("" if v is None else str(v)) for k, v in env.items()}


def depends_of(svc: dict) -> dict:
    dep = svc.get("depends_on") or {}
    if isinstance(dep, list):
        return {d: {"condition": "service_started"} for d in dep}
    return {k: (v or {"condition": "service_started"}) for k, v in dep.items()}


def volumes_of(svc: dict) -> list[tuple[str, str]]:
    out = []
    for v in svc.get("volumes") or []:
        if isinstance(v, dict):
            out.append((str(v.get("source", "")), str(v.get("target", ""))))
        else:
            parts = str(v).split(":")
            out.append((parts[0], parts[1] if len(parts) > 1 else ""))
    return out


def unescaped_dollars(text: str) -> list[str]:
    """`$VAR` in compose values is interpolated from the host environment; shell variables
    must be written `$$VAR`. Returns the offending snippets."""
    stripped = text.replace("$$", "")
    return re.findall(r"\$\{?[A-Za-z_][A-Za-z0-9_]*", stripped)


def check_compose(root: Path, c: Checker) -> None:
    cdir = root / "compose"
    path = cdir / "docker-compose.yml"
    try:
        doc = load_yaml(path)
    except (OSError, yaml.YAMLError) as exc:
        c.check("docker-compose.yml parses", False, str(exc))
        return
    if not c.check("docker-compose.yml parses", isinstance(doc, dict) and isinstance(doc.get("services"), dict),
                   "top level must have a 'services' mapping"):
        return
    services: dict = doc["services"]

    for name in EXPECTED_SERVICES:
        c.check(f"service {name} exists", name in services)
    c.check("no zookeeper service (KRaft)", not any("zookeeper" in n for n in services))

    # Healthchecks and depends_on.
    for name in NEEDS_HEALTHCHECK:
        svc = services.get(name) or {}
        test = (svc.get("healthcheck") or {}).get("test")
        c.check(f"{name} has a healthcheck", bool(test), "missing healthcheck.test")
    dep_problems = []
    for name, svc in services.items():
        for dep, spec in depends_of(svc or {}).items():
            cond = spec.get("condition", "service_started")
            if dep not in services:
                dep_problems.append(f"{name} -> unknown service {dep}")
            elif cond not in DEPENDS_CONDITIONS:
                dep_problems.append(f"{name} -> {dep}: bad condition {cond}")
            elif cond == "service_healthy" and not (services[dep] or {}).get("healthcheck"):
                dep_problems.append(f"{name} -> {dep}: service_healthy but {dep} has no healthcheck")
    c.check("depends_on targets and conditions are valid", not dep_problems, "; ".join(dep_problems))

    # Kafka: image, KRaft, inside + host listeners.
    kafka = services.get("kafka") or {}
    image = str(kafka.get("image", ""))
    c.check("kafka image is apache/kafka or bitnami/kafka",
            image.startswith(("apache/kafka", "bitnami/kafka", "bitnamilegacy/kafka")), image)
    kenv = env_of(kafka)
    roles = kenv.get("KAFKA_PROCESS_ROLES", kenv.get("KAFKA_CFG_PROCESS_ROLES", ""))
    c.check("kafka runs KRaft broker+controller", "broker" in roles and "controller" in roles, roles)
    adv = kenv.get("KAFKA_ADVERTISED_LISTENERS", kenv.get("KAFKA_CFG_ADVERTISED_LISTENERS", ""))
    c.check("kafka advertises an in-network listener (kafka:...)", "//kafka:" in adv, adv)
    c.check("kafka advertises a host listener (localhost:...)", "//localhost:" in adv, adv)
    host_port = re.search(r"//localhost:(\d+)", adv)
    ports = [str(p) for p in kafka.get("ports") or []]
    c.check("kafka host listener port is published",
            bool(host_port) and any(p.endswith(f":{host_port.group(1)}") for p in ports), str(ports))

    # kafka-init: creates the topics with the right partition counts after kafka is healthy.
    init = services.get("kafka-init") or {}
    init_cmd = as_text(init.get("entrypoint")) + "\n" + as_text(init.get("command"))
    init_cmd_joined = re.sub(r"\\\n\s*", " ", init_cmd)
    c.check("kafka-init waits for kafka healthy",
            depends_of(init).get("kafka", {}).get("condition") == "service_healthy")
    for topic, partitions in TOPICS.items():
        m = re.search(rf"--create[^\n]*--topic\s+{re.escape(topic)}\s[^\n]*--partitions\s+(\d+)", init_cmd_joined)
        c.check(f"kafka-init creates {topic} with {partitions} partition(s)",
                bool(m) and int(m.group(1)) == partitions,
                "not found" if not m else f"--partitions {m.group(1)}")
    c.check("kafka-init is a one-shot (restart: \"no\")", str(init.get("restart", "no")) == "no")

    # Redis and PostgreSQL.
    c.check("redis image is Redis 7", str((services.get("redis") or {}).get("image", "")).startswith("redis:7"))
    pg = services.get("postgres") or {}
    c.check("postgres image is PostgreSQL 15", str(pg.get("image", "")).startswith("postgres:15"))
    penv = env_of(pg)
    c.check("postgres user/password/db are odds/odds/odds",
            (penv.get("POSTGRES_USER"), penv.get("POSTGRES_PASSWORD"), penv.get("POSTGRES_DB")) == ("odds",) * 3,
            str(penv))

    # migrations one-shot.
    mig = services.get("migrations") or {}
    mig_cmd = as_text(mig.get("entrypoint")) + "\n" + as_text(mig.get("command"))
    c.check("migrations waits for postgres healthy",
            depends_of(mig).get("postgres", {}).get("condition") == "service_healthy")
    mounts = volumes_of(mig)
    mount = next((t for s, t in mounts if s.rstrip("/") == "../migrations"), None)
    c.check("migrations mounts ../migrations", mount is not None, str(mounts))
    c.check("migrations runs psql with ON_ERROR_STOP over *.sql in order",
            "psql" in mig_cmd and "ON_ERROR_STOP=1" in mig_cmd and ".sql" in mig_cmd and "sort" in mig_cmd)
    c.check("migrations is a one-shot (restart: \"no\")", str(mig.get("restart", "no")) == "no")
    sql = sorted(p.name for p in (root / "migrations").glob("*.sql"))
    c.info(f"migrations/ holds {len(sql)} SQL file(s): {', '.join(sql) if sql else '(none yet)'}")

    # Bind mounts exist; named volumes are declared.
    declared = set((doc.get("volumes") or {}).keys())
    missing, undeclared = [], []
    for name, svc in services.items():
        for src, _ in volumes_of(svc or {}):
            if src.startswith((".", "/")):
                if not (cdir / src).exists():
                    missing.append(f"{name}: {src}")
            elif src and src not in declared:
                undeclared.append(f"{name}: {src}")
    c.check("bind-mounted paths exist", not missing, "; ".join(missing))
    c.check("named volumes are declared", not undeclared, "; ".join(undeclared))

    # `$` escaping in commands and healthchecks.
    bad = []
    for name, svc in services.items():
        for key in ("command", "entrypoint"):
            bad += [f"{name}.{key}: {s}" for s in unescaped_dollars(as_text((svc or {}).get(key)))]
        bad += [f"{name}.healthcheck: {s}"
                for s in unescaped_dollars(as_text(((svc or {}).get("healthcheck") or {}).get("test")))]
    c.check("shell variables are escaped as $$ in commands", not bad, "; ".join(bad))

    # Prometheus mounts its config; Grafana mounts provisioning.
    prom_mounts = volumes_of(services.get("prometheus") or {})
    c.check("prometheus mounts ./prometheus/prometheus.yml",
            any(s == "./prometheus/prometheus.yml" and t == "/etc/prometheus/prometheus.yml" for s, t in prom_mounts),
            str(prom_mounts))
    graf_mounts = volumes_of(services.get("grafana") or {})
    c.check("grafana mounts ./grafana/provisioning",
            any(s == "./grafana/provisioning" and t == "/etc/grafana/provisioning" for s, t in graf_mounts),
            str(graf_mounts))


def check_prometheus(root: Path, c: Checker) -> None:
    path = root / "compose" / "prometheus" / "prometheus.yml"
    try:
        cfg = load_yaml(path)
    except (OSError, yaml.YAMLError) as exc:
        c.check("prometheus.yml parses", False, str(exc))
        return
    if not c.check("prometheus.yml parses", isinstance(cfg, dict) and isinstance(cfg.get("scrape_configs"), list)):
        return
    targets = {}
    for job in cfg["scrape_configs"]:
        for sc in job.get("static_configs") or []:
            for t in sc.get("targets") or []:
                targets[t] = job.get("job_name")
    for name, target in SCRAPE_TARGETS.items():
        c.check(f"prometheus scrapes {name} at {target}", target in targets, f"targets: {sorted(targets)}")


def check_grafana(root: Path, c: Checker) -> None:
    prov = root / "compose" / "grafana" / "provisioning"
    ds_uids = set()
    ds_files = sorted((prov / "datasources").glob("*.y*ml"))
    ds_ok = False
    for f in ds_files:
        try:
            d = load_yaml(f) or {}
        except yaml.YAMLError as exc:
            c.check(f"grafana datasource {f.name} parses", False, str(exc))
            continue
        for ds in d.get("datasources") or []:
            if ds.get("type") == "prometheus" and "prometheus:9090" in str(ds.get("url", "")):
                ds_ok = True
                if ds.get("uid"):
                    ds_uids.add(ds["uid"])
    c.check("grafana has a Prometheus datasource (http://prometheus:9090)", ds_ok, f"files: {ds_files}")

    provider_paths = []
    for f in sorted((prov / "dashboards").glob("*.y*ml")):
        try:
            d = load_yaml(f) or {}
        except yaml.YAMLError as exc:
            c.check(f"grafana dashboard provider {f.name} parses", False, str(exc))
            continue
        for p in d.get("providers") or []:
            if p.get("type", "file") == "file":
                provider_paths.append(str((p.get("options") or {}).get("path", "")))
    c.check("grafana has a file dashboards provider", bool(provider_paths))
    c.check("dashboards provider path is inside the mounted provisioning folder",
            any(p.startswith("/etc/grafana/provisioning/dashboards") for p in provider_paths), str(provider_paths))

    dashboards = sorted((prov / "dashboards").glob("*.json"))
    if not c.check("grafana dashboard JSON present", bool(dashboards)):
        return
    for f in dashboards:
        try:
            dash = json.loads(f.read_text(encoding="utf-8"))
        except ValueError as exc:
            c.check(f"dashboard {f.name} parses", False, str(exc))
            continue
        c.check(f"dashboard {f.name} parses", True)
        panels = dash.get("panels") or []
        c.check(f"dashboard {f.name} has uid, title and panels",
                bool(dash.get("uid")) and bool(dash.get("title")) and len(panels) >= 5, f"{len(panels)} panels")
        exprs = " ".join(t.get("expr", "") for p in panels for t in p.get("targets") or [])
        for metric in DASHBOARD_METRICS:
            c.check(f"dashboard {f.name} charts {metric}", metric in exprs)
        c.check(f"dashboard {f.name} shows e2e latency percentiles",
                "histogram_quantile(0.99" in exprs and "histogram_quantile(0.5" in exprs)
        c.check(f"dashboard {f.name} breaks invalid frames down by reason",
                re.search(r"by \(reason\)[^\n]*odds_invalid_total", exprs) is not None)
        wrong_ds = [p.get("title") for p in panels
                    if (p.get("datasource") or {}).get("uid") not in ds_uids]
        c.check(f"dashboard {f.name} panels use the provisioned datasource uid",
                not wrong_ds, f"{wrong_ds} (provisioned: {sorted(ds_uids)})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    ap.add_argument("--quiet", action="store_true", help="print failures and the summary only")
    args = ap.parse_args()
    c = Checker(args.quiet)
    check_compose(args.root, c)
    check_prometheus(args.root, c)
    check_grafana(args.root, c)
    readme = args.root / "compose" / "README.md"
    c.check("compose/README.md exists", readme.exists())
    print(f"compose: {c.passed} passed, {c.failed} failed")
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
