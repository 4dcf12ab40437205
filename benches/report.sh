#!/usr/bin/env bash
# One run, three tables: the disk's ceiling (fio) and Strata through a real Kafka client
# (`strata bench`, librdkafka) on loopback, on the same disk, in the same minutes; then the
# same broker driven by the raw client (`--client raw`), with client and broker CPU per GB;
# then the librdkafka load against Apache Kafka (tests/compat/kafka/start.sh, default flush
# policy: no fsync before the acknowledgement; and a topic with flush.messages=1), side by side.
# Usage: benches/report.sh [seconds per produce run, default 10]
#   KAFKA=0 skips Apache Kafka; STRATA_BIN=path uses that binary instead of building a release.
set -eEuo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
command -v fio >/dev/null || { apt-get update -qq && apt-get install -y -qq fio >/dev/null; }
bin=${STRATA_BIN:-target/release/strata}
[ -n "${STRATA_BIN:-}" ] || cargo build --release -q
work=target/report; rm -rf "$work"; mkdir -p "$work"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
b="127.0.0.1:$port"

fio --output-format=json --name=seq --directory="$work" --ioengine=io_uring --direct=1 --rw=write --bs=1M --size=1G --runtime=10 --time_based > "$work/fio-seq.json"
fio --output-format=json --name=sync --directory="$work" --ioengine=io_uring --direct=1 --rw=write --bs=4k --fdatasync=1 --size=256M --runtime=10 --time_based > "$work/fio-sync.json"
rm -f "$work"/seq.* "$work"/sync.*

"$bin" serve --data-dir "$work/data" --listen "$b" --cache-bytes-per-core $((1 << 30)) > "$work/broker.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true; rm -rf "$work/data"' EXIT
for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done

# Progress lines go to bench.log; a failed step names itself and shows the log's end.
run() { "$bin" bench --brokers "$b" "$@" --json 2>>"$work/bench.log" | tail -1; }
trap 'echo "report.sh: failed at line $LINENO: $BASH_COMMAND" >&2; tail -5 "$work/bench.log" "$work/broker.log" >&2' ERR
cpu() { awk '{print $14+$15}' /proc/$pid/stat; }
# Warm-up, not measured: fills the tail caches, so the runs below see the broker's steady state
# (on a VM, first-touched memory is expensive: the caches' first fill costs ~2x the CPU).
run produce --topic warm-up --message-size 16384 --duration 6 >/dev/null
c0=$(cpu); p16=$(run produce --topic t16k --message-size 16384 --duration "$secs" --broker-pid "$pid"); c1=$(cpu)
p1=$(run produce --topic t1k --message-size 1024 --duration "$secs")
rate16=$(python3 -c "import json; print(int(json.loads('$p16')['records_per_sec']/2))")
h16=$(run produce --topic t16k-half --message-size 16384 --duration "$secs" --rate "$rate16")
# The disk alone at the same byte rate, in the same minutes: 8 writers (as 8 partitions), each
# write of 256 KiB (about what a partition gets per linger window) followed by fdatasync.
half_bps=$(python3 -c "import json; print(int(json.loads('$h16')['mb_per_sec']*1e6/8))")
fio --output-format=json --name=atrate --directory="$work" --ioengine=io_uring --direct=1 --rw=write --bs=256k --fdatasync=1 --size=256M --numjobs=8 --group_reporting --rate="$half_bps" --runtime="$secs" --time_based > "$work/fio-rate.json"
rm -f "$work"/atrate.*
e16=$(run e2e --topic t16k-e2e --message-size 16384 --duration "$secs" --rate "$rate16" --linger-ms 5)
# The hot tail: 1 GiB just produced, within the broker's tail caches (served from memory).
run produce --topic hot --message-size 16384 --records 65536 >/dev/null
hot=$(run consume --topic hot)
# From the beginning of the first topic: mostly older than the caches, read from the disk.
cons=$(run consume --topic t16k)

python3 - "$work" "$p16" "$p1" "$h16" "$e16" "$hot" "$cons" "$c0" "$c1" <<'PY'
import json, sys, os
work, p16, p1, h16, e16, hot, cons, c0, c1 = sys.argv[1], *map(json.loads, sys.argv[2:8]), int(sys.argv[8]), int(sys.argv[9])
seq = json.load(open(f"{work}/fio-seq.json"))["jobs"][0]["write"]["bw_bytes"] / 1e6
sj = json.load(open(f"{work}/fio-sync.json"))["jobs"][0]
p99 = lambda d: float(d["percentile"]["99.000000"]) / 1e6
sync_p99 = p99(sj["write"]["clat_ns"]) + p99(sj["sync"]["lat_ns"])
rj = json.load(open(f"{work}/fio-rate.json"))["jobs"][0]
pct = lambda d, q: float(d["percentile"][q]) / 1e6
rate_lat = {q: pct(rj["write"]["clat_ns"], q) + pct(rj["sync"]["lat_ns"], q) for q in ("50.000000", "99.000000", "99.900000")}
rate_max = (rj["write"]["clat_ns"]["max"] + rj["sync"]["lat_ns"]["max"]) / 1e6
ticks = os.sysconf("SC_CLK_TCK")
cpu_s_per_gb = (c1 - c0) / ticks / (p16["mb_per_sec"] * p16["seconds"] / 1000)
print(f"| measure | value | ratio |\n|---|---|---|")
print(f"| disk: fio 1 MiB O_DIRECT sequential write | {seq:.0f} MB/s | 1.00 |")
print(f"| disk: fio 4 KiB write+fdatasync p99 | {sync_p99:.3f} ms | 1.00 |")
print(f"| produce 16 KiB, acks=all, max rate | {p16['mb_per_sec']:.0f} MB/s | {p16['mb_per_sec']/seq:.2f} x disk |")
print(f"| produce 1 KiB, acks=all, max rate | {p1['mb_per_sec']:.0f} MB/s ({p1['records_per_sec']:.0f} rec/s) | {p1['mb_per_sec']/seq:.2f} x disk |")
print(f"| consume 16 KiB records, hot tail (1 GiB just produced) | {hot['mb_per_sec']:.0f} MB/s | {hot['mb_per_sec']/seq:.2f} x disk |")
print(f"| consume 16 KiB records from the beginning (disk) | {cons['mb_per_sec']:.0f} MB/s | {cons['mb_per_sec']/seq:.2f} x disk |")
l = h16["latency_ms"]
print(f"| produce latency at 50% of max (16 KiB) p50 / p99 / p99.9 | {l['p50']:.2f} / {l['p99']:.2f} / {l['p999']:.2f} ms | p99 = {l['p99']/sync_p99:.1f} x disk sync p99 |")
l = e16["latency_ms"]
print(f"| end-to-end latency at 50% of max (16 KiB) p50 / p99 / p99.9 | {l['p50']:.2f} / {l['p99']:.2f} / {l['p999']:.2f} ms | p99 = {l['p99']/sync_p99:.1f} x disk sync p99 |")
print(f"| disk at the half-load rate: fio 8 x 256 KiB write+fdatasync p50 / p99 / p99.9 (max) | {rate_lat['50.000000']:.2f} / {rate_lat['99.000000']:.2f} / {rate_lat['99.900000']:.2f} ({rate_max:.0f}) ms | per write, not per record |")
print(f"| broker CPU per GB produced (16 KiB) | {cpu_s_per_gb:.2f} CPU-s/GB | |")
PY

# ---- The raw client (`strata bench --client raw`): pre-encoded batches, pipelined, so the
# broker rather than librdkafka is measured. Each row states its connections x window; CPU
# per GB comes from the run's own JSON (getrusage, /proc/$pid/stat, /proc/stat).
# Each produce row's topic is deleted after it: at ~1 GB/s they would otherwise fill the disk.
raw() { run "$1" --client raw --broker-pid "$pid" "${@:2}"; }
drop() { "$bin" topic --brokers "$b" delete "$1" >/dev/null; }
r16=$(raw produce --topic raw-16k --message-size 16384 --batch-bytes 16384 --acks all --duration "$secs"); drop raw-16k
r1m=$(raw produce --topic raw-1m --message-size 16384 --batch-bytes 1048576 --acks all --duration "$secs"); drop raw-1m
r100=$(raw produce --topic raw-100 --message-size 100 --batch-bytes 65536 --acks all --duration "$secs"); drop raw-100
raw produce --topic raw-hot --message-size 16384 --records 65536 >/dev/null
rhot=$(raw consume --topic raw-hot)

python3 - "$work" "$p16" "$r16" "$r1m" "$r100" "$rhot" <<'PY'
import json, sys
work, p16, r16, r1m, r100, rhot = sys.argv[1], *map(json.loads, sys.argv[2:7])
seq = json.load(open(f"{work}/fio-seq.json"))["jobs"][0]["write"]["bw_bytes"] / 1e6
f = lambda v, fmt="{:.2f}": "-" if v is None else fmt.format(v)
print()
print("| raw client run | conns x window | MB/s | records/s | x disk | client CPU-s/GB | broker CPU-s/GB | machine busy cores |")
print("|---|---|---|---|---|---|---|---|")
def row(name, r):
    c = r["cpu"]; m = c.get("machine") or {}
    cw = f"{r['connections']} x {r['window']}" if "connections" in r else f"{r.get('producers', 1)} producer(s)"
    print(f"| {name} | {cw} | {r['mb_per_sec']:.0f} | {r['records_per_sec']:.0f} | {r['mb_per_sec']/seq:.2f} | "
          f"{f(c['client_cpu_s_per_gb'])} | {f(c['broker_cpu_s_per_gb'])} | {f(m.get('busy_cores'))} |")
row("librdkafka: produce 16 KiB records, acks=all (the first table's run)", p16)
row("raw: produce 16 KiB records, 1 per request (16 KiB batches), acks=all", r16)
row("raw: produce 16 KiB records in 1 MiB batches, acks=all", r1m)
row("raw: produce 100-byte records in 64 KiB batches, acks=all", r100)
row("raw: consume the hot tail (1 GiB of 16 KiB records just produced)", rhot)
PY

# Apache Kafka on the same disk, in the same run: the same load, the same fixed rate for latency.
[ "${KAFKA:-1}" = 1 ] || exit 0
kafka_cpu() { awk '{print $14+$15}' "/proc/$(cat "$work/kafka/kafka.pid")/stat"; }
start_kafka() {
  kport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  kb="127.0.0.1:$kport"
  KAFKA_EXTRA_PROPS="num.partitions=8" tests/compat/kafka/start.sh "$work/kafka" "$kport" | tee "$work/kafka-start.log" >&2
  trap 'tests/compat/kafka/start.sh --stop "$work/kafka" || true; rm -rf "$work/data" "$work/kafka/data"' EXIT
}
srss=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)
kill $pid; wait $pid 2>/dev/null || true
start_kafka
krun() { "$bin" bench --brokers "$kb" "$@" --json 2>>"$work/bench.log" | tail -1; }
krun produce --topic warm-up --message-size 16384 --duration 6 >/dev/null
k0=$(kafka_cpu); kp16=$(krun produce --topic t16k --message-size 16384 --duration "$secs"); k1=$(kafka_cpu)
kp1=$(krun produce --topic t1k --message-size 1024 --duration "$secs")
kh16=$(krun produce --topic t16k-half --message-size 16384 --duration "$secs" --rate "$rate16")
ke16=$(krun e2e --topic t16k-e2e --message-size 16384 --duration "$secs" --rate "$rate16" --linger-ms 5)
krun produce --topic hot --message-size 16384 --records 65536 >/dev/null
khot=$(krun consume --topic hot)
kcons=$(krun consume --topic t16k)
# What an fsync before every acknowledgement costs Kafka: a topic with flush.messages=1.
java -cp "$(tests/compat/kafka/start.sh --classpath)" org.apache.kafka.tools.TopicCommand --bootstrap-server "$kb" --create \
  --topic t16k-flush1 --partitions 8 --replication-factor 1 --config flush.messages=1 >/dev/null 2>>"$work/bench.log"
kf16=$(krun produce --topic t16k-flush1 --message-size 16384 --duration "$secs")
krss=$(awk '/VmHWM/ {print $2}' "/proc/$(cat "$work/kafka/kafka.pid")/status")
kversion=$(sed -n 's/^apache kafka \([^ ]*\).*/\1/p' "$work/kafka-start.log")

python3 - "$p16" "$p1" "$h16" "$e16" "$hot" "$cons" "$kp16" "$kp1" "$kh16" "$ke16" "$khot" "$kcons" "$kf16" \
  "$c0" "$c1" "$k0" "$k1" "$srss" "$krss" "$kversion" <<'PY'
import json, os, sys
a = sys.argv[1:]
s = dict(zip(["p16", "p1", "h16", "e16", "hot", "cons"], map(json.loads, a[0:6])))
k = dict(zip(["p16", "p1", "h16", "e16", "hot", "cons", "f16"], map(json.loads, a[6:13])))
c0, c1, k0, k1, srss, krss = map(int, a[13:19])
ticks = os.sysconf("SC_CLK_TCK")
gb = lambda r: r["mb_per_sec"] * r["seconds"] / 1000
print(f"\n| same load, same disk, same run | Strata (fsync before ack) | Apache Kafka {a[19]} (default flush: no fsync) | Kafka / Strata |\n|---|---|---|---|")
row = lambda name, sv, kv, unit: print(f"| {name} | {sv:.2f} {unit} | {kv:.2f} {unit} | {kv / sv if sv else float('nan'):.2f} |")
row("produce 16 KiB, acks=all, max rate", s["p16"]["mb_per_sec"], k["p16"]["mb_per_sec"], "MB/s")
row("produce 1 KiB, acks=all, max rate", s["p1"]["mb_per_sec"], k["p1"]["mb_per_sec"], "MB/s")
row("consume 16 KiB, hot tail", s["hot"]["mb_per_sec"], k["hot"]["mb_per_sec"], "MB/s")
row("consume 16 KiB from the beginning", s["cons"]["mb_per_sec"], k["cons"]["mb_per_sec"], "MB/s")
row("produce p99 at Strata's 50% rate (16 KiB)", s["h16"]["latency_ms"]["p99"], k["h16"]["latency_ms"]["p99"], "ms")
row("end-to-end p99 at the same rate (16 KiB)", s["e16"]["latency_ms"]["p99"], k["e16"]["latency_ms"]["p99"], "ms")
row("broker CPU per GB produced (16 KiB)", (c1 - c0) / ticks / gb(s["p16"]), (k1 - k0) / ticks / gb(k["p16"]), "CPU-s/GB")
row("broker peak resident memory", srss / 1024, krss / 1024, "MiB")
print(f"| Kafka with flush.messages=1 (fsync every batch): produce 16 KiB max rate | {s['p16']['mb_per_sec']:.2f} MB/s | {k['f16']['mb_per_sec']:.2f} MB/s | {k['f16']['mb_per_sec'] / s['p16']['mb_per_sec']:.2f} |")
PY
