#!/bin/bash
# Stands in for switchyard as LOAD_CANDIDATE: the load bench's least layers gateway
# (`--gateway-forwarder`, see benches/load.rs) in front of --l2-url, checking and signing with
# --l2-jwt-token. Build the bench first: cargo bench --bench load --no-run.
set -euo pipefail
while [ $# -gt 0 ]; do
  case "$1" in
    --l2-url) url="${2#http://}"; shift 2 ;;
    --l2-jwt-token) secret="$2"; shift 2 ;;
    *) shift ;;
  esac
done
root="$(cd "$(dirname "$0")/.." && pwd)"
bench="$(ls -t "$root"/target/release/deps/load-* | grep -v '\.[a-z]*$' | head -1)"
exec "$bench" --gateway-forwarder "$url" "$secret"
