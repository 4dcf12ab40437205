"""quixstreams (a Python stream processor with its own RocksDB state) against Strata.

A stateful app keeps a running count per key. quixstreams backs the state with a changelog topic
it creates with cleanup.policy=compact; the broker (started by tests/compat/run.sh with 4 KiB
segments, min.cleanable.dirty.ratio=0.01 and a cleaner pass every 500 ms) compacts it. The app
is killed with SIGKILL once it has committed everything, its local state directory is deleted,
and a new instance restores the counts from the compacted changelog alone and continues: every
count it then emits is the count over all the records of its key.

Checks: the changelog topic is compact (DescribeConfigs), the cleaner removed records from it
(fewer records read than offsets, the latest of each key kept), the restored counts continue.

Usage: quixstreams_state.py BOOTSTRAP   (prints "ok quixstreams ..." lines; exit 1 on failure)
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

KEYS = 10
FIRST = 1000   # records before the kill
SECOND = 300   # records after the restart


def app(broker, group, source, sink, state_dir):
    """The quixstreams app: counts the records of each key in its state store."""
    from quixstreams import Application

    application = Application(
        broker_address=broker,
        consumer_group=group,
        auto_offset_reset="earliest",
        state_dir=state_dir,
        # A checkpoint (state flushed to the changelog, offsets committed) every few records:
        # many changelog records per key, so that the cleaner has something to remove.
        commit_every=5,
        commit_interval=0.2,
        # The killed instance stays a member of the group until its session times out.
        consumer_extra_config={"session.timeout.ms": 6000, "heartbeat.interval.ms": 500},
        loglevel="WARNING",
    )
    words = application.topic(source, key_deserializer="str", value_deserializer="json")
    counts = application.topic(sink, key_serializer="str", value_serializer="json")

    def count(value, state):
        n = state.get("count", 0) + 1
        state.set("count", n)
        return {"i": value["i"], "count": n}

    application.dataframe(words).apply(count, stateful=True).to_topic(counts)
    application.run()


def produce(broker, topic, start, end):
    p = Producer({"bootstrap.servers": broker, "linger.ms": 5})
    for i in range(start, end):
        p.produce(topic, key=f"k{i % KEYS}", value=json.dumps({"i": i}))
    assert p.flush(30) == 0, "produce did not finish"


def read_all(broker, topic, timeout=30):
    """Every record of partition 0 from the beginning to the high watermark: [(offset, key, value)]."""
    c = Consumer({"bootstrap.servers": broker, "group.id": f"reader-{uuid.uuid4().hex[:6]}",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    _, high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    c.assign([TopicPartition(topic, 0, 0)])
    out, deadline = [], time.time() + timeout
    while (not out or out[-1][0] < high - 1) and high > 0:
        assert time.time() < deadline, f"{topic}: read {len(out)} records, stopped below {high}"
        m = c.poll(0.5)
        if m is None or m.error():
            continue
        out.append((m.offset(), m.key(), m.value()))
    c.close()
    return out, high


def committed(broker, group, topic):
    c = Consumer({"bootstrap.servers": broker, "group.id": group, "enable.auto.commit": False})
    got = c.committed([TopicPartition(topic, 0)], timeout=10)[0].offset
    c.close()
    return got


def wait_for(what, cond, timeout):
    start = time.time()
    while not cond():
        assert time.time() < start + timeout, f"timed out waiting for {what}"
        time.sleep(0.3)
    print(f"# {what}: {time.time() - start:.1f} s")


def start_app(broker, group, source, sink, state_dir, log):
    return subprocess.Popen([sys.executable, __file__, "--app", broker, group, source, sink, state_dir],
                            stdout=log, stderr=subprocess.STDOUT)


def main(broker):
    suffix = uuid.uuid4().hex[:6]
    source, sink, group = f"quix-words-{suffix}", f"quix-counts-{suffix}", f"quix-counter-{suffix}"
    admin = AdminClient({"bootstrap.servers": broker})
    for f in admin.create_topics([NewTopic(t, 1, 1) for t in (source, sink)]).values():
        f.result(30)
    work = tempfile.mkdtemp(prefix="quix-")
    state_dir = os.path.join(work, "state")
    log = open(os.path.join(work, "app.log"), "w+")
    proc = None
    try:
        produce(broker, source, 0, FIRST)
        proc = start_app(broker, group, source, sink, state_dir, log)
        wait_for("the app to commit every input record",
                 lambda: proc.poll() is None and committed(broker, group, source) >= FIRST, 60)
        changelogs = [t for t in admin.list_topics(timeout=10).topics if t.startswith("changelog__")
                      and group in t]
        assert len(changelogs) == 1, f"changelog topics: {changelogs}"
        changelog = changelogs[0]
        res = ConfigResource(ConfigResource.Type.TOPIC, changelog)
        conf = list(admin.describe_configs([res]).values())[0].result(10)
        assert conf["cleanup.policy"].value == "compact", conf["cleanup.policy"].value
        print(f"ok quixstreams changelog {changelog} has cleanup.policy=compact")

        # Killed without a chance to flush or close anything.
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc = None
        shutil.rmtree(state_dir)

        # The broker's cleaner compacts the changelog: the latest record of each key stays.
        def cleaned():
            recs, high = read_all(broker, changelog)
            return len(recs) < high // 2 and len({k for _, k, _ in recs}) == KEYS
        wait_for("the cleaner to compact the changelog", cleaned, 40)
        recs, high = read_all(broker, changelog)
        print(f"ok quixstreams changelog compacted: {len(recs)} records left of {high} offsets")
        # kafka-python (its own protocol code) reads the same compacted log across its gaps.
        from kafka import KafkaConsumer
        from kafka import TopicPartition as KafkaTopicPartition

        kc = KafkaConsumer(bootstrap_servers=broker, enable_auto_commit=False, consumer_timeout_ms=5000)
        ktp = KafkaTopicPartition(changelog, 0)
        kc.assign([ktp])
        kc.seek_to_beginning(ktp)
        by_kafka_python = [(m.offset, m.key, m.value) for m in kc if m.offset < high]
        kc.close()
        assert by_kafka_python == recs, f"kafka-python read {len(by_kafka_python)} records, librdkafka {len(recs)}"
        print(f"ok kafka-python reads the compacted changelog as librdkafka does ({len(recs)} records, gaps included)")

        proc = start_app(broker, group, source, sink, state_dir, log)
        produce(broker, source, FIRST, FIRST + SECOND)
        wait_for("the restarted app to commit the new records",
                 lambda: proc.poll() is None and committed(broker, group, source) >= FIRST + SECOND, 60)
        out, _ = read_all(broker, sink)
        latest = {}
        for _, key, value in out:
            v = json.loads(value)
            # Every count emitted after the restart is the count over all records of the key so far.
            if v["i"] >= FIRST:
                assert v["count"] == v["i"] // KEYS + 1, f"{key}: {v} (state not restored)"
            latest[key.decode()] = v["count"]
        want = {f"k{k}": (FIRST + SECOND) // KEYS for k in range(KEYS)}
        assert latest == want, f"final counts {latest}, want {want}"
        print(f"ok quixstreams restored its state from the compacted changelog: "
              f"{(FIRST + SECOND) // KEYS} per key after the restart")
    except BaseException:
        log.seek(0)
        sys.stderr.write(log.read()[-3000:])
        raise
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1] == "--app":
        app(*sys.argv[2:7])
    else:
        main(sys.argv[1])
