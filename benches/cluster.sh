#!/usr/bin/env bash
# Replication factor 3 against 1 on a three-broker cluster on this machine (loopback, one core
# per broker), in one run, alternating: `strata bench produce` (librdkafka, acks=all, 16 KiB
# records) to a topic of each factor, the brokers' CPU from /proc, per GB produced.
#   benches/cluster.sh [strata binary] [rounds] [seconds per run]
set -euo pipefail
BIN=${1:-target/release/strata}
ROUNDS=${2:-2}
SECS=${3:-15}
dir=$(mktemp -d)
peers=1=127.0.0.1:19392,2=127.0.0.1:19393,3=127.0.0.1:19394
pids=()
for i in 1 2 3; do
  "$BIN" serve --cores 1 --node-id "$i" --listen "127.0.0.1:$((9390 + i))" --data-dir "$dir/d$i" \
    --peers "$peers" >"$dir/log$i" 2>&1 &
  pids+=($!)
done
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"' EXIT
B=127.0.0.1:9391,127.0.0.1:9392,127.0.0.1:9393
for rf in 1 3; do
  for _ in $(seq 30); do
    "$BIN" topic create --brokers "$B" --partitions 6 --replication-factor "$rf" "bench-rf$rf" >/dev/null 2>&1 && break
    sleep 1
  done
done
sleep 2
ticks() {
  local t=0 f
  for p in "${pids[@]}"; do
    read -r -a f <"/proc/$p/stat"
    t=$((t + f[13] + f[14]))
  done
  echo "$t"
}
hz=$(getconf CLK_TCK)
echo "rf  MB/s  p99_ms  brokers_cpu_s_per_GB"
for _ in $(seq "$ROUNDS"); do
  for rf in 3 1; do
    c0=$(ticks)
    out=$("$BIN" bench produce --brokers "$B" --topic "bench-rf$rf" --message-size 16384 --acks all \
      --duration "$SECS" --json 2>"$dir/bench.err" | tail -1) || { cat "$dir/bench.err"; exit 1; }
    c1=$(ticks)
    python3 - "$rf" "$out" "$((c1 - c0))" "$hz" <<'PY'
import json, sys
rf, out, ticks, hz = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
gb = out["mb_per_sec"] * out["seconds"] / 1000
print(f"{rf}   {out['mb_per_sec']:.0f}  {out['latency_ms']['p99']:.1f}  {ticks / hz / gb if gb else float('nan'):.2f}")
PY
  done
done
