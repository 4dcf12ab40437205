"""The attendance query in Spark Structured Streaming and in `strata stream`, on the same Strata
topic, both checked against the ground truth printed by `strata demo attendance`.

Spark reads with its own Kafka source (`format("kafka")`, spark-sql-kafka-0-10, whose jars
tests/compat/spark/connector/pom.xml resolves with Maven) when --kafka-jars DIR is given, else
with the Python streaming source strata_source.py (`format("strata")`).

1. The demo produces a first half; Spark runs (running total; attendees per venue per 1-minute
   window; and a raw copy of every (partition, offset) read) with a checkpoint, then stops.
2. The demo produces a second half; the Spark queries restart from their checkpoints. Every
   offset must have been read exactly once over both runs, and the aggregates must equal the
   ground truth of both halves.
3. `strata stream` computes the same two queries; its results must equal the ground truth too.

Usage: python attendance.py HOST:PORT path/to/strata [--kafka-jars DIR]
"""

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid

BOOTSTRAP, STRATA = sys.argv[1], sys.argv[2]
KAFKA_JARS = sys.argv[sys.argv.index("--kafka-jars") + 1] if "--kafka-jars" in sys.argv else None
SOURCE = "kafka" if KAFKA_JARS else "strata"
HERE = os.path.dirname(os.path.abspath(__file__))
TOPIC = f"spark-attendance-{SOURCE}-{uuid.uuid4().hex[:6]}"
PARTITIONS = 3
HALF = 20_000


def strata(*args, **kw):
    return subprocess.run([STRATA, *args], env={**os.environ, "STRATA_BROKERS": BOOTSTRAP, "RUST_LOG": "warn"},
                          check=True, capture_output=True, text=True, **kw)


def demo(seed, start):
    out = strata("demo", "attendance", "--topic", TOPIC, "--rate", "0", "--count", str(HALF),
                 "--seed", str(seed), "--start-time", str(start), "--venues", "5")
    return json.loads(out.stdout)


def merge_truth(a, b):
    per_minute = {}
    for t in (a, b):
        for venue, minutes in t["per_venue_minute"].items():
            for minute, n in minutes.items():
                key = (venue, int(minute))
                per_minute[key] = per_minute.get(key, 0) + n
    return {"records": a["records"] + b["records"], "total": a["total_attendees"] + b["total_attendees"],
            "per_minute": per_minute}


def spark_session():
    os.environ["PYTHONPATH"] = HERE + os.pathsep + os.environ.get("PYTHONPATH", "")
    os.environ["PYSPARK_PYTHON"] = sys.executable
    sys.path.insert(0, HERE)
    from pyspark.sql import SparkSession
    from strata_source import StrataSource

    builder = (SparkSession.builder.master("local[2]").appName("strata-attendance")
               .config("spark.sql.shuffle.partitions", "2")
               .config("spark.ui.enabled", "false"))
    if KAFKA_JARS:
        jars = sorted(os.path.join(KAFKA_JARS, j) for j in os.listdir(KAFKA_JARS) if j.endswith(".jar"))
        assert any("spark-sql-kafka" in j for j in jars), f"no spark-sql-kafka jar in {KAFKA_JARS}"
        builder = builder.config("spark.jars", ",".join(jars))
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    if not KAFKA_JARS:
        spark.dataSource.register(StrataSource)
    return spark


def run_spark(spark, checkpoints, seen):
    """Runs the three queries over everything available, from their checkpoints."""
    from pyspark.sql import functions as F

    source = (spark.readStream.format(SOURCE)
              .option("kafka.bootstrap.servers", BOOTSTRAP)
              .option("subscribe", TOPIC)
              .option("startingOffsets", "earliest")
              .option("maxOffsetsPerTrigger", "7000")
              .load())
    events = (source.select(F.from_json(F.col("value").cast("string"),
                                        "event_time long, venue string, gate int, attendees long").alias("e"))
              .select("e.*"))
    total = events.agg(F.sum("attendees").alias("total"), F.count(F.lit(1)).alias("records"))
    per_minute = (events.withColumn("ts", F.timestamp_millis("event_time"))
                  .groupBy("venue", F.window("ts", "1 minute"))
                  .agg(F.sum("attendees").alias("attendees")))

    def keep_offsets(batch, batch_id):
        rows = batch.select("partition", "offset").collect()
        seen[batch_id] = [(r["partition"], r["offset"]) for r in rows]

    queries = [
        total.writeStream.outputMode("complete").format("memory").queryName("totals")
        .option("checkpointLocation", os.path.join(checkpoints, "totals")).start(),
        per_minute.writeStream.outputMode("complete").format("memory").queryName("per_minute")
        .option("checkpointLocation", os.path.join(checkpoints, "per_minute")).start(),
        source.writeStream.foreachBatch(keep_offsets)
        .option("checkpointLocation", os.path.join(checkpoints, "raw")).start(),
    ]
    for q in queries:
        q.processAllAvailable()
    row = spark.sql("select total, records from totals").collect()[0]
    minutes = {(r["venue"], int(r["window"]["start"].timestamp() * 1000)): r["attendees"]
               for r in spark.sql("select venue, window, attendees from per_minute").collect()}
    for q in queries:
        q.stop()
    return {"total": row["total"], "records": row["records"], "per_minute": minutes}


def results_topic(name):
    """Latest upsert per key of a `strata stream` output topic."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": "results", "enable.auto.commit": False})
    _, end = c.get_watermark_offsets(TopicPartition(name, 0), timeout=30)
    c.assign([TopicPartition(name, 0, 0)])
    latest, position, deadline = {}, 0, time.time() + 60
    while position < end and time.time() < deadline:
        m = c.poll(1.0)
        if m is None or m.error():
            continue
        position = m.offset() + 1
        if m.value() is None:
            latest.pop(m.key(), None)
        else:
            latest[m.key()] = json.loads(m.value())
    c.close()
    return latest


def run_strata_stream(name, *query):
    strata("stream", "--name", name, "--topic", TOPIC, "--exit-when-idle", "3s",
           "--event-time", "json:event_time", "--value", "json:attendees", *query, timeout=300)
    return results_topic(f"{name}-results").values()


def main():
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    for f in admin.create_topics([NewTopic(TOPIC, num_partitions=PARTITIONS, replication_factor=1)]).values():
        f.result(timeout=30)
    t0 = 1_700_000_000_000
    first = demo(7, t0)
    spark = spark_session()
    checkpoints = tempfile.mkdtemp(prefix="spark-ckpt-")
    seen = {}
    half = run_spark(spark, checkpoints, seen)
    assert half["records"] == HALF and half["total"] == first["total_attendees"], half
    batches_before = len(seen)
    second = demo(8, t0 + HALF * 10)
    truth = merge_truth(first, second)
    spark.stop()
    spark = spark_session()
    full = run_spark(spark, checkpoints, seen)
    spark_version = spark.version
    spark.stop()

    offsets = [o for batch in seen.values() for o in batch]
    assert len(offsets) == len(set(offsets)) == 2 * HALF, \
        f"{len(offsets)} offsets read ({len(set(offsets))} distinct), want {2 * HALF} once each"
    for p in range(PARTITIONS):
        mine = sorted(o for q, o in offsets if q == p)
        assert mine == list(range(len(mine))), f"partition {p} has gaps"
    assert len(seen) > batches_before + 1, "maxOffsetsPerTrigger should split the second half"
    assert full["records"] == truth["records"], (full["records"], truth["records"])
    assert full["total"] == truth["total"], (full["total"], truth["total"])
    assert full["per_minute"] == truth["per_minute"], "Spark per venue per minute differs from the ground truth"
    print(f"ok spark {spark_version} format({SOURCE!r}): {truth['records']} records over {len(seen)} micro-batches and a restart, "
          f"total {full['total']}, {len(full['per_minute'])} venue-minutes, each offset read once")

    totals = list(run_strata_stream("spark-cmp-total", "--agg", "sum,count"))
    assert sum(v["count"] for v in totals) == truth["records"]
    assert sum(v["sum"] for v in totals) == truth["total"], totals
    minutes = {}
    for v in run_strata_stream("spark-cmp-minutes", "--key", "json:venue", "--agg", "sum",
                               "--window", "tumbling:1m", "--allowed-lateness", "5s"):
        key = (v["key"], v["window_start"])
        minutes[key] = minutes.get(key, 0) + int(v["sum"])
    assert minutes == truth["per_minute"], "strata stream per venue per minute differs from the ground truth"
    assert minutes == full["per_minute"], "strata stream and Spark differ"
    print(f"ok strata stream: the same total {truth['total']} and {len(minutes)} venue-minutes as Spark and the ground truth")
    print("spark: 2 passed, 0 failed")


if __name__ == "__main__":
    main()
