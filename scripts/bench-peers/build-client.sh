#!/usr/bin/env bash
# Compiles ws_peer_client.swift (standalone, optimized) into .build/bench-peers/ unless a binary
# built from the same source is already there; prints the binary's path.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
SOURCE="$HERE/ws_peer_client.swift"
OUT_DIR="$ROOT/.build/bench-peers"
BINARY="$OUT_DIR/ws-peer-client-$(sha256sum "$SOURCE" | cut -c1-12)"
if [[ ! -x "$BINARY" ]]; then
    mkdir -p "$OUT_DIR"
    rm -f "$OUT_DIR"/ws-peer-client-*
    echo "bench-peers: compiling ws-peer-client" >&2
    swiftc -O -swift-version 5 "$SOURCE" -o "$BINARY.tmp" >&2
    mv "$BINARY.tmp" "$BINARY"
fi
echo "$BINARY"
