package strata.compat;

import static strata.compat.Main.check;
import static strata.compat.Main.checkEq;
import static strata.compat.Main.scenario;
import static strata.compat.Main.unique;

import java.io.File;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;

/**
 * Kafka's own command-line tools (kafka-tools of the same version), each run as its Java main class
 * in a JVM of its own, exactly as bin/kafka-*.sh would, with this JVM's class path.
 */
final class ToolScenarios {
    static final String TOPICS = "org.apache.kafka.tools.TopicCommand";
    static final String PRODUCER = "org.apache.kafka.tools.ConsoleProducer";
    static final String CONSUMER = "org.apache.kafka.tools.consumer.ConsoleConsumer";
    static final String GROUPS = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand";
    static final String CONFIGS = "org.apache.kafka.tools.ConfigCommand";
    static final String PRODUCER_PERF = "org.apache.kafka.tools.ProducerPerformance";
    static final String CONSUMER_PERF = "org.apache.kafka.tools.ConsumerPerformance";

    record Result(int exit, String out, String err) {
        String all() {
            return out + err;
        }
    }

    static List<String> jvm(String mainClass) {
        String java = System.getProperty("java.home") + File.separator + "bin" + File.separator + "java";
        // Tools are short-lived: start fast, log warnings only (slf4j-simple).
        return new ArrayList<>(List.of(java, "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Xss1m", "-Xmx512m",
                "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-cp", System.getProperty("java.class.path"), mainClass));
    }

    /** Runs a tool with args, stdin, and a timeout; never hangs. */
    static Result tool(String mainClass, String stdin, int timeoutSec, String... args) throws Exception {
        List<String> cmd = jvm(mainClass);
        cmd.addAll(Arrays.asList(args));
        File out = File.createTempFile("tool", ".out"), err = File.createTempFile("tool", ".err");
        try {
            ProcessBuilder pb = new ProcessBuilder(cmd).redirectOutput(out).redirectError(err);
            if (stdin == null) pb.redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")));
            Process p = pb.start();
            if (stdin != null) {
                p.getOutputStream().write(stdin.getBytes(StandardCharsets.UTF_8));
                p.getOutputStream().close();
            }
            if (!p.waitFor(timeoutSec, TimeUnit.SECONDS)) {
                p.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
                throw new AssertionError(short_(mainClass) + " " + String.join(" ", args) + " did not finish within "
                        + timeoutSec + " s; stderr: " + tail(Files.readString(err.toPath())));
            }
            return new Result(p.exitValue(), Files.readString(out.toPath()), Files.readString(err.toPath()));
        } finally {
            out.delete();
            err.delete();
        }
    }

    /** Like tool(), but the tool must exit 0. */
    static Result ok(String mainClass, String stdin, int timeoutSec, String... args) throws Exception {
        Result r = tool(mainClass, stdin, timeoutSec, args);
        check(r.exit == 0, "%s %s exited %d: %s", short_(mainClass), String.join(" ", args), r.exit, tail(r.all()));
        return r;
    }

    static String short_(String cls) {
        return cls.substring(cls.lastIndexOf('.') + 1);
    }

    static String tail(String s) {
        s = s.strip();
        return s.length() > 1500 ? "..." + s.substring(s.length() - 1500) : s;
    }

    static void all() {
        String b = Main.bootstrap;
        String topic = unique("tools-topic");
        String group = unique("tools-group");
        scenario("kafka-topics.sh (TopicCommand) create/list/describe/alter/delete", () -> {
            Result r = ok(TOPICS, null, 60, "--bootstrap-server", b, "--create", "--topic", topic, "--partitions", "2",
                    "--replication-factor", "1", "--config", "retention.ms=3600000");
            check(r.out.contains("Created topic " + topic), "create said: %s", tail(r.all()));
            r = ok(TOPICS, null, 60, "--bootstrap-server", b, "--list");
            check(r.out.lines().anyMatch(topic::equals), "--list lacks %s: %s", topic, tail(r.out));
            r = ok(TOPICS, null, 60, "--bootstrap-server", b, "--describe", "--topic", topic);
            check(r.out.contains("PartitionCount: 2") && r.out.contains("ReplicationFactor: 1")
                    && r.out.contains("retention.ms=3600000"), "--describe said: %s", tail(r.all()));
            check(r.out.contains("Partition: 1") && r.out.contains("Leader: "), "--describe partitions: %s", tail(r.out));
            ok(TOPICS, null, 60, "--bootstrap-server", b, "--alter", "--topic", topic, "--partitions", "3");
            r = ok(TOPICS, null, 60, "--bootstrap-server", b, "--describe", "--topic", topic);
            check(r.out.contains("PartitionCount: 3"), "--describe after --alter said: %s", tail(r.all()));
            String gone = unique("tools-gone");
            ok(TOPICS, null, 60, "--bootstrap-server", b, "--create", "--topic", gone, "--partitions", "1");
            ok(TOPICS, null, 60, "--bootstrap-server", b, "--delete", "--topic", gone);
            check(Main.waitFor(20_000, () -> {
                try (Admin a = Main.admin()) {
                    return !a.listTopics().names().get(30, TimeUnit.SECONDS).contains(gone);
                }
            }), "%s still there after --delete", gone);
            return "";
        });

        int n = 200;
        scenario("kafka-console-producer.sh and kafka-console-consumer.sh round trip", () -> {
            String lines = java.util.stream.IntStream.range(0, n).mapToObj(i -> "key" + (i % 7) + ":line " + i)
                    .collect(Collectors.joining("\n")) + "\n";
            ok(PRODUCER, lines, 90, "--bootstrap-server", b, "--topic", topic, "--reader-property", "parse.key=true",
                    "--reader-property", "key.separator=:", "--command-property", "acks=all");
            Result r = ok(CONSUMER, null, 90, "--bootstrap-server", b, "--topic", topic, "--from-beginning",
                    "--max-messages", Integer.toString(n), "--timeout-ms", "30000", "--group", group,
                    "--formatter-property", "print.key=true", "--formatter-property", "key.separator=:");
            List<String> got = r.out.lines().sorted().toList();
            List<String> want = lines.lines().sorted().toList();
            checkEq(want, got, "lines the console consumer printed (sorted: 3 partitions)");
            // Same key, same partition, in order: per key the lines come in produced order.
            Map<String, List<String>> perKey = new HashMap<>();
            for (String l : r.out.lines().toList()) perKey.computeIfAbsent(l.split(":")[0], k -> new ArrayList<>()).add(l);
            for (var e : perKey.entrySet()) {
                List<String> sorted = new ArrayList<>(e.getValue());
                sorted.sort((x, y) -> Integer.compare(num(x), num(y)));
                checkEq(sorted, e.getValue(), "order of key " + e.getKey());
            }
            return n + " lines";
        });

        scenario("kafka-consumer-groups.sh (ConsumerGroupCommand) --list/--describe/--reset-offsets", () -> {
            Result r = ok(GROUPS, null, 60, "--bootstrap-server", b, "--list");
            check(r.out.lines().anyMatch(group::equals), "--list lacks %s: %s", group, tail(r.all()));
            r = ok(GROUPS, null, 60, "--bootstrap-server", b, "--describe", "--group", group);
            Map<Integer, long[]> rows = rows(r.out, topic);
            checkEq(3, rows.size(), "partitions in --describe: " + tail(r.out));
            long current = 0, end = 0;
            for (long[] row : rows.values()) {
                checkEq(row[1], row[0], "CURRENT-OFFSET vs LOG-END-OFFSET: " + tail(r.out));
                checkEq(0L, row[2], "LAG");
                current += row[0];
                end += row[1];
            }
            checkEq((long) n, end, "sum of LOG-END-OFFSET");
            r = ok(GROUPS, null, 60, "--bootstrap-server", b, "--reset-offsets", "--group", group, "--topic", topic,
                    "--to-earliest", "--execute");
            check(r.out.contains(topic), "--reset-offsets said: %s", tail(r.all()));
            r = ok(GROUPS, null, 60, "--bootstrap-server", b, "--describe", "--group", group);
            rows = rows(r.out, topic);
            long lag = 0;
            for (long[] row : rows.values()) {
                checkEq(0L, row[0], "CURRENT-OFFSET after --to-earliest: " + tail(r.out));
                lag += row[2];
            }
            checkEq((long) n, lag, "total LAG after --to-earliest");
            try (Admin a = Main.admin()) {
                Map<TopicPartition, OffsetAndMetadata> offs = a.listConsumerGroupOffsets(group)
                        .partitionsToOffsetAndMetadata().get(30, TimeUnit.SECONDS);
                checkEq(3, offs.size(), "committed partitions seen by Admin");
                for (OffsetAndMetadata om : offs.values()) checkEq(0L, om.offset(), "committed offset seen by Admin");
            }
            r = ok(GROUPS, null, 60, "--bootstrap-server", b, "--reset-offsets", "--group", group, "--topic",
                    topic + ":1", "--to-offset", "5", "--execute");
            try (Admin a = Main.admin()) {
                long o = a.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get(30, TimeUnit.SECONDS)
                        .get(new TopicPartition(topic, 1)).offset();
                checkEq(Math.min(5L, rows.get(1)[1]), o, "partition 1 after --to-offset 5");
            }
            ok(GROUPS, null, 60, "--bootstrap-server", b, "--delete", "--group", group);
            r = ok(GROUPS, null, 60, "--bootstrap-server", b, "--list");
            check(r.out.lines().noneMatch(group::equals), "%s listed after --delete", group);
            return "committed " + current + " of " + end + ", reset to 0, lag " + lag;
        });

        scenario("kafka-configs.sh (ConfigCommand) topics --alter/--describe/--delete-config, brokers --describe", () -> {
            Result r = ok(CONFIGS, null, 60, "--bootstrap-server", b, "--entity-type", "topics", "--entity-name", topic,
                    "--alter", "--add-config", "retention.ms=7200000,max.message.bytes=2000000");
            r = ok(CONFIGS, null, 60, "--bootstrap-server", b, "--entity-type", "topics", "--entity-name", topic,
                    "--describe");
            check(r.out.contains("retention.ms=7200000") && r.out.contains("max.message.bytes=2000000"),
                    "--describe said: %s", tail(r.all()));
            ok(CONFIGS, null, 60, "--bootstrap-server", b, "--entity-type", "topics", "--entity-name", topic,
                    "--alter", "--delete-config", "max.message.bytes");
            r = ok(CONFIGS, null, 60, "--bootstrap-server", b, "--entity-type", "topics", "--entity-name", topic,
                    "--describe");
            check(r.out.contains("retention.ms=7200000") && !r.out.contains("max.message.bytes=2000000"),
                    "--describe after --delete-config said: %s", tail(r.all()));
            r = ok(CONFIGS, null, 60, "--bootstrap-server", b, "--entity-type", "topics", "--entity-name", topic,
                    "--describe", "--all");
            check(r.out.contains("segment.bytes=1073741824"), "--describe --all lacks the default segment.bytes: %s",
                    tail(r.all()));
            r = ok(CONFIGS, null, 60, "--bootstrap-server", b, "--entity-type", "brokers", "--describe", "--all");
            return "brokers --describe --all: " + r.out.strip().replace("\n", " / ");
        });

        String perf = unique("tools-perf");
        int records = 50_000;
        scenario("ProducerPerformance " + records + " records", () -> {
            Result r = ok(PRODUCER_PERF, null, 180, "--topic", perf, "--num-records", Integer.toString(records),
                    "--record-size", "200", "--throughput", "-1", "--producer-props", "bootstrap.servers=" + b,
                    "acks=all", "linger.ms=5");
            String last = r.out.lines().filter(l -> l.contains("records sent")).reduce((x, y) -> y).orElse("");
            check(last.startsWith(records + " records sent"), "ProducerPerformance said: %s", tail(r.all()));
            try (Admin a = Main.admin()) {
                TopicPartition tp = new TopicPartition(perf, 0);
                long end = a.listOffsets(Map.of(tp, OffsetSpec.latest())).partitionResult(tp).get(30, TimeUnit.SECONDS)
                        .offset();
                checkEq((long) records, end, "end offset after ProducerPerformance");
            }
            return last.replaceAll(", [0-9.]+ ms 50th.*", "");
        });
        scenario("ConsumerPerformance reads them back", () -> {
            Result r = ok(CONSUMER_PERF, null, 180, "--bootstrap-server", b, "--topic", perf, "--messages",
                    Integer.toString(records), "--timeout", "60000");
            List<String> ls = r.out.lines().filter(l -> !l.isBlank()).toList();
            int h = -1;
            for (int i = 0; i < ls.size(); i++) if (ls.get(i).contains("data.consumed.in.nMsg")) h = i;
            check(h >= 0 && h + 1 < ls.size(), "ConsumerPerformance said: %s", tail(r.all()));
            List<String> cols = Arrays.stream(ls.get(h).split(",")).map(String::strip).toList();
            String[] vals = ls.get(h + 1).split(",");
            long nMsg = Long.parseLong(vals[cols.indexOf("data.consumed.in.nMsg")].strip());
            checkEq((long) records, nMsg, "records ConsumerPerformance consumed");
            return nMsg + " records, " + vals[cols.indexOf("MB.sec")].strip() + " MB/s";
        });
    }

    static int num(String line) {
        return Integer.parseInt(line.substring(line.lastIndexOf(' ') + 1));
    }

    /** Rows of ConsumerGroupCommand --describe for topic: partition -> {current, log end, lag} (- as -1). */
    static Map<Integer, long[]> rows(String out, String topic) {
        Map<Integer, long[]> m = new HashMap<>();
        for (String line : out.lines().toList()) {
            String[] f = line.trim().split("\\s+");
            if (f.length >= 6 && f[1].equals(topic)) {
                m.put(Integer.parseInt(f[2]), new long[] {num_(f[3]), num_(f[4]), num_(f[5])});
            }
        }
        return m;
    }

    static long num_(String s) {
        return s.equals("-") ? -1 : Long.parseLong(s);
    }

    private ToolScenarios() {}
}
