#!/usr/bin/env python3
"""odds-service side by side with the servers a user would run instead, on this machine, in
one run (called by scripts/bench-odds-service.sh with PEERS=1; the Redis/PostgreSQL addresses
come from the environment it sets up).

WebSocket fan-out, for each connection count: odds-service, then Nchan (nginx +
libnginx-mod-nchan, one channel per event), each started fresh on a free port. Both get the
same client process (ws-peer-client, built from ws_peer_client.swift) and the same publisher
process (publish_load.py): the same updates at the same rate, delivered as frames of the same
bytes; odds-service is fed through Redis PUBLISH on its broadcast channel, Nchan through its
HTTP publisher location. Printed per server: delivered/expected, latency publish -> frame read
(p50/p99/p99.9), server CPU (% of one core over the publishing window), RSS and PSS (peak; for
nginx summed over master and workers), frames delivered per server CPU-second (CPU from the
first publish until the client has drained), and the ratio odds-service/Nchan.

REST: wrk with the same settings against odds-service GET /v1/events/<id>/odds and webdis
GET /HGETALL/odds:current:<id> (the same Redis hash): req/s, p50, p99, server CPU, ratio.

The result is also written to bench-results/peers-<UTC time>.json.
"""
import argparse
import datetime
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from benchlib import ROOT, child_pids, counter, free_port, machine, metrics  # noqa: E402

NCHAN_MODULE = "/usr/lib/nginx/modules/ngx_nchan_module.so"
CHILDREN = []  # every process this script started and has not stopped yet


def log(text):
    print(f"bench-peers: {text}", flush=True)


def start(command, log_path, env=None):
    with open(log_path, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    CHILDREN.append(process)
    return process


def run(command, env=None):
    """Runs a short-lived helper (publisher, wrk) to completion, stopped with the rest on a signal;
    returns (exit status, stdout, stderr)."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    CHILDREN.append(process)
    out, err = process.communicate()
    if process in CHILDREN:
        CHILDREN.remove(process)
    return process.returncode, out, err


def stop(process, sig=signal.SIGTERM, timeout=15, extra_pids=()):
    """Stops a process this script started (and, for nginx, its workers if they outlive it)."""
    if process in CHILDREN:
        CHILDREN.remove(process)
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for pid in extra_pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                alive = "(nginx)" in f.read()
        except OSError:
            alive = False
        if alive:
            os.kill(pid, signal.SIGKILL)


def stop_all(*_):
    for process in list(CHILDREN):
        stop(process, timeout=5)


def on_signal(signum, _frame):
    stop_all()
    sys.exit(128 + signum)


def ticks_and_memory(pids):
    """(CPU seconds, RSS MiB, PSS MiB) summed over `pids`."""
    cpu = rss = pss = 0.0
    hz = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            cpu += (int(fields[11]) + int(fields[12])) / hz
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1]) / 1024
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1]) / 1024
        except OSError:
            pass
    return cpu, rss, pss


class MemorySampler(threading.Thread):
    """Peak RSS and PSS of a set of processes, sampled twice a second."""

    def __init__(self, pids):
        super().__init__(daemon=True)
        self.pids = pids
        self.peak_rss = self.peak_pss = 0.0
        self.done = threading.Event()

    def sample(self):
        _, rss, pss = ticks_and_memory(self.pids)
        self.peak_rss = max(self.peak_rss, rss)
        self.peak_pss = max(self.peak_pss, pss)

    def run(self):
        while not self.done.wait(0.5):
            self.sample()

    def stop(self):
        self.done.set()
        self.join()
        self.sample()


def wait_for(description, seconds, check, process=None):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise SystemExit(f"bench-peers: {description}: the process exited")
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"bench-peers: timed out waiting for {description}")


def http_ok(url):
    with urllib.request.urlopen(url, timeout=2) as response:
        return response.status == 200


def render(template, target, values):
    with open(os.path.join(HERE, template)) as f:
        text = f.read()
    for key, value in values.items():
        text = text.replace(f"@{key}@", str(value))
    with open(target, "w") as f:
        f.write(text)


def nofile_limit():
    import resource
    return resource.getrlimit(resource.RLIMIT_NOFILE)[1]


class Bench:
    def __init__(self, args):
        self.args = args
        self.work = args.work
        self.redis_port = int(os.environ["REDIS_ADDR"].rsplit(":", 1)[1])
        self.redis_pid = self.read_pid(os.path.join(os.environ.get("INFRA_DIR", ""), "redis", "redis.pid"))
        self.workers = os.cpu_count() or 2

    @staticmethod
    def read_pid(path):
        try:
            with open(path) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def publisher(self, target, port, seed_only=False):
        command = [sys.executable, os.path.join(HERE, "publish_load.py"), "--target", target, "--port", str(port),
                   "--events", str(self.args.events), "--markets", str(self.args.markets),
                   "--rate", str(self.args.rate), "--seconds", str(self.args.duration)]
        if seed_only:
            command.append("--seed-only")
        status, out, err = run(command)
        if status != 0 or not out.strip():
            raise SystemExit(f"bench-peers: publisher ({target}) failed: {err.strip()[-2000:]}")
        return json.loads(out.strip().splitlines()[-1])

    # Servers -----------------------------------------------------------------------------------

    def start_odds_service(self, name, max_connections):
        http_port, metrics_port = free_port(), free_port()
        env = dict(os.environ, HTTP_PORT=str(http_port), METRICS_PORT=str(metrics_port), LOG_LEVEL="warning",
                   WS_MAX_CONNECTIONS=str(max_connections))
        process = start([os.path.join(self.args.bin, "odds-service")], os.path.join(self.work, f"{name}.log"), env)
        wait_for("odds-service /readyz", 60, lambda: http_ok(f"http://127.0.0.1:{metrics_port}/readyz"), process)
        return {"process": process, "port": http_port, "metrics_port": metrics_port, "pids": [process.pid],
                "stop": lambda: stop(process)}

    def start_nchan(self, name):
        prefix = os.path.join(self.work, name)
        os.makedirs(prefix, exist_ok=True)
        port = free_port()
        render("nchan.conf.template", os.path.join(prefix, "nginx.conf"),
               {"PREFIX": prefix, "PORT": port, "WORKERS": self.workers, "MODULE": NCHAN_MODULE,
                "NOFILE": nofile_limit()})
        conf = os.path.join(prefix, "nginx.conf")
        check = subprocess.run(["nginx", "-t", "-q", "-p", prefix, "-c", conf, "-e", os.path.join(prefix, "error.log")],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if check.returncode != 0:
            raise SystemExit(f"bench-peers: nginx configuration refused:\n{check.stdout}")
        process = start(["nginx", "-p", prefix, "-c", conf, "-e", os.path.join(prefix, "error.log")],
                        os.path.join(prefix, "nginx.out"))
        wait_for("Nchan", 20, lambda: http_ok(f"http://127.0.0.1:{port}/nchan_status"), process)
        wait_for("nginx workers", 20, lambda: len(child_pids(process.pid)) >= self.workers, process)
        workers = child_pids(process.pid)
        return {"process": process, "port": port, "pids": [process.pid] + workers,
                "stop": lambda: stop(process, extra_pids=workers)}

    def start_webdis(self):
        prefix = os.path.join(self.work, "webdis")
        os.makedirs(prefix, exist_ok=True)
        port = free_port()
        conf = os.path.join(prefix, "webdis.json")
        render("webdis.json.template", conf,
               {"PREFIX": prefix, "PORT": port, "WORKERS": self.workers, "REDIS_PORT": self.redis_port})
        process = start(["webdis", conf], os.path.join(prefix, "webdis.out"))
        wait_for("webdis", 20, lambda: http_ok(f"http://127.0.0.1:{port}/HGETALL/odds:current:BENCH_1"), process)
        return {"process": process, "port": port, "pids": [process.pid], "stop": lambda: stop(process)}

    # WebSocket ---------------------------------------------------------------------------------

    def ws_round(self, server_name, server, connections, path, subscribe, target, publish_port):
        args = self.args
        tag = f"{server_name}-{connections}"
        done = os.path.join(self.work, f"done-{tag}")
        client_log = os.path.join(self.work, f"client-{tag}.log")
        command = [args.client, "--port", str(server["port"]), "--path", path, "--connections", str(connections),
                   "--events", str(args.events), "--threads", str(args.client_threads), "--poll-us", str(args.poll_us),
                   "--done-file", done, "--drain", str(args.drain), "--ramp-timeout", str(max(60, connections // 50))]
        if subscribe:
            command += ["--subscribe", subscribe]
        client = start(command, client_log)
        wait_for(f"{tag}: clients subscribed", max(60, connections // 50) + 30,
                 lambda: "subscribed" in open(client_log).read(), client)
        ramp = open(client_log).read().strip().splitlines()[0]
        time.sleep(1)  # let the handshakes' work settle before measuring
        memory = MemorySampler(server["pids"])
        memory.start()
        cpu_before, _, _ = ticks_and_memory(server["pids"])
        redis_before = ticks_and_memory([self.redis_pid])[0] if self.redis_pid else 0
        started = time.monotonic()
        published = self.publisher(target, publish_port)
        window = time.monotonic() - started
        cpu_window, _, _ = ticks_and_memory(server["pids"])
        redis_window = ticks_and_memory([self.redis_pid])[0] if self.redis_pid else 0
        followers = [0] * args.events
        for index in range(connections):
            followers[index % args.events] += 1
        expected = sum(count * followers[event] for event, count in enumerate(published["per_event"]))
        with open(done + ".tmp", "w") as f:
            f.write(f"{expected}\n")
        os.rename(done + ".tmp", done)
        try:
            client.wait(args.drain + 60)
        except subprocess.TimeoutExpired:
            pass
        cpu_end, _, _ = ticks_and_memory(server["pids"])
        memory.stop()
        stop(client)
        lines = [line for line in open(client_log).read().splitlines() if line.startswith("{")]
        if not lines:
            raise SystemExit(f"bench-peers: {tag}: no result from the client; see {client_log}")
        result = json.loads(lines[-1])
        server_cpu_s = cpu_end - cpu_before
        result.update({
            "server": server_name, "ramp": ramp, "published": published["published"],
            "publish_rate": published["rate"], "publish_errors": published["errors"], "window_s": round(window, 2),
            "server_cpu_pct": round((cpu_window - cpu_before) / window * 100, 1),
            "server_cpu_s": round(server_cpu_s, 2),
            "frames_per_cpu_s": round(result["delivered"] / server_cpu_s) if server_cpu_s > 0 else None,
            "rss_mb": round(memory.peak_rss, 1), "pss_mb": round(memory.peak_pss, 1),
            "client_cpu_pct": round(result["client_cpu_s"] / window * 100, 1),
        })
        if target == "redis":
            result["redis_cpu_pct"] = round((redis_window - redis_before) / window * 100, 1) if self.redis_pid else None
            result["redis_receivers"] = published.get("receivers")
            try:
                text = metrics(server["metrics_port"])
                result["conflated"] = counter(text, "odds_ws_conflated_total")
                result["slow_closes"] = counter(text, "odds_ws_slow_closes_total")
            except OSError:
                pass
        return result

    def ws_pair(self, connections, odds_first):
        results = {}
        order = ["odds-service", "nchan"] if odds_first else ["nchan", "odds-service"]
        for name in order:
            log(f"{connections} connections: {name}")
            if name == "odds-service":
                server = self.start_odds_service(f"odds-service-{connections}", connections + 1000)
                try:
                    self.publisher("redis", self.redis_port, seed_only=True)
                    results[name] = self.ws_round(
                        name, server, connections, "/ws/odds", '{"type":"subscribe","eventId":"{event}"}',
                        "redis", self.redis_port)
                finally:
                    server["stop"]()
            else:
                server = self.start_nchan(f"nchan-{connections}")
                try:
                    self.publisher("nchan", server["port"], seed_only=True)
                    results[name] = self.ws_round(name, server, connections, "/sub/{event}", "", "nchan", server["port"])
                finally:
                    server["stop"]()
            print_ws_line(results[name])
        return results

    # REST --------------------------------------------------------------------------------------

    def wrk(self, url, connections, seconds, pids, pace_ms=None):
        before, _, _ = ticks_and_memory(pids)
        redis_before = ticks_and_memory([self.redis_pid])[0] if self.redis_pid else 0
        started = time.monotonic()
        command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url]
        env = None
        if pace_ms is not None:
            command[1:1] = ["-s", os.path.join(HERE, "paced.lua")]
            env = dict(os.environ, WRK_PACE_MS=str(pace_ms))
        _, output, _ = run(command, env)
        elapsed = time.monotonic() - started
        after, _, _ = ticks_and_memory(pids)
        redis_after = ticks_and_memory([self.redis_pid])[0] if self.redis_pid else 0

        def field(pattern):
            match = re.search(pattern, output, re.MULTILINE)
            return match.group(1) if match else None
        non_2xx = field(r"Non-2xx or 3xx responses:\s+(\d+)")
        errors = field(r"Socket errors:(.*)$")
        return {"connections": connections, "pace_ms": pace_ms, "rps": float(field(r"Requests/sec:\s+([\d.]+)") or 0),
                "p50": field(r"^\s+50%\s+(\S+)"), "p99": field(r"^\s+99%\s+(\S+)"),
                "non_2xx": int(non_2xx) if non_2xx else 0, "socket_errors": errors.strip() if errors else "",
                "server_cpu_pct": round((after - before) / elapsed * 100, 1),
                "redis_cpu_pct": round((redis_after - redis_before) / elapsed * 100, 1) if self.redis_pid else None}

    def rest(self):
        args = self.args
        odds = self.start_odds_service("odds-service-rest", 20000)
        webdis = None
        try:
            self.publisher("redis", self.redis_port, seed_only=True)
            webdis = self.start_webdis()
            targets = {
                "odds-service": (f"http://127.0.0.1:{odds['port']}/v1/events/BENCH_1/odds", odds["pids"]),
                "webdis": (f"http://127.0.0.1:{webdis['port']}/HGETALL/odds:current:BENCH_1", webdis["pids"]),
            }
            results = {}
            for name, (url, pids) in targets.items():
                with urllib.request.urlopen(url, timeout=5) as response:
                    body = response.read()
                results[f"{name}_body_bytes"] = len(body)
                run(["wrk", "-t1", "-c64", "-d3s", url])  # warm-up
            for connections in args.rest_connections:
                for name, (url, pids) in targets.items():
                    results.setdefault(name, []).append(self.wrk(url, connections, args.rest_seconds, pids))
                    print_rest_line(name, results[name][-1])
            # The same servers at about the same offered load, below saturation (paced.lua).
            if args.rest_pace_ms > 0:
                for name, (url, pids) in targets.items():
                    results.setdefault("paced", {})[name] = self.wrk(url, 32, args.rest_seconds, pids,
                                                                      pace_ms=args.rest_pace_ms)
                    print_rest_line(name, results["paced"][name])
            return results
        finally:
            if webdis:
                webdis["stop"]()
            odds["stop"]()


# Output ------------------------------------------------------------------------------------------

def ratio(a, b, digits=2):
    if a is None or b is None or not b:
        return "n/a"
    return f"{a / b:.{digits}f}x"


def print_ws_line(r):
    extra = ""
    if r["server"] == "odds-service":
        extra = f"; Redis {r.get('redis_cpu_pct')} %"
        if r.get("conflated") or r.get("slow_closes"):
            extra += f"; conflated {r.get('conflated', 0):.0f}, slow closes {r.get('slow_closes', 0):.0f}"
    log(f"  {r['server']}: {r['ramp'].replace('ws-peer-client: ', '')}")
    log(f"  {r['server']}: delivered {r['delivered']}/{r['expected']}"
        f" ({r['delivered'] / max(1, r['expected']) * 100:.2f} %), {r['frame_bytes']} B frames; published"
        f" {r['published']} at {r['publish_rate']}/s; p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms,"
        f" p99.9 {r['p999_ms']:.2f} ms, max {r['max_ms']:.2f} ms; server {r['server_cpu_pct']} % of a core,"
        f" RSS {r['rss_mb']} MB (PSS {r['pss_mb']} MB), {r['frames_per_cpu_s']} frames/CPU-s;"
        f" client {r['client_cpu_pct']} %{extra}")


def cpu_us_per_request(r):
    """Server CPU per request in µs (webdis: without Redis's share)."""
    return f"{r['server_cpu_pct'] * 1e4 / r['rps']:.1f}" if r["rps"] else "n/a"


def print_rest_line(name, r):
    bad = f", non-2xx {r['non_2xx']}" if r["non_2xx"] else ""
    bad += f", socket errors {r['socket_errors']}" if r["socket_errors"] else ""
    paced = f" paced {r['pace_ms']} ms" if r.get("pace_ms") is not None else ""
    log(f"  REST {name}, {r['connections']} connections{paced}: {r['rps']:.0f} req/s, p50 {r['p50']}, p99 {r['p99']},"
        f" server {r['server_cpu_pct']} % of a core, Redis {r.get('redis_cpu_pct')} %{bad}")


def to_ms(text):
    if not text:
        return None
    match = re.match(r"([\d.]+)(us|ms|s)$", text)
    if not match:
        return None
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def summary(args, ws, rest):
    print()
    print(f"Side by side on {machine()}; client, publisher and servers share these cores.")
    if ws:
        print(f"WebSocket fan-out: {args.events} events x {args.markets} markets, {args.rate} updates/s for"
              f" {args.duration} s; same publisher (publish_load.py) and client (ws-peer-client, {args.client_threads}"
              f" threads, {args.poll_us} µs poll) for both servers")
        header = (f"{'conns':>6}  {'server':<13} {'delivered':>18} {'p50 ms':>8} {'p99 ms':>8} {'p99.9 ms':>9}"
                  f" {'CPU %':>6} {'RSS MB':>7} {'PSS MB':>7} {'frames/CPU-s':>13}")
        print(header)
        print("-" * len(header))
        for connections, pair in ws.items():
            for name in ("odds-service", "nchan"):
                r = pair.get(name)
                if not r:
                    continue
                delivered = f"{r['delivered']}/{r['expected']}"
                print(f"{connections:>6}  {name:<13} {delivered:>18} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f}"
                      f" {r['p999_ms']:>9.2f} {r['server_cpu_pct']:>6} {r['rss_mb']:>7} {r['pss_mb']:>7}"
                      f" {r['frames_per_cpu_s'] or 0:>13}")
            o, n = pair.get("odds-service"), pair.get("nchan")
            if o and n:
                print(f"{connections:>6}  {'ratio o-s/N':<13} {ratio(o['delivered'], n['delivered'], 3):>18}"
                      f" {ratio(o['p50_ms'], n['p50_ms']):>8} {ratio(o['p99_ms'], n['p99_ms']):>8}"
                      f" {ratio(o['p999_ms'], n['p999_ms']):>9} {ratio(o['server_cpu_pct'], n['server_cpu_pct']):>6}"
                      f" {ratio(o['rss_mb'], n['rss_mb']):>7} {ratio(o['pss_mb'], n['pss_mb']):>7}"
                      f" {ratio(o['frames_per_cpu_s'], n['frames_per_cpu_s']):>13}")
        print("ratio: odds-service / Nchan (frames/CPU-s: higher is better for odds-service; latency, CPU,"
              " memory: lower is better)")
    if rest:
        print(f"REST current odds, one hot event, wrk -t1 --latency, {args.rest_seconds} s per run:"
              f" odds-service GET /v1/events/BENCH_1/odds ({rest['odds-service_body_bytes']} B) vs"
              f" webdis GET /HGETALL/odds:current:BENCH_1 ({rest['webdis_body_bytes']} B)")
        header = f"{'conns':>6}  {'server':<13} {'req/s':>9} {'p50':>9} {'p99':>9} {'CPU %':>6} {'µs/req':>7} {'Redis %':>8}"
        print(header)
        print("-" * len(header))
        rows = [(str(c), rest["odds-service"][i], rest["webdis"][i]) for i, c in enumerate(args.rest_connections)]
        if rest.get("paced"):
            rows.append((f"32 p{args.rest_pace_ms}", rest["paced"]["odds-service"], rest["paced"]["webdis"]))
        for label, o, w in rows:
            for name, r in (("odds-service", o), ("webdis", w)):
                print(f"{label:>6}  {name:<13} {r['rps']:>9.0f} {r['p50'] or '':>9} {r['p99'] or '':>9}"
                      f" {r['server_cpu_pct']:>6} {cpu_us_per_request(r):>7} {r.get('redis_cpu_pct') or 0:>8}")
            print(f"{label:>6}  {'ratio o-s/w':<13} {ratio(o['rps'], w['rps']):>9}"
                  f" {ratio(to_ms(o['p50']), to_ms(w['p50'])):>9} {ratio(to_ms(o['p99']), to_ms(w['p99'])):>9}"
                  f" {ratio(o['server_cpu_pct'], w['server_cpu_pct']):>6}"
                  f" {ratio(o['server_cpu_pct'] / max(o['rps'], 1), w['server_cpu_pct'] / max(w['rps'], 1)):>7}")
        print("µs/req: server CPU per request (webdis's Redis work is in the Redis column, not in it)")
        if rest.get("paced"):
            print(f"32 p{args.rest_pace_ms}: every connection waits {args.rest_pace_ms} ms between a response and its next"
                  " request (scripts/bench-peers/paced.lua): about the same load for both, below saturation")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True)
    parser.add_argument("--client", required=True, help="ws-peer-client binary")
    parser.add_argument("--work", required=True)
    parser.add_argument("--connections", default="2000 5000 10000")
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--markets", type=int, default=3)
    parser.add_argument("--rate", type=int, default=2000)
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--drain", type=float, default=10)
    parser.add_argument("--client-threads", type=int, default=2)
    parser.add_argument("--poll-us", type=int, default=1000)
    parser.add_argument("--rest-seconds", type=int, default=10)
    parser.add_argument("--rest-connections", default="32 64")
    parser.add_argument("--rest-pace-ms", type=int, default=1, help="paced REST run (0: none)")
    parser.add_argument("--skip-ws", action="store_true")
    parser.add_argument("--skip-rest", action="store_true")
    args = parser.parse_args()
    args.rest_connections = [int(c) for c in args.rest_connections.split()]
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    os.makedirs(args.work, exist_ok=True)
    bench = Bench(args)
    ws, rest = {}, None
    try:
        if not args.skip_ws:
            for index, connections in enumerate(int(c) for c in args.connections.split()):
                ws[connections] = bench.ws_pair(connections, odds_first=index % 2 == 0)
        if not args.skip_rest:
            log("REST: odds-service and webdis")
            rest = bench.rest()
    finally:
        stop_all()
    summary(args, ws, rest)
    results_dir = os.path.join(ROOT, "bench-results")
    os.makedirs(results_dir, exist_ok=True)
    path = os.path.join(results_dir, f"peers-{datetime.datetime.now(datetime.timezone.utc):%Y%m%dT%H%M%SZ}.json")
    with open(path, "w") as f:
        json.dump({"machine": machine(), "args": vars(args), "websocket": ws, "rest": rest}, f, indent=2)
    print(f"results: {os.path.relpath(path, ROOT)}")


if __name__ == "__main__":
    main()
