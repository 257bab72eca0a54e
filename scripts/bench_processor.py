#!/usr/bin/env python3
"""Processor throughput bench: pre-fills odds_updates on a private dev broker, then measures how
fast one odds-processor (release build) applies it into PostgreSQL and Redis.

Usage: scripts/bench_processor.py [--messages 200000] [--events 1000] [--batch-size 2000]
Prints throughput (updates/s), batch size, p50/p99 batch latency (from the processor's
Prometheus histogram), RSS and CPU of the processor, and the machine.
"""
import argparse, json, os, random, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import ROOT, counter, free_port, histogram_quantile, infra_down, infra_up, machine, metrics, proc_stats  # noqa: E402

# SCRATCH_PATH lets the bench reuse another build folder (e.g. .build-feed) instead of .build.
SCRATCH = os.environ.get("SCRATCH_PATH", os.path.join(ROOT, ".build"))
BIN = os.path.join(SCRATCH, "release")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=2000)
    parser.add_argument("--partitions", type=int, default=24)
    args = parser.parse_args()

    print("bench-processor: building release binaries", flush=True)
    for product in ("odds-processor", "kafka-dev-broker"):
        subprocess.run(["swift", "build", "-c", "release", "--scratch-path", SCRATCH, "--product", product], cwd=ROOT,
                       check=True, stdout=subprocess.DEVNULL)

    work = tempfile.mkdtemp(prefix="bench-processor-")
    env = dict(os.environ, INFRA_DIR=os.path.join(work, "infra"), REDIS_PORT=str(free_port()),
               POSTGRES_PORT=str(free_port()), KAFKA_DEV_BROKER=os.path.join(BIN, "kafka-dev-broker"),
               KAFKA_TOPICS=f"odds_updates:{args.partitions} odds_updates_dlq:1 odds_feed_status:1")
    processor = None
    try:
        addresses = infra_up(env)

        print(f"bench-processor: producing {args.messages} updates for {args.events} events x 3 markets", flush=True)
        markets = [("1x2", ["home", "draw", "away"]), ("ou_2_5", ["over", "under"]), ("btts", ["yes", "no"])]
        versions = {}
        data = os.path.join(work, "updates.txt")
        rng = random.Random(7)
        with open(data, "w") as f:
            for i in range(args.messages):
                event = f"BENCH_{rng.randrange(args.events):05d}"
                market, selections = markets[rng.randrange(3)]
                version = versions.get((event, market), 0) + 1
                versions[(event, market)] = version
                odds = {s: round(rng.uniform(1.2, 9.0), 2) for s in selections}
                update = {"event_id": event, "home_team": "Home " + event[-3:], "away_team": "Away " + event[-3:],
                          "market": market, "odds": odds, "status": "open",
                          "updated_at": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
                          "source": "bench", "version": version}
                f.write(event + "|" + json.dumps(update, separators=(",", ":")) + "\n")
        subprocess.run(["kcat", "-P", "-b", addresses["KAFKA_BROKERS"], "-t", "odds_updates", "-K", "|", "-z", "none",
                        "-X", "linger.ms=20", "-X", "batch.num.messages=10000", "-l", data], check=True)

        port = free_port()
        penv = dict(os.environ, KAFKA_BROKERS=addresses["KAFKA_BROKERS"], REDIS_ADDR=addresses["REDIS_ADDR"],
                    POSTGRES_DSN=addresses["POSTGRES_DSN"], METRICS_PORT=str(port), LOG_LEVEL="warning",
                    PROCESSOR_BATCH_SIZE=str(args.batch_size), MIGRATIONS_DIR=os.path.join(ROOT, "migrations"))
        processor = subprocess.Popen([os.path.join(BIN, "odds-processor")], env=penv, stdout=subprocess.DEVNULL)
        first_at = None
        started = time.monotonic()
        while True:
            time.sleep(0.05)
            try:
                consumed = counter(metrics(port), "odds_processor_consumed_total")
            except OSError:
                consumed = 0
            if consumed > 0 and first_at is None:
                first_at = time.monotonic()
                rss0, cpu0 = proc_stats(processor.pid)
            if consumed >= args.messages:
                done_at = time.monotonic()
                break
            if time.monotonic() - started > 600:
                sys.exit("bench-processor: timed out")
        text = metrics(port)
        rss, cpu = proc_stats(processor.pid)
        elapsed = done_at - first_at
        batches = counter(text, "odds_processor_batch_size_count")
        applied = counter(text, "odds_processor_applied_total")
        stale = counter(text, "odds_processor_stale_total")
        collapsed = counter(text, "odds_processor_collapsed_total")
        p50 = histogram_quantile(text, "odds_processor_batch_latency_seconds", 0.5)
        p99 = histogram_quantile(text, "odds_processor_batch_latency_seconds", 0.99)
        print()
        print(f"machine: {machine()}")
        print(f"messages: {args.messages}  events: {args.events}  markets: {len(versions)}  partitions: {args.partitions}")
        print(f"throughput: {args.messages / elapsed:,.0f} updates/s over {elapsed:.2f} s (applied {applied:.0f}, "
              f"collapsed in batch {collapsed:.0f}, stale {stale:.0f})")
        print(f"batches: {batches:.0f}, mean size {args.messages / max(batches, 1):.0f} (max {args.batch_size})")
        print(f"batch latency: p50 <= {p50 * 1000 if p50 else float('nan'):.0f} ms, p99 <= {p99 * 1000 if p99 else float('nan'):.0f} ms (histogram bucket bounds)")
        print(f"processor RSS: {rss:.0f} MiB, CPU: {(cpu - cpu0) / elapsed * 100:.0f}% of one core while applying")
    finally:
        if processor:
            processor.terminate()
            processor.wait(timeout=30)
        infra_down(env)
        subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
