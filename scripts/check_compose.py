#!/usr/bin/env python3
"""Static checks of the Docker Compose stack in compose/ (no Docker engine needed).

Checks that compose/docker-compose.yml parses and has the expected services (kafka in KRaft
mode, kafka-init creating the topics, redis, postgres, migrations, prometheus, grafana and the
four services) with healthchecks and valid depends_on conditions; that bind-mounted files exist
and `$` is escaped in shell commands; that each of the four services is built from a Dockerfile
target that builds its product (declared in Package.swift), has a /readyz healthcheck on its
metrics port, publishes its ports, and only sets environment variables the Swift code reads
(quoted names in Sources/), pointing at the compose network; that .dockerignore keeps local
state out of the build context; that prometheus/prometheus.yml scrapes the four services'
metrics ports every 5 s; and that the Grafana data source, dashboard provider and dashboard JSON
fit together, with every metric and label in the dashboard's PromQL registered by the Swift
sources (Counter/Gauge/Timer/Recorder/Meter labels; `_bucket`/`_sum`/`_count` only on
Timers/Recorders, which swift-prometheus exports as histograms).

Usage: python3 scripts/check_compose.py [--root REPO_ROOT] [--quiet]
Output: one line per check, then `compose: N passed, M failed`; exit 1 on any failure.
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import re
import sys
from pathlib import Path

try:
    import yaml
except ImportError:  # pragma: no cover
    print("check_compose: PyYAML is required (pip install PyYAML)", file=sys.stderr)
    sys.exit(2)

# The four services: compose service name = SwiftPM product = Dockerfile target.
APP_SERVICES = {
    "supplier-simulator": {"metrics": 9094, "public": 8081},
    "odds-ingest": {"metrics": 9096, "public": None},
    "odds-processor": {"metrics": 9097, "public": None},
    "odds-service": {"metrics": 9095, "public": 8080},
}
EXPECTED_SERVICES = ["kafka", "kafka-init", "redis", "postgres", "migrations", "prometheus", "grafana",
                     *APP_SERVICES]
NEEDS_HEALTHCHECK = ["kafka", "redis", "postgres", "prometheus", "grafana", *APP_SERVICES]
SCRAPE_TARGETS = {name: f"{name}:{spec['metrics']}" for name, spec in APP_SERVICES.items()}
SCRAPE_INTERVAL = "5s"
TOPICS = {"odds_updates": 12, "odds_updates_dlq": 1}
# Settings whose defaults point at 127.0.0.1 and so must be set inside the compose network.
REQUIRED_ENV = {
    "odds-ingest": ["SUPPLIER_WS_URL", "KAFKA_BROKERS"],
    "odds-processor": ["KAFKA_BROKERS", "REDIS_ADDR", "POSTGRES_DSN"],
    "odds-service": ["REDIS_ADDR", "POSTGRES_DSN"],
}
# depends_on each service needs: (dependency, condition).
REQUIRED_DEPENDS = {
    "odds-ingest": [("kafka-init", "service_completed_successfully"), ("supplier-simulator", "service_healthy")],
    "odds-processor": [("kafka-init", "service_completed_successfully"), ("redis", "service_healthy"),
                       ("postgres", "service_healthy")],
    "odds-service": [("redis", "service_healthy"), ("postgres", "service_healthy")],
}
# The dashboard must chart these (exact text in some expr).
DASHBOARD_METRICS = [
    "odds_supplier_frames_emitted_total",
    "odds_ingest_received_total",
    "odds_ingest_published_total",
    "odds_processor_applied_total",
    "odds_ws_frames_sent_total",
    "odds_processor_consumer_lag",
    "odds_e2e_latency_seconds_bucket",
    "odds_ws_connections",
    "odds_ws_subscriptions",
    "odds_invalid_total",
    "odds_dlq_total",
    "odds_processor_errors_total",
    "odds_service_rest_latency_seconds_bucket",
]
# Series Prometheus itself attaches to every target (not registered by the services).
PROMETHEUS_SYNTHETIC = {"up": {"job", "instance"}}
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


# ---------------------------------------------------------------------------------------------
# What the Swift sources define: environment variable names, metrics, products.

METRIC_CALL = re.compile(
    r"\b(Counter|FloatingPointCounter|Gauge|Meter|Timer|Recorder)\(\s*label:\s*\"([A-Za-z_:][A-Za-z0-9_:]*)\"")


def call_arguments(text: str, start: int) -> str:
    """The text from `start` (just after a call's opening parenthesis) to its closing one."""
    depth, i = 1, start
    while i < len(text) and depth:
        ch = text[i]
        if ch == '"':
            i = text.index('"', i + 1) if '"' in text[i + 1:] else len(text)
        elif ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        i += 1
    return text[start:i - 1]


class SourceIndex:
    """Environment variable names and metrics the Swift code in Sources/ reads and registers."""

    def __init__(self, root: Path):
        self.strings: set[str] = set()
        # metric name -> {"kinds": {counter|gauge|histogram}, "labels": set, "open": bool}
        self.metrics: dict[str, dict] = {}
        self.text = ""
        for f in sorted((root / "Sources").rglob("*.swift")):
            text = f.read_text(encoding="utf-8", errors="replace")
            self.text += text + "\n"
            self.strings.update(re.findall(r'"([A-Za-z_][A-Za-z0-9_]*)"', text))
            # Registered directly on the Prometheus registry (process_* in ServiceSupport).
            for m in re.finditer(r'\bmake(Counter|Gauge)\(descriptor:\s*name\("([a-z_]+)",\s*"([a-z_]+)"', text):
                namespace = re.search(r'MetricNameDescriptor\(namespace:\s*"([a-z_]+)"', text)
                full = "_".join(filter(None, [namespace.group(1) if namespace else None, m.group(2), m.group(3)]))
                entry = self.metrics.setdefault(full, {"kinds": set(), "labels": set(), "open": False})
                entry["kinds"].add(m.group(1).lower())
            for m in METRIC_CALL.finditer(text):
                kind, name = m.group(1), m.group(2)
                args = call_arguments(text, m.start() + len(kind) + 1)
                if kind in ("Counter", "FloatingPointCounter"):
                    mtype = "counter"
                elif kind in ("Gauge", "Meter"):
                    mtype = "gauge"
                elif kind == "Recorder" and re.search(r"aggregate:\s*false", args):
                    mtype = "gauge"
                else:  # Timer, aggregating Recorder: swift-prometheus 2.x histograms
                    mtype = "histogram"
                entry = self.metrics.setdefault(name, {"kinds": set(), "labels": set(), "open": False})
                entry["kinds"].add(mtype)
                dims = re.search(r"dimensions:\s*(.*)", args, re.S)
                if dims:
                    expr = dims.group(1)
                    entry["labels"].update(re.findall(r'\(\s*"([A-Za-z_][A-Za-z0-9_]*)"\s*,', expr))
                    # A variable (e.g. `dimensions` or `dimensions + [...]`) hides label names.
                    if re.sub(r'\[[^\]]*\]|"[^"]*"|\s|\+', "", expr):
                        entry["open"] = True

    def metric_for_series(self, series: str) -> tuple[str | None, dict | None]:
        """(registered metric, entry) a PromQL series name refers to; histogram suffixes are
        accepted only on metrics exported as histograms."""
        if series in self.metrics:
            return series, self.metrics[series]
        for suffix in ("_bucket", "_sum", "_count"):
            base = series[: -len(suffix)]
            if series.endswith(suffix) and "histogram" in self.metrics.get(base, {}).get("kinds", set()):
                return base, self.metrics[base]
        return None, None


def package_products(root: Path) -> set[str]:
    text = (root / "Package.swift").read_text(encoding="utf-8")
    return set(re.findall(r'\.executable\(\s*name:\s*"([^"]+)"', text))


def tools_version(manifest: Path) -> tuple[int, ...] | None:
    try:
        first = manifest.read_text(encoding="utf-8").splitlines()[0]
    except (OSError, IndexError):
        return None
    m = re.search(r"swift-tools-version\s*:\s*(\d+)\.(\d+)", first)
    return (int(m.group(1)), int(m.group(2))) if m else None


# ---------------------------------------------------------------------------------------------
# Dockerfile and .dockerignore.

class Dockerfile:
    """Just enough of a Dockerfile parser: stages (name, base, instructions) and global ARGs."""

    def __init__(self, text: str):
        lines, buf = [], ""
        for raw in text.splitlines():
            stripped = raw.strip()
            if not buf and (not stripped or stripped.startswith("#")):
                continue
            if buf and stripped.startswith("#"):
                continue
            if stripped.endswith("\\"):
                buf += stripped[:-1] + " "
                continue
            lines.append(buf + stripped)
            buf = ""
        if buf:
            lines.append(buf)
        self.args: dict[str, str] = {}
        self.stages: list[dict] = []
        for line in lines:
            word, _, rest = line.partition(" ")
            word = word.upper()
            if word == "FROM":
                m = re.match(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", rest.strip(), re.I)
                base = re.sub(r"\$\{?(\w+)\}?", lambda v: self.args.get(v.group(1), v.group(0)), m.group(1))
                self.stages.append({"name": (m.group(2) or "").lower(), "base": base, "ins": []})
            elif word == "ARG" and not self.stages:
                name, _, default = rest.strip().partition("=")
                self.args[name] = default.strip().strip('"')
            elif self.stages:
                self.stages[-1]["ins"].append((word, rest.strip()))

    def stage(self, name: str) -> dict | None:
        return next((s for s in self.stages if s["name"] == name.lower()), None)

    def chain(self, name: str) -> list[dict]:
        """The stage and the stages it is built FROM, nearest first."""
        out, stage = [], self.stage(name)
        while stage is not None and stage not in out:
            out.append(stage)
            stage = self.stage(stage["base"])
        return out

    def instructions(self, name: str, word: str) -> list[str]:
        return [rest for stage in reversed(self.chain(name)) for w, rest in stage["ins"] if w == word]

    def image_of(self, name: str) -> str:
        chain = self.chain(name)
        return chain[-1]["base"] if chain else ""


def dockerignore_patterns(context: Path) -> list[str] | None:
    path = context / ".dockerignore"
    if not path.exists():
        return None
    return [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()
            if ln.strip() and not ln.strip().startswith("#")]


def ignored(rel: str, patterns: list[str]) -> bool:
    result = False
    for pat in patterns:
        negate = pat.startswith("!")
        pat = pat.lstrip("!").strip("/")
        parts = rel.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatch(p, pat) or fnmatch.fnmatch(p, pat.replace("**/", "")) for p in prefixes):
            result = not negate
    return result


def copy_sources(rest: str) -> tuple[list[str], str, bool]:
    """(sources, destination, from_another_stage) of a COPY instruction."""
    words = rest.split()
    from_stage = any(w.startswith("--from=") for w in words)
    words = [w for w in words if not w.startswith("--")]
    if rest.lstrip().startswith("["):
        words = json.loads(rest[rest.index("["):])
    return words[:-1], words[-1] if words else "", from_stage


def parse_version(image: str) -> tuple[int, ...] | None:
    m = re.match(r"(?:docker\.io/)?(?:library/)?swift:(\d+)\.(\d+)", image)
    return (int(m.group(1)), int(m.group(2))) if m else None


def check_compose(root: Path, c: Checker, src: SourceIndex) -> dict:
    cdir = root / "compose"
    path = cdir / "docker-compose.yml"
    try:
        doc = load_yaml(path)
    except (OSError, yaml.YAMLError) as exc:
        c.check("docker-compose.yml parses", False, str(exc))
        return {}
    if not c.check("docker-compose.yml parses", isinstance(doc, dict) and isinstance(doc.get("services"), dict),
                   "top level must have a 'services' mapping"):
        return {}
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
        for mount_src, _ in volumes_of(svc or {}):
            if mount_src.startswith((".", "/")):
                if not (cdir / mount_src).exists():
                    missing.append(f"{name}: {mount_src}")
            elif mount_src and mount_src not in declared:
                undeclared.append(f"{name}: {mount_src}")
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

    check_app_services(root, services, src, c)
    check_healthcheck_tools(services, root, c)
    return services


def build_of(svc: dict) -> dict:
    build = svc.get("build")
    if isinstance(build, str):
        return {"context": build}
    return build or {}


def url_host_port(value: str) -> tuple[str, int | None, str]:
    m = re.match(r"^[a-z]+://(?:[^@/]*@)?([^:/?]+)(?::(\d+))?(/[^?]*)?", value)
    if not m:
        return "", None, ""
    return m.group(1), int(m.group(2)) if m.group(2) else None, m.group(3) or ""


def check_app_services(root: Path, services: dict, src: SourceIndex, c: Checker) -> None:
    """The four services: image build, environment, ports, healthcheck, depends_on."""
    cdir = root / "compose"
    products = package_products(root)
    kafka_adv = env_of(services.get("kafka") or {}).get("KAFKA_ADVERTISED_LISTENERS", "")
    internal = re.search(r"//(kafka:\d+)", kafka_adv)
    kafka_internal = internal.group(1) if internal else "kafka:29092"
    dockerfiles: dict[Path, Dockerfile] = {}

    for name, spec in APP_SERVICES.items():
        svc = services.get(name)
        if not isinstance(svc, dict):
            continue  # "service X exists" already failed
        env = env_of(svc)
        metrics_port, public_port = spec["metrics"], spec["public"]

        # ---- Image: built from a Dockerfile target that builds this product.
        c.check(f"{name}: is a SwiftPM product in Package.swift", name in products, f"products: {sorted(products)}")
        build = build_of(svc)
        c.check(f"{name}: has build (or image)", bool(build) or bool(svc.get("image")))
        if build:
            context = (cdir / str(build.get("context", "."))).resolve()
            c.check(f"{name}: build context is the repository root", context == root.resolve(), str(context))
            dockerfile = (context / str(build.get("dockerfile", "Dockerfile"))).resolve()
            if c.check(f"{name}: Dockerfile {dockerfile.relative_to(root) if dockerfile.is_relative_to(root) else dockerfile} exists",
                       dockerfile.is_file()):
                if dockerfile not in dockerfiles:
                    dockerfiles[dockerfile] = Dockerfile(dockerfile.read_text(encoding="utf-8"))
                    check_dockerfile(root, context, dockerfile, dockerfiles[dockerfile], c)
                check_service_image(name, build, dockerfiles[dockerfile], env, c)

        # ---- Environment: only names the code reads, pointing at the compose network.
        unknown = sorted(k for k in env if k not in src.strings)
        c.check(f"{name}: every environment variable is read by the code", not unknown,
                f"not found quoted in Sources/: {unknown}")
        missing = [k for k in REQUIRED_ENV.get(name, []) if k not in env]
        c.check(f"{name}: sets {', '.join(REQUIRED_ENV.get(name, [])) or 'no required settings'}", not missing,
                f"missing {missing}")
        bad = []
        if "METRICS_PORT" in env and env["METRICS_PORT"] != str(metrics_port):
            bad.append(f"METRICS_PORT={env['METRICS_PORT']} (expected {metrics_port})")
        if "HTTP_PORT" in env and public_port and env["HTTP_PORT"] != str(public_port):
            bad.append(f"HTTP_PORT={env['HTTP_PORT']} (expected {public_port})")
        if "KAFKA_BROKERS" in env and env["KAFKA_BROKERS"] != kafka_internal:
            bad.append(f"KAFKA_BROKERS={env['KAFKA_BROKERS']} (expected {kafka_internal})")
        if "REDIS_ADDR" in env and not re.fullmatch(r"(redis://)?(\S*@)?redis(:6379)?(/\d+)?", env["REDIS_ADDR"]):
            bad.append(f"REDIS_ADDR={env['REDIS_ADDR']} (expected redis:6379)")
        if "POSTGRES_DSN" in env and url_host_port(env["POSTGRES_DSN"])[:2] not in (("postgres", 5432), ("postgres", None)):
            bad.append("POSTGRES_DSN host is not postgres:5432")
        if "SUPPLIER_WS_URL" in env:
            sup = APP_SERVICES["supplier-simulator"]["public"]
            if url_host_port(env["SUPPLIER_WS_URL"]) != ("supplier-simulator", sup, "/ws"):
                bad.append(f"SUPPLIER_WS_URL={env['SUPPLIER_WS_URL']} (expected ws://supplier-simulator:{sup}/ws)")
        c.check(f"{name}: addresses point at the compose network", not bad, "; ".join(bad))

        # ---- Ports, healthcheck, restart.
        ports = [str(p) for p in svc.get("ports") or []]
        wanted = [p for p in (public_port, metrics_port) if p]
        unpublished = [p for p in wanted if not any(re.search(rf"(^|:){p}(/tcp)?$", q) for q in ports)]
        c.check(f"{name}: publishes ports {wanted}", not unpublished, f"ports: {ports}")
        test = as_text((svc.get("healthcheck") or {}).get("test"))
        c.check(f"{name}: healthcheck requests /readyz on metrics port {metrics_port}",
                bool(re.search(rf":{metrics_port}/readyz\b", test)) or
                bool(re.search(rf"/dev/tcp/[^/\s]+/{metrics_port}\b", test) and "/readyz" in test),
                test.replace("\n", " "))
        c.check(f"{name}: restart: unless-stopped", svc.get("restart") == "unless-stopped", str(svc.get("restart")))

        # ---- depends_on.
        deps = depends_of(svc)
        wrong = [f"{d} ({cond})" for d, cond in REQUIRED_DEPENDS.get(name, [])
                 if deps.get(d, {}).get("condition") != cond]
        c.check(f"{name}: depends_on its dependencies with the right conditions", not wrong, f"missing/wrong: {wrong}")

    # service_completed_successfully only makes sense for one-shot services.
    bad_once = [f"{n} -> {d}" for n, svc in services.items() for d, spec in depends_of(svc or {}).items()
                if spec.get("condition") == "service_completed_successfully"
                and str((services.get(d) or {}).get("restart", "no")) != "no"]
    c.check("service_completed_successfully only targets one-shot services", not bad_once, "; ".join(bad_once))


def check_dockerfile(root: Path, context: Path, path: Path, df: Dockerfile, c: Checker) -> None:
    rel = path.relative_to(root) if path.is_relative_to(root) else path
    patterns = dockerignore_patterns(context)
    if c.check(".dockerignore at the build context root", patterns is not None):
        for local in (".build", ".git", ".infra", ".infra-redis"):
            c.check(f".dockerignore excludes {local}", ignored(local, patterns))
        for needed in ("Package.swift", "Sources", "Tests"):
            c.check(f".dockerignore keeps {needed}", not ignored(needed, patterns))
    swift_stages = [s for s in df.stages if s["base"].startswith(("swift:", "docker.io/library/swift:"))
                    and not s["base"].endswith("-slim")]
    build_runs = " ".join(r for s in swift_stages for w, r in s["ins"] if w == "RUN")
    c.check(f"{rel}: a build stage FROM an official swift image", bool(swift_stages),
            str([s["base"] for s in df.stages]))
    for pkg in ("librdkafka-dev", "libhiredis-dev", "pkg-config"):
        c.check(f"{rel}: build stage installs {pkg}", re.search(rf"apt-get[^&;]*install[^&;]*\b{re.escape(pkg)}\b", build_runs) is not None)
    c.check(f"{rel}: build stage runs swift build -c release --product",
            re.search(r"swift build[^;&]*-c release[^;&]*--product", build_runs) is not None)
    # The image's toolchain must be able to load the manifest and the resolved dependencies.
    for stage in swift_stages:
        version = parse_version(stage["base"])
        needed = [(tools_version(root / "Package.swift"), "Package.swift")]
        checkouts = root / ".build" / "checkouts"
        if checkouts.is_dir():
            needed += [(tools_version(d / "Package.swift"), f"dependency {d.name}") for d in sorted(checkouts.iterdir())]
        else:
            c.info("no .build/checkouts: only Package.swift's tools version is compared with the Swift image")
        too_new = [f"{what} needs {v[0]}.{v[1]}" for v, what in needed if v and version and v > version]
        c.check(f"{rel}: {stage['base']} is new enough for the swift-tools-versions in use",
                version is not None and not too_new, "; ".join(too_new) or "unknown Swift version")
    # COPY sources exist in the context and are not ignored.
    bad = []
    for stage in df.stages:
        for word, rest in stage["ins"]:
            if word not in ("COPY", "ADD"):
                continue
            sources, _, from_stage = copy_sources(rest)
            if from_stage:
                continue
            for source in sources:
                matches = list(context.glob(source)) if any(ch in source for ch in "*?[") else [context / source]
                if not any(ch in source for ch in "*?[") and not matches[0].exists():
                    bad.append(f"{source} missing")
                elif patterns and any(ignored(str(m.relative_to(context)), patterns) for m in matches if m.exists()):
                    bad.append(f"{source} excluded by .dockerignore")
    c.check(f"{rel}: COPY sources exist in the build context", not bad, "; ".join(bad))


def check_service_image(name: str, build: dict, df: Dockerfile, env: dict, c: Checker) -> None:
    target = str(build.get("target", ""))
    if not c.check(f"{name}: build target names a Dockerfile stage", bool(target) and df.stage(target) is not None,
                   f"target {target!r}; stages {[s['name'] for s in df.stages]}"):
        return
    runs = " ".join(df.instructions(target, "RUN"))
    copies = df.instructions(target, "COPY")
    # The binary comes from a stage whose `swift build` builds this product.
    build_stage_ok = any(
        re.search(r"swift build[^;&]*--product", " ".join(r for w, r in s["ins"] if w == "RUN"))
        and re.search(rf"(--product\s+\"?|\bfor \w+ in [^;]*\b){re.escape(name)}\b",
                      " ".join(r for w, r in s["ins"] if w == "RUN"))
        for s in df.stages)
    c.check(f"{name}: Dockerfile builds product {name}", build_stage_ok)
    c.check(f"{name}: image copies the {name} binary",
            any(copy_sources(r)[2] and any(os_base(x) == name for x in copy_sources(r)[0]) for r in copies))
    entry = " ".join(df.instructions(target, "ENTRYPOINT") + df.instructions(target, "CMD"))
    c.check(f"{name}: image runs {name}", name in entry, entry)
    runtime = df.image_of(target)
    c.check(f"{name}: runtime image is slim (debian:*-slim or swift:*-slim)",
            bool(re.match(r"(debian:\S*slim|swift:\S*slim|debian:bookworm-slim)", runtime)), runtime)
    for lib in ("librdkafka1", "libhiredis0.14"):
        c.check(f"{name}: runtime installs {lib}", re.search(rf"install[^&;]*\b{re.escape(lib)}\b", runs) is not None)
    users = df.instructions(target, "USER")
    c.check(f"{name}: runs as a non-root user", bool(users) and users[-1].split(":")[0] not in ("root", "0"),
            str(users))
    exposes = " ".join(df.instructions(target, "EXPOSE")).split()
    c.check(f"{name}: image EXPOSEs port {APP_SERVICES[name]['metrics']}",
            str(APP_SERVICES[name]["metrics"]) in exposes, str(exposes))
    # Files the service reads at run time are in the image.
    wants = {"MIGRATIONS_DIR": "migrations", "OPENAPI_PATH": "contracts/openapi.yaml"}
    for key, source in wants.items():
        if key not in env:
            continue
        dests = [copy_sources(r)[1].rstrip("/") for r in copies if source in copy_sources(r)[0]]
        c.check(f"{name}: {key}={env[key]} is copied into the image", env[key].rstrip("/") in dests, str(dests))


def os_base(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def check_healthcheck_tools(services: dict, root: Path, c: Checker) -> None:
    """The program a healthcheck runs must be installed in the service's image."""
    cdir = root / "compose"
    for name in APP_SERVICES:
        svc = services.get(name) or {}
        build = build_of(svc)
        test = (svc.get("healthcheck") or {}).get("test")
        if not build or not test:
            continue
        path = (cdir / str(build.get("context", ".")) / str(build.get("dockerfile", "Dockerfile"))).resolve()
        if not path.is_file():
            continue
        df = Dockerfile(path.read_text(encoding="utf-8"))
        if df.stage(str(build.get("target", ""))) is None:
            continue  # reported by "build target names a Dockerfile stage"
        words = test if isinstance(test, list) else ["CMD-SHELL", str(test)]
        tool = words[1].split()[0] if words[0] == "CMD-SHELL" else words[1] if len(words) > 1 else ""
        runs = " ".join(df.instructions(str(build.get("target", "")), "RUN"))
        ok = tool in ("bash", "sh", "/bin/sh", "/bin/bash") or re.search(rf"install[^&;]*\b{re.escape(tool)}\b", runs)
        c.check(f"{name}: healthcheck tool `{tool}` is installed in the image", bool(ok))


def check_prometheus(root: Path, c: Checker, services: dict, src: SourceIndex) -> set[str]:
    """Returns the target label names Prometheus adds (besides job and instance)."""
    path = root / "compose" / "prometheus" / "prometheus.yml"
    try:
        cfg = load_yaml(path)
    except (OSError, yaml.YAMLError) as exc:
        c.check("prometheus.yml parses", False, str(exc))
        return set()
    if not c.check("prometheus.yml parses", isinstance(cfg, dict) and isinstance(cfg.get("scrape_configs"), list)):
        return set()
    global_interval = str((cfg.get("global") or {}).get("scrape_interval", "1m"))
    targets, target_labels = {}, set()
    for job in cfg["scrape_configs"]:
        for sc in job.get("static_configs") or []:
            for t in sc.get("targets") or []:
                targets[t] = job
            target_labels.update((sc.get("labels") or {}).keys())
    for name, target in SCRAPE_TARGETS.items():
        if not c.check(f"prometheus scrapes {name} at {target}", target in targets, f"targets: {sorted(targets)}"):
            continue
        job = targets[target]
        c.check(f"prometheus job for {name} is named {name} and scrapes /metrics every {SCRAPE_INTERVAL}",
                job.get("job_name") == name and job.get("metrics_path", "/metrics") == "/metrics"
                and str(job.get("scrape_interval", global_interval)) == SCRAPE_INTERVAL,
                f"job {job.get('job_name')}, path {job.get('metrics_path', '/metrics')}, "
                f"interval {job.get('scrape_interval', global_interval)}")
        port = env_of(services.get(name) or {}).get("METRICS_PORT")
        if port is not None:
            c.check(f"prometheus target port of {name} matches its METRICS_PORT", target.endswith(f":{port}"),
                    f"{target} vs METRICS_PORT={port}")
    code_labels = set().union(*(m["labels"] for m in src.metrics.values())) if src.metrics else set()
    clash = sorted(target_labels & code_labels)
    c.check("prometheus target labels do not clash with the services' metric labels", not clash,
            f"{clash} would be renamed exported_<label> in the scraped series")
    return target_labels


PROMQL_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
                   "offset", "inf", "nan", "atan2"}


def promql_refs(expr: str) -> tuple[set[str], set[str]]:
    """(series names, label names) an expression refers to. Enough PromQL for dashboards:
    selectors, `{...}` matchers, `[range]`, functions, aggregations with by/without."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    labels: set[str] = set()
    for group in re.findall(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", text):
        labels.update(x.strip() for x in group.split(",") if x.strip())
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    for matchers in re.findall(r"\{([^}]*)\}", text):
        labels.update(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)", matchers))
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    series = set()
    for m in re.finditer(r"(?<![A-Za-z0-9_.$])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?", text):
        word, call = m.group(1), m.group(2)
        if call or word.lower() in PROMQL_KEYWORDS:
            continue
        series.add(word)
    return series, labels


def check_grafana(root: Path, c: Checker, src: SourceIndex, target_labels: set[str]) -> None:
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
        targets = [(p.get("title"), t.get("expr", "")) for p in panels for t in p.get("targets") or []]
        exprs = " ".join(e for _, e in targets)
        c.check(f"dashboard {f.name}: every panel has a query", all(p.get("targets") for p in panels),
                str([p.get("title") for p in panels if not p.get("targets")]))
        for metric in DASHBOARD_METRICS:
            c.check(f"dashboard {f.name} charts {metric}", re.search(rf"\b{metric}\b", exprs) is not None)
        c.check(f"dashboard {f.name} shows e2e latency percentiles p50/p99/p99.9",
                all(any(re.fullmatch(rf"\s*histogram_quantile\(\s*{q},.*\bodds_e2e_latency_seconds_bucket\b.*", e, re.S)
                        for _, e in targets) for q in (r"0\.50?", r"0\.99", r"0\.999")))
        c.check(f"dashboard {f.name} breaks invalid frames down by reason",
                re.search(r"by \(reason\)[^\n]*odds_invalid_total", exprs) is not None)
        c.check(f"dashboard {f.name} shows REST latency by route",
                re.search(r"by \([^)]*\broute\b[^)]*\)[^\n]*odds_service_rest_latency_seconds_bucket", exprs) is not None)
        # Every series and label must exist: registered by the Swift code (or added by Prometheus).
        unknown, wrong_labels, not_hist = [], [], []
        for title, expr in targets:
            series, labels = promql_refs(expr)
            known_labels = {"job", "instance"} | target_labels
            open_labels = False
            for name in sorted(series):
                if name in PROMETHEUS_SYNTHETIC:
                    known_labels |= PROMETHEUS_SYNTHETIC[name]
                    continue
                metric, entry = src.metric_for_series(name)
                if metric is None:
                    unknown.append(f"{title}: {name}")
                    continue
                known_labels |= entry["labels"]
                open_labels |= entry["open"]
                if name.endswith("_bucket") and metric != name:
                    known_labels.add("le")
            if "histogram_quantile" in expr and not any(n.endswith("_bucket") for n in series):
                not_hist.append(title)
            extra = sorted(labels - known_labels)
            if extra and not open_labels:
                wrong_labels.append(f"{title}: {extra}")
        c.check(f"dashboard {f.name}: every metric in its PromQL is registered in Sources/", not unknown,
                "; ".join(unknown))
        c.check(f"dashboard {f.name}: every label in its PromQL exists on those metrics", not wrong_labels,
                "; ".join(wrong_labels))
        c.check(f"dashboard {f.name}: histogram_quantile is only applied to _bucket series", not not_hist,
                str(not_hist))
        c.info(f"dashboard {f.name}: {len(panels)} panels, {len(targets)} queries, "
               f"{len({n for _, e in targets for n in promql_refs(e)[0]})} distinct series")
        wrong_ds = [p.get("title") for p in panels
                    if (p.get("datasource") or {}).get("uid") not in ds_uids]
        c.check(f"dashboard {f.name} panels use the provisioned datasource uid",
                not wrong_ds, f"{wrong_ds} (provisioned: {sorted(ds_uids)})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    ap.add_argument("--quiet", action="store_true", help="print failures and the summary only")
    args = ap.parse_args()
    args.root = args.root.resolve()
    c = Checker(args.quiet)
    src = SourceIndex(args.root)
    c.info(f"Sources/ registers {len(src.metrics)} metric names and quotes {len(src.strings)} identifiers")
    services = check_compose(args.root, c, src)
    target_labels = check_prometheus(args.root, c, services, src)
    check_grafana(args.root, c, src, target_labels)
    readme = args.root / "compose" / "README.md"
    if c.check("compose/README.md exists", readme.exists()):
        text = readme.read_text(encoding="utf-8")
        c.check("compose/README.md shows `docker compose up -d --build`", "docker compose up -d --build" in text)
        missing = [n for n in APP_SERVICES if n not in text]
        missing += [str(p) for spec in APP_SERVICES.values() for p in (spec["public"], spec["metrics"])
                    if p and str(p) not in text]
        c.check("compose/README.md lists the four services and their ports", not missing, f"missing {missing}")
    print(f"compose: {c.passed} passed, {c.failed} failed")
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
