#!/usr/bin/env python3
"""Stalled WebSocket subscribers for benches: each completes the upgrade with a small receive
buffer, subscribes to every event BENCH_1..BENCH_E, then never reads again (a consumer that
stopped keeping up, with the most traffic aimed at it).

    ws_stalled_clients.py --port P --count N --events E [--seconds S]

Runs until --seconds pass (default 60) or it is terminated, then closes every socket. Prints
one line when all are subscribed.
"""
import argparse
import base64
import json
import os
import signal
import socket
import struct
import sys
import time


def masked_text_frame(text):
    payload = text.encode()
    mask = os.urandom(4)
    header = bytes([0x81])
    if len(payload) < 126:
        header += bytes([0x80 | len(payload)])
    else:
        header += bytes([0x80 | 126]) + struct.pack('!H', len(payload))
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def stalled_client(port, event_ids):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect(('127.0.0.1', port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f'GET /ws/odds HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n'
                  f'Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n').encode())
    head = b''
    while b'\r\n\r\n' not in head:
        chunk = sock.recv(1)
        if not chunk:
            raise RuntimeError('connection closed during the upgrade')
        head += chunk
    if not head.startswith(b'HTTP/1.1 101'):
        raise RuntimeError(f'upgrade refused: {head.splitlines()[0]!r}')
    sock.sendall(masked_text_frame(json.dumps({'type': 'subscribe', 'eventIds': event_ids})))
    return sock


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--port', type=int, required=True)
    parser.add_argument('--count', type=int, required=True)
    parser.add_argument('--events', type=int, required=True)
    parser.add_argument('--seconds', type=float, default=60)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    events = [f'BENCH_{i + 1}' for i in range(args.events)]
    sockets = [stalled_client(args.port, events) for _ in range(args.count)]
    print(f'stalled clients: {len(sockets)} subscribed and no longer reading', flush=True)
    try:
        time.sleep(args.seconds)
    finally:
        for sock in sockets:
            sock.close()


if __name__ == '__main__':
    main()
