package strata.compat;

import static strata.compat.Main.check;
import static strata.compat.Main.checkEq;
import static strata.compat.Main.scenario;
import static strata.compat.Main.unique;

import java.io.File;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;

/**
 * Kafka Streams runs the attendance query ({@link AttendanceApp}) over events from
 * {@code strata demo attendance}; it is killed with SIGKILL mid-stream and restarted with an empty
 * state directory (so its state comes back from its changelog topics on Strata); the final value per
 * key of its output topics must equal the ground truth the demo printed.
 */
final class StreamsScenario {
    static final int PARTITIONS = 3;
    static final int HALF = 20_000;
    static final ObjectMapper JSON = new ObjectMapper();

    static void all() {
        scenario("kafka streams attendance: running total and per venue per minute, kill -9 and restart",
                StreamsScenario::attendance);
    }

    static Process demo(String topic, int seed, long start, int rate, File out) throws Exception {
        ProcessBuilder pb = new ProcessBuilder(Main.strataBin, "demo", "attendance", "--topic", topic, "--rate",
                Integer.toString(rate), "--count", Integer.toString(HALF), "--seed", Integer.toString(seed),
                "--start-time", Long.toString(start), "--venues", "5")
                .redirectOutput(out).redirectError(ProcessBuilder.Redirect.DISCARD);
        pb.environment().put("STRATA_BROKERS", Main.bootstrap);
        pb.environment().put("RUST_LOG", "warn");
        return pb.start();
    }

    static JsonNode finish(Process p, File out, String what) throws Exception {
        check(p.waitFor(180, TimeUnit.SECONDS), "%s did not finish within 180 s", what);
        checkEq(0, p.exitValue(), what + " exit status");
        return JSON.readTree(Files.readString(out.toPath()));
    }

    static Process app(String appId, String input, String outTotal, String outMinutes, Path state, File log)
            throws Exception {
        List<String> cmd = new ArrayList<>(List.of(
                System.getProperty("java.home") + "/bin/java", "-XX:+UseSerialGC", "-Xmx768m",
                "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
                "-cp", System.getProperty("java.class.path"), AttendanceApp.class.getName(),
                Main.bootstrap, appId, input, outTotal, outMinutes, state.toString()));
        return new ProcessBuilder(cmd).redirectErrorStream(true)
                .redirectOutput(ProcessBuilder.Redirect.appendTo(log)).start();
    }

    /** Sum of the group's committed offsets on topic (0 if none). */
    static long committed(Admin admin, String group, String topic) throws Exception {
        Map<TopicPartition, OffsetAndMetadata> m = admin.listConsumerGroupOffsets(group)
                .partitionsToOffsetAndMetadata().get(30, TimeUnit.SECONDS);
        return m.entrySet().stream().filter(e -> e.getKey().topic().equals(topic) && e.getValue() != null)
                .mapToLong(e -> e.getValue().offset()).sum();
    }

    static long end(Admin admin, String topic) throws Exception {
        int partitions = admin.describeTopics(List.of(topic)).allTopicNames().get(30, TimeUnit.SECONDS).get(topic)
                .partitions().size();
        long sum = 0;
        for (int p = 0; p < partitions; p++) {
            TopicPartition tp = new TopicPartition(topic, p);
            sum += admin.listOffsets(Map.of(tp, OffsetSpec.latest())).partitionResult(tp).get(30, TimeUnit.SECONDS)
                    .offset();
        }
        return sum;
    }

    /** The latest value per key of a one-partition topic, read to its end (upsert semantics). */
    static Map<String, String> latest(String topic) throws Exception {
        Map<String, String> m = new TreeMap<>();
        try (KafkaConsumer<String, String> c = ClientScenarios.consumer(null, null)) {
            TopicPartition tp = new TopicPartition(topic, 0);
            c.assign(List.of(tp));
            c.seekToBeginning(List.of(tp));
            long endOffset = c.endOffsets(List.of(tp)).get(tp);
            long deadline = System.currentTimeMillis() + 60_000;
            while (c.position(tp) < endOffset && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) m.put(r.key(), r.value());
            }
            check(c.position(tp) >= endOffset, "could not read %s to its end %d", topic, endOffset);
        }
        return m;
    }

    static String attendance() throws Exception {
        if (Main.strataBin == null) throw new Main.Skip("no --strata binary given for the demo generator");
        String input = unique("streams-attendance"), appId = unique("streams-app");
        String outTotal = appId + "-out-total", outMinutes = appId + "-out-minutes";
        Path dir = Files.createTempDirectory("streams-");
        File log = dir.resolve("app.log").toFile();
        long t0 = (System.currentTimeMillis() - 15 * 60_000L) / 60_000L * 60_000L;
        Process app = null;
        String killedAt;
        try (Admin admin = Main.admin()) {
            Main.createTopic(admin, input, PARTITIONS);
            Main.createTopic(admin, outTotal, 1);
            Main.createTopic(admin, outMinutes, 1);
            File f1 = dir.resolve("truth1.json").toFile(), f2 = dir.resolve("truth2.json").toFile();
            JsonNode first = finish(demo(input, 7, t0, 0, f1), f1, "demo (first half)");
            checkEq((long) HALF, first.get("records").asLong(), "records of the first half");

            app = app(appId, input, outTotal, outMinutes, dir.resolve("state-1"), log);
            // The second half arrives while the application runs.
            Process second = demo(input, 8, t0 + HALF * 10L, 4000, f2);
            // Kill it once it has committed part of the input, well before the end.
            final Process running = app;
            boolean midway = Main.waitFor(120_000, () -> !running.isAlive() || committed(admin, appId, input) >= 12_000);
            check(app.isAlive(), "the application exited early: %s", ToolScenarios.tail(Files.readString(log.toPath())));
            check(midway, "the application committed only %d input offsets within 120 s: %s",
                    committed(admin, appId, input), ToolScenarios.tail(Files.readString(log.toPath())));
            app.destroyForcibly(); // SIGKILL
            app.waitFor(30, TimeUnit.SECONDS);
            long atKill = committed(admin, appId, input);
            killedAt = atKill + " of " + 2 * HALF + " input offsets committed";
            check(atKill < 2 * HALF, "the application finished before it was killed (%s)", killedAt);
            Files.writeString(log.toPath(), "==== killed with SIGKILL (" + killedAt + ") ====\n",
                    java.nio.file.StandardOpenOption.APPEND);

            // Restart with an empty state directory: the state must come back from the changelogs.
            app = app(appId, input, outTotal, outMinutes, dir.resolve("state-2"), log);
            JsonNode secondTruth = finish(second, f2, "demo (second half)");
            long total = 2L * HALF;
            checkEq(total, end(admin, input), "input records");
            String repartition = appId + "-total-repartition";
            final Process restarted = app;
            boolean caughtUp = Main.waitFor(180_000, () -> {
                if (!restarted.isAlive()) return true;
                if (committed(admin, appId, input) < total) return false;
                return committed(admin, appId, repartition) >= end(admin, repartition);
            });
            check(app.isAlive(), "the restarted application exited: %s", ToolScenarios.tail(Files.readString(log.toPath())));
            check(caughtUp, "the restarted application did not catch up within 180 s: input %d of %d, repartition %d of %d",
                    committed(admin, appId, input), total, committed(admin, appId, repartition),
                    end(admin, repartition));
            app.destroy(); // SIGTERM: a clean close
            check(app.waitFor(60, TimeUnit.SECONDS), "the application did not stop within 60 s of SIGTERM");

            // Compare the last upsert per key with the ground truth.
            long wantTotal = first.get("total_attendees").asLong() + secondTruth.get("total_attendees").asLong();
            Map<String, String> totals = latest(outTotal);
            checkEq(Map.of("total", wantTotal + "," + total), totals, "running total (sum,count)");
            Map<String, String> want = new TreeMap<>();
            for (JsonNode t : List.of(first, secondTruth)) {
                var venues = t.get("per_venue_minute").fields();
                while (venues.hasNext()) {
                    var v = venues.next();
                    var minutes = v.getValue().fields();
                    while (minutes.hasNext()) {
                        var m = minutes.next();
                        want.merge(v.getKey() + "@" + m.getKey(), m.getValue().asText(),
                                (a, b) -> Long.toString(Long.parseLong(a) + Long.parseLong(b)));
                    }
                }
            }
            Map<String, String> got = latest(outMinutes);
            checkEq(want, got, "attendees per venue per minute");

            // What Streams made of Strata: its internal topics and their cleanup policies.
            StringBuilder internal = new StringBuilder();
            for (String t : new java.util.TreeSet<>(admin.listTopics().names().get(30, TimeUnit.SECONDS))) {
                if (!t.startsWith(appId + "-") || t.startsWith(appId + "-out-")) continue;
                ConfigResource r = new ConfigResource(ConfigResource.Type.TOPIC, t);
                Config c = admin.describeConfigs(List.of(r)).all().get(30, TimeUnit.SECONDS).get(r);
                internal.append(' ').append(t.substring(appId.length() + 1)).append("(cleanup.policy=")
                        .append(c.get("cleanup.policy").value()).append(')');
            }
            System.out.println("# streams internal topics:" + internal);
            check(internal.toString().contains("minutes-store-changelog(cleanup.policy=compact,delete)"),
                    "windowed changelog not compact,delete:%s", internal);
            check(internal.toString().contains("total-store-changelog(cleanup.policy=compact)"),
                    "total changelog not compact:%s", internal);
            return killedAt + " at the kill; total " + wantTotal + " of " + total + " events and " + want.size()
                    + " venue-minutes equal the ground truth";
        } finally {
            if (app != null && app.isAlive()) app.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
            // Whatever Streams complained about is a finding: print it once per kind.
            if (log.exists()) {
                Set<String> seen = new LinkedHashSet<>();
                for (String l : Files.readAllLines(log.toPath())) {
                    if (l.contains("WARN") || l.contains("ERROR") || l.startsWith("state ") || l.startsWith("uncaught")
                            || l.startsWith("====") || l.startsWith("closed;")) {
                        seen.add(l.replaceAll("^\\[[^]]*\\] ", "").replaceAll(appId, "APP")
                                .replaceAll("\\d+ ms", "N ms").replaceAll("StreamThread-\\d+", "StreamThread-N"));
                    }
                }
                int shown = 0;
                for (String l : seen) {
                    if (shown++ < 40) System.out.println("# streams log: " + (l.length() > 400 ? l.substring(0, 400) : l));
                }
            }
            try (var paths = Files.walk(dir)) {
                paths.sorted(java.util.Comparator.reverseOrder()).forEach(q -> q.toFile().delete());
            }
        }
    }

    private StreamsScenario() {}
}
