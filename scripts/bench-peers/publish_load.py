#!/usr/bin/env python3
"""The one publisher of the side-by-side WebSocket bench: the same updates at the same rate, sent
either to odds-service (Redis PUBLISH on its broadcast channel) or to Nchan (HTTP POST to its
publisher location, one channel per event).

    publish_load.py --target redis --port REDIS_PORT [--channel odds_updates_broadcast] ...
    publish_load.py --target nchan --port NGINX_PORT [--path /pub/] ...
    ... --events 100 --markets 3 --rate 2000 --seconds 20 [--seed-only]

The update sequence is ws-bench's: update k is market (k mod E*M) div E of event (k mod E*M)
mod E, with a version that grows by one per market from a wall-clock base. Each update is an
OddsUpdate whose `source` is "bench:<publish time in µs>", stamped just before the batch it is in
is written; batches go out every --tick-ms (5 ms, as ws-bench's publisher).

What each server receives:
- redis: PUBLISH <channel> {"eventId":..,"payload":<OddsUpdate>} (what odds-processor publishes);
  odds-service turns it into the text frame {"eventId":..,"payload":..,"type":"odds"}.
- nchan: POST /pub/<eventId> whose body is that same frame, byte for byte, so that subscribers of
  both servers receive frames of the same size and content.

--seed-only writes the starting state instead: for redis the current-odds hashes (HSET
odds:current:<id>, ZADD odds:events) that odds-service's snapshots and REST answers read (and
webdis serves); for nchan one snapshot-shaped message per channel, which Nchan keeps (buffer of
one) and hands to each new subscriber, as odds-service hands out its snapshot.

Prints one JSON line: published, elapsed, per-event counts, acknowledgements and errors.
"""
import argparse
import json
import select
import socket
import sys
import time

MARKETS = ["1x2", "ou_2_5", "btts"]
ODDS = {"1x2": '{"away":3.6,"draw":3.3,"home":2.1}', "ou_2_5": '{"over":1.9,"under":1.95}',
        "btts": '{"no":2,"yes":1.8}'}


def market_name(index):
    return MARKETS[index] if index < len(MARKETS) else f"m{index}"


def market_odds(name):
    return ODDS.get(name, '{"a":2,"b":1.9}')


def iso_millis(now):
    seconds = int(now)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int((now - seconds) * 1000):03d}Z"


def odds_update(event_id, event_index, market, source, updated_at, version):
    """An OddsUpdate as the project's encoder writes it (sorted keys, no spaces)."""
    return (f'{{"away_team":"Away {event_index}","event_id":"{event_id}","home_team":"Home {event_index}",'
            f'"market":"{market}","odds":{market_odds(market)},"source":"{source}","status":"open",'
            f'"updated_at":"{updated_at}","version":{version}}}')


def resp(*parts):
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        data = part if isinstance(part, bytes) else str(part).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class Connection:
    """One keep-alive TCP connection; writes whole batches, reads replies without blocking and
    counts them (RESP replies or HTTP status lines)."""

    def __init__(self, port, kind):
        self.port = port
        self.kind = kind
        self.pending = b""
        self.acks = 0
        self.errors = 0
        self.receivers = 0
        self.sent = 0
        self.connect()

    def connect(self):
        self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)

    def send(self, data, count):
        view = memoryview(data)
        while view:
            try:
                written = self.sock.send(view)
                view = view[written:]
            except BlockingIOError:
                select.select([self.sock], [self.sock], [], 1)
                self.read()
        self.sent += count
        self.read()

    def read(self):
        while True:
            try:
                chunk = self.sock.recv(1 << 16)
            except BlockingIOError:
                break
            if not chunk:
                raise ConnectionError("server closed the publisher connection")
            self.pending += chunk
        self.parse()

    def parse(self):
        if self.kind == "redis":
            while True:
                end = self.pending.find(b"\r\n")
                if end < 0:
                    break
                line, self.pending = self.pending[:end], self.pending[end + 2:]
                if line.startswith(b":"):
                    self.acks += 1
                    self.receivers += int(line[1:])
                elif line.startswith(b"+"):
                    self.acks += 1
                elif line.startswith(b"-"):
                    self.errors += 1
                    print(f"publish_load: redis error {line[:200]!r}", file=sys.stderr)
        else:
            # HTTP responses of Nchan's publisher: count status lines, keep a possible partial one.
            while True:
                start = self.pending.find(b"HTTP/1.1 ")
                if start < 0 or len(self.pending) < start + 12:
                    self.pending = self.pending[-16:] if start < 0 else self.pending[start:]
                    break
                status = self.pending[start + 9:start + 12]
                if status in (b"200", b"201", b"202"):
                    self.acks += 1
                else:
                    self.errors += 1
                    print(f"publish_load: nchan status {status!r}", file=sys.stderr)
                self.pending = self.pending[start + 12:]

    def wait_all(self, timeout=15):
        deadline = time.monotonic() + timeout
        while self.acks + self.errors < self.sent and time.monotonic() < deadline:
            select.select([self.sock], [], [], 0.1)
            self.read()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", choices=["redis", "nchan"], required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--channel", default="odds_updates_broadcast")
    parser.add_argument("--path", default="/pub/")
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--markets", type=int, default=3)
    parser.add_argument("--rate", type=int, default=2000)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--prefix", default="BENCH")
    parser.add_argument("--tick-ms", type=float, default=5)
    parser.add_argument("--seed-only", action="store_true")
    args = parser.parse_args()

    event_ids = [f"{args.prefix}_{i}" for i in range(args.events)]
    markets = [market_name(m) for m in range(args.markets)]
    conn = Connection(args.port, args.target)
    channel = args.channel.encode()
    version_base = int(time.time() * 1000) * 1000

    def http_post(event_id, body):
        return (f"POST {args.path}{event_id} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode() + body

    if args.seed_only:
        now = time.time()
        out = []
        for e, event_id in enumerate(event_ids):
            updates = [odds_update(event_id, e, m, "seed", iso_millis(now), version_base) for m in markets]
            if args.target == "redis":
                for market, update in zip(markets, updates):
                    out.append(resp("HSET", f"odds:current:{event_id}", market, update))
                out.append(resp("ZADD", "odds:events", int(now * 1000), event_id))
            else:
                body = f'{{"eventId":"{event_id}","markets":[{",".join(updates)}],"type":"snapshot"}}'.encode()
                out.append(http_post(event_id, body))
        conn.send(b"".join(out), len(out))
        conn.wait_all()
        print(json.dumps({"seeded": len(event_ids), "acks": conn.acks, "errors": conn.errors}))
        sys.exit(0 if conn.errors == 0 and conn.acks == len(out) else 1)

    total = args.rate * args.seconds
    slots = args.events * args.markets
    versions = [version_base] * slots
    per_event = [0] * args.events
    static = []  # per slot: (event id, event index, market)
    for slot in range(slots):
        static.append((event_ids[slot % args.events], slot % args.events, markets[slot // args.events]))
    tick = args.tick_ms / 1000
    start = time.monotonic()
    sent = 0
    while sent < total:
        due = min(total, int(args.rate * (time.monotonic() - start)) + 1)
        if due > sent:
            now = time.time()
            source = f"bench:{time.time_ns() // 1000}"
            updated_at = iso_millis(now)
            batch = []
            while sent < due:
                slot = sent % slots
                event_id, event_index, market = static[slot]
                versions[slot] += 1
                update = odds_update(event_id, event_index, market, source, updated_at, versions[slot])
                if args.target == "redis":
                    batch.append(resp(b"PUBLISH", channel, f'{{"eventId":"{event_id}","payload":{update}}}'.encode()))
                else:
                    batch.append(http_post(event_id, f'{{"eventId":"{event_id}","payload":{update},"type":"odds"}}'.encode()))
                per_event[event_index] += 1
                sent += 1
            conn.send(b"".join(batch), len(batch))
        time.sleep(max(0.0, tick - (time.monotonic() - start) % tick) if tick > 0 else 0)
    elapsed = time.monotonic() - start
    conn.wait_all()
    summary = {"published": sent, "elapsed": round(elapsed, 3), "rate": round(sent / elapsed, 1),
               "acks": conn.acks, "errors": conn.errors, "per_event": per_event}
    if args.target == "redis":
        summary["receivers"] = conn.receivers
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
