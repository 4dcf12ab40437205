"""A Spark Structured Streaming source for Strata, in Python.

Strata speaks the Kafka protocol, so on a Spark cluster the built-in Kafka source is the way:
``spark.readStream.format("kafka").option("kafka.bootstrap.servers", ...)``. Where Spark's Kafka
connector jar cannot be fetched (as on Strata's CI machines), this Python data source reads
Strata through confluent-kafka with the same options and the same columns:

    spark.dataSource.register(StrataSource)
    df = (spark.readStream.format("strata")
          .option("kafka.bootstrap.servers", "127.0.0.1:9092")
          .option("subscribe", "attendance")
          .option("startingOffsets", "earliest")     # or "latest" (default)
          .option("maxOffsetsPerTrigger", "10000")   # optional
          .load())

Offsets are Kafka offsets per partition (``{"0": 1200, "1": 980}``), kept in Spark's
checkpoint: each micro-batch reads exactly the records between its start and end offsets, so a
query restarted from its checkpoint continues without gaps or duplicates.
"""

import datetime
import uuid

from pyspark.sql.datasource import DataSource, DataSourceStreamReader, InputPartition
from pyspark.sql.streaming.datasource import ReadAllAvailable, ReadMaxRows

SCHEMA = "key binary, value binary, topic string, partition int, offset long, timestamp timestamp"
TIMEOUT_S = 30


class StrataSource(DataSource):
    @classmethod
    def name(cls):
        return "strata"

    def schema(self):
        return SCHEMA

    def streamReader(self, schema):
        return StrataStreamReader(self.options)


class OffsetRange(InputPartition):
    """Records [start, end) of one partition: one Spark task."""

    def __init__(self, bootstrap, topic, partition, start, end):
        self.bootstrap, self.topic, self.partition, self.start, self.end = bootstrap, topic, partition, start, end


def _consumer(bootstrap):
    from confluent_kafka import Consumer

    return Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"spark-strata-{uuid.uuid4().hex}",  # never commits: Spark keeps offsets
        "enable.auto.commit": False,
        "enable.partition.eof": False,
    })


class StrataStreamReader(DataSourceStreamReader):
    def __init__(self, options):
        self.bootstrap = options["kafka.bootstrap.servers"]
        self.topic = options["subscribe"]
        self.starting = options.get("startingOffsets", "latest")
        limit = options.get("maxOffsetsPerTrigger")
        self.max_per_trigger = int(limit) if limit else None

    def _watermarks(self):
        from confluent_kafka import TopicPartition

        c = _consumer(self.bootstrap)
        try:
            md = c.list_topics(self.topic, timeout=TIMEOUT_S).topics[self.topic]
            if md.error is not None:
                raise RuntimeError(f"{self.topic}: {md.error}")
            return {p: c.get_watermark_offsets(TopicPartition(self.topic, p), timeout=TIMEOUT_S)
                    for p in sorted(md.partitions)}
        finally:
            c.close()

    def initialOffset(self):
        marks = self._watermarks()
        pick = 0 if self.starting == "earliest" else 1
        return {str(p): marks[p][pick] for p in marks}

    def getDefaultReadLimit(self):
        return ReadMaxRows(self.max_per_trigger) if self.max_per_trigger else ReadAllAvailable()

    def latestOffset(self, start=None, limit=None):
        highs = {str(p): hw for p, (_, hw) in self._watermarks().items()}
        start = {p: start.get(p, 0) for p in highs} if start else {p: 0 for p in highs}
        if not isinstance(limit, ReadMaxRows):
            return highs
        # Share the limit among partitions in proportion to what each has to read (as Spark's
        # Kafka source does), always making progress when something is there.
        lag = {p: max(0, highs[p] - start[p]) for p in highs}
        total = sum(lag.values())
        if total <= limit.max_rows:
            return highs
        take = {p: lag[p] * limit.max_rows // total for p in lag}
        left = limit.max_rows - sum(take.values())
        for p in sorted(lag, key=lambda p: -lag[p]):
            if left == 0:
                break
            if take[p] < lag[p]:
                take[p] += 1
                left -= 1
        return {p: start[p] + take[p] for p in highs}

    def partitions(self, start, end):
        return [OffsetRange(self.bootstrap, self.topic, int(p), start.get(p, 0), end[p])
                for p in sorted(end, key=int) if end[p] > start.get(p, 0)]

    def read(self, partition):
        from confluent_kafka import TopicPartition

        c = _consumer(partition.bootstrap)
        try:
            c.assign([TopicPartition(partition.topic, partition.partition, partition.start)])
            position = partition.start
            idle_polls = 0
            while position < partition.end:
                m = c.poll(1.0)
                if m is None:
                    idle_polls += 1
                    if idle_polls > TIMEOUT_S:
                        raise RuntimeError(f"{partition.topic}/{partition.partition}: no records at {position}")
                    continue
                if m.error():
                    raise RuntimeError(str(m.error()))
                idle_polls = 0
                if m.offset() >= partition.end:
                    break
                position = m.offset() + 1
                ts = datetime.datetime.fromtimestamp(m.timestamp()[1] / 1000, tz=datetime.timezone.utc)
                yield (m.key(), m.value(), m.topic(), m.partition(), m.offset(), ts)
        finally:
            c.close()

    def commit(self, end):
        pass  # offsets live in Spark's checkpoint; nothing to release on the broker
