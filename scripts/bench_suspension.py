#!/usr/bin/env python3
"""Suspension benchmark (make bench-suspension): how long after the feed stops do subscribers
learn that its prices are no longer good?

Runs the whole pipeline (release build, private infrastructure, as `make bench`), N WebSocket
subscribers spread over the events, the supplier at a steady rate; then, `--outages` times:
SIGSTOP the supplier (connected but silent, the hardest case: nothing closes), wait until every
subscriber got a `status` frame saying its event is suspended, SIGCONT, wait until every
subscriber got the `status` open frame. Prints p50/p99/max of

  stop -> suspended   SIGSTOP until the suspension frame arrives (the supplier's last frame left
                      at most one tick, 1 ms, before the SIGSTOP)
  resume -> open      SIGCONT until the reopening frame arrives (replay and catch-up included)

and the CPU of each service while idle-but-suspended. Goal (issue 14): p99 stop -> suspended <
FEED_STALE_AFTER + 250 ms; the silence limit of ingest (INGEST_FEED_SILENT_MS, 2.5 s by default)
is what decides it when the supplier is silent, FEED_STALE_AFTER (3 s) when ingest dies.

Usage: scripts/bench_suspension.py [--subscribers 1000] [--events 100] [--rate 1000] [--outages 3]
Output: a table on screen and bench-results/suspension-<UTC time>.json.
"""
import argparse
import base64
import datetime
import json
import os
import selectors
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import ROOT, free_port, infra_down, infra_up, machine, proc_stats  # noqa: E402
from bench_e2e import BIN, Pipeline, http_json, log, wait_until  # noqa: E402
from ws_stalled_clients import masked_text_frame  # noqa: E402


class Subscriber:
    """One WebSocket connection following one event; parses server frames (unmasked text)."""

    def __init__(self, port, event_id):
        self.event_id = event_id
        self.sock = socket.create_connection(('127.0.0.1', port), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f'GET /ws/odds HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n'
                           f'Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n').encode())
        head = b''
        while b'\r\n\r\n' not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise RuntimeError('connection closed during the upgrade')
            head += chunk
        if not head.startswith(b'HTTP/1.1 101'):
            raise RuntimeError(f'upgrade refused: {head.splitlines()[0]!r}')
        self.buffer = head.split(b'\r\n\r\n', 1)[1]
        self.sock.sendall(masked_text_frame(json.dumps({'type': 'subscribe', 'eventId': event_id})))
        self.sock.setblocking(False)
        self.status = None          # newest effectiveStatus seen
        self.status_at = None       # when it arrived
        self.last_odds_at = None

    def read(self, now):
        try:
            data = self.sock.recv(262144)
        except BlockingIOError:
            return
        if not data:
            raise RuntimeError(f'server closed the connection of {self.event_id}')
        self.buffer += data
        while len(self.buffer) >= 2:
            length = self.buffer[1] & 0x7F
            offset = 2
            if length == 126:
                if len(self.buffer) < 4:
                    return
                length = struct.unpack('!H', self.buffer[2:4])[0]
                offset = 4
            elif length == 127:
                if len(self.buffer) < 10:
                    return
                length = struct.unpack('!Q', self.buffer[2:10])[0]
                offset = 10
            if len(self.buffer) < offset + length:
                return
            opcode = self.buffer[0] & 0x0F
            payload = self.buffer[offset:offset + length]
            self.buffer = self.buffer[offset + length:]
            if opcode != 1:
                continue
            if payload.startswith(b'{"type":"odds"') or b'"type":"odds"' in payload[:40]:
                self.last_odds_at = now
                continue
            if b'"status"' in payload[:40] or b'"type":"status"' in payload:
                frame = json.loads(payload)
                if frame.get('type') == 'status' and frame.get('eventId') == self.event_id:
                    self.status = frame.get('effectiveStatus')
                    self.status_at = now


def read_until(subscribers, selector, done, seconds, description):
    deadline = time.monotonic() + seconds
    while not done():
        if time.monotonic() > deadline:
            missing = sum(1 for s in subscribers if s.status != description)
            sys.exit(f'bench: timed out after {seconds} s waiting for {description} ({missing} subscribers still waiting)')
        for key, _ in selector.select(timeout=0.05):
            key.data.read(time.time())


def quantiles(values):
    values = sorted(values)
    if not values:
        return {}
    pick = lambda q: values[min(len(values) - 1, int(q * len(values)))]  # noqa: E731
    return {'p50_ms': round(pick(0.5) * 1000, 1), 'p99_ms': round(pick(0.99) * 1000, 1),
            'max_ms': round(values[-1] * 1000, 1), 'count': len(values)}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--subscribers', type=int, default=1000)
    parser.add_argument('--events', type=int, default=100)
    parser.add_argument('--rate', type=int, default=1000)
    parser.add_argument('--outages', type=int, default=3)
    parser.add_argument('--skip-build', action='store_true')
    args = parser.parse_args()

    if not args.skip_build:
        log('building release binaries (swift build -c release)')
        subprocess.run(['swift', 'build', '-c', 'release'], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    work = tempfile.mkdtemp(prefix='bench-suspension-')
    env = dict(os.environ, INFRA_DIR=os.path.join(work, 'infra'), REDIS_PORT=str(free_port()),
               POSTGRES_PORT=str(free_port()), KAFKA_DEV_BROKER=os.path.join(BIN, 'kafka-dev-broker'))
    log(f'private infrastructure in {work}')
    addresses = infra_up(env)
    pipeline = Pipeline(work, addresses, args.events)
    started = datetime.datetime.now(datetime.timezone.utc)
    subscribers = []
    selector = selectors.DefaultSelector()
    outages = []
    try:
        pipeline.start_services()
        pipeline.start_supplier(args.rate, os.path.join(work, 'journal.jsonl'))
        wait_until('events listed by odds-service', 60, lambda: len(http_json(
            f'http://127.0.0.1:{pipeline.odds_http}/v1/events?limit=1000')['events']) >= args.events)
        events = [e['eventId'] for e in http_json(f'http://127.0.0.1:{pipeline.odds_http}/v1/events?limit=1000')['events']]
        log(f'{args.subscribers} subscribers over {len(events)} events')
        for index in range(args.subscribers):
            subscriber = Subscriber(pipeline.odds_http, events[index % len(events)])
            selector.register(subscriber.sock, selectors.EVENT_READ, subscriber)
            subscribers.append(subscriber)
        # Warm up: everyone reads odds for a few seconds.
        end = time.monotonic() + 5
        while time.monotonic() < end:
            for key, _ in selector.select(timeout=0.05):
                key.data.read(time.time())
        supplier = pipeline.procs['supplier-simulator']
        for number in range(1, args.outages + 1):
            log(f'outage {number}: SIGSTOP the supplier')
            stopped = time.time()
            os.kill(supplier.pid, signal.SIGSTOP)
            read_until(subscribers, selector, lambda: all(s.status == 'suspended' for s in subscribers), 60,
                       'suspended')
            suspended = [s.status_at - stopped for s in subscribers]
            idle = {name: proc_stats(proc.pid) for name, proc in pipeline.procs.items() if proc.poll() is None}
            time.sleep(2)
            idle_after = {name: proc_stats(proc.pid) for name, proc in pipeline.procs.items() if proc.poll() is None}
            cpu = {name: round((idle_after[name][1] - idle[name][1]) / 2 * 100, 1)
                   for name in idle_after if name in idle and name != 'supplier-simulator'}
            log(f'outage {number}: SIGCONT')
            resumed = time.time()
            os.kill(supplier.pid, signal.SIGCONT)
            read_until(subscribers, selector, lambda: all(s.status == 'open' for s in subscribers), 120, 'open')
            reopened = [s.status_at - resumed for s in subscribers]
            outages.append({'stop_to_suspended': quantiles(suspended), 'resume_to_open': quantiles(reopened),
                            'cpu_percent_while_suspended': cpu})
            # Let it run a little before the next outage.
            end = time.monotonic() + 3
            while time.monotonic() < end:
                for key, _ in selector.select(timeout=0.05):
                    key.data.read(time.time())
    finally:
        for subscriber in subscribers:
            subscriber.sock.close()
        supplier = pipeline.procs.get('supplier-simulator')
        if supplier and supplier.poll() is None:
            os.kill(supplier.pid, signal.SIGCONT)
        pipeline.stop_all()
        infra_down(env)

    report = {'date': started.isoformat(timespec='seconds'), 'machine': machine(), 'subscribers': args.subscribers,
              'events': args.events, 'rate': args.rate, 'outages': outages,
              'settings': {'SUPPLIER_ALIVE_INTERVAL_MS': 1000, 'INGEST_FEED_SILENT_MS': 2500, 'FEED_STALE_AFTER_MS': 3000}}
    os.makedirs(os.path.join(ROOT, 'bench-results'), exist_ok=True)
    out = os.path.join(ROOT, 'bench-results', f"suspension-{started.strftime('%Y%m%dT%H%M%SZ')}.json")
    with open(out, 'w') as f:
        json.dump(report, f, indent=2)
    print()
    print(f"suspension benchmark — {report['date']} — {report['machine']}")
    print(f'{args.subscribers} subscribers over {args.events} events, supplier at {args.rate}/s, SIGSTOP/SIGCONT x{args.outages}')
    print(f"{'outage':<8}{'stop->suspended p50/p99/max ms':>34}{'resume->open p50/p99/max ms':>32}   CPU % while suspended")
    for number, outage in enumerate(outages, 1):
        s, o = outage['stop_to_suspended'], outage['resume_to_open']
        cpu = ' '.join(f'{k.replace("odds-", "")}={v}' for k, v in sorted(outage['cpu_percent_while_suspended'].items()))
        print(f"{number:<8}{s['p50_ms']:>12} / {s['p99_ms']:>7} / {s['max_ms']:>7}{o['p50_ms']:>12} / {o['p99_ms']:>7} / {o['max_ms']:>7}   {cpu}")
    print(f'results: {out}')


if __name__ == '__main__':
    main()
