"""Third-party clients against a three-broker Strata cluster, through leader kills.

Starts three brokers (`--cores 1` each, loopback), creates a topic with three partitions of
three replicas through confluent-kafka's Admin client, then:
- confluent-kafka (librdkafka), idempotent, acks=all: writes while the leader of partition 0 is
  killed with SIGKILL and restarted; every acknowledged value must be read back exactly once,
  at the offset it was acknowledged with;
- kafka-python, acks=all with retries: the same through another leader's kill (retries of a
  non-idempotent producer may write a value twice, as with Kafka: at least once is checked);
- kcat (Debian's librdkafka): produces lines and reads the whole topic back through the
  cluster's metadata;
- a confluent-kafka consumer group reads half, commits, and the broker leading partition 2 is
  killed: a new member of the group resumes from the commits and reads the rest.
Usage: python cluster.py path/to/strata
"""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

STRATA = sys.argv[1]
TOPIC = "cluster-compat"
PARTITIONS = 3


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Broker:
    def __init__(self, node, data, listen, peers):
        self.node, self.data, self.listen, self.peers = node, data, listen, peers
        self.proc = None
        self.log = open(f"{data}.log", "ab")
        self.start()

    def start(self):
        self.proc = subprocess.Popen(
            [STRATA, "serve", "--cores", "1", "--node-id", str(self.node), "--data-dir", self.data,
             "--listen", self.listen, "--peers", self.peers],
            stdout=subprocess.DEVNULL, stderr=self.log)
        host, port = self.listen.split(":")
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                socket.create_connection((host, int(port)), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"broker {self.node} did not start")

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        # The killed process's listener lingers until the kernel has torn its io_uring down.
        host, port = self.listen.split(":")
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection((host, int(port)), timeout=0.2).close()
                time.sleep(0.05)
            except OSError:
                return

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def leader_of(bootstrap, partition):
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    md = admin.list_topics(TOPIC, timeout=10)
    p = md.topics[TOPIC].partitions.get(partition)
    return p.leader if p is not None else -1


def wait_leader(bootstrap, partition, not_this=None, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            leader = leader_of(bootstrap, partition)
        except Exception:
            leader = -1
        if leader > 0 and leader != not_this:
            return leader
        time.sleep(0.3)
    raise RuntimeError(f"no leader for partition {partition}")


def read_all(bootstrap):
    """Every record of the topic: (partition, offset) -> value."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "cluster-reader",
                  "enable.auto.commit": False})
    c.assign([TopicPartition(TOPIC, p, 0) for p in range(PARTITIONS)])
    got, idle = {}, time.time()
    while time.time() - idle < 5:
        m = c.poll(0.2)
        if m is not None and not m.error():
            got[(m.partition(), m.offset())] = m.value().decode()
            idle = time.time()
    c.close()
    return got


def main():
    work = tempfile.mkdtemp(prefix="strata-cluster-")
    ids = [1, 2, 3]
    rpc = {i: free_port() for i in ids}
    peers = ",".join(f"{i}=127.0.0.1:{rpc[i]}" for i in ids)
    brokers = {i: Broker(i, os.path.join(work, f"b{i}"), f"127.0.0.1:{free_port()}", peers) for i in ids}
    bootstrap = ",".join(b.listen for b in brokers.values())
    failures = []

    def check(ok, what):
        print(("ok " if ok else "FAIL ") + what, flush=True)
        if not ok:
            failures.append(what)

    try:
        from confluent_kafka import Consumer, Producer, TopicPartition
        from confluent_kafka.admin import AdminClient, NewTopic

        deadline = time.time() + 60
        while True:
            # A fresh client each time (one that saw no controller yet waits for its next
            # metadata refresh), kept alive while its future is waited for.
            admin = AdminClient({"bootstrap.servers": bootstrap})
            fs = admin.create_topics([NewTopic(TOPIC, num_partitions=PARTITIONS, replication_factor=3)])
            try:
                fs[TOPIC].result(timeout=15)
                break
            except Exception as e:
                if "already exists" in str(e):
                    break
                if time.time() > deadline:
                    raise
                time.sleep(0.5)
        for p in range(PARTITIONS):
            wait_leader(bootstrap, p)

        # confluent-kafka, idempotent, through a kill -9 of partition 0's leader.
        acked = {}

        def report(err, msg):
            if err is None:
                acked[msg.value().decode()] = (msg.partition(), msg.offset())

        prod = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                         "linger.ms": 5, "message.timeout.ms": 120000})
        victim = leader_of(bootstrap, 0)
        for i in range(3000):
            prod.produce(TOPIC, value=f"ck-{i}", partition=i % PARTITIONS, on_delivery=report)
            if i == 1000:
                prod.flush(30)
                brokers[victim].kill9()
            if i == 2000:
                brokers[victim].start()
            prod.poll(0)
        left = prod.flush(120)
        check(left == 0 and len(acked) == 3000,
              f"confluent-kafka: 3000 sent through a leader kill, {len(acked)} acknowledged, {left} left")

        # kafka-python, acks=all with retries, through a kill -9 of partition 1's leader.
        from kafka import KafkaProducer

        kp = KafkaProducer(bootstrap_servers=bootstrap.split(","), acks="all", retries=20,
                           retry_backoff_ms=300, request_timeout_ms=10000, max_block_ms=60000)
        victim2 = leader_of(bootstrap, 1)
        kp_acked = {}
        futures = []
        for i in range(1000):
            if i == 300:
                kp.flush(60)
                brokers[victim2].kill9()
            if i == 700:
                brokers[victim2].start()
            futures.append((f"kp-{i}", kp.send(TOPIC, value=f"kp-{i}".encode(), partition=i % PARTITIONS)))
        kp.flush(120)
        errors = 0
        for v, f in futures:
            try:
                md = f.get(timeout=60)
                kp_acked[v] = (md.partition, md.offset)
            except Exception:
                errors += 1
        kp.close()
        check(errors == 0, f"kafka-python: 1000 sent through a leader kill, {len(kp_acked)} acknowledged")

        # kcat: produce and read back through the cluster.
        lines = "\n".join(f"kc-{i}" for i in range(500)) + "\n"
        subprocess.run(["kcat", "-b", bootstrap, "-P", "-t", TOPIC, "-X", "acks=all"],
                       input=lines.encode(), check=True, timeout=120)
        for p in range(PARTITIONS):
            wait_leader(bootstrap, p)

        got = read_all(bootstrap)
        values = {}
        for at, v in got.items():
            values.setdefault(v, []).append(at)
        exact = all(values.get(v) == [at] for v, at in acked.items())
        check(exact, "confluent-kafka: every acknowledged value once, at its acknowledged offset")
        check(all(at in values.get(v, []) for v, at in kp_acked.items()),
              "kafka-python: every acknowledged value at its acknowledged offset")
        dense = True
        for p in range(PARTITIONS):
            offs = sorted(o for (q, o) in got if q == p)
            dense &= offs == list(range(len(offs)))
        check(dense, "offsets dense in every partition")
        kc = subprocess.run(["kcat", "-b", bootstrap, "-C", "-t", TOPIC, "-o", "beginning", "-e", "-q"],
                            capture_output=True, timeout=120, check=True).stdout.decode().split()
        check(sum(1 for x in kc if x.startswith("kc-")) == 500 and len(kc) == len(got),
              f"kcat: read {len(kc)} records, as many as the others read ({len(got)})")

        # A consumer group through the kill of a broker: commits survive, a new member resumes.
        group = {"bootstrap.servers": bootstrap, "group.id": "cluster-group", "auto.offset.reset": "earliest",
                 "enable.auto.commit": False, "session.timeout.ms": 10000}
        c = Consumer(group)
        c.subscribe([TOPIC])
        seen, deadline = 0, time.time() + 60
        while seen < len(got) // 2 and time.time() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                seen += 1
        c.commit(asynchronous=False)
        committed = {tp.partition: tp.offset for tp in
                     c.committed([TopicPartition(TOPIC, p) for p in range(PARTITIONS)], timeout=30)}
        c.close()
        victim3 = leader_of(bootstrap, 2)
        brokers[victim3].kill9()
        c2 = Consumer(group)
        c2.subscribe([TOPIC])
        rest, deadline, first = 0, time.time() + 90, {}
        while seen + rest < len(got) and time.time() < deadline:
            m = c2.poll(0.5)
            if m is not None and not m.error():
                first.setdefault(m.partition(), m.offset())
                rest += 1
        c2.close()
        brokers[victim3].start()
        resumed = all(first.get(p, committed.get(p)) == committed.get(p) for p in range(PARTITIONS)
                      if committed.get(p, -1) >= 0)
        check(seen + rest == len(got) and resumed,
              f"consumer group: {seen} read, committed, broker {victim3} killed, {rest} more read from the commits")
    finally:
        for b in brokers.values():
            b.stop()
    print(f"cluster: {len(failures)} failed", flush=True)
    if failures:
        for b in brokers.values():
            try:
                with open(f"{b.data}.log", "rb") as f:
                    print(f"---- broker {b.node}\n" + f.read().decode(errors="replace")[-3000:])
            except OSError:
                pass
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
