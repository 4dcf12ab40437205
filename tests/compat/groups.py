"""Consumer groups with third-party clients against a running Strata broker.

For each client (confluent-kafka with the range and the cooperative-sticky assignors,
kafka-python, aiokafka): two members of one group consume a 6-partition topic together; each
must get a share, their partitions must not overlap, and together they must read every record.
They commit and leave; a new member of the group then sees only records produced after the
commits. A static member (group.instance.id) restarting keeps its partitions without a rebalance. The admin API must list and describe the group, and delete it once it is empty.
Usage: python groups.py HOST:PORT
"""

import asyncio
import sys
import threading
import time
import uuid

BOOTSTRAP = sys.argv[1]
PARTITIONS = 6
N = 600
passed = []


def fresh_topic(prefix):
    from confluent_kafka.admin import AdminClient, NewTopic

    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    for f in admin.create_topics([NewTopic(name, num_partitions=PARTITIONS, replication_factor=1)]).values():
        f.result(timeout=30)
    return name


def produce(topic, n, tag):
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": BOOTSTRAP, "acks": "all", "enable.idempotence": True})
    for i in range(n):
        p.produce(topic, value=f"{tag}-{i}".encode(), partition=i % PARTITIONS)
        p.poll(0)
    assert p.flush(30) == 0


class Shared:
    """What the members of one run saw: value -> member, and per member the partitions."""

    def __init__(self):
        self.lock = threading.Lock()
        self.values = {}
        self.partitions = {0: set(), 1: set()}

    def add(self, member, partition, value):
        with self.lock:
            self.values.setdefault(value, member)
            self.partitions[member].add(partition)

    def done(self, n):
        with self.lock:
            return len(self.values) >= n


def verify(name, shared, n, tag):
    want = {f"{tag}-{i}".encode() for i in range(n)}
    assert set(shared.values) == want, f"{name}: read {len(shared.values)} of {n} distinct records"
    a, b = shared.partitions[0], shared.partitions[1]
    assert a and b, f"{name}: a member got no share ({a} / {b})"
    print(f"ok {name}: two members read {n} records, partitions {sorted(a)} / {sorted(b)}")


def check_admin(group, members_expected):
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    listed = admin.list_consumer_groups().result(timeout=30)
    assert group in [g.group_id for g in listed.valid], f"{group} not listed"
    d = admin.describe_consumer_groups([group])[group].result(timeout=30)
    assert len(d.members) == members_expected, f"{group}: {len(d.members)} members, want {members_expected}"
    return admin


def delete_group(group):
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    admin.delete_consumer_groups([group])[group].result(timeout=30)
    listed = admin.list_consumer_groups().result(timeout=30)
    assert group not in [g.group_id for g in listed.valid], f"{group} still listed after delete"


def resume_sees_only_new(make_member_and_read, topic, tag):
    produce(topic, PARTITIONS, tag + "-late")
    got = make_member_and_read()
    want = {f"{tag}-late-{i}".encode() for i in range(PARTITIONS)}
    assert set(got) == want and len(got) == PARTITIONS, f"resumed member read {sorted(got)[:8]}..., want only the {PARTITIONS} new records"


# --- confluent-kafka ----------------------------------------------------------------------


def confluent(strategy):
    from confluent_kafka import Consumer

    name = f"confluent/{strategy}"
    topic = fresh_topic(f"g-confluent-{strategy}")
    group = f"grp-{uuid.uuid4().hex[:6]}"
    produce(topic, N, "r")
    shared = Shared()
    conf = {
        "bootstrap.servers": BOOTSTRAP,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "partition.assignment.strategy": strategy,
        "session.timeout.ms": 10000,
    }
    consumers = [Consumer(conf), Consumer(conf)]
    for c in consumers:
        c.subscribe([topic])

    def run(i):
        c = consumers[i]
        deadline = time.time() + 60
        while not shared.done(N) and time.time() < deadline:
            m = c.poll(0.2)
            if m is not None and not m.error():
                shared.add(i, m.partition(), m.value())
        c.commit(asynchronous=False) if c.assignment() else None

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    check_admin(group, 2)
    for c in consumers:
        c.close()
    verify(name, shared, N, "r")

    def read_new():
        c = Consumer(conf)
        c.subscribe([topic])
        got, deadline = [], time.time() + 30
        while len(got) < PARTITIONS and time.time() < deadline:
            m = c.poll(0.2)
            if m is not None and not m.error():
                got.append(m.value())
        end = time.time() + 1
        while time.time() < end:
            m = c.poll(0.2)
            if m is not None and not m.error():
                got.append(m.value())
        c.close()
        return got

    resume_sees_only_new(read_new, topic, "r")
    delete_group(group)
    passed.append(name)


def confluent_static():
    """Static members (group.instance.id): one restarts within its session timeout and gets
    its partitions back without the other being moved (no rebalance)."""
    from confluent_kafka import Consumer
    from confluent_kafka.admin import AdminClient

    topic = fresh_topic("g-static")
    group = f"grp-{uuid.uuid4().hex[:6]}"
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})

    def member(instance):
        c = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": group, "group.instance.id": instance,
                      "session.timeout.ms": 10000, "auto.offset.reset": "earliest"})
        c.subscribe([topic])
        return c

    def settle(cs, seconds):
        end = time.time() + seconds
        while time.time() < end:
            for c in cs:
                c.poll(0.1)

    def ids():
        d = admin.describe_consumer_groups([group])[group].result(timeout=30)
        return {m.group_instance_id: m.member_id for m in d.members}

    cs = [member("a"), member("b")]
    settle(cs, 6)
    before = [sorted(p.partition for p in c.assignment()) for c in cs]
    first = ids()
    assert sorted(before[0] + before[1]) == list(range(PARTITIONS)), before
    cs[1].close()  # a static member does not leave the group on close
    cs[1] = member("b")
    settle(cs, 4)
    after = [sorted(p.partition for p in c.assignment()) for c in cs]
    second = ids()
    assert after == before, f"static restart moved partitions: {before} -> {after}"
    assert second["a"] == first["a"] and second["b"] != first["b"], (first, second)
    for c in cs:
        c.close()
    print(f"ok confluent/static: restarted member kept {after[1]}, the other untouched")
    passed.append("confluent/static")


# --- kafka-python -------------------------------------------------------------------------


def kafka_python():
    from kafka import KafkaConsumer

    name = "kafka-python"
    topic = fresh_topic("g-kafkapython")
    group = f"grp-{uuid.uuid4().hex[:6]}"
    produce(topic, N, "r")
    shared = Shared()

    def member():
        return KafkaConsumer(topic, bootstrap_servers=BOOTSTRAP, group_id=group, auto_offset_reset="earliest",
                             enable_auto_commit=False, session_timeout_ms=10000)

    consumers = [member(), member()]

    def run(i):
        c = consumers[i]
        deadline = time.time() + 60
        while not shared.done(N) and time.time() < deadline:
            for tp, msgs in c.poll(timeout_ms=200).items():
                for m in msgs:
                    shared.add(i, tp.partition, m.value)
        if c.assignment():
            c.commit()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    check_admin(group, 2)
    for c in consumers:
        c.close()
    verify(name, shared, N, "r")

    def read_new():
        c = member()
        got, deadline = [], time.time() + 30
        while time.time() < deadline and len(got) < PARTITIONS:
            for msgs in c.poll(timeout_ms=200).values():
                got.extend(m.value for m in msgs)
        for msgs in c.poll(timeout_ms=1000).values():
            got.extend(m.value for m in msgs)
        c.close()
        return got

    resume_sees_only_new(read_new, topic, "r")
    delete_group(group)
    passed.append(name)


def kafka_python_admin():
    """kafka-python's admin client (its own codecs): list, describe, offsets, delete offsets,
    alter offsets, delete the group."""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.admin import KafkaAdminClient
    from kafka.structs import OffsetAndMetadata

    topic = fresh_topic("g-kpadmin")
    group = f"grp-{uuid.uuid4().hex[:6]}"
    produce(topic, 60, "r")
    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    c = KafkaConsumer(topic, bootstrap_servers=BOOTSTRAP, group_id=group, auto_offset_reset="earliest",
                      enable_auto_commit=False, session_timeout_ms=10000)
    n, deadline = 0, time.time() + 30
    while n < 60 and time.time() < deadline:
        n += sum(len(m) for m in c.poll(timeout_ms=200).values())
    c.commit()
    assert group in [g["group_id"] for g in admin.list_groups()], "not listed"
    d = admin.describe_groups([group])[group]
    assert d["group_state"] == "Stable" and len(d["members"]) == 1, d
    offsets = admin.list_group_offsets(group)[group]
    assert sum(o.offset for o in offsets.values()) == 60, offsets
    c.close()
    tp0 = TopicPartition(topic, 0)
    admin.delete_group_offsets(group, [tp0])
    assert tp0 not in admin.list_group_offsets(group)[group], "offset not deleted"
    admin.alter_group_offsets(group, {tp0: OffsetAndMetadata(3, "", -1)})
    assert admin.list_group_offsets(group)[group][tp0].offset == 3, "offset not altered"
    admin.delete_groups([group])
    assert group not in [g["group_id"] for g in admin.list_groups()], "still listed after delete"
    admin.close()
    print("ok kafka-python admin: list, describe, offsets, delete/alter offsets, delete group")
    passed.append("kafka-python admin")


# --- aiokafka -----------------------------------------------------------------------------


async def aiokafka_run():
    from aiokafka import AIOKafkaConsumer

    name = "aiokafka"
    topic = fresh_topic("g-aiokafka")
    group = f"grp-{uuid.uuid4().hex[:6]}"
    produce(topic, N, "r")
    shared = Shared()

    def member():
        return AIOKafkaConsumer(topic, bootstrap_servers=BOOTSTRAP, group_id=group, auto_offset_reset="earliest",
                                enable_auto_commit=False, session_timeout_ms=10000)

    consumers = [member(), member()]
    await asyncio.gather(*(c.start() for c in consumers))

    async def run(i):
        c = consumers[i]
        deadline = time.time() + 60
        while not shared.done(N) and time.time() < deadline:
            for tp, msgs in (await c.getmany(timeout_ms=200)).items():
                for m in msgs:
                    shared.add(i, tp.partition, m.value)
        if c.assignment():
            await c.commit()

    await asyncio.gather(run(0), run(1))
    check_admin(group, 2)
    await asyncio.gather(*(c.stop() for c in consumers))
    verify(name, shared, N, "r")

    produce(topic, PARTITIONS, "r-late")
    c = member()
    await c.start()
    got, deadline = [], time.time() + 30
    while time.time() < deadline and len(got) < PARTITIONS:
        for msgs in (await c.getmany(timeout_ms=200)).values():
            got.extend(m.value for m in msgs)
    for msgs in (await c.getmany(timeout_ms=1000)).values():
        got.extend(m.value for m in msgs)
    await c.stop()
    want = {f"r-late-{i}".encode() for i in range(PARTITIONS)}
    assert set(got) == want and len(got) == PARTITIONS, f"aiokafka resumed member read {len(got)} records"
    delete_group(group)
    passed.append(name)


def main():
    confluent("range")
    confluent("cooperative-sticky")
    confluent_static()
    kafka_python()
    kafka_python_admin()
    asyncio.run(aiokafka_run())
    print(f"groups: {len(passed)} passed, 0 failed")


if __name__ == "__main__":
    main()
