#!/usr/bin/env bash
# The disk's ceiling (fio, io_uring, O_DIRECT) and Strata's append path on the same disk, in
# the same run, so that storage throughput can be read as a ratio of what the disk can do.
# Usage: benches/storage_vs_fio.sh   (needs fio; runs in target/, on the project's disk)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v fio >/dev/null || { apt-get update -qq && apt-get install -y -qq fio >/dev/null; }
dir=target/fio-bench; mkdir -p "$dir"
fio_json() { fio --output-format=json "$@" --directory="$dir" --ioengine=io_uring --direct=1 --size=1G --numjobs=1; }
seq_bw=$(fio_json --name=seq --rw=write --bs=1M --runtime=10 --time_based | python3 -c 'import json,sys; print(json.load(sys.stdin)["jobs"][0]["write"]["bw_bytes"])')
sync_lat=$(fio_json --name=sync4k --rw=write --bs=4k --iodepth=1 --fdatasync=1 --runtime=10 --time_based | python3 -c '
import json,sys; j=json.load(sys.stdin)["jobs"][0]
w=j["write"]["clat_ns"]["percentile"]; s=j["sync"]["lat_ns"]["percentile"]
print("%.1f %.1f" % ((float(w["50.000000"])+float(s["50.000000"]))/1000, (float(w["99.000000"])+float(s["99.000000"]))/1000))')
rm -rf "$dir"
echo "fio seq write 1M O_DIRECT io_uring: $((seq_bw/1000000)) MB/s"
echo "fio 4k write+fdatasync p50/p99 (us): $sync_lat"
STRATA_BENCH_DIR=target/strata-bench cargo bench --bench storage -- append 2>&1 | tee target/storage-bench.txt | grep -E "^append|time:|thrpt:"
python3 - "$seq_bw" <<'PY'
import re, sys
seq = int(sys.argv[1])
text = open("target/storage-bench.txt").read()
for name, size, unit_val, unit in re.findall(r"(append\w*)/(\d+)\s+time:.*?\n\s+thrpt:\s+\[[\d.]+ \w+/s ([\d.]+) (\w+)/s", text):
    mult = {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}[unit]
    bw = float(unit_val) * mult
    print(f"{name} {int(size)//1024} KiB batches: {bw/1e6:.0f} MB/s = {bw/seq:.2f} x fio")
PY
