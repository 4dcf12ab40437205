package strata.compat;

import static strata.compat.Main.check;
import static strata.compat.Main.checkEq;
import static strata.compat.Main.scenario;
import static strata.compat.Main.unique;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.GroupListing;
import org.apache.kafka.clients.admin.ListOffsetsResult;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.GroupState;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.UnsupportedVersionException;

/** The Admin client's everyday calls. */
final class AdminScenarios {
    static void all() {
        scenario("java admin createTopics/listTopics/describeTopics/deleteTopics", AdminScenarios::topics);
        scenario("java admin describeConfigs/incrementalAlterConfigs", AdminScenarios::configs);
        scenario("java admin describeTopics in pages (DescribeTopicPartitions, KIP-966)", AdminScenarios::topicPages);
        scenario("java admin describeProducers", AdminScenarios::producers);
        scenario("java admin createPartitions", AdminScenarios::partitions);
        scenario("java admin consumer groups: list/describe/listOffsets/alterOffsets/deleteOffsets/delete",
                AdminScenarios::groups);
        scenario("java admin describeCluster", AdminScenarios::cluster);
        scenario("java admin listOffsets earliest/latest/forTimestamp", AdminScenarios::listOffsets);
        scenario("java admin listOffsets maxTimestamp", AdminScenarios::listOffsetsMaxTimestamp);
        scenario("java admin describeLogDirs, alterReplicaLogDirs", AdminScenarios::logDirs);
        scenario("java admin deleteRecords", AdminScenarios::deleteRecords);
    }

    static String topics() throws Exception {
        String t = unique("java-admin-topic");
        try (Admin admin = Main.admin()) {
            admin.createTopics(List.of(new NewTopic(t, 3, (short) 1).configs(Map.of("retention.ms", "3600000"))))
                    .all().get(30, TimeUnit.SECONDS);
            try {
                admin.createTopics(List.of(new NewTopic(t, 1, (short) 1))).all().get(30, TimeUnit.SECONDS);
                throw new AssertionError("creating an existing topic succeeded");
            } catch (ExecutionException e) {
                checkEq("TopicExistsException", e.getCause().getClass().getSimpleName(), "error for an existing topic");
            }
            check(admin.listTopics().names().get(30, TimeUnit.SECONDS).contains(t), "listTopics lacks %s", t);
            TopicDescription d = admin.describeTopics(List.of(t)).allTopicNames().get(30, TimeUnit.SECONDS).get(t);
            checkEq(3, d.partitions().size(), "partitions in describeTopics");
            check(d.topicId() != null && !d.topicId().toString().equals("AAAAAAAAAAAAAAAAAAAAAA"), "topic id %s",
                    d.topicId());
            for (var p : d.partitions()) {
                check(p.leader() != null && p.replicas().size() == 1 && p.isr().size() == 1, "partition %s", p);
            }
            // By id as well as by name.
            var byId = admin.describeTopics(org.apache.kafka.common.TopicCollection.ofTopicIds(List.of(d.topicId())))
                    .allTopicIds().get(30, TimeUnit.SECONDS).get(d.topicId());
            checkEq(t, byId.name(), "describeTopics by id");
            admin.deleteTopics(List.of(t)).all().get(30, TimeUnit.SECONDS);
            check(Main.waitFor(20_000, () -> !admin.listTopics().names().get(30, TimeUnit.SECONDS).contains(t)),
                    "%s still listed 20 s after deleteTopics", t);
            try {
                admin.describeTopics(List.of(t)).allTopicNames().get(30, TimeUnit.SECONDS);
                throw new AssertionError("describeTopics of a deleted topic succeeded");
            } catch (ExecutionException e) {
                checkEq("UnknownTopicOrPartitionException", e.getCause().getClass().getSimpleName(),
                        "error for a deleted topic");
            }
        }
        return "";
    }

    /** describeTopics by name goes through DescribeTopicPartitions, here two partitions an answer at a time. */
    static String topicPages() throws Exception {
        String a = unique("java-admin-pages-a"), b = unique("java-admin-pages-b");
        try (Admin admin = Main.admin()) {
            Main.createTopic(admin, a, 5);
            Main.createTopic(admin, b, 2);
            var opts = new org.apache.kafka.clients.admin.DescribeTopicsOptions().partitionSizeLimitPerResponse(2);
            Map<String, TopicDescription> all = admin.describeTopics(List.of(a, b), opts).allTopicNames()
                    .get(30, TimeUnit.SECONDS);
            checkEq(5, all.get(a).partitions().size(), "partitions of " + a);
            checkEq(2, all.get(b).partitions().size(), "partitions of " + b);
            for (TopicDescription d : all.values()) {
                for (int i = 0; i < d.partitions().size(); i++) {
                    var p = d.partitions().get(i);
                    checkEq(i, p.partition(), "partition order of " + d.name());
                    check(p.leader() != null && p.replicas().size() == 1 && p.isr().size() == 1, "partition %s", p);
                }
            }
            try {
                admin.describeTopics(List.of(unique("java-admin-pages-missing")), opts).allTopicNames().get(30, TimeUnit.SECONDS);
                throw new AssertionError("describeTopics of a missing topic succeeded");
            } catch (ExecutionException e) {
                checkEq("UnknownTopicOrPartitionException", e.getCause().getClass().getSimpleName(), "missing topic");
            }
            admin.deleteTopics(List.of(a, b)).all().get(30, TimeUnit.SECONDS);
        }
        return "7 partitions of 2 topics, 2 an answer";
    }

    /** describeProducers: the idempotent producer (the default) shows with its epoch and last sequence. */
    static String producers() throws Exception {
        String t = unique("java-admin-producers");
        try (Admin admin = Main.admin()) {
            Main.createTopic(admin, t, 1);
            long before = System.currentTimeMillis();
            try (KafkaProducer<String, String> p = ClientScenarios.producer(null)) {
                for (int i = 0; i < 10; i++) p.send(new ProducerRecord<>(t, 0, "k", "v" + i)).get(30, TimeUnit.SECONDS);
            }
            TopicPartition tp = new TopicPartition(t, 0);
            var d = admin.describeProducers(List.of(tp)).all().get(30, TimeUnit.SECONDS).get(tp);
            checkEq(1, d.activeProducers().size(), "active producers");
            var s = d.activeProducers().get(0);
            checkEq(0, s.producerEpoch(), "producer epoch");
            checkEq(9, s.lastSequence(), "last sequence after 10 records sent one by one");
            check(s.lastTimestamp() >= before && s.lastTimestamp() <= System.currentTimeMillis(), "last timestamp %d",
                    s.lastTimestamp());
            check(s.coordinatorEpoch().isEmpty() && s.currentTransactionStartOffset().isEmpty(), "no transaction: %s", s);
            admin.deleteTopics(List.of(t)).all().get(30, TimeUnit.SECONDS);
            return "pid " + s.producerId();
        }
    }

    static Config describe(Admin admin, ConfigResource r) throws Exception {
        return admin.describeConfigs(List.of(r)).all().get(30, TimeUnit.SECONDS).get(r);
    }

    static String configs() throws Exception {
        String t = unique("java-admin-config");
        try (Admin admin = Main.admin()) {
            admin.createTopics(List.of(new NewTopic(t, 1, (short) 1).configs(Map.of("retention.ms", "3600000"))))
                    .all().get(30, TimeUnit.SECONDS);
            ConfigResource r = new ConfigResource(ConfigResource.Type.TOPIC, t);
            Config c = describe(admin, r);
            ConfigEntry ret = c.get("retention.ms");
            check(ret != null && ret.value().equals("3600000"), "retention.ms after create: %s", ret);
            checkEq(ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG, ret.source(), "source of an override");
            ConfigEntry seg = c.get("segment.bytes");
            check(seg != null && seg.value().equals("1073741824"), "default segment.bytes: %s", seg);
            check(seg.isDefault() || seg.source() != ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG,
                    "segment.bytes should not be an override: %s", seg);
            admin.incrementalAlterConfigs(Map.of(r, List.of(
                    new AlterConfigOp(new ConfigEntry("segment.bytes", "268435456"), AlterConfigOp.OpType.SET),
                    new AlterConfigOp(new ConfigEntry("retention.ms", ""), AlterConfigOp.OpType.DELETE))))
                    .all().get(30, TimeUnit.SECONDS);
            c = describe(admin, r);
            checkEq("268435456", c.get("segment.bytes").value(), "segment.bytes after SET");
            checkEq("604800000", c.get("retention.ms").value(), "retention.ms after DELETE (the default)");
            check(c.get("retention.ms").source() != ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG,
                    "retention.ms still an override after DELETE");
            try {
                admin.incrementalAlterConfigs(Map.of(r, List.of(new AlterConfigOp(
                        new ConfigEntry("retention.ms", "not-a-number"), AlterConfigOp.OpType.SET))))
                        .all().get(30, TimeUnit.SECONDS);
                throw new AssertionError("an invalid retention.ms was accepted");
            } catch (ExecutionException e) {
                checkEq("InvalidConfigurationException", e.getCause().getClass().getSimpleName(),
                        "error for an invalid value");
            }
            // validateOnly must not change anything.
            admin.incrementalAlterConfigs(Map.of(r, List.of(new AlterConfigOp(
                    new ConfigEntry("segment.bytes", "134217728"), AlterConfigOp.OpType.SET))),
                    new org.apache.kafka.clients.admin.AlterConfigsOptions().validateOnly(true))
                    .all().get(30, TimeUnit.SECONDS);
            checkEq("268435456", describe(admin, r).get("segment.bytes").value(), "segment.bytes after validateOnly");
            admin.deleteTopics(List.of(t)).all().get(30, TimeUnit.SECONDS);
        }
        return "";
    }

    static String partitions() throws Exception {
        String t = unique("java-admin-parts");
        try (Admin admin = Main.admin()) {
            Main.createTopic(admin, t, 2);
            admin.createPartitions(Map.of(t, NewPartitions.increaseTo(5))).all().get(30, TimeUnit.SECONDS);
            check(Main.waitFor(10_000, () -> admin.describeTopics(List.of(t)).allTopicNames().get(30, TimeUnit.SECONDS)
                    .get(t).partitions().size() == 5), "describeTopics does not show 5 partitions");
            try (KafkaProducer<String, String> p = ClientScenarios.producer(null)) {
                p.send(new ProducerRecord<>(t, 4, "k", "to the new partition")).get(30, TimeUnit.SECONDS);
            }
            var ends = admin.listOffsets(Map.of(new TopicPartition(t, 4), OffsetSpec.latest())).all()
                    .get(30, TimeUnit.SECONDS);
            checkEq(1L, ends.get(new TopicPartition(t, 4)).offset(), "end offset of the new partition");
            try {
                admin.createPartitions(Map.of(t, NewPartitions.increaseTo(3))).all().get(30, TimeUnit.SECONDS);
                throw new AssertionError("shrinking to 3 partitions succeeded");
            } catch (ExecutionException e) {
                checkEq("InvalidPartitionsException", e.getCause().getClass().getSimpleName(), "error for shrinking");
            }
        }
        return "";
    }

    static String groups() throws Exception {
        String t = unique("java-admin-groups"), g = unique("g-admin");
        try (Admin admin = Main.admin()) {
            Main.createTopic(admin, t, 2);
            ClientScenarios.produce(t, 40, "a", null);
            try (KafkaConsumer<String, String> c = ClientScenarios.consumer(g,
                    ClientScenarios.props(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "classic"))) {
                c.subscribe(List.of(t));
                int read = 0;
                long deadline = System.currentTimeMillis() + 60_000;
                while (read < 40 && System.currentTimeMillis() < deadline) read += c.poll(Duration.ofMillis(200)).count();
                checkEq(40, read, "records the group member read");
                c.commitSync(Duration.ofSeconds(30));
                // While the member is there: the group is stable with one member holding both partitions.
                ConsumerGroupDescription d = admin.describeConsumerGroups(List.of(g)).all().get(30, TimeUnit.SECONDS)
                        .get(g);
                checkEq(GroupState.STABLE, d.groupState(), "state with a member");
                checkEq(1, d.members().size(), "members");
                checkEq(2, d.members().iterator().next().assignment().topicPartitions().size(),
                        "partitions assigned to the member");
                check(d.coordinator() != null && d.coordinator().id() >= 0, "coordinator %s", d.coordinator());
                Collection<GroupListing> gs = admin.listGroups().all().get(30, TimeUnit.SECONDS);
                check(gs.stream().anyMatch(l -> l.groupId().equals(g)), "listGroups lacks %s", g);
                @SuppressWarnings("deprecation")
                var legacy = admin.listConsumerGroups().all().get(30, TimeUnit.SECONDS);
                check(legacy.stream().anyMatch(l -> l.groupId().equals(g)), "listConsumerGroups lacks %s", g);
            }
            Map<TopicPartition, OffsetAndMetadata> offs = admin.listConsumerGroupOffsets(g)
                    .partitionsToOffsetAndMetadata().get(30, TimeUnit.SECONDS);
            checkEq(40L, offs.values().stream().mapToLong(OffsetAndMetadata::offset).sum(), "sum of committed offsets");
            check(Main.waitFor(15_000, () -> admin.describeConsumerGroups(List.of(g)).all().get(30, TimeUnit.SECONDS)
                    .get(g).groupState() == GroupState.EMPTY), "group not Empty after its member left");
            TopicPartition p0 = new TopicPartition(t, 0), p1 = new TopicPartition(t, 1);
            admin.alterConsumerGroupOffsets(g, Map.of(p0, new OffsetAndMetadata(3), p1, new OffsetAndMetadata(4)))
                    .all().get(30, TimeUnit.SECONDS);
            offs = admin.listConsumerGroupOffsets(g).partitionsToOffsetAndMetadata().get(30, TimeUnit.SECONDS);
            checkEq(3L, offs.get(p0).offset(), "offset of p0 after alterConsumerGroupOffsets");
            checkEq(4L, offs.get(p1).offset(), "offset of p1 after alterConsumerGroupOffsets");
            admin.deleteConsumerGroupOffsets(g, Set.of(p1)).all().get(30, TimeUnit.SECONDS);
            offs = admin.listConsumerGroupOffsets(g).partitionsToOffsetAndMetadata().get(30, TimeUnit.SECONDS);
            check(offs.get(p1) == null && offs.get(p0).offset() == 3, "after deleteConsumerGroupOffsets(p1): %s", offs);
            // A member of the group starts at the altered offset.
            try (KafkaConsumer<String, String> c = ClientScenarios.consumer(g, null)) {
                c.assign(List.of(p0));
                ConsumerRecord<String, String> r = ClientScenarios.first(c);
                checkEq(3L, r.offset(), "first offset read after alterConsumerGroupOffsets");
            }
            admin.deleteConsumerGroups(List.of(g)).all().get(30, TimeUnit.SECONDS);
            check(admin.listGroups().all().get(30, TimeUnit.SECONDS).stream().noneMatch(l -> l.groupId().equals(g)),
                    "%s still listed after deleteConsumerGroups", g);
            offs = admin.listConsumerGroupOffsets(g).partitionsToOffsetAndMetadata().get(30, TimeUnit.SECONDS);
            check(offs.isEmpty(), "offsets left after deleteConsumerGroups: %s", offs);
        }
        return "";
    }

    static String cluster() throws Exception {
        try (Admin admin = Main.admin()) {
            DescribeClusterResult r = admin.describeCluster();
            var nodes = r.nodes().get(30, TimeUnit.SECONDS);
            checkEq(1, nodes.size(), "nodes");
            var node = nodes.iterator().next();
            checkEq(Main.bootstrap, node.host() + ":" + node.port(), "the node's address");
            String id = r.clusterId().get(30, TimeUnit.SECONDS);
            check(id != null && !id.isEmpty(), "cluster id %s", id);
            var controller = r.controller().get(30, TimeUnit.SECONDS);
            check(controller != null, "no controller");
            return "cluster " + id + ", node " + node.id() + ", controller " + controller.id();
        }
    }

    static String listOffsets() throws Exception {
        String t = unique("java-admin-offsets");
        long base = System.currentTimeMillis() - 600_000L;
        try (Admin admin = Main.admin()) {
            Main.createTopic(admin, t, 1);
            try (KafkaProducer<String, String> p = ClientScenarios.producer(null)) {
                for (int i = 0; i < 20; i++) p.send(new ProducerRecord<>(t, 0, base + i * 100L, "k", "v" + i));
                p.flush();
            }
            TopicPartition tp = new TopicPartition(t, 0);
            checkEq(0L, one(admin, tp, OffsetSpec.earliest()).offset(), "earliest");
            checkEq(20L, one(admin, tp, OffsetSpec.latest()).offset(), "latest");
            ListOffsetsResult.ListOffsetsResultInfo at = one(admin, tp, OffsetSpec.forTimestamp(base + 1000));
            checkEq(10L, at.offset(), "forTimestamp offset");
            checkEq(base + 1000, at.timestamp(), "forTimestamp timestamp");
            checkEq(-1L, one(admin, tp, OffsetSpec.forTimestamp(base + 10_000)).offset(), "forTimestamp after the end");
        }
        return "";
    }

    static ListOffsetsResult.ListOffsetsResultInfo one(Admin admin, TopicPartition tp, OffsetSpec spec) throws Exception {
        return admin.listOffsets(Map.of(tp, spec)).partitionResult(tp).get(30, TimeUnit.SECONDS);
    }

    /** A call the README does not claim: UnsupportedVersionException is a known gap, anything else a failure. */
    static <T> T claimedOrGap(String api, java.util.concurrent.Callable<T> call) throws Exception {
        try {
            return call.call();
        } catch (ExecutionException e) {
            if (e.getCause() instanceof UnsupportedVersionException) {
                throw new Main.KnownGap(api + " not supported by the broker: " + e.getCause().getMessage());
            }
            throw e;
        }
    }

    static String listOffsetsMaxTimestamp() throws Exception {
        String t = unique("java-admin-maxts");
        long base = System.currentTimeMillis() - 600_000L;
        try (Admin admin = Main.admin()) {
            Main.createTopic(admin, t, 1);
            try (KafkaProducer<String, String> p = ClientScenarios.producer(null)) {
                for (int i = 0; i < 10; i++) p.send(new ProducerRecord<>(t, 0, base + (i == 6 ? 99_000L : i), "k", "v"));
                p.flush();
            }
            TopicPartition tp = new TopicPartition(t, 0);
            var r = claimedOrGap("ListOffsets v7 (OffsetSpec.maxTimestamp, KIP-734)",
                    () -> one(admin, tp, OffsetSpec.maxTimestamp()));
            checkEq(6L, r.offset(), "offset of the largest timestamp");
            checkEq(base + 99_000L, r.timestamp(), "largest timestamp");
        }
        return "";
    }

    static String logDirs() throws Exception {
        try (Admin admin = Main.admin()) {
            int node = admin.describeCluster().nodes().get(30, TimeUnit.SECONDS).iterator().next().id();
            var dirs = claimedOrGap("DescribeLogDirs (key 35)",
                    () -> admin.describeLogDirs(List.of(node)).allDescriptions().get(30, TimeUnit.SECONDS));
            check(!dirs.get(node).isEmpty(), "no log dirs described");
            // alterReplicaLogDirs: to the one log dir (nothing to move), or to one the broker lacks.
            String t = unique("java-admin-logdir");
            Main.createTopic(admin, t, 1);
            String dir = dirs.get(node).keySet().iterator().next();
            var replica = new org.apache.kafka.common.TopicPartitionReplica(t, 0, node);
            admin.alterReplicaLogDirs(Map.of(replica, dir)).all().get(30, TimeUnit.SECONDS);
            try {
                admin.alterReplicaLogDirs(Map.of(replica, dir + "-elsewhere")).all().get(30, TimeUnit.SECONDS);
                throw new AssertionError("moving a replica to a log dir the broker lacks succeeded");
            } catch (ExecutionException e) {
                checkEq("LogDirNotFoundException", e.getCause().getClass().getSimpleName(), "unknown log dir");
            }
            admin.deleteTopics(List.of(t)).all().get(30, TimeUnit.SECONDS);
            return dirs.get(node).keySet().toString();
        }
    }

    static String deleteRecords() throws Exception {
        String t = unique("java-admin-delrec");
        try (Admin admin = Main.admin()) {
            Main.createTopic(admin, t, 1);
            ClientScenarios.produce(t, 10, "d", null);
            TopicPartition tp = new TopicPartition(t, 0);
            var low = claimedOrGap("DeleteRecords (key 21)", () -> admin.deleteRecords(
                    Map.of(tp, RecordsToDelete.beforeOffset(4))).lowWatermarks().get(tp).get(30, TimeUnit.SECONDS));
            checkEq(4L, low.lowWatermark(), "low watermark after deleteRecords");
            checkEq(4L, one(admin, tp, OffsetSpec.earliest()).offset(), "earliest after deleteRecords");
        }
        return "";
    }

    private AdminScenarios() {}
}
