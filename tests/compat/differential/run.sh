#!/usr/bin/env bash
# Starts Apache Kafka (tests/compat/kafka/start.sh) and Strata side by side on free ports, runs the
# differential harness (Differential.java) against both, stops both. Exit status: the harness's (0: every
# difference is listed as deliberate or as a known gap; 1: an unlisted difference; 2: a scenario could
# not run). The JSON report goes to target/differential-report.json.
# Usage: tests/compat/differential/run.sh [path/to/strata]   (default: target/debug/strata)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
bin=${1:-$root/target/debug/strata}
work=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
kport=$(free_port); sport=$(free_port)
spid=""
cleanup() {
  "$root/tests/compat/kafka/start.sh" --stop "$work/kafka" || true
  if [ -n "$spid" ]; then kill -TERM "$spid" 2>/dev/null; wait "$spid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
trap "exit 143" TERM INT
started=$(date +%s)

if ! command -v javac >/dev/null || ! command -v mvn >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jdk-headless maven >/dev/null
fi

# Maven first (the broker and the harness share the classpath), then Kafka in the background.
cp=$("$root/tests/compat/kafka/start.sh" --classpath)
KAFKA_EXTRA_PROPS="log.retention.check.interval.ms=1000 log.initial.task.delay.ms=0" \
  "$root/tests/compat/kafka/start.sh" "$work/kafka" "$kport" >"$work/kafka-start.log" 2>&1 &
kstart=$!
"$bin" serve --data-dir "$work/strata" --listen "127.0.0.1:$sport" --group-initial-rebalance-delay-ms 0 \
  >"$work/strata.log" 2>&1 &
spid=$!
mkdir -p "$work/classes"
javac -nowarn -d "$work/classes" -cp "$cp" "$here/Differential.java"
for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/$sport) 2>/dev/null && break; sleep 0.1; done
if ! wait "$kstart"; then cat "$work/kafka-start.log"; exit 2; fi
cat "$work/kafka-start.log"

mkdir -p "$root/target"
status=0
timeout 240 java -Xmx512m -cp "$work/classes:$cp" Differential --kafka "127.0.0.1:$kport" --strata "127.0.0.1:$sport" \
  --expected "$here/expected-differences.txt" --gaps "$here/known-gaps.txt" --readme "$root/README.md" \
  --json "$root/target/differential-report.json" 2> >(grep -v '^SLF4J' >&2) || status=$?
if ! kill -0 "$spid" 2>/dev/null; then echo "strata died during the differential run"; tail -20 "$work/strata.log"; status=2; fi
echo "differential run took $(( $(date +%s) - started )) s; report: target/differential-report.json"
exit $status
