"""The KIP-848 consumer group protocol (group.protocol=consumer) with confluent-kafka
(librdkafka >= 2.12) against a running Strata broker: the broker assigns the partitions.

- uniform (the default server assignor): two members of one group share a 6-partition topic
  (each gets a share, no overlap, together all six), together read every record and commit;
  one leaves and the other takes all six partitions, resuming the leaver's partitions from its
  commits (it reads only the records produced after them); a new member of the group then
  resumes from the commits too.
- range (group.remote.assignor=range): two members get contiguous halves [0,1,2] / [3,4,5].
- a regex subscription (^prefix-.*, resolved by the broker): two topics matching it are
  consumed, a non-matching one is not, and a matching topic created later joins.
- static members (group.instance.id): one closes (a temporary leave, epoch -2) and comes back
  as a new process with a new member id: it gets the same partitions, the other member's stay.
- The admin API lists the group with type CONSUMER and describes it (ConsumerGroupDescribe).
Usage: python groups_consumer_protocol.py HOST:PORT
"""

import sys
import threading
import time
import uuid

from confluent_kafka import Consumer, Producer, libversion
from confluent_kafka.admin import AdminClient, NewTopic

BOOTSTRAP = sys.argv[1]
PARTITIONS = 6
DEADLINE_S = 90


def fresh_topic(prefix):
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    for f in admin.create_topics([NewTopic(name, num_partitions=PARTITIONS, replication_factor=1)]).values():
        f.result(timeout=30)
    return name


def produce(topic, tag, n):
    p = Producer({"bootstrap.servers": BOOTSTRAP, "acks": "all"})
    for i in range(n):
        p.produce(topic, value=f"{tag}-{i}".encode(), partition=i % PARTITIONS)
        p.poll(0)
    assert p.flush(30) == 0
    return {f"{tag}-{i}".encode() for i in range(n)}


class Member(threading.Thread):
    """A consumer-protocol member polling in its own thread; records what it read (value ->
    partition) and its current assignment."""

    def __init__(self, group, topic, assignor=None, instance=None):
        """`topic` may be a regex subscription ("^...")."""
        super().__init__(daemon=True)
        conf = {
            "bootstrap.servers": BOOTSTRAP,
            "group.id": group,
            "group.protocol": "consumer",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
        if assignor:
            conf["group.remote.assignor"] = assignor
        if instance:
            conf["group.instance.id"] = instance
        self.consumer = Consumer(conf)
        self.topic = topic
        self.lock = threading.Lock()
        self.read = {}
        self.assigned = set()
        self.errors = []
        self.stop = threading.Event()
        self.commit_now = threading.Event()
        self.committed = threading.Event()
        self.closed = threading.Event()

    def run(self):
        self.consumer.subscribe([self.topic])
        while not self.stop.is_set():
            m = self.consumer.poll(0.2)
            with self.lock:
                self.assigned = {tp.partition for tp in self.consumer.assignment()}
            if m is not None:
                if m.error():
                    self.errors.append(str(m.error()))
                else:
                    with self.lock:
                        self.read[m.value()] = m.partition()
            if self.commit_now.is_set():
                self.commit_now.clear()
                try:
                    self.consumer.commit(asynchronous=False)
                except Exception as e:  # noqa: BLE001 - reported by the main thread
                    self.errors.append(f"commit: {e}")
                self.committed.set()
        self.consumer.close()
        self.closed.set()

    def snapshot(self):
        with self.lock:
            return dict(self.read), set(self.assigned)

    def commit(self):
        self.committed.clear()
        self.commit_now.set()
        assert self.committed.wait(30), "commit timed out"

    def leave(self):
        self.stop.set()
        assert self.closed.wait(30), "close timed out"


def wait_for(what, cond):
    deadline = time.time() + DEADLINE_S
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def split(a, b):
    """Both members hold a share, disjoint, covering every partition."""
    (_, pa), (_, pb) = a.snapshot(), b.snapshot()
    return pa and pb and not (pa & pb) and (pa | pb) == set(range(PARTITIONS))


def uniform_scenario():
    topic = fresh_topic("kip848")
    group = f"kip848-{uuid.uuid4().hex[:6]}"
    a, b = Member(group, topic), Member(group, topic)
    a.start()
    b.start()
    wait_for("two members sharing the partitions", lambda: split(a, b))
    (_, pa), (_, pb) = a.snapshot(), b.snapshot()
    assert abs(len(pa) - len(pb)) <= 1, f"uniform is not balanced: {pa} / {pb}"
    first = produce(topic, "first", 600)
    wait_for("all 600 records", lambda: len(a.snapshot()[0]) + len(b.snapshot()[0]) >= 600)
    ra, rb = a.snapshot()[0], b.snapshot()[0]
    assert set(ra) | set(rb) == first, "together they read every record"
    assert not (set(ra) & set(rb)), "no record read by both"
    assert ra and rb, "each member read records"
    assert {p for p in ra.values()} <= pa and {p for p in rb.values()} <= pb, "read only own partitions"
    print(f"ok consumer protocol (uniform): two members read 600 records, partitions {sorted(pa)} / {sorted(pb)}")
    a.commit()
    b.commit()
    a.leave()
    wait_for("the remaining member taking all partitions", lambda: b.snapshot()[1] == set(range(PARTITIONS)))
    before = set(b.snapshot()[0])
    second = produce(topic, "second", 60)
    wait_for("the 60 new records", lambda: second <= set(b.snapshot()[0]))
    time.sleep(1)
    again = set(b.snapshot()[0]) - before
    assert again == second, f"after the leave the survivor read {len(again - second)} records again"
    print("ok consumer protocol: after a leave the other member takes all 6 partitions, resuming from the commits")
    b.commit()
    check_admin(group, 1)
    b.leave()
    third = produce(topic, "third", 30)
    c = Member(group, topic)
    c.start()
    wait_for("the new member's 30 records", lambda: third <= set(c.snapshot()[0]))
    time.sleep(1)
    got = set(c.snapshot()[0])
    assert got == third, f"a new member read {len(got - third)} committed records again"
    print("ok consumer protocol: a new member resumes from the group's commits")
    c.leave()
    for m in (a, b, c):
        assert not m.errors, m.errors


def range_scenario():
    topic = fresh_topic("kip848-range")
    group = f"kip848-range-{uuid.uuid4().hex[:6]}"
    a, b = Member(group, topic, "range"), Member(group, topic, "range")
    a.start()
    b.start()
    wait_for("two range members sharing the partitions", lambda: split(a, b))
    halves = sorted([sorted(a.snapshot()[1]), sorted(b.snapshot()[1])])
    assert halves == [[0, 1, 2], [3, 4, 5]], f"range gave {halves}"
    print(f"ok consumer protocol (range): contiguous halves {halves}")
    a.leave()
    b.leave()


def check_admin(group, members):
    from confluent_kafka import ConsumerGroupType

    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    listed = admin.list_consumer_groups().result(timeout=30)
    found = [g for g in listed.valid if g.group_id == group]
    assert found, f"{group} not listed"
    assert found[0].type == ConsumerGroupType.CONSUMER, f"listed as {found[0].type}"
    d = admin.describe_consumer_groups([group])[group].result(timeout=30)
    assert len(d.members) == members, f"{group}: {len(d.members)} members, want {members}"
    assert d.type == ConsumerGroupType.CONSUMER, f"described as {d.type}"
    owned = {tp.partition for m in d.members for tp in m.assignment.topic_partitions}
    assert owned == set(range(PARTITIONS)), f"described assignment {owned}"
    print(f"ok consumer protocol admin: listed as {found[0].type}, state {found[0].state}, described with {members} member(s)")


def regex_scenario():
    prefix = f"kip848re{uuid.uuid4().hex[:4]}"
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    names = [f"{prefix}-a", f"{prefix}-b", f"other{prefix}"]
    for f in admin.create_topics([NewTopic(n, num_partitions=PARTITIONS, replication_factor=1) for n in names]).values():
        f.result(timeout=30)
    m = Member(f"{prefix}-g", f"^{prefix}-.*")
    m.start()
    wanted = produce(names[0], "a", 20) | produce(names[1], "b", 20)
    produce(names[2], "x", 20)
    wait_for("the records of both matching topics", lambda: wanted <= set(m.snapshot()[0]))
    for f in admin.create_topics([NewTopic(f"{prefix}-c", num_partitions=PARTITIONS, replication_factor=1)]).values():
        f.result(timeout=30)
    late = produce(f"{prefix}-c", "c", 20)
    wait_for("the records of a matching topic created later", lambda: late <= set(m.snapshot()[0]))
    time.sleep(1)
    got = set(m.snapshot()[0])
    assert got == wanted | late, f"read {len(got - wanted - late)} records of a topic not matching"
    print("ok consumer protocol (regex): matching topics consumed, a new one joins, others not")
    m.leave()
    assert not m.errors, m.errors


def static_scenario():
    topic = fresh_topic("kip848-static")
    group = f"kip848-static-{uuid.uuid4().hex[:6]}"
    a, b = Member(group, topic, instance="i-a"), Member(group, topic, instance="i-b")
    a.start()
    b.start()
    wait_for("two static members sharing the partitions", lambda: split(a, b))
    pa, pb = a.snapshot()[1], b.snapshot()[1]
    a.leave()
    # A temporary leave: the member stays in the group, holding its partitions.
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    d = admin.describe_consumer_groups([group])[group].result(timeout=30)
    instances = sorted(m.group_instance_id for m in d.members)
    assert instances == ["i-a", "i-b"], f"after a static member's close the group has {instances}"
    a2 = Member(group, topic, instance="i-a")
    a2.start()
    wait_for("the static member back on its partitions", lambda: a2.snapshot()[1] == pa)
    time.sleep(2)
    assert a2.snapshot()[1] == pa and b.snapshot()[1] == pb, "a static member's return moved partitions"
    print(f"ok consumer protocol (static): a member back under a new id keeps {sorted(pa)}, the other keeps {sorted(pb)}")
    a2.leave()
    b.leave()


if __name__ == "__main__":
    print(f"confluent-kafka with librdkafka {libversion()[0]}")
    uniform_scenario()
    range_scenario()
    regex_scenario()
    static_scenario()
