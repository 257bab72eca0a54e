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


def histogram_quantile(text, name, q):
    """Upper bound of the bucket holding quantile q (like PromQL's, without interpolation)."""
    buckets = []
    for line in text.splitlines():
        m = re.match(name + r'_bucket\{le="([^"]+)"\} (\S+)', line)
        if m:
            buckets.append((float("inf") if m.group(1) == "+Inf" else float(m.group(1)), float(m.group(2))))
    if not buckets or buckets[-1][1] == 0:
        return None
    target = q * buckets[-1][1]
    for bound, count in sorted(buckets):
        if count >= target:
            return bound
    return None


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
    addresses = {}
    with open(os.path.join(env["INFRA_DIR"], "env")) as f:
        for line in f:
            key, value = line.replace("export ", "").strip().split("=", 1)
            addresses[key] = value
    return addresses


def infra_down(env):
    subprocess.run([os.path.join(ROOT, "scripts", "infra.sh"), "down"], env=env, stdout=subprocess.DEVNULL)
