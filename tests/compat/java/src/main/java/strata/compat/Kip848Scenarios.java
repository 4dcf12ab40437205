package strata.compat;

import static strata.compat.Main.scenario;

import java.time.Duration;
import java.util.*;
import java.util.concurrent.*;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.BooleanSupplier;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.GroupType;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * The KIP-848 consumer protocol ({@code group.protocol=consumer}). It needs ConsumerGroupHeartbeat
 * (key 68) and ConsumerGroupDescribe (key 69); while the broker does not advertise key 68 the
 * scenarios print skip. STRATA_KIP848=1 runs them regardless (to see how the client fails).
 *
 * <p>Beyond the shared two-member scenario: with the broker's default assignor (uniform) two
 * members share a 6-partition topic, read every record and commit (OffsetCommit v9+ with member
 * epochs); one leaves and the other takes all six, resuming from the commits; a new member resumes
 * from the commits too; the Admin client lists and describes the group as a CONSUMER group; range
 * gives contiguous halves; a broker-side regex subscription (SubscriptionPattern) consumes the
 * matching topics, a matching topic created later included, and nothing else.
 */
final class Kip848Scenarios {
    static void all(Map<Integer, int[]> versions) {
        boolean forced = "1".equals(System.getenv("STRATA_KIP848"));
        Runnable needs848 = () -> {
            if (!versions.containsKey(68) && !forced) {
                throw new Main.Skip("the broker does not advertise ConsumerGroupHeartbeat (key 68)");
            }
        };
        scenario("java consumer protocol (KIP-848) group: two members share, commit, a new member resumes", () -> {
            needs848.run();
            return ClientScenarios.classicGroupShare("consumer");
        });
        scenario("java consumer protocol (KIP-848) uniform: share, leave and takeover from commits, admin", () -> {
            needs848.run();
            try (Admin admin = Main.admin()) {
                return uniform(admin);
            }
        });
        scenario("java consumer protocol (KIP-848) range: contiguous halves", () -> {
            needs848.run();
            try (Admin admin = Main.admin()) {
                return range(admin);
            }
        });
        scenario("java consumer protocol (KIP-848) regex subscription (SubscriptionPattern)", () -> {
            needs848.run();
            try (Admin admin = Main.admin()) {
                return regex(admin);
            }
        });
    }

    /** The notes of the scenario being run (what the ok line shows). */
    static final List<String> notes = new ArrayList<>();

    static void note(String s) {
        notes.add(s);
    }

    static String notes() {
        String s = String.join("; ", notes);
        notes.clear();
        return s;
    }

    static final int PARTITIONS = 6;

    /** A member polling in its own thread (the consumer is confined to it). */
    static class Member implements Runnable {
        final Map<String, Integer> read = new ConcurrentHashMap<>();
        volatile Set<Integer> assigned = Set.of();
        final AtomicBoolean stop = new AtomicBoolean();
        final AtomicBoolean commit = new AtomicBoolean();
        final CountDownLatch closed = new CountDownLatch(1);
        volatile Exception failure;
        volatile CountDownLatch committed = new CountDownLatch(1);
        final Properties props = new Properties();
        final String topic;
        final boolean pattern;
        final Thread thread = new Thread(this);

        Member(String group, String topic, String assignor) {
            this(group, topic, assignor, false);
        }

        Member(String group, String topic, String assignor, boolean pattern) {
            this.topic = topic;
            this.pattern = pattern;
            props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, Main.bootstrap);
            props.put(ConsumerConfig.GROUP_ID_CONFIG, group);
            props.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "consumer");
            props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
            props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
            props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
            props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
            if (assignor != null) props.put(ConsumerConfig.GROUP_REMOTE_ASSIGNOR_CONFIG, assignor);
            thread.setDaemon(true);
            thread.start();
        }

        public void run() {
            try (KafkaConsumer<String, String> c = new KafkaConsumer<>(props)) {
                if (pattern) c.subscribe(new SubscriptionPattern(topic));
                else c.subscribe(List.of(topic));
                while (!stop.get()) {
                    for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) read.put(r.value(), r.partition());
                    Set<Integer> now = new TreeSet<>();
                    for (TopicPartition tp : c.assignment()) now.add(tp.partition());
                    assigned = now;
                    if (commit.getAndSet(false)) {
                        c.commitSync(Duration.ofSeconds(30));
                        committed.countDown();
                    }
                }
            } catch (Exception e) {
                failure = e;
            } finally {
                closed.countDown();
            }
        }

        void commitNow() throws Exception {
            committed = new CountDownLatch(1);
            commit.set(true);
            check(committed.await(30, TimeUnit.SECONDS), "commit timed out: " + failure);
        }

        void leave() throws Exception {
            stop.set(true);
            check(closed.await(30, TimeUnit.SECONDS), "close timed out");
            check(failure == null, "member failed: " + failure);
        }
    }

    static void check(boolean ok, String what) {
        if (!ok) throw new AssertionError(what);
    }

    static void waitFor(String what, BooleanSupplier cond) throws InterruptedException {
        long deadline = System.currentTimeMillis() + 90_000;
        while (System.currentTimeMillis() < deadline) {
            if (cond.getAsBoolean()) return;
            Thread.sleep(200);
        }
        throw new AssertionError("timed out waiting for " + what);
    }

    static String freshTopic(Admin admin, String prefix) throws Exception {
        String name = prefix + "-" + UUID.randomUUID().toString().substring(0, 6);
        admin.createTopics(List.of(new NewTopic(name, PARTITIONS, (short) 1))).all().get(30, TimeUnit.SECONDS);
        return name;
    }

    static Set<String> produce(String topic, String tag, int n) throws Exception {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, Main.bootstrap);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        Set<String> values = new HashSet<>();
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(p)) {
            for (int i = 0; i < n; i++) {
                String v = tag + "-" + i;
                values.add(v);
                producer.send(new ProducerRecord<>(topic, i % PARTITIONS, null, v));
            }
            producer.flush();
        }
        return values;
    }

    static boolean split(Member a, Member b) {
        Set<Integer> pa = a.assigned, pb = b.assigned, all = new TreeSet<>(pa);
        all.addAll(pb);
        return !pa.isEmpty() && !pb.isEmpty() && Collections.disjoint(pa, pb) && all.size() == PARTITIONS;
    }

    static String uniform(Admin admin) throws Exception {
        String topic = freshTopic(admin, "java-kip848");
        String group = "java-kip848-" + UUID.randomUUID().toString().substring(0, 6);
        Member a = new Member(group, topic, null), b = new Member(group, topic, null);
        waitFor("two members sharing the partitions", () -> split(a, b));
        check(Math.abs(a.assigned.size() - b.assigned.size()) <= 1, "uniform is not balanced: " + a.assigned + " / " + b.assigned);
        Set<String> first = produce(topic, "first", 600);
        waitFor("all 600 records", () -> a.read.size() + b.read.size() >= 600);
        Set<String> union = new HashSet<>(a.read.keySet());
        union.addAll(b.read.keySet());
        check(union.equals(first), "together they read every record");
        check(Collections.disjoint(a.read.keySet(), b.read.keySet()), "no record read by both");
        check(!a.read.isEmpty() && !b.read.isEmpty(), "each member read records");
        note("java consumer protocol (uniform): two members read 600 records, partitions " + a.assigned + " / " + b.assigned);
        a.commitNow();
        b.commitNow();
        a.leave();
        waitFor("the remaining member taking all partitions", () -> b.assigned.size() == PARTITIONS);
        Set<String> before = new HashSet<>(b.read.keySet());
        Set<String> second = produce(topic, "second", 60);
        waitFor("the 60 new records", () -> b.read.keySet().containsAll(second));
        Thread.sleep(1000);
        Set<String> again = new HashSet<>(b.read.keySet());
        again.removeAll(before);
        check(again.equals(second), "after the leave the survivor read " + (again.size() - second.size()) + " records again");
        note("java consumer protocol: after a leave the other member takes all 6 partitions, resuming from the commits");
        b.commitNow();
        ConsumerGroupDescription d = admin.describeConsumerGroups(List.of(group)).all().get(30, TimeUnit.SECONDS).get(group);
        check(d.type() == GroupType.CONSUMER, "described as " + d.type());
        check(d.members().size() == 1, d.members().size() + " members");
        check(d.members().iterator().next().assignment().topicPartitions().size() == PARTITIONS, "described assignment");
        boolean listed = admin.listGroups().all().get(30, TimeUnit.SECONDS).stream()
            .anyMatch(g -> g.groupId().equals(group) && g.type().orElse(null) == GroupType.CONSUMER);
        check(listed, "not listed as a consumer group");
        note("java consumer protocol admin: listed and described as CONSUMER, state " + d.groupState());
        b.leave();
        Set<String> third = produce(topic, "third", 30);
        Member c = new Member(group, topic, null);
        waitFor("the new member's 30 records", () -> c.read.keySet().containsAll(third));
        Thread.sleep(1000);
        check(c.read.keySet().equals(third), "a new member read " + (c.read.size() - third.size()) + " committed records again");
        note("java consumer protocol: a new member resumes from the group's commits");
        c.leave();
        return notes();
    }

    static String regex(Admin admin) throws Exception {
        String prefix = "javare" + UUID.randomUUID().toString().substring(0, 4);
        List<String> names = List.of(prefix + "-a", prefix + "-b", "other" + prefix);
        List<NewTopic> topics = new ArrayList<>();
        for (String n : names) topics.add(new NewTopic(n, PARTITIONS, (short) 1));
        admin.createTopics(topics).all().get(30, TimeUnit.SECONDS);
        Member m = new Member(prefix + "-g", prefix + "-.*", null, true);
        Set<String> wanted = new HashSet<>(produce(names.get(0), "a", 20));
        wanted.addAll(produce(names.get(1), "b", 20));
        produce(names.get(2), "x", 20);
        waitFor("the records of both matching topics", () -> m.read.keySet().containsAll(wanted));
        admin.createTopics(List.of(new NewTopic(prefix + "-c", PARTITIONS, (short) 1))).all().get(30, TimeUnit.SECONDS);
        Set<String> late = produce(prefix + "-c", "c", 20);
        waitFor("the records of a matching topic created later", () -> m.read.keySet().containsAll(late));
        Thread.sleep(1000);
        wanted.addAll(late);
        check(m.read.keySet().equals(wanted), "read " + (m.read.size() - wanted.size()) + " records of a topic not matching");
        note("java consumer protocol (regex): matching topics consumed, a new one joins, others not");
        m.leave();
        return notes();
    }

    static String range(Admin admin) throws Exception {
        String topic = freshTopic(admin, "java-kip848-range");
        String group = "java-kip848-range-" + UUID.randomUUID().toString().substring(0, 6);
        Member a = new Member(group, topic, "range"), b = new Member(group, topic, "range");
        waitFor("two range members sharing the partitions", () -> split(a, b));
        List<String> halves = new ArrayList<>(List.of(a.assigned.toString(), b.assigned.toString()));
        Collections.sort(halves);
        check(halves.equals(List.of("[0, 1, 2]", "[3, 4, 5]")), "range gave " + halves);
        note("java consumer protocol (range): contiguous halves " + halves);
        a.leave();
        b.leave();
        return notes();
    }

    private Kip848Scenarios() {}
}
