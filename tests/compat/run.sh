#!/usr/bin/env bash
# Runs real third-party Kafka clients against a fresh Strata broker (and a three-broker cluster,
# tests/compat/cluster.py):
#   kcat (Debian's, librdkafka 2.0.x) and, in a venv, confluent-kafka, kafka-python, aiokafka,
#   quixstreams (a stateful app restoring its state from a compacted changelog, tests/compat/quixstreams_state.py).
# Each produces and consumes, with every compression codec, and consumes as a group member
# (tests/compat/groups.py) and with the KIP-848 consumer protocol
# (tests/compat/groups_consumer_protocol.py); idempotent producers through dropped responses; Spark Structured
# Streaming (pyspark with Spark's own Kafka source, tests/compat/spark/) beside `strata stream`; KafkaJS;
# the JVM ecosystem (tests/compat/java/: the Java client, the Admin client, Kafka's own tools and
# Kafka Streams, kafka-clients 4.4.0); the differential tests against Apache Kafka
# (tests/compat/differential/). Installs what it needs; Maven resolves the JVM parts into
# ~/.m2. STRATA_COMPAT_SKIP_JVM=1 leaves out the Maven-built parts (the Java suite, the differential
# tests, and Spark's Kafka source, which then falls back to the Python source).
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
  pyspark==4.2.0 pyarrow "pandas<3" quixstreams==3.28.1
# pyspark 4.2.0: the newest release whose spark-sql-kafka-0-10 connector Maven Central serves
# (tests/compat/spark/connector/pom.xml pins the same version).
if ! command -v javac >/dev/null || ! command -v mvn >/dev/null; then   # Spark, Maven and the Java suite need a JDK 17+
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jdk-headless maven >/dev/null
fi
jvm=${STRATA_COMPAT_SKIP_JVM:-0}
mvn_q() { nice mvn -B -q --no-transfer-progress "$@"; }
spark_jars=()
if [ "$jvm" != 1 ]; then
  # One Maven run per project, before the broker starts: compile the Java suite and write its
  # class path; copy Spark's Kafka connector and what it needs beyond pyspark's own jars.
  (cd "$here/java" && mvn_q compile dependency:build-classpath -Dmdep.outputFile=target/classpath.txt)
  (cd "$here/spark/connector" && mvn_q dependency:copy-dependencies -DoutputDirectory=target/jars \
    -DincludeScope=runtime -DexcludeGroupIds=org.apache.hadoop,org.scala-lang,org.scala-lang.modules,org.slf4j,com.google.code.findbugs,at.yawk.lz4,org.xerial.snappy \
    -DexcludeArtifactIds=spark-tags_2.13)
  spark_jars=(--kafka-jars "$here/spark/connector/target/jars")
fi

"$bin" serve --data-dir "$work/data" --listen "$broker" >"$work/broker.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done

passed=0; failed=0; skipped=0
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
echo "== consumer groups with the KIP-848 consumer protocol (group.protocol=consumer: the broker assigns)"
if "$venv/bin/python" "$here/groups_consumer_protocol.py" "$broker"; then passed=$((passed+7)); else failed=$((failed+1)); tail -20 "$work/broker.log"; fi

echo "== a three-broker cluster: confluent-kafka, kafka-python and kcat through leader kills, a consumer group through a broker's (tests/compat/cluster.py)"
if timeout 400 "$venv/bin/python" "$here/cluster.py" "$bin" 2>"$work/cluster.err"; then passed=$((passed+7)); else failed=$((failed+1)); tail -20 "$work/cluster.err"; fi

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

echo "== quixstreams: a stateful app restores its state from a changelog topic the broker compacts"
# A broker of its own: 4 KiB segments, a low dirty ratio and a cleaner pass every 500 ms, so that
# the changelog is compacted while the test runs.
qport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin" serve --data-dir "$work/quix" --listen "127.0.0.1:$qport" --topic-default segment.bytes=4096 \
  --topic-default min.cleanable.dirty.ratio=0.01 --log-retention-check-interval-ms 500 >"$work/quix.log" 2>&1 &
qpid=$!
for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/$qport) 2>/dev/null && break; sleep 0.1; done
if timeout 180 "$venv/bin/python" "$here/quixstreams_state.py" "127.0.0.1:$qport"; then passed=$((passed+4)); else failed=$((failed+1)); tail -20 "$work/quix.log"; fi
kill -TERM $qpid; wait $qpid || true

echo "== Spark Structured Streaming and strata stream: the attendance query"
if "$venv/bin/python" "$here/spark/attendance.py" "$broker" "$bin" "${spark_jars[@]}" >"$work/spark.log" 2>&1; then
  grep -E '^ok|^spark:' "$work/spark.log"; passed=$((passed+2))
else
  tail -40 "$work/spark.log"; failed=$((failed+1))
fi

if [ "$jvm" != 1 ]; then
  echo "== JVM: Java client, Admin client, Kafka's tools, Kafka Streams (tests/compat/java, kafka 4.4.0)"
  # One JVM runs every scenario (tools and the Streams app get JVMs of their own); it prints
  # ok/FAIL/skip/gap per scenario and "java: N passed, N failed, N skipped, N known gaps".
  if timeout 900 nice java -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
      -cp "$here/java/target/classes:$(cat "$here/java/target/classpath.txt")" \
      strata.compat.Main --bootstrap "$broker" --strata "$bin" >"$work/java.log" 2>&1; then :; fi
  grep -E '^(ok|FAIL|skip|gap|#|    at) ' "$work/java.log" | grep -v '^# streams log: WARN org.apache.kafka.clients.NetworkClient' || true
  summary=$(grep -E '^java: [0-9]+ passed, [0-9]+ failed' "$work/java.log" | tail -1 || true)
  if [ -n "$summary" ]; then
    echo "$summary"
    read -r jp jf js jg < <(echo "$summary" | sed -E 's/^java: ([0-9]+) passed, ([0-9]+) failed, ([0-9]+) skipped, ([0-9]+) known gaps.*/\1 \2 \3 \4/')
    passed=$((passed+jp)); failed=$((failed+jf)); skipped=$((skipped+js+jg))
  else
    echo "FAIL java suite: no summary line"; tail -40 "$work/java.log"; failed=$((failed+1))
  fi
fi

# The broker must still be alive and must shut down cleanly on SIGTERM.
kill -TERM $pid
if wait $pid; then passed=$((passed+1)); else echo "FAIL broker exit status"; failed=$((failed+1)); fi
trap 'rm -rf "$work"' EXIT
echo "== differential: the same requests to Apache Kafka and to Strata (tests/compat/differential)"
if [ "$jvm" = 1 ]; then
  echo "skip differential (STRATA_COMPAT_SKIP_JVM=1)"; skipped=$((skipped+1))
else
  if timeout 300 "$here/differential/run.sh" "$bin" >"$work/differential.log" 2>&1; then passed=$((passed+1)); else failed=$((failed+1)); fi
  grep -E '^apache kafka|^differential|GAP |UNEXPECTED|^ERROR|^stale|^strata died' "$work/differential.log" || tail -40 "$work/differential.log"
fi
echo "compat: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
