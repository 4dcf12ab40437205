#!/usr/bin/env bash
# A/B of two broker binaries on the same machine in the same minutes, alternating A B A B ...
# (this machine's runs spread by ±15%, so never compare runs taken apart). Each round starts a
# fresh broker, warms it up (6 s, not measured), then measures, with one load client for both
# (the first binary's `strata bench`, librdkafka):
#   produce 16 KiB records at the maximum rate, acks=all (MB/s, broker CPU-s per GB from /proc);
#   produce 16 KiB records at a fixed rate (p50 / p99 latency from the intended send time).
# Usage: benches/ab.sh BIN_A BIN_B [rounds, default 3] [seconds per run, default 10] [fixed rate in records/s, default 2000]
set -euo pipefail
a=$1; b=$2; rounds=${3:-3}; secs=${4:-10}; rate=${5:-2000}
client=$a
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ticks=$(getconf CLK_TCK)

one() { # label binary
  local label=$1 bin=$2 port pid c0 c1 max fixed
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  rm -rf "$work/data"
  "$bin" serve --data-dir "$work/data" --listen "127.0.0.1:$port" > "$work/broker.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
  bench() { "$client" bench --brokers "127.0.0.1:$port" "$@" --json 2>>"$work/bench.log" | tail -1; }
  bench produce --topic warm-up --message-size 16384 --duration 6 >/dev/null
  c0=$(awk '{print $14+$15}' /proc/$pid/stat)
  max=$(bench produce --topic max --message-size 16384 --duration "$secs")
  c1=$(awk '{print $14+$15}' /proc/$pid/stat)
  fixed=$(bench produce --topic fixed --message-size 16384 --duration "$secs" --rate "$rate")
  kill $pid; wait $pid || true
  python3 - "$label" "$max" "$fixed" "$c0" "$c1" "$ticks" <<'PY'
import json, sys
label, m, f = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
c0, c1, ticks = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
gb = m["mb_per_sec"] * m["seconds"] / 1000
print(f"{label}  max {m['mb_per_sec']:7.1f} MB/s  broker {(c1 - c0) / ticks / gb:5.3f} CPU-s/GB  "
      f"fixed {f['mb_per_sec']:6.1f} MB/s  p50 {f['latency_ms']['p50']:6.2f} ms  p99 {f['latency_ms']['p99']:7.2f} ms")
PY
}

for r in $(seq "$rounds"); do
  one "A$r" "$a"
  one "B$r" "$b"
done
