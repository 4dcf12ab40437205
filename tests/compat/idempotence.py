"""Idempotent producers of third-party clients against a broker that drops the connection instead
of answering every 7th Produce request after applying it (`--fault-drop-produce-response-every`).
Each client must retry, and the log must hold every record exactly once, in order.
Usage: python idempotence.py HOST:PORT
"""

import asyncio
import sys
import time
import uuid

BOOTSTRAP = sys.argv[1]
N = 2000
passed = []


def fresh_topic(prefix):
    from confluent_kafka.admin import AdminClient, NewTopic

    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    for f in admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)]).values():
        f.result(timeout=30)
    return name


def read_all(topic):
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": "reader", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    got, idle = [], time.time()
    while time.time() - idle < 3:
        m = c.poll(0.2)
        if m is not None and not m.error():
            got.append(m.value())
            idle = time.time()
    c.close()
    return got


def verify(name, topic):
    got = read_all(topic)
    want = [f"{name}-{i}".encode() for i in range(N)]
    dups = len(got) - len(set(got))
    assert got == want, f"{name}: {len(got)} records ({dups} duplicates), want {N} exactly once in order"
    print(f"ok {name}: {N} records exactly once through dropped responses")
    passed.append(name)


def confluent():
    from confluent_kafka import Producer

    topic = fresh_topic("idem-confluent")
    p = Producer({"bootstrap.servers": BOOTSTRAP, "enable.idempotence": True, "linger.ms": 2,
                  "batch.num.messages": 50})
    errors = []
    for i in range(N):
        p.produce(topic, value=f"confluent-{i}".encode(), partition=0, on_delivery=lambda e, m: e and errors.append(e))
        p.poll(0)
    assert p.flush(60) == 0 and not errors, errors[:3]
    verify("confluent", topic)


def kafka_python():
    from kafka import KafkaProducer

    topic = fresh_topic("idem-kafkapython")
    p = KafkaProducer(bootstrap_servers=BOOTSTRAP, enable_idempotence=True, acks="all", linger_ms=2,
                      batch_size=2048, retries=100)
    futures = [p.send(topic, value=f"kafkapython-{i}".encode(), partition=0) for i in range(N)]
    for f in futures:
        f.get(timeout=60)
    p.close()
    verify("kafkapython", topic)


async def aiokafka_run():
    from aiokafka import AIOKafkaProducer

    topic = fresh_topic("idem-aiokafka")
    p = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, enable_idempotence=True, acks="all", linger_ms=2,
                         max_batch_size=2048)
    await p.start()
    try:
        futs = [await p.send(topic, value=f"aiokafka-{i}".encode(), partition=0) for i in range(N)]
        for f in futs:
            await f
    finally:
        await p.stop()
    verify("aiokafka", topic)


def main():
    confluent()
    kafka_python()
    asyncio.run(aiokafka_run())
    print(f"idempotence: {len(passed)} passed, 0 failed")


if __name__ == "__main__":
    main()
