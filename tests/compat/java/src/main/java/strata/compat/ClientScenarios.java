package strata.compat;

import static strata.compat.Main.check;
import static strata.compat.Main.checkEq;
import static strata.compat.Main.scenario;
import static strata.compat.Main.unique;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.consumer.OffsetAndTimestamp;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/** The Java client: idempotent producer with every codec, classic consumer groups, manual commits and seeks. */
final class ClientScenarios {
    static void all() {
        for (String codec : List.of("none", "gzip", "snappy", "lz4", "zstd")) {
            scenario("java producer idempotent " + codec, () -> produceAndReadBack(codec));
        }
        scenario("java classic group: two members share, commit, a new member resumes",
                () -> classicGroupShare("classic"));
        scenario("java classic group: static member restart keeps its assignment", ClientScenarios::staticMembership);
        scenario("java manual commit, seek, seekToBeginning/End, offsetsForTimes", ClientScenarios::manualCommitsAndSeeks);
    }

    static KafkaProducer<String, String> producer(Properties extra) {
        Properties p = Main.common();
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "60000");
        if (extra != null) p.putAll(extra);
        return new KafkaProducer<>(p);
    }

    static KafkaConsumer<String, String> consumer(String group, Properties extra) {
        Properties p = Main.common();
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        if (group != null) p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        if (extra != null) p.putAll(extra);
        return new KafkaConsumer<>(p);
    }

    static Properties props(String... kv) {
        Properties p = new Properties();
        for (int i = 0; i < kv.length; i += 2) p.put(kv[i], kv[i + 1]);
        return p;
    }

    /** Produces n keyed records to topic, waits for every ack; returns "partition/offset" -> "key=value". */
    static Map<String, String> produce(String topic, int n, String tag, Properties extra) throws Exception {
        Map<String, String> acked = new HashMap<>();
        try (KafkaProducer<String, String> p = producer(extra)) {
            List<Future<RecordMetadata>> fs = new ArrayList<>();
            List<String> sent = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                String k = "k" + (i % 17), v = tag + "-" + i;
                fs.add(p.send(new ProducerRecord<>(topic, k, v)));
                sent.add(k + "=" + v);
            }
            p.flush();
            for (int i = 0; i < n; i++) {
                RecordMetadata m = fs.get(i).get(60, TimeUnit.SECONDS);
                acked.put(m.partition() + "/" + m.offset(), sent.get(i));
            }
        }
        return acked;
    }

    static String produceAndReadBack(String codec) throws Exception {
        String topic = unique("java-codec-" + codec);
        int partitions = 3, n = 3000;
        try (Admin admin = Main.admin()) {
            Main.createTopic(admin, topic, partitions);
        }
        // Idempotence is the client's default; say so, so that a changed default cannot hide it.
        Properties extra = props(ProducerConfig.COMPRESSION_TYPE_CONFIG, codec,
                ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true", ProducerConfig.ACKS_CONFIG, "all");
        Map<String, String> want = new TreeMap<>();
        long before = System.currentTimeMillis();
        try (KafkaProducer<String, String> p = producer(extra)) {
            List<Future<RecordMetadata>> fs = new ArrayList<>();
            List<String> sent = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                String k = "key-" + (i % 31), v = codec + "-value-" + i + "-" + "x".repeat(i % 200);
                RecordHeaders h = new RecordHeaders();
                h.add("i", Integer.toString(i).getBytes(StandardCharsets.UTF_8));
                fs.add(p.send(new ProducerRecord<>(topic, null, k, v, h)));
                sent.add(k + "=" + v + "|i=" + i);
            }
            p.flush();
            for (int i = 0; i < n; i++) {
                RecordMetadata m = fs.get(i).get(60, TimeUnit.SECONDS);
                check(m.hasOffset(), "record %d acked without an offset", i);
                want.put(m.partition() + "/" + m.offset(), sent.get(i));
            }
        }
        checkEq(n, want.size(), "distinct acked (partition, offset) pairs");
        Map<String, String> got = new TreeMap<>();
        try (KafkaConsumer<String, String> c = consumer(null, null)) {
            List<TopicPartition> tps = new ArrayList<>();
            for (int i = 0; i < partitions; i++) tps.add(new TopicPartition(topic, i));
            c.assign(tps);
            c.seekToBeginning(tps);
            long deadline = System.currentTimeMillis() + 60_000;
            while (got.size() < n && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(500))) {
                    String h = new String(r.headers().lastHeader("i").value(), StandardCharsets.UTF_8);
                    check(r.timestamp() >= before - 1000 && r.timestamp() <= System.currentTimeMillis() + 1000,
                            "timestamp %d of %s/%d out of range", r.timestamp(), r.partition(), r.offset());
                    String prev = got.put(r.partition() + "/" + r.offset(), r.key() + "=" + r.value() + "|i=" + h);
                    check(prev == null, "offset %d/%d delivered twice", r.partition(), r.offset());
                }
            }
            Map<TopicPartition, Long> ends = c.endOffsets(tps);
            long sum = ends.values().stream().mapToLong(Long::longValue).sum();
            checkEq((long) n, sum, "sum of end offsets");
        }
        checkEq(want, got, "records read back by (partition/offset)");
        return n + " records over " + partitions + " partitions";
    }

    /** Polls each consumer in turn, for up to ms, collecting what it reads. */
    static void pollAll(List<KafkaConsumer<String, String>> cs, List<List<ConsumerRecord<String, String>>> got, long ms) {
        long deadline = System.currentTimeMillis() + ms;
        while (System.currentTimeMillis() < deadline) {
            for (int i = 0; i < cs.size(); i++) {
                for (ConsumerRecord<String, String> r : cs.get(i).poll(Duration.ofMillis(50))) got.get(i).add(r);
            }
        }
    }

    /**
     * Two members of one group subscribe to a 4-partition topic; once both hold partitions, records are
     * produced: each member reads only its own partitions, together exactly everything. They commit and
     * leave; a third member resumes after the commits. Shared by the classic and the KIP-848 protocol.
     */
    static String classicGroupShare(String protocol) throws Exception {
        String topic = unique("java-group-" + protocol), group = unique("g-" + protocol);
        int partitions = 4, n = 400;
        try (Admin admin = Main.admin()) {
            Main.createTopic(admin, topic, partitions);
        }
        Properties extra = props(ConsumerConfig.GROUP_PROTOCOL_CONFIG, protocol,
                ConsumerConfig.MAX_POLL_INTERVAL_MS_CONFIG, "60000");
        if (protocol.equals("classic")) extra.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, "10000");
        List<KafkaConsumer<String, String>> cs = List.of(consumer(group, extra), consumer(group, extra));
        List<List<ConsumerRecord<String, String>>> got = List.of(new ArrayList<>(), new ArrayList<>());
        String note;
        try {
            for (KafkaConsumer<String, String> c : cs) c.subscribe(List.of(topic));
            long deadline = System.currentTimeMillis() + 60_000;
            while (System.currentTimeMillis() < deadline) {
                pollAll(cs, got, 200);
                Set<TopicPartition> a = cs.get(0).assignment(), b = cs.get(1).assignment();
                if (!a.isEmpty() && !b.isEmpty() && a.size() + b.size() == partitions) break;
            }
            Set<TopicPartition> a = new HashSet<>(cs.get(0).assignment()), b = new HashSet<>(cs.get(1).assignment());
            check(!a.isEmpty() && !b.isEmpty(), "both members should hold partitions within 60 s: %s and %s", a, b);
            Set<TopicPartition> union = new HashSet<>(a);
            union.addAll(b);
            checkEq(partitions, union.size(), "partitions held by the two members together");
            check(a.size() + b.size() == partitions, "members overlap: %s and %s", a, b);
            checkEq(0, got.get(0).size() + got.get(1).size(), "records read before any was produced");
            Map<String, String> acked = produce(topic, n, "g", null);
            deadline = System.currentTimeMillis() + 60_000;
            while (got.get(0).size() + got.get(1).size() < n && System.currentTimeMillis() < deadline) {
                pollAll(cs, got, 200);
            }
            pollAll(cs, got, 300); // nothing more may come
            Map<String, String> read = new TreeMap<>();
            for (int i = 0; i < 2; i++) {
                Set<TopicPartition> mine = cs.get(i).assignment();
                for (ConsumerRecord<String, String> r : got.get(i)) {
                    check(mine.contains(new TopicPartition(topic, r.partition())),
                            "member %d read partition %d it does not hold", i, r.partition());
                    check(read.put(r.partition() + "/" + r.offset(), r.key() + "=" + r.value()) == null,
                            "%d/%d read twice", r.partition(), r.offset());
                }
            }
            checkEq(new TreeMap<>(acked), read, "records read by the two members");
            note = "shares " + got.get(0).size() + "+" + got.get(1).size() + " over " + a.size() + "+" + b.size()
                    + " partitions";
            for (KafkaConsumer<String, String> c : cs) c.commitSync(Duration.ofSeconds(30));
            for (KafkaConsumer<String, String> c : cs) {
                for (TopicPartition tp : c.assignment()) {
                    OffsetAndMetadata om = c.committed(Set.of(tp), Duration.ofSeconds(30)).get(tp);
                    check(om != null && om.offset() == c.position(tp), "committed %s = %s, position %d", tp, om,
                            c.position(tp));
                }
            }
        } finally {
            for (KafkaConsumer<String, String> c : cs) c.close(Duration.ofSeconds(10));
        }
        // A new member resumes from the commits: only the records produced after them.
        Map<String, String> later = produce(topic, 50, "later", null);
        Map<String, String> read = new TreeMap<>();
        try (KafkaConsumer<String, String> c = consumer(group, extra)) {
            c.subscribe(List.of(topic));
            long deadline = System.currentTimeMillis() + 60_000;
            while (read.size() < later.size() && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                    read.put(r.partition() + "/" + r.offset(), r.key() + "=" + r.value());
                }
            }
            for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(500))) {
                read.put(r.partition() + "/" + r.offset(), r.key() + "=" + r.value());
            }
            c.commitSync(Duration.ofSeconds(30));
        }
        checkEq(new TreeMap<>(later), read, "what a new member of the group reads after the commits");
        return note + "; the next member read only the 50 new records";
    }

    static String staticMembership() throws Exception {
        String topic = unique("java-static"), group = unique("g-static");
        int partitions = 4;
        try (Admin admin = Main.admin()) {
            Main.createTopic(admin, topic, partitions);
        }
        AtomicInteger bAssigned = new AtomicInteger(), bRevoked = new AtomicInteger();
        Properties pa = props(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "classic", ConsumerConfig.GROUP_INSTANCE_ID_CONFIG,
                "member-a", ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, "30000");
        Properties pb = props(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "classic", ConsumerConfig.GROUP_INSTANCE_ID_CONFIG,
                "member-b", ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, "30000");
        KafkaConsumer<String, String> a = consumer(group, pa);
        KafkaConsumer<String, String> b = consumer(group, pb);
        List<List<ConsumerRecord<String, String>>> sink = List.of(new ArrayList<>(), new ArrayList<>());
        try {
            a.subscribe(List.of(topic));
            b.subscribe(List.of(topic), new ConsumerRebalanceListener() {
                public void onPartitionsRevoked(Collection<TopicPartition> ps) {
                    if (!ps.isEmpty()) bRevoked.incrementAndGet();
                }

                public void onPartitionsAssigned(Collection<TopicPartition> ps) {
                    bAssigned.incrementAndGet();
                }
            });
            long deadline = System.currentTimeMillis() + 60_000;
            while (System.currentTimeMillis() < deadline
                    && !(a.assignment().size() > 0 && b.assignment().size() > 0
                            && a.assignment().size() + b.assignment().size() == partitions)) {
                pollAll(List.of(a, b), sink, 200);
            }
            Set<TopicPartition> aBefore = new HashSet<>(a.assignment()), bBefore = new HashSet<>(b.assignment());
            check(!aBefore.isEmpty() && !bBefore.isEmpty() && aBefore.size() + bBefore.size() == partitions,
                    "two static members should split %d partitions: %s and %s", partitions, aBefore, bBefore);
            pollAll(List.of(a, b), sink, 500);
            int assignsBefore = bAssigned.get(), revokesBefore = bRevoked.get();
            // A static member's close does not leave the group: it comes back as the same instance.
            a.close(Duration.ofSeconds(10));
            a = consumer(group, pa);
            a.subscribe(List.of(topic));
            deadline = System.currentTimeMillis() + 30_000;
            while (System.currentTimeMillis() < deadline && a.assignment().isEmpty()) {
                pollAll(List.of(a, b), sink, 200);
            }
            pollAll(List.of(a, b), sink, 1000);
            checkEq(aBefore, a.assignment(), "assignment of the restarted static member");
            checkEq(bBefore, b.assignment(), "assignment of the other member");
            checkEq(revokesBefore, bRevoked.get(), "revocations the other member saw during the restart");
            checkEq(assignsBefore, bAssigned.get(), "rebalances the other member saw during the restart");
            return "member-a kept " + aBefore.size() + " partitions, member-b saw no rebalance";
        } finally {
            a.close(Duration.ofSeconds(10));
            b.close(Duration.ofSeconds(10));
        }
    }

    static String manualCommitsAndSeeks() throws Exception {
        String topic = unique("java-manual"), group = unique("g-manual");
        int n = 100;
        long base = System.currentTimeMillis() - 3_600_000L; // an hour ago, one second apart
        try (Admin admin = Main.admin()) {
            Main.createTopic(admin, topic, 1);
        }
        TopicPartition tp = new TopicPartition(topic, 0);
        try (KafkaProducer<String, String> p = producer(null)) {
            for (int i = 0; i < n; i++) p.send(new ProducerRecord<>(topic, 0, base + i * 1000L, "k", "v" + i));
            p.flush();
        }
        try (KafkaConsumer<String, String> c = consumer(group, null)) {
            c.assign(List.of(tp));
            checkEq(Map.of(tp, 0L), c.beginningOffsets(List.of(tp)), "beginningOffsets");
            checkEq(Map.of(tp, (long) n), c.endOffsets(List.of(tp)), "endOffsets");
            checkEq(null, c.committed(Set.of(tp), Duration.ofSeconds(30)).get(tp), "committed before any commit");
            c.commitSync(Map.of(tp, new OffsetAndMetadata(42, "note-42")), Duration.ofSeconds(30));
            OffsetAndMetadata om = c.committed(Set.of(tp), Duration.ofSeconds(30)).get(tp);
            check(om != null && om.offset() == 42 && "note-42".equals(om.metadata()), "committed: %s", om);

            c.seekToEnd(List.of(tp));
            checkEq((long) n, c.position(tp), "position after seekToEnd");
            c.seekToBeginning(List.of(tp));
            checkEq(0L, c.position(tp), "position after seekToBeginning");
            checkEq(0L, first(c).offset(), "first record after seekToBeginning");
            c.seek(tp, 77);
            ConsumerRecord<String, String> r = first(c);
            checkEq(77L, r.offset(), "offset after seek(77)");
            checkEq("v77", r.value(), "value at 77");
            checkEq(base + 77_000L, r.timestamp(), "timestamp at 77");

            Map<TopicPartition, OffsetAndTimestamp> at = c.offsetsForTimes(Map.of(tp, base + 50_000L));
            checkEq(50L, at.get(tp).offset(), "offsetsForTimes(exact timestamp of 50)");
            checkEq(base + 50_000L, at.get(tp).timestamp(), "offsetsForTimes timestamp");
            checkEq(31L, c.offsetsForTimes(Map.of(tp, base + 30_500L)).get(tp).offset(),
                    "offsetsForTimes(between 30 and 31)");
            checkEq(0L, c.offsetsForTimes(Map.of(tp, 0L)).get(tp).offset(), "offsetsForTimes(0)");
            checkEq(null, c.offsetsForTimes(Map.of(tp, base + n * 1000L + 1)).get(tp),
                    "offsetsForTimes(after the newest record)");
        }
        // Another consumer of the group starts at the committed offset.
        try (KafkaConsumer<String, String> c = consumer(group, null)) {
            c.assign(List.of(tp));
            checkEq(42L, first(c).offset(), "first offset a new consumer of the group reads");
            c.commitSync(Map.of(tp, new OffsetAndMetadata(n)), Duration.ofSeconds(30));
            checkEq((long) n, c.committed(Set.of(tp), Duration.ofSeconds(30)).get(tp).offset(), "committed after the 2nd commit");
        }
        return "commit 42 with metadata, seeks, offsetsForTimes exact/between/before/after";
    }

    static ConsumerRecord<String, String> first(KafkaConsumer<String, String> c) {
        long deadline = System.currentTimeMillis() + 30_000;
        while (System.currentTimeMillis() < deadline) {
            var rs = c.poll(Duration.ofMillis(200));
            if (!rs.isEmpty()) {
                ConsumerRecord<String, String> r = rs.iterator().next();
                // Rewind so that the next call sees the record after this one.
                c.seek(new TopicPartition(r.topic(), r.partition()), r.offset() + 1);
                return r;
            }
        }
        throw new AssertionError("no record within 30 s");
    }

    private ClientScenarios() {}
}
