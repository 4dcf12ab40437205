#!/usr/bin/env bash
# Runs real third-party Kafka clients against a fresh Strata broker:
#   kcat (Debian's, librdkafka 2.0.x) and, in a venv, confluent-kafka, kafka-python, aiokafka.
# Each produces and consumes, with every compression codec, and consumes as a group member
# (tests/compat/groups.py); idempotent producers through dropped responses; Spark Structured
# Streaming (pyspark with a Python source, tests/compat/spark/) beside `strata stream`; KafkaJS;
# and the differential tests against Apache Kafka (tests/compat/differential/).
# Installs what it needs.
# Usage: tests/compat/run.sh [path/to/strata]   (default: target/release/strata)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin=${1:-$root/target/release/strata}
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
broker="127.0.0.1:$port"

if ! command -v kcat >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kcat >/dev/null
fi
venv=${STRATA_COMPAT_VENV:-$root/target/compat-venv}
if [ ! -x "$venv/bin/python" ]; then python3 -m venv "$venv"; fi
"$venv/bin/pip" install -q confluent-kafka kafka-python aiokafka lz4 python-snappy zstandard cramjam \
  pyspark==4.3.0 pyarrow "pandas<3"
if ! command -v java >/dev/null; then   # Spark needs a JVM (17+)
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null
fi

"$bin" serve --data-dir "$work/data" --listen "$broker" >"$work/broker.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done

passed=0; failed=0
echo "== kcat $(kcat -V | head -1)"
for codec in none gzip snappy lz4 zstd; do
  topic="kcat-$codec"
  seq 1 1000 | sed 's/^/line-/' | kcat -b "$broker" -P -t "$topic" -z "$codec" -X acks=all
  got=$(kcat -b "$broker" -C -t "$topic" -o beginning -e -q | tr '\n' ' ')
  want=$(seq 1 1000 | sed 's/^/line-/' | tr '\n' ' ')
  if [ "$got" == "$want" ]; then echo "ok kcat $codec"; passed=$((passed+1)); else echo "FAIL kcat $codec"; failed=$((failed+1)); fi
done
kcat -b "$broker" -L | grep -q 'topic "kcat-zstd"' && passed=$((passed+1)) || { echo "FAIL kcat metadata"; failed=$((failed+1)); }
# Balanced consumer (-G): reads everything, commits on close; the next member resumes there.
seq 1 300 | kcat -b "$broker" -P -t kcat-group
got=$(timeout 60 kcat -b "$broker" -G kcat-g -o beginning -e -q kcat-group | wc -l)
seq 301 310 | kcat -b "$broker" -P -t kcat-group
again=$(timeout 60 kcat -b "$broker" -G kcat-g -e -q kcat-group | tr '\n' ' ')
if [ "$got" -eq 300 ] && [ "$again" == "$(seq 301 310 | tr '\n' ' ')" ]; then echo "ok kcat group"; passed=$((passed+1)); else echo "FAIL kcat group: $got, then '$again'"; failed=$((failed+1)); fi

echo "== python clients"
if "$venv/bin/python" "$here/clients.py" "$broker"; then passed=$((passed+15)); else failed=$((failed+1)); tail -20 "$work/broker.log"; fi
echo "== consumer groups"
if "$venv/bin/python" "$here/groups.py" "$broker"; then passed=$((passed+6)); else failed=$((failed+1)); tail -20 "$work/broker.log"; fi

echo "== kafkajs (a JavaScript client with its own protocol implementation)"
if ! command -v node >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
nodedir=$root/target/compat-node
[ -d "$nodedir/node_modules/kafkajs" ] || (mkdir -p "$nodedir" && cd "$nodedir" && npm install --silent --no-audit --no-fund kafkajs@2.2.4 >/dev/null)
if NODE_PATH="$nodedir/node_modules" node "$here/node/kafkajs.js" "$broker"; then passed=$((passed+3)); else failed=$((failed+1)); tail -20 "$work/broker.log"; fi

echo "== idempotent producers through dropped produce responses"
fport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin" serve --data-dir "$work/faulty" --listen "127.0.0.1:$fport" --fault-drop-produce-response-every 7 >"$work/faulty.log" 2>&1 &
fpid=$!
for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/$fport) 2>/dev/null && break; sleep 0.1; done
if "$venv/bin/python" "$here/idempotence.py" "127.0.0.1:$fport"; then passed=$((passed+3)); else failed=$((failed+1)); tail -20 "$work/faulty.log"; fi
kill -TERM $fpid; wait $fpid || true

echo "== Spark Structured Streaming and strata stream: the attendance query"
if "$venv/bin/python" "$here/spark/attendance.py" "$broker" "$bin" >"$work/spark.log" 2>&1; then
  grep -E '^ok|^spark:' "$work/spark.log"; passed=$((passed+2))
else
  tail -40 "$work/spark.log"; failed=$((failed+1))
fi

# The broker must still be alive and must shut down cleanly on SIGTERM.
kill -TERM $pid
if wait $pid; then passed=$((passed+1)); else echo "FAIL broker exit status"; failed=$((failed+1)); fi
trap 'rm -rf "$work"' EXIT
echo "== differential: the same requests to Apache Kafka and to Strata (tests/compat/differential)"
if timeout 300 "$here/differential/run.sh" "$bin" >"$work/differential.log" 2>&1; then passed=$((passed+1)); else failed=$((failed+1)); fi
grep -E '^apache kafka|^differential|GAP |UNEXPECTED|^ERROR|^stale|^strata died' "$work/differential.log" || tail -40 "$work/differential.log"
echo "compat: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
