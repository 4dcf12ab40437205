"""Third-party Kafka clients against a running Strata broker.

Each client (confluent-kafka / librdkafka, kafka-python, aiokafka) produces records as an
idempotent producer with every compression codec to a topic created through the admin API and reads them back from the
beginning; the records must come back complete, in order and byte-identical. Exits non-zero on
the first mismatch. Usage: python clients.py HOST:PORT
"""

import asyncio
import sys
import time
import uuid

BOOTSTRAP = sys.argv[1]
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
N = 500
results = []


def expected(client, codec):
    return [(f"k{i % 7}".encode(), f"{client}-{codec}-{i}-".encode() + b"x" * (i % 300)) for i in range(N)]


def check(client, codec, got):
    want = expected(client, codec)
    assert len(got) == len(want), f"{client}/{codec}: got {len(got)} records, want {len(want)}"
    for i, (g, w) in enumerate(zip(got, want)):
        assert g == w, f"{client}/{codec}: record {i} differs: {g[:60]} != {w[:60]}"
    results.append(f"{client}/{codec}")
    print(f"ok {client} {codec} {len(got)} records")


def create_topic(name, partitions=1):
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    fs = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    for f in fs.values():
        f.result(timeout=30)


def confluent(codec):
    from confluent_kafka import Consumer, Producer, TopicPartition

    topic = f"confluent-{codec}-{uuid.uuid4().hex[:6]}"
    create_topic(topic)
    p = Producer({"bootstrap.servers": BOOTSTRAP, "compression.type": codec, "linger.ms": 5, "acks": "all", "enable.idempotence": True})
    errors = []
    for k, v in expected("confluent", codec):
        p.produce(topic, value=v, key=k, partition=0, on_delivery=lambda e, m: e and errors.append(e))
        p.poll(0)
    assert p.flush(30) == 0 and not errors, errors
    c = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": "unused", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    got, deadline = [], time.time() + 60
    while len(got) < N and time.time() < deadline:
        m = c.poll(1.0)
        if m is not None and not m.error():
            got.append((m.key(), m.value()))
    c.commit(asynchronous=False)
    committed = c.committed([TopicPartition(topic, 0)], timeout=10)
    assert committed[0].offset == N, f"committed offset {committed[0].offset}, want {N}"
    c.close()
    check("confluent", codec, got)


def kafka_python(codec):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    topic = f"kafkapython-{codec}-{uuid.uuid4().hex[:6]}"
    create_topic(topic)
    # kafka-python 3 turns idempotence on by default (InitProducerId, sequence numbers).
    p = KafkaProducer(bootstrap_servers=BOOTSTRAP, compression_type=None if codec == "none" else codec, acks="all", linger_ms=5)
    futures = [p.send(topic, key=k, value=v, partition=0) for k, v in expected("kafkapython", codec)]
    for f in futures:
        f.get(timeout=30)
    p.close()
    c = KafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False, consumer_timeout_ms=10000)
    tp = TopicPartition(topic, 0)
    c.assign([tp])
    c.seek_to_beginning(tp)
    got = []
    for m in c:
        got.append((m.key, m.value))
        if len(got) == N:
            break
    c.close()
    check("kafkapython", codec, got)


async def aiokafka_run(codec):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    topic = f"aiokafka-{codec}-{uuid.uuid4().hex[:6]}"
    create_topic(topic)
    p = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, compression_type=None if codec == "none" else codec, acks="all", linger_ms=5, enable_idempotence=True)
    await p.start()
    try:
        futs = [await p.send(topic, key=k, value=v, partition=0) for k, v in expected("aiokafka", codec)]
        for f in futs:
            await f
    finally:
        await p.stop()
    c = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False)
    await c.start()
    try:
        tp = TopicPartition(topic, 0)
        c.assign([tp])
        await c.seek_to_beginning(tp)
        got = []
        deadline = time.time() + 60
        while len(got) < N and time.time() < deadline:
            batch = await c.getmany(tp, timeout_ms=1000)
            for m in batch.get(tp, []):
                got.append((m.key, m.value))
    finally:
        await c.stop()
    check("aiokafka", codec, got)


def main():
    for codec in CODECS:
        confluent(codec)
        kafka_python(codec)
        asyncio.run(aiokafka_run(codec))
    print(f"{len(results)} passed, 0 failed")


if __name__ == "__main__":
    main()
