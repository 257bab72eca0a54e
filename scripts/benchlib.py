"""Helpers shared by the Python benchmarks: ports, Prometheus text parsing, /proc sampling,
private infrastructure through scripts/infra.sh."""
import os
import re
import socket
import subprocess
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metrics(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


def counter(text, name):
    """Sum of every series of `name` (all label sets)."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def histogram_buckets(text, name, labels=""):
    """Cumulative bucket counts {upper bound: count} of one histogram series; `labels` is the
    series' other labels as exported, e.g. 'store="postgres"'."""
    buckets = {}
    pattern = re.compile(re.escape(name) + r'_bucket\{(.*)\} (\S+)$')
    for line in text.splitlines():
        m = pattern.match(line)
        if not m:
            continue
        parts = [p for p in m.group(1).split(",") if p]
        le = [p for p in parts if p.startswith("le=")]
        rest = ",".join(sorted(p for p in parts if not p.startswith("le=")))
        if not le or rest != ",".join(sorted(p for p in labels.split(",") if p)):
            continue
        bound = le[0][4:-1]
        buckets[float("inf") if bound == "+Inf" else float(bound)] = float(m.group(2))
    return buckets


def quantile_from_buckets(buckets, q, since=None):
    """Upper bound of the bucket holding quantile q (like PromQL's, without interpolation);
    with `since`, over the observations made after that earlier snapshot."""
    if since:
        buckets = {bound: count - since.get(bound, 0) for bound, count in buckets.items()}
    if not buckets or max(buckets.values()) <= 0:
        return None
    target = q * buckets[max(buckets)]
    for bound in sorted(buckets):
        if buckets[bound] >= target:
            return bound
    return None


def histogram_quantile(text, name, q, labels=""):
    return quantile_from_buckets(histogram_buckets(text, name, labels), q)


def proc_stats(pid):
    """(RSS in MiB, CPU seconds user+system) of a process."""
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return rss, (int(fields[11]) + int(fields[12])) / ticks


def process_tree_stats(pid):
    """(RSS in MiB, CPU seconds) of a process and its live children summed: PostgreSQL serves
    each connection from its own backend process."""
    rss, cpu = proc_stats(pid)
    for child in child_pids(pid):
        try:
            child_rss, child_cpu = proc_stats(int(child))
        except OSError:  # ended meanwhile
            continue
        rss, cpu = rss + child_rss, cpu + child_cpu
    return rss, cpu


def child_pids(pid):
    """Live direct children of a process (from /proc, field 4 of stat is the parent)."""
    children = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    children.append(int(entry))
        except OSError:
            continue
    return children


def infra_pids(env):
    """{name: pid} of the private infrastructure's servers, from infra.sh's pid files."""
    infra = env["INFRA_DIR"]
    files = {"kafka-dev-broker": os.path.join(infra, "kafka.pid"), "redis": os.path.join(infra, "redis", "redis.pid"),
             "postgres": os.path.join(infra, "postgres", "data", "postmaster.pid")}
    pids = {}
    for name, path in files.items():
        try:
            with open(path) as f:
                pids[name] = int(f.readline().strip())
        except (OSError, ValueError):
            pass
    return pids


def machine():
    model = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    return f"{os.cpu_count()} cores, {model}, {mem_kib / 1024 / 1024:.0f} GiB"


def infra_up(env):
    """Starts a private Redis/PostgreSQL/dev broker (env carries INFRA_DIR and ports); returns
    the addresses from its env file."""
    subprocess.run([os.path.join(ROOT, "scripts", "infra.sh"), "up"], env=env, check=True, stdout=subprocess.DEVNULL)
    # Let bash evaluate the file (it may hold defaults such as ${VAR:-value}).
    env_file = os.path.join(env["INFRA_DIR"], "env")
    output = subprocess.run(["bash", "-c", f'source "{env_file}" && env -0'], env=env, check=True,
                            stdout=subprocess.PIPE).stdout.decode()
    wanted = ("REDIS_ADDR", "POSTGRES_DSN", "KAFKA_BROKERS", "KAFKA_CONSUMER_PROPERTIES")
    return {k: v for k, v in (item.split("=", 1) for item in output.split("\0") if "=" in item) if k in wanted}


def infra_down(env):
    subprocess.run([os.path.join(ROOT, "scripts", "infra.sh"), "down"], env=env, stdout=subprocess.DEVNULL)
