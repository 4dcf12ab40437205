#!/usr/bin/env bash
# Starts Apache Kafka (KRaft, one node that is broker and controller) from its Maven artifacts.
#   tests/compat/kafka/start.sh DIR PORT   starts it in the background with its files in DIR, waits until
#                                          it answers on 127.0.0.1:PORT, prints its version; DIR/kafka.pid
#   tests/compat/kafka/start.sh --stop DIR stops it (SIGTERM, then SIGKILL after 20 s)
#   tests/compat/kafka/start.sh --classpath prints the resolved classpath (for other tools)
# Maven resolves kafka_2.13, kafka-tools and a log4j2 binding (pom.xml beside this script) into ~/.m2.
# Extra broker settings: KAFKA_EXTRA_PROPS="flush.messages=1 num.partitions=3".
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

classpath() {
  local cp=$here/target/classpath.txt
  if [ ! -s "$cp" ] || [ "$here/pom.xml" -nt "$cp" ]; then
    if ! command -v mvn >/dev/null; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq maven >/dev/null
    fi
    mkdir -p "$here/target"
    (cd "$here" && mvn -q -B dependency:build-classpath -Dmdep.outputFile="$cp" >"$here/target/mvn.log" 2>&1) \
      || { tail -30 "$here/target/mvn.log" >&2; exit 1; }
  fi
  cat "$cp"
}

if [ "${1:-}" == "--classpath" ]; then classpath; exit 0; fi
if [ "${1:-}" == "--stop" ]; then
  dir=$2; pid=$(cat "$dir/kafka.pid" 2>/dev/null || true)
  [ -n "$pid" ] || exit 0
  kill -TERM "$pid" 2>/dev/null || exit 0
  for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || exit 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  exit 0
fi

dir=${1:?usage: start.sh DIR PORT}; port=${2:?usage: start.sh DIR PORT}
mkdir -p "$dir"; dir=$(cd "$dir" && pwd)
cp=$(classpath)
if ! command -v java >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null
fi
cport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.quorum.bootstrap.servers=127.0.0.1:$cport
log.dirs=$dir/data
num.partitions=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
PROPS
for kv in ${KAFKA_EXTRA_PROPS:-}; do echo "$kv" >>"$dir/server.properties"; done

java=${JAVA:-java}
jvm=(-Xms256m -Xmx768m -XX:+UseG1GC -Djava.awt.headless=true
     -Dlog4j2.configurationFile="$here/log4j2.yaml" -cp "$cp")
uuid=$("$java" "${jvm[@]}" kafka.tools.StorageTool random-uuid)
"$java" "${jvm[@]}" kafka.tools.StorageTool format --config "$dir/server.properties" \
  --cluster-id "$uuid" --standalone --ignore-formatted >"$dir/format.log" 2>&1 \
  || { cat "$dir/format.log" >&2; exit 1; }
start=$(date +%s.%N)
nice "$java" "${jvm[@]}" -Dkafka.logs.dir="$dir/logs" kafka.Kafka "$dir/server.properties" >"$dir/kafka.log" 2>&1 &
echo $! >"$dir/kafka.pid"
for _ in $(seq 600); do
  if ! kill -0 "$(cat "$dir/kafka.pid")" 2>/dev/null; then tail -40 "$dir/kafka.log" >&2; exit 1; fi
  if grep -q "Kafka Server started" "$dir/kafka.log" 2>/dev/null || grep -q "\[KafkaRaftServer nodeId=1\] Kafka Server started" "$dir/kafka.log"; then
    (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break
  fi
  sleep 0.1
done
(echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null || { echo "kafka did not start" >&2; tail -40 "$dir/kafka.log" >&2; exit 1; }
version=$(tr ':' '\n' <<<"$cp" | sed -n 's#.*/kafka_2.13-\(.*\)\.jar$#\1#p')
echo "apache kafka $version on 127.0.0.1:$port (KRaft, started in $(python3 -c "import time; print(round(time.time()-$start,1))") s, pid $(cat "$dir/kafka.pid"))"
