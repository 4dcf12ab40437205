#!/usr/bin/env bash
# Produce latency with and without the log cleaner running: the same keyed load (librdkafka,
# `strata bench produce --keys`) into one partition, once with cleanup.policy=compact (16 MiB
# segments, min.cleanable.dirty.ratio=0.01, a cleaner pass every second: the cleaner works the
# whole run) and once with cleanup.policy=delete (no cleaner), alternating, ROUNDS times each.
# Prints one line per run: policy, produce p50/p99/p99.9, and for compact what the cleaner did
# (passes, MB rewritten, the partition's size at the end).
# Usage: benches/compaction_load.sh [path/to/strata] [rounds] [seconds] [rate]
#   defaults: target/release/strata 2 25 50000 (1 KiB records: 51 MB/s, 1.28 GB a run)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$root/target/release/strata}
rounds=${2:-2}
secs=${3:-25}
rate=${4:-50000}
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

run() {
  local policy=$1
  rm -rf "$work/data"
  "$bin" serve --data-dir "$work/data" --listen "127.0.0.1:$port" --log-retention-check-interval-ms 1000 \
    --topic-default "cleanup.policy=$policy" --topic-default segment.bytes=16777216 \
    --topic-default min.cleanable.dirty.ratio=0.01 >"$work/broker.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
  local out
  out=$("$bin" bench --brokers "127.0.0.1:$port" produce --topic load --partitions 1 --keys 100000 \
    --message-size 1024 --rate "$rate" --duration "$secs" --broker-pid $pid --json 2>/dev/null | tail -1)
  local size
  size=$(du -sm "$work/data/load-0" | cut -f1)
  kill -TERM $pid; wait $pid || true; pid=
  local cleans mb
  # The partition's "cleaned" lines, colour codes taken out.
  sed 's/\x1b\[[0-9;]*m//g' "$work/broker.log" | { grep ' cleaned .*load-0' || true; } >"$work/cleans"
  cleans=$(wc -l <"$work/cleans")
  mb=$(sed -E 's/.*bytes_before=([0-9]+).*/\1/' "$work/cleans" | awk '{s+=$1} END {printf "%.0f", s/1e6}')
  python3 - "$policy" "$out" "$cleans" "$mb" "$size" <<'EOF'
import json, sys
policy, out, cleans, mb, size = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
l = out["latency_ms"]
extra = f"; cleaner: {cleans} passes, {mb} MB rewritten" if policy == "compact" else ""
print(f"{policy:8} {out['records']} records ({out['failed']} failed), {out['mb_per_sec']:.1f} MB/s, "
      f"produce p50 {l['p50']:.2f} p99 {l['p99']:.2f} p99.9 {l['p999']:.2f} max {l['max']:.0f} ms; partition {size} MiB at the end{extra}")
EOF
}

for _ in $(seq "$rounds"); do
  run compact
  run delete
done
