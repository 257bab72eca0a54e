#!/usr/bin/env python3
"""End-to-end benchmark (make bench): supplier-simulator -> odds-ingest -> Kafka dev broker ->
odds-processor -> Redis/PostgreSQL -> odds-service -> WebSocket subscribers, everything release
built and co-located on this machine, on private infrastructure (free ports, temp folder).

Phases (each: warm-up, measurement window, then the supplier stops and the pipeline drains):
  idle       a connected supplier that sends its snapshot and then only alive frames, with every
             subscriber connected: what the pipeline burns doing nothing (goal: < 1 % of a core each).
  latency    at 100, 1,000 and 10,000 updates/s with 1,000 subscribers (ws-bench --role follow):
             updated_at (set by the supplier) -> frame received, HdrHistogram p50/p99/p99.9.
  throughput rising rates (default 15k, 20k/s): the highest rate the pipeline sustains with
             zero loss = the supplier kept its rate, processor lag stayed under one second of input,
             and after draining every market's newest version is in Redis (read through the REST
             API) and reached the subscribers, with no subscriber seeing a version go backwards.
Each phase records CPU (% of one core, and µs per update = CPU seconds / frames the supplier
emitted in the window) and RSS of every process: the four services, the Kafka dev broker, Redis,
PostgreSQL (postmaster and backends) and the bench's subscriber process.
--fetch-wait-sweep 1,5,10,50 runs an idle and a 1,000/s phase per fetch.wait.max.ms of the
processor's consumer instead, and prints the trade-off (make bench-fetch-wait).

Usage: scripts/bench_e2e.py [--subscribers 1000] [--events 100] [--latency-rates 100,1000,10000]
                            [--throughput-rates 15000,20000] [--no-idle] [--fetch-wait-ms N]
                            [--fetch-wait-sweep 1,5,10,50] [--warmup 5] [--duration 20] [--quick]
Output: tables on screen and bench-results/e2e-<UTC time>.json.
"""
import argparse
import datetime
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import (ROOT, counter, free_port, histogram_buckets, infra_down, infra_pids, infra_up, machine,  # noqa: E402
                      metrics, proc_stats, process_tree_stats, quantile_from_buckets)

BIN = os.path.join(ROOT, ".build", "release")
SERVICES = ["supplier-simulator", "odds-ingest", "odds-processor", "odds-service"]
# Everything that runs for the pipeline, for CPU accounting: the services, the servers they
# use and the bench's own subscriber process.
PROCESSES = SERVICES + ["kafka-dev-broker", "redis", "postgres", "ws-bench"]


def log(text):
    print(f"bench: {text}", flush=True)


def http_json(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def wait_until(description, seconds, check):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.1)
    sys.exit(f"bench: timed out waiting for {description}")


class Pipeline:
    """The long-lived services (ingest, processor, odds-service) and a supplier per phase."""

    def __init__(self, work, addresses, events, infra, processor_env=None):
        self.work = work
        self.infra = infra
        self.processor_env = processor_env or {}
        self.client = None
        self.addresses = addresses
        self.events = events
        self.ports = {name: free_port() for name in SERVICES}
        self.supplier_http = free_port()
        self.odds_http = free_port()
        self.procs = {}
        self.logs = {}

    def start(self, name, env):
        """Starts a service and waits for its /readyz."""
        self.start_process_only(name, env)
        wait_until(f"{name} /readyz", 60, lambda: self.ready(name))

    def ready(self, name):
        if self.procs[name].poll() is not None:
            sys.exit(f"bench: {name} exited (see {self.work}/{name}.log)")
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ports[name]}/readyz", timeout=2) as response:
            return response.status == 200

    def start_processor(self, consumer_properties):
        a = self.addresses
        self.start("odds-processor", dict(KAFKA_BROKERS=a["KAFKA_BROKERS"], REDIS_ADDR=a["REDIS_ADDR"],
                                          KAFKA_CONSUMER_PROPERTIES=consumer_properties,
                                          POSTGRES_DSN=a["POSTGRES_DSN"], MIGRATIONS_DIR=os.path.join(ROOT, "migrations"),
                                          **self.processor_env))

    def start_services(self, consumer_properties):
        a = self.addresses
        self.start_processor(consumer_properties)
        self.start("odds-service", dict(REDIS_ADDR=a["REDIS_ADDR"], POSTGRES_DSN=a["POSTGRES_DSN"],
                                        HTTP_PORT=str(self.odds_http), WS_MAX_CONNECTIONS="50000"))
        # The ingest is ready only once connected to a supplier, so it is started with the first one.

    def start_supplier(self, rate, journal, max_frames=0):
        env = dict(HTTP_PORT=str(self.supplier_http), SUPPLIER_RATE=str(rate), SUPPLIER_EVENTS=str(self.events),
                   SUPPLIER_JOURNAL=journal, SUPPLIER_CLIENT_BUFFER="2000000", SUPPLIER_MAX_FRAMES=str(max_frames))
        self.start_process_only("supplier-simulator", env)
        wait_until("supplier /healthz", 30, lambda: self.healthy("supplier-simulator"))
        if "odds-ingest" not in self.procs:
            self.start("odds-ingest", dict(SUPPLIER_WS_URL=f"ws://127.0.0.1:{self.supplier_http}/ws",
                                           KAFKA_BROKERS=self.addresses["KAFKA_BROKERS"], INGEST_RECONNECT_MAX_MS="500"))

    def start_process_only(self, name, env):
        log_path = os.path.join(self.work, f"{name}.log")
        self.logs[name] = open(log_path, "ab")
        full = dict(os.environ, LOG_LEVEL="warning", LOG_FORMAT="text", METRICS_PORT=str(self.ports[name]), **env)
        self.procs[name] = subprocess.Popen([os.path.join(BIN, name)], env=full, cwd=ROOT, stdout=self.logs[name],
                                            stderr=subprocess.STDOUT)

    def healthy(self, name):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ports[name]}/healthz", timeout=2) as response:
            return response.status == 200

    def stop(self, name):
        proc = self.procs.pop(name, None)
        if proc and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def stop_all(self):
        for name in ["supplier-simulator", "odds-ingest", "odds-processor", "odds-service"]:
            self.stop(name)

    def metric(self, name, metric):
        return counter(metrics(self.ports[name]), metric)

    def sample(self):
        """(RSS MiB, CPU seconds) of every process of PROCESSES that is running."""
        stats = {name: proc_stats(proc.pid) for name, proc in self.procs.items() if proc.poll() is None}
        for name, pid in self.infra.items():
            try:
                stats[name] = process_tree_stats(pid)
            except OSError:
                pass
        if self.client and self.client.poll() is None:
            stats["ws-bench"] = proc_stats(self.client.pid)
        return stats


# Per-stage histograms (service, metric, labels): where the end-to-end time goes.
STAGES = {
    "ingest_publish": ("odds-ingest", "odds_ingest_publish_latency_seconds", ""),
    "processor_batch": ("odds-processor", "odds_processor_batch_latency_seconds", ""),
    "processor_postgres": ("odds-processor", "odds_processor_store_write_latency_seconds", 'store="postgres"'),
    "processor_redis": ("odds-processor", "odds_processor_store_write_latency_seconds", 'store="redis"'),
    "updated_at_to_applied": ("odds-processor", "odds_processor_e2e_lag_seconds", ""),
    "updated_at_to_fan_out": ("odds-service", "odds_e2e_latency_seconds", ""),
}


def stage_snapshot(pipeline):
    snapshot = {}
    for stage, (service, name, labels) in STAGES.items():
        try:
            snapshot[stage] = histogram_buckets(metrics(pipeline.ports[service]), name, labels)
        except (OSError, KeyError):
            snapshot[stage] = {}
    return snapshot


def stage_quantiles(before, after):
    """p50/p99 per stage in ms (histogram bucket upper bounds) over the measurement window."""
    result = {}
    for stage in STAGES:
        p50 = quantile_from_buckets(after.get(stage, {}), 0.5, before.get(stage))
        p99 = quantile_from_buckets(after.get(stage, {}), 0.99, before.get(stage))
        result[stage] = {"p50_le_ms": p50 * 1000 if p50 is not None else None,
                         "p99_le_ms": p99 * 1000 if p99 is not None else None}
    return result


def journal_newest(path):
    """Newest version per 'event/market' and the count of valid frames in a supplier journal.
    `initial` lines are each market's state before the stream's first frame (what the snapshot
    ingest gets from a new supplier carries for a market that has not moved yet)."""
    newest, valid = {}, 0
    with open(path) as f:
        for line in f:
            entry = json.loads(line)
            if entry.get("kind") not in ("valid", "initial"):
                continue
            valid += entry.get("kind") == "valid"
            frame = entry["frame"]
            if isinstance(frame, str):
                frame = json.loads(frame)
            key = f"{frame['event_id']}/{frame['market']}"
            if frame["version"] > newest.get(key, -1):
                newest[key] = frame["version"]
    return newest, valid


def redis_versions(pipeline, event_ids):
    """Current version per 'event/market' as odds-service answers it (Redis first)."""
    versions = {}
    for event_id in event_ids:
        try:
            answer = http_json(f"http://127.0.0.1:{pipeline.odds_http}/v1/events/{event_id}/odds")
        except OSError:
            continue
        for market in answer.get("markets", []):
            versions[f"{event_id}/{market['market']}"] = market["version"]
    return versions


def frames_sent(pipeline):
    return pipeline.metric("odds-service", "odds_ws_frames_sent_total")


def run_phase(pipeline, kind, rate, args, event_ids_holder, label=None):
    """One phase. kind "idle": a connected supplier that sends its snapshot, one frame and then
    only alive frames, with every subscriber connected (what the pipeline burns doing nothing)."""
    idle = kind == "idle"
    log(f"{kind} phase" + ("" if idle else f" at {rate:,} updates/s") + ": starting the supplier")
    journal = os.path.join(pipeline.work, f"journal-{kind}-{rate}-{label or ''}.jsonl")
    published_before = pipeline.metric("odds-ingest", "odds_ingest_published_total") if "odds-ingest" in pipeline.procs else 0
    pipeline.start_supplier(rate if not idle else 1, journal, max_frames=1 if idle else 0)
    if not event_ids_holder:
        wait_until("events listed by odds-service", 60, lambda: len(http_json(
            f"http://127.0.0.1:{pipeline.odds_http}/v1/events?limit=1000")["events"]) >= min(args.events, 50))
        time.sleep(1)
        event_ids_holder.extend(e["eventId"] for e in http_json(
            f"http://127.0.0.1:{pipeline.odds_http}/v1/events?limit=1000")["events"])
    event_ids = event_ids_holder
    summary_path = os.path.join(pipeline.work, f"follow-{kind}-{rate}.json")
    follower = subprocess.Popen(
        [os.path.join(BIN, "ws-bench"), "--role", "follow", "--url", f"ws://127.0.0.1:{pipeline.odds_http}/ws/odds",
         "--connections", str(args.subscribers), "--event-ids", ",".join(event_ids), "--warmup", str(args.warmup),
         "--duration", str(args.duration), "--drain-seconds", str(args.drain), "--json", summary_path, "--threads", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    pipeline.client = follower
    samples, lag_at_end = {}, None
    emitted_start = None
    for line in follower.stdout:
        line = line.rstrip()
        if line:
            log("  " + line)
        if "ws-bench follow: measuring" in line:
            samples["start"] = (time.monotonic(), pipeline.sample())
            stages_before = stage_snapshot(pipeline)
            emitted_start = pipeline.metric("supplier-simulator", "odds_supplier_frames_emitted_total")
            sent_start = frames_sent(pipeline)
        elif "ws-bench follow: measured" in line:
            samples["end"] = (time.monotonic(), pipeline.sample())
            stages_after = stage_snapshot(pipeline)
            emitted_end = pipeline.metric("supplier-simulator", "odds_supplier_frames_emitted_total")
            sent_end = frames_sent(pipeline)
            # Frames a snapshot (ingest's first connection to a new supplier) or a replay added
            # to the stream: ingest publishes those too.
            resent = (pipeline.metric("supplier-simulator", "odds_supplier_snapshot_frames_total")
                      + pipeline.metric("supplier-simulator", "odds_supplier_frames_replayed_total"))
            lag_at_end = pipeline.metric("odds-processor", "odds_processor_consumer_lag")
            pipeline.stop("supplier-simulator")
    follower.wait()
    pipeline.client = None
    if "start" not in samples or "end" not in samples or not os.path.exists(summary_path):
        sys.exit("bench: the follower did not complete (see the lines above)")
    # Let the pipeline finish what the supplier emitted before its stop, then compare.
    wait_until("processor lag 0", 60, lambda: pipeline.metric("odds-processor", "odds_processor_consumer_lag") == 0)
    follow = json.load(open(summary_path))
    newest, valid = journal_newest(journal)
    published = pipeline.metric("odds-ingest", "odds_ingest_published_total") - published_before
    stored = redis_versions(pipeline, sorted({k.split("/")[0] for k in newest}))
    followed = set(event_ids)
    missing_store = [k for k, v in newest.items() if stored.get(k) != v]
    missing_ws = [k for k, v in newest.items() if k.split("/")[0] in followed and follow["newest_versions"].get(k) != v]
    window = samples["end"][0] - samples["start"][0]
    achieved = (emitted_end - emitted_start) / window
    updates = emitted_end - emitted_start
    sent = sent_end - sent_start
    usage = {}
    for name, (rss_end, cpu_end) in samples["end"][1].items():
        _, cpu_start = samples["start"][1].get(name, (0, cpu_end))
        cpu = cpu_end - cpu_start
        usage[name] = {"cpu_percent": round(cpu / window * 100, 2), "rss_mib": round(rss_end, 1),
                       "cpu_us_per_update": round(cpu / updates * 1e6, 1) if updates > 0 and not idle else None}
        if name == "odds-service":
            usage[name]["cpu_us_per_frame_sent"] = round(cpu / sent * 1e6, 2) if sent > 0 and not idle else None
    zero_loss = (not missing_store and not missing_ws and follow["non_increasing"] == 0 and published == valid + resent)
    kept_up = idle or (achieved >= 0.95 * rate and (lag_at_end or 0) <= rate and follow["latency_us"]["p99"] <= 1_000_000)
    result = {
        "kind": kind, "label": label, "target_rate": 0 if idle else rate, "achieved_rate": round(achieved),
        "frames_sent_to_subscribers": int(sent), "subscribers": follow["subscribed"],
        "events": len(event_ids), "markets": len(newest), "window_s": round(window, 1),
        "valid_frames": valid, "snapshot_or_replayed_frames": int(resent),
        "published_to_kafka": int(published), "processor_lag_at_window_end": lag_at_end,
        "deltas_received": follow["deltas_measured"], "latency_ms": {k: v / 1000 for k, v in follow["latency_us"].items()},
        "non_increasing": follow["non_increasing"], "markets_not_newest_in_store": len(missing_store),
        "markets_not_newest_at_subscribers": len(missing_ws), "closed_by_server": follow["closed_by_server"],
        "zero_loss": zero_loss, "kept_up": kept_up, "services": usage,
        "stages": stage_quantiles(stages_before, stages_after),
    }
    if missing_store or missing_ws:
        log(f"  LOSS: store {missing_store[:5]}, subscribers {missing_ws[:5]}")
    return result


SHORT = {"supplier-simulator": "supplier", "odds-ingest": "ingest", "odds-processor": "processor",
         "odds-service": "odds-svc", "kafka-dev-broker": "broker", "redis": "redis", "postgres": "postgres",
         "ws-bench": "ws-bench"}


def phase_name(r):
    return (r["label"] + " " if r.get("label") else "") + r["kind"]


def print_report(report, args, event_ids):
    results = report["phases"]
    print()
    print(f"end-to-end benchmark — {report['date']} — {report['machine']}")
    print(f"{args.subscribers} subscribers over {len(event_ids)} events; warm-up {args.warmup} s, window {args.duration} s; "
          f"processor consumer: {report['method']['processor_consumer_properties'] or 'defaults'}; "
          f"dev broker: {report['method']['dev_broker']}")
    width = max(11, max(len(phase_name(r)) for r in results) + 1)
    header = f"{'phase':<{width}}{'target/s':>9}{'achieved/s':>11}{'deltas/s':>10}{'p50 ms':>8}{'p99 ms':>8}{'p99.9 ms':>9}" \
             f"{'max ms':>8}{'lag':>7}  {'zero loss':<10}{'kept up':<8}"
    print(header)
    print("-" * len(header))
    for r in results:
        lat = r["latency_ms"]
        measured = r["deltas_received"] > 0
        cells = "".join(f"{lat[k]:>{w}.{d}f}" if measured else f"{'-':>{w}}"
                        for k, w, d in (("p50", 8, 2), ("p99", 8, 2), ("p999", 9, 2), ("max", 8, 1)))
        print(f"{phase_name(r):<{width}}{r['target_rate']:>9,}{r['achieved_rate']:>11,}{r['deltas_received'] / r['window_s']:>10,.0f}"
              f"{cells}{int(r['processor_lag_at_window_end'] or 0):>7}  {'yes' if r['zero_loss'] else 'NO':<10}"
              f"{'yes' if r['kept_up'] else 'no':<8}")
    print()
    columns = "".join(f"{SHORT[n]:>10}" for n in PROCESSES)
    print("CPU, % of one core, over the window:")
    print(f"{'phase':<{width}}{'target/s':>9}{columns}{'total':>8}")
    for r in results:
        cells = "".join(f"{r['services'][n]['cpu_percent']:>10.1f}" if n in r["services"] else f"{'-':>10}" for n in PROCESSES)
        total = sum(u["cpu_percent"] for u in r["services"].values())
        print(f"{phase_name(r):<{width}}{r['target_rate']:>9,}{cells}{total:>8.0f}")
    print()
    print("CPU per update, µs (odds-svc: µs per WebSocket frame sent in brackets):")
    wide = "".join(f"{SHORT[n]:>{16 if n == 'odds-service' else 10}}" for n in PROCESSES)
    print(f"{'phase':<{width}}{'target/s':>9}{wide}{'total':>8}")
    for r in results:
        if r["kind"] == "idle":
            continue
        cells = []
        for n in PROCESSES:
            u = r["services"].get(n) or {}
            value = u.get("cpu_us_per_update")
            text = f"{value:.0f}" if value is not None else "-"
            if n == "odds-service" and u.get("cpu_us_per_frame_sent") is not None:
                text += f" [{u['cpu_us_per_frame_sent']:.1f}]"
            cells.append(f"{text:>10}" if n != "odds-service" else f"{text:>16}")
        total = sum((u.get("cpu_us_per_update") or 0) for u in r["services"].values())
        print(f"{phase_name(r):<{width}}{r['target_rate']:>9,}{''.join(cells)}{total:>8.0f}")
    print()
    print("RSS, MiB, at the window's end:")
    print(f"{'phase':<{width}}{'target/s':>9}{columns}")
    for r in results:
        cells = "".join(f"{r['services'][n]['rss_mib']:>10.0f}" if n in r["services"] else f"{'-':>10}" for n in PROCESSES)
        print(f"{phase_name(r):<{width}}{r['target_rate']:>9,}{cells}")
    print()
    print("where the time goes (p50 / p99 upper bucket bounds, ms, over the window):")
    print(f"{'phase':<{width}}{'target/s':>9}  " + "  ".join(f"{stage:>22}" for stage in STAGES))
    for r in results:
        if r["kind"] == "idle":
            continue
        cells = []
        for stage in STAGES:
            q = r["stages"].get(stage, {})
            p50, p99 = q.get("p50_le_ms"), q.get("p99_le_ms")
            cells.append(f"{p50:g} / {p99:g}" if p50 is not None and p99 is not None else "-")
        print(f"{phase_name(r):<{width}}{r['target_rate']:>9,}  " + "  ".join(f"{c:>22}" for c in cells))
    if report.get("fetch_wait_sweep"):
        print()
        print(f"fetch.wait.max.ms of the processor's consumer against CPU (% of one core) and latency "
              f"({report['method']['dev_broker']}):")
        print(f"{'fetch wait':>10}{'idle processor':>16}{'idle broker':>13}{'1k/s processor':>16}{'1k/s broker':>13}"
              f"{'1k/s p50 ms':>13}{'1k/s p99 ms':>13}")
        for row in report["fetch_wait_sweep"]:
            print(f"{row['fetch_wait_ms']:>8} ms{row['idle_processor']:>16.1f}{row['idle_broker']:>13.1f}"
                  f"{row['busy_processor']:>16.1f}{row['busy_broker']:>13.1f}{row['p50']:>13.2f}{row['p99']:>13.2f}")
    print()
    best = report["max_sustained_rate_zero_loss"]
    print(f"max sustained rate with zero loss: {best:,} updates/s" if best else "max sustained rate: none of the rates passed")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--latency-rates", default="100,1000,10000")
    parser.add_argument("--throughput-rates", default="15000,20000")
    parser.add_argument("--no-idle", action="store_true", help="skip the idle phase")
    parser.add_argument("--fetch-wait-ms", type=int, help="fetch.wait.max.ms of the processor's consumer "
                        "(default: what the dev infrastructure's env file says)")
    parser.add_argument("--fetch-wait-sweep", help="comma-separated fetch.wait.max.ms values: an idle and a 1,000/s "
                        "phase for each (instead of the latency and throughput phases)")
    parser.add_argument("--no-long-poll", action="store_true", help="the bare librdkafka mock as dev broker, which "
                        "holds an empty fetch for its whole wait (for comparison)")
    parser.add_argument("--no-front-log", action="store_true", help="the long-poll front sends every fetch to the mock "
                        "instead of answering from its copy of the log (for comparison)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--drain", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="short phases (smoke run of the bench itself)")
    parser.add_argument("--skip-build", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.warmup, args.duration, args.drain = 2, 5, 5
    latency_rates = [int(r) for r in args.latency_rates.split(",") if r]
    throughput_rates = [int(r) for r in args.throughput_rates.split(",") if r]
    sweep = [int(w) for w in args.fetch_wait_sweep.split(",") if w] if args.fetch_wait_sweep else []

    if not args.skip_build:
        log("building release binaries (swift build -c release)")
        subprocess.run(["swift", "build", "-c", "release"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    work = tempfile.mkdtemp(prefix="bench-e2e-")
    env = dict(os.environ, INFRA_DIR=os.path.join(work, "infra"), REDIS_PORT=str(free_port()),
               POSTGRES_PORT=str(free_port()), KAFKA_DEV_BROKER=os.path.join(BIN, "kafka-dev-broker"),
               KAFKA_DEV_BROKER_ARGS=" ".join(flag for flag, wanted in [("--no-long-poll", args.no_long_poll),
                                                                         ("--no-front-log", args.no_front_log)] if wanted))
    log(f"private infrastructure in {work}")
    addresses = infra_up(env)
    consumer_properties = addresses.get("KAFKA_CONSUMER_PROPERTIES", "")
    if args.fetch_wait_ms is not None:
        consumer_properties = f"fetch.wait.max.ms={args.fetch_wait_ms}"
    pipeline = Pipeline(work, addresses, args.events, infra_pids(env))
    results, event_ids, sweep_rows = [], [], []
    started = datetime.datetime.now(datetime.timezone.utc)
    try:
        if sweep:
            for wait in sweep:
                consumer_properties = f"fetch.wait.max.ms={wait}"
                if "odds-processor" in pipeline.procs:
                    pipeline.stop("odds-processor")
                    pipeline.start_processor(consumer_properties)
                else:
                    pipeline.start_services(consumer_properties)
                label = f"wait {wait} ms"
                idle = run_phase(pipeline, "idle", 0, args, event_ids, label)
                busy = run_phase(pipeline, "latency", 1000, args, event_ids, label)
                results += [idle, busy]
                cpu = lambda r, n: r["services"].get(n, {}).get("cpu_percent", 0.0)  # noqa: E731
                sweep_rows.append({"fetch_wait_ms": wait, "idle_processor": cpu(idle, "odds-processor"),
                                   "idle_broker": cpu(idle, "kafka-dev-broker"), "busy_processor": cpu(busy, "odds-processor"),
                                   "busy_broker": cpu(busy, "kafka-dev-broker"), "p50": busy["latency_ms"]["p50"],
                                   "p99": busy["latency_ms"]["p99"]})
            consumer_properties = "fetch.wait.max.ms=" + "/".join(str(w) for w in sweep) + " (sweep)"
        else:
            pipeline.start_services(consumer_properties)
            if not args.no_idle:
                results.append(run_phase(pipeline, "idle", 0, args, event_ids))
            for rate in latency_rates:
                results.append(run_phase(pipeline, "latency", rate, args, event_ids))
            for rate in throughput_rates:
                results.append(run_phase(pipeline, "throughput", rate, args, event_ids))
    finally:
        pipeline.stop_all()
        infra_down(env)

    sustained = [r["target_rate"] for r in results if r["zero_loss"] and r["kept_up"] and r["target_rate"] >= 1000]
    report = {
        "date": started.isoformat(timespec="seconds"), "machine": machine(),
        "method": {"clock": "CLOCK_REALTIME on one machine; updated_at has millisecond resolution (latency is "
                            "rounded up by at most 1 ms)", "warmup_s": args.warmup, "window_s": args.duration,
                   "drain_s": args.drain, "percentiles": "HdrHistogram (microsecond values)",
                   "subscribers": args.subscribers, "events": args.events,
                   "cpu": "utime+stime from /proc over the window (PostgreSQL: postmaster and its backends); "
                          "per update = CPU seconds / frames the supplier emitted in the window",
                   "processor_consumer_properties": consumer_properties,
                   "dev_broker": "bare librdkafka mock" if args.no_long_poll else
                   "librdkafka mock behind the long-poll front" + (", every fetch sent to the mock" if args.no_front_log else
                                                                   ", fetches answered from the front's log")},
        "max_sustained_rate_zero_loss": max(sustained) if sustained else None,
        "phases": results,
        "fetch_wait_sweep": sweep_rows,
    }
    os.makedirs(os.path.join(ROOT, "bench-results"), exist_ok=True)
    out = os.path.join(ROOT, "bench-results", f"e2e-{started.strftime('%Y%m%dT%H%M%SZ')}.json")
    with open(out, "w") as f:
        json.dump(report, f, indent=2)
    print_report(report, args, event_ids)
    print(f"results: {os.path.relpath(out, ROOT)}")
    return 0 if all(r["zero_loss"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
