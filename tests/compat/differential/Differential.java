// Differential tests: the same Kafka requests, of exact versions, sent to Apache Kafka and to Strata; every
// observation (error codes, offsets, version ranges, config values, group states) is compared.
//
//   java -cp <kafka classpath> Differential.java --kafka HOST:PORT --strata HOST:PORT
//        [--expected FILE] [--gaps FILE] [--readme README.md] [--json OUT.json]
//
// Requests are built with kafka-clients' generated message classes and sent over a plain socket, so each
// scenario chooses its API version and reads the raw error codes; record batches are encoded by hand
// (RecordBatch v2) so that they can be corrupted on purpose.
//
// Output: one line per observation, `same NAME` or `DIFF NAME: kafka=<...> strata=<...>` with its
// classification, then a summary. A difference is deliberate when expected-differences.txt lists it, a known
// gap when known-gaps.txt does; any other difference fails the run (exit 1). A scenario that could not run
// against either broker exits 2.

import java.io.*;
import java.net.*;
import java.nio.*;
import java.nio.charset.StandardCharsets;
import java.nio.file.*;
import java.util.*;
import java.util.function.*;
import java.util.regex.*;
import java.util.zip.CRC32C;

import org.apache.kafka.common.Uuid;
import org.apache.kafka.common.message.*;
import org.apache.kafka.common.protocol.*;
import org.apache.kafka.common.record.internal.MemoryRecords;
import org.apache.kafka.common.requests.RequestUtils;

public class Differential {

    // ---------------------------------------------------------------- connection

    /** One broker: a lazily (re)opened connection, exact-version requests, raw responses. */
    static final class Broker implements Closeable {
        final String name, host;
        final int port;
        Socket socket;
        DataInputStream in;
        OutputStream out;
        int correlation = 0;

        Broker(String name, String hostPort) {
            this.name = name;
            int i = hostPort.lastIndexOf(':');
            this.host = hostPort.substring(0, i);
            this.port = Integer.parseInt(hostPort.substring(i + 1));
        }

        void connect() throws IOException {
            if (socket != null) return;
            socket = new Socket();
            socket.connect(new InetSocketAddress(host, port), 5000);
            socket.setSoTimeout(20000);
            socket.setTcpNoDelay(true);
            in = new DataInputStream(new BufferedInputStream(socket.getInputStream()));
            out = socket.getOutputStream();
        }

        public void close() {
            if (socket != null) {
                try { socket.close(); } catch (IOException ignored) { }
            }
            socket = null;
        }

        /** Sends a request; its response, or null when the broker closed the connection instead. */
        ApiMessage call(ApiKeys key, int version, ApiMessage body) throws IOException {
            return call(key, (short) version, (short) version, body, true);
        }

        /** Sends without waiting for a response (Produce with acks=0). */
        void send(ApiKeys key, int version, ApiMessage body) throws IOException {
            call(key, (short) version, (short) version, body, false);
        }

        /**
         * headerVersionField: the API version written in the request header (may differ from the version the
         * body is encoded at, to test unsupported versions); the response is parsed at bodyVersion unless the
         * API is ApiVersions answering UNSUPPORTED_VERSION (then v0).
         */
        ApiMessage call(ApiKeys key, short headerVersionField, short bodyVersion, ApiMessage body, boolean expectResponse)
                throws IOException {
            connect();
            int corr = ++correlation;
            RequestHeaderData header = new RequestHeaderData()
                    .setRequestApiKey(key.id)
                    .setRequestApiVersion(headerVersionField)
                    .setClientId("strata-differential")
                    .setCorrelationId(corr);
            ByteBuffer buf = RequestUtils.serialize(header, key.requestHeaderVersion(bodyVersion), body, bodyVersion);
            byte[] frame = new byte[4 + buf.remaining()];
            ByteBuffer.wrap(frame).putInt(buf.remaining()).put(buf);
            try {
                out.write(frame);
                out.flush();
                if (!expectResponse) return null;
                int size = in.readInt();
                if (size < 4 || size > 64 << 20) throw new IOException("bad frame size " + size);
                byte[] resp = new byte[size];
                in.readFully(resp);
                ByteBuffer rb = ByteBuffer.wrap(resp);
                short respVersion = headerVersionField == bodyVersion ? bodyVersion : 0;
                ResponseHeaderData rh = new ResponseHeaderData(new ByteBufferAccessor(rb), key.responseHeaderVersion(respVersion));
                if (rh.correlationId() != corr) throw new IOException("correlation " + rh.correlationId() + " != " + corr);
                ApiMessage m = ApiMessageType.fromApiKey(key.id).newResponse();
                m.read(new ByteBufferAccessor(rb), respVersion);
                return m;
            } catch (EOFException | SocketException e) {
                close();
                return null;
            } catch (SocketTimeoutException e) {
                close();
                throw new IOException(name + ": no response to " + key + " v" + bodyVersion + " in 20 s");
            }
        }
    }

    // ---------------------------------------------------------------- record batches (v2, by hand)

    static final class Rec {
        final long timestamp;
        final byte[] key, value;
        Rec(long timestamp, String key, String value) {
            this.timestamp = timestamp;
            this.key = key == null ? null : key.getBytes(StandardCharsets.UTF_8);
            this.value = value == null ? null : value.getBytes(StandardCharsets.UTF_8);
        }
        Rec(long timestamp, byte[] value) { this.timestamp = timestamp; this.key = null; this.value = value; }
    }

    static final class Batch {
        long baseOffset = 0;
        long producerId = -1;
        short producerEpoch = -1;
        int baseSequence = -1;
        byte magic = 2;
        boolean corruptCrc = false;
        short attributes = 0;
        Integer countOverride = null;
        List<Rec> records = new ArrayList<>();

        Batch add(Rec r) { records.add(r); return this; }
        Batch idem(long pid, short epoch, int seq) { producerId = pid; producerEpoch = epoch; baseSequence = seq; return this; }

        byte[] encode() {
            ByteArrayOutputStream recs = new ByteArrayOutputStream();
            long base = records.isEmpty() ? 0 : records.get(0).timestamp;
            long max = base;
            for (int i = 0; i < records.size(); i++) {
                Rec r = records.get(i);
                max = Math.max(max, r.timestamp);
                ByteArrayOutputStream one = new ByteArrayOutputStream();
                one.write(0);                                   // attributes
                varlong(one, r.timestamp - base);
                varint(one, i);                                 // offset delta
                bytesField(one, r.key);
                bytesField(one, r.value);
                varint(one, 0);                                 // headers
                byte[] ob = one.toByteArray();
                varint(recs, ob.length);
                recs.writeBytes(ob);
            }
            byte[] body = recs.toByteArray();
            ByteBuffer b = ByteBuffer.allocate(61 + body.length);
            b.putLong(baseOffset);
            b.putInt(49 + body.length);                         // length after this field
            b.putInt(-1);                                       // partition leader epoch
            b.put(magic);
            int crcPos = b.position();
            b.putInt(0);
            b.putShort(attributes);                             // 0: no compression, CreateTime, not transactional
            b.putInt(Math.max(records.size() - 1, 0));          // last offset delta
            b.putLong(base);
            b.putLong(max);
            b.putLong(producerId);
            b.putShort(producerEpoch);
            b.putInt(baseSequence);
            b.putInt(countOverride != null ? countOverride : records.size());
            b.put(body);
            CRC32C crc = new CRC32C();
            crc.update(b.array(), crcPos + 4, b.capacity() - crcPos - 4);
            int c = (int) crc.getValue();
            b.putInt(crcPos, corruptCrc ? c ^ 0x5a5a5a5a : c);
            return b.array();
        }

        static void varint(ByteArrayOutputStream o, int v) { varlong(o, v); }
        static void varlong(ByteArrayOutputStream o, long v) {
            long z = (v << 1) ^ (v >> 63);
            while ((z & ~0x7FL) != 0) { o.write((int) ((z & 0x7F) | 0x80)); z >>>= 7; }
            o.write((int) z);
        }
        static void bytesField(ByteArrayOutputStream o, byte[] b) {
            if (b == null) { varint(o, -1); return; }
            varint(o, b.length);
            o.writeBytes(b);
        }
    }

    static MemoryRecords records(byte[]... batches) {
        int n = 0;
        for (byte[] b : batches) n += b.length;
        ByteBuffer all = ByteBuffer.allocate(n);
        for (byte[] b : batches) all.put(b);
        all.flip();
        return MemoryRecords.readableRecords(all);
    }

    // ---------------------------------------------------------------- observations

    /** What one scenario saw on one broker: name → canonical value. */
    static final class Obs {
        final LinkedHashMap<String, String> values = new LinkedHashMap<>();
        void put(String k, Object v) { values.put(k, String.valueOf(v)); }
    }

    static String err(short code) {
        Errors e = Errors.forCode(code);
        return e == Errors.UNKNOWN_SERVER_ERROR && code != -1 ? "code" + code : e.name();
    }

    static final String CLOSED = "connection-closed";

    interface Scenario { void run(Broker b, Obs o, String sfx) throws Exception; }

    // ---------------------------------------------------------------- helpers shared by scenarios

    static final short CT_V = 7, META_V = 12, PRODUCE_V = 9, FETCH_V = 12, LO_V = 6, DC_V = 4, JOIN_V = 9,
            SYNC_V = 5, HB_V = 4, LEAVE_V = 5, DG_V = 5, LG_V = 5, DEL_G_V = 2, OC_V = 8, OF_V = 8, IPID_V = 4,
            AC_V = 2, IAC_V = 1, CP_V = 3, DT_V = 5, FC_V = 4;

    static String createTopic(Broker b, String name, int partitions, Map<String, String> configs, boolean validateOnly, int rf)
            throws IOException {
        CreateTopicsRequestData.CreatableTopicConfigCollection cc = new CreateTopicsRequestData.CreatableTopicConfigCollection();
        configs.forEach((k, v) -> cc.add(new CreateTopicsRequestData.CreatableTopicConfig().setName(k).setValue(v)));
        CreateTopicsRequestData.CreatableTopicCollection tc = new CreateTopicsRequestData.CreatableTopicCollection();
        tc.add(new CreateTopicsRequestData.CreatableTopic().setName(name).setNumPartitions(partitions)
                .setReplicationFactor((short) rf).setConfigs(cc));
        ApiMessage r = b.call(ApiKeys.CREATE_TOPICS, CT_V,
                new CreateTopicsRequestData().setTopics(tc).setTimeoutMs(10000).setValidateOnly(validateOnly));
        if (r == null) return CLOSED;
        CreateTopicsResponseData.CreatableTopicResult t = ((CreateTopicsResponseData) r).topics().find(name);
        if (t == null) return "no-result";
        return err(t.errorCode());
    }

    static String createTopic(Broker b, String name, int partitions) throws IOException {
        String e = createTopic(b, name, partitions, Map.of(), false, 1);
        waitForLeader(b, name, partitions);
        return e;
    }

    static MetadataResponseData metadata(Broker b, String topic, boolean autoCreate) throws IOException {
        MetadataRequestData req = new MetadataRequestData().setAllowAutoTopicCreation(autoCreate);
        req.setTopics(topic == null ? null : List.of(new MetadataRequestData.MetadataRequestTopic().setName(topic)));
        return (MetadataResponseData) b.call(ApiKeys.METADATA, META_V, req);
    }

    /** Kafka creates topics asynchronously: wait until every partition has a leader. */
    static void waitForLeader(Broker b, String topic, int partitions) throws IOException {
        for (int i = 0; i < 100; i++) {
            MetadataResponseData m = metadata(b, topic, false);
            if (m != null) {
                MetadataResponseData.MetadataResponseTopic t = m.topics().find(topic);
                if (t != null && t.errorCode() == 0 && t.partitions().size() >= partitions
                        && t.partitions().stream().allMatch(p -> p.errorCode() == 0 && p.leaderId() >= 0)) return;
            }
            sleep(100);
        }
    }

    static void sleep(long ms) {
        try { Thread.sleep(ms); } catch (InterruptedException e) { Thread.currentThread().interrupt(); }
    }

    static ProduceResponseData.PartitionProduceResponse produce(Broker b, int version, short acks, String topic, int partition,
            MemoryRecords records) throws IOException {
        ProduceRequestData.TopicProduceDataCollection tc = new ProduceRequestData.TopicProduceDataCollection();
        tc.add(new ProduceRequestData.TopicProduceData().setName(topic).setPartitionData(List.of(
                new ProduceRequestData.PartitionProduceData().setIndex(partition).setRecords(records))));
        ProduceRequestData req = new ProduceRequestData().setAcks(acks).setTimeoutMs(10000).setTopicData(tc);
        if (acks == 0) {
            b.send(ApiKeys.PRODUCE, version, req);
            return null;
        }
        ProduceResponseData r = (ProduceResponseData) b.call(ApiKeys.PRODUCE, version, req);
        if (r == null) return null;
        for (ProduceResponseData.TopicProduceResponse t : r.responses())
            for (ProduceResponseData.PartitionProduceResponse p : t.partitionResponses()) return p;
        return new ProduceResponseData.PartitionProduceResponse().setErrorCode((short) -2);
    }

    /** Produce v13+: the topic named by its id (KIP-516) only. */
    static ProduceResponseData.PartitionProduceResponse produceById(Broker b, int version, Uuid id, int partition,
            MemoryRecords records) throws IOException {
        ProduceRequestData.TopicProduceDataCollection tc = new ProduceRequestData.TopicProduceDataCollection();
        tc.add(new ProduceRequestData.TopicProduceData().setTopicId(id).setPartitionData(List.of(
                new ProduceRequestData.PartitionProduceData().setIndex(partition).setRecords(records))));
        ProduceResponseData r = (ProduceResponseData) b.call(ApiKeys.PRODUCE, version,
                new ProduceRequestData().setAcks((short) -1).setTimeoutMs(10000).setTopicData(tc));
        if (r == null) return null;
        for (ProduceResponseData.TopicProduceResponse t : r.responses()) {
            if (!t.topicId().equals(id)) return new ProduceResponseData.PartitionProduceResponse().setErrorCode((short) -3);
            for (ProduceResponseData.PartitionProduceResponse p : t.partitionResponses()) return p;
        }
        return new ProduceResponseData.PartitionProduceResponse().setErrorCode((short) -2);
    }

    static String produceErr(Broker b, String topic, int partition, short acks, byte[]... batches) throws IOException {
        ProduceResponseData.PartitionProduceResponse p = produce(b, PRODUCE_V, acks, topic, partition, records(batches));
        return p == null ? CLOSED : err(p.errorCode());
    }

    static String produceResult(ProduceResponseData.PartitionProduceResponse p) {
        if (p == null) return CLOSED;
        if (p.errorCode() != 0) return err(p.errorCode());
        return "NONE base=" + p.baseOffset() + " logStart=" + p.logStartOffset();
    }

    static Batch batch(long ts, int n) {
        Batch bt = new Batch();
        for (int i = 0; i < n; i++) bt.add(new Rec(ts + i, "k" + i, "value-" + i));
        return bt;
    }

    static ListOffsetsResponseData.ListOffsetsPartitionResponse listOffset(Broker b, int version, String topic, int partition,
            long ts) throws IOException {
        ListOffsetsRequestData req = new ListOffsetsRequestData().setReplicaId(-1).setIsolationLevel((byte) 0)
                .setTopics(List.of(new ListOffsetsRequestData.ListOffsetsTopic().setName(topic).setPartitions(List.of(
                        new ListOffsetsRequestData.ListOffsetsPartition().setPartitionIndex(partition).setTimestamp(ts)
                                .setCurrentLeaderEpoch(-1)))));
        ListOffsetsResponseData r = (ListOffsetsResponseData) b.call(ApiKeys.LIST_OFFSETS, version, req);
        if (r == null) return null;
        return r.topics().get(0).partitions().get(0);
    }

    static String listOffsetResult(ListOffsetsResponseData.ListOffsetsPartitionResponse p) {
        if (p == null) return CLOSED;
        if (p.errorCode() != 0) return err(p.errorCode());
        return "offset=" + p.offset() + " timestamp=" + p.timestamp();
    }

    static FetchResponseData.PartitionData fetch(Broker b, int version, String topic, Uuid id, int partition, long offset)
            throws IOException {
        FetchRequestData req = new FetchRequestData().setReplicaId(-1).setMaxWaitMs(0).setMinBytes(0).setMaxBytes(1 << 20)
                .setIsolationLevel((byte) 0).setSessionId(0).setSessionEpoch(-1)
                .setTopics(List.of(new FetchRequestData.FetchTopic().setTopic(topic).setTopicId(id).setPartitions(List.of(
                        new FetchRequestData.FetchPartition().setPartition(partition).setFetchOffset(offset)
                                .setPartitionMaxBytes(1 << 20).setCurrentLeaderEpoch(-1).setLogStartOffset(-1)))));
        FetchResponseData r = (FetchResponseData) b.call(ApiKeys.FETCH, version, req);
        if (r == null) return null;
        if (r.errorCode() != 0) return new FetchResponseData.PartitionData().setErrorCode(r.errorCode());
        return r.responses().get(0).partitions().get(0);
    }

    static String fetchResult(FetchResponseData.PartitionData p) {
        if (p == null) return CLOSED;
        if (p.errorCode() != 0) return err(p.errorCode());
        StringBuilder s = new StringBuilder("NONE hw=" + p.highWatermark() + " logStart=" + p.logStartOffset());
        if (p.records() instanceof MemoryRecords mr && mr.sizeInBytes() > 0) {
            ByteBuffer bb = mr.buffer().duplicate();
            List<Long> bases = new ArrayList<>();
            while (bb.remaining() >= 12) {
                long base = bb.getLong();
                int len = bb.getInt();
                if (len < 0 || len > bb.remaining()) break;
                bases.add(base);
                bb.position(bb.position() + len);
            }
            s.append(" batches@").append(bases);
        } else {
            s.append(" empty");
        }
        return s.toString();
    }

    static Uuid topicId(Broker b, String topic) throws IOException {
        MetadataResponseData m = metadata(b, topic, false);
        if (m == null || m.topics().find(topic) == null) return Uuid.ZERO_UUID;
        return m.topics().find(topic).topicId();
    }

    static DescribeConfigsResponseData.DescribeConfigsResult describeConfigs(Broker b, byte type, String name, List<String> keys)
            throws IOException {
        DescribeConfigsResponseData r = (DescribeConfigsResponseData) b.call(ApiKeys.DESCRIBE_CONFIGS, DC_V,
                new DescribeConfigsRequestData().setResources(List.of(new DescribeConfigsRequestData.DescribeConfigsResource()
                        .setResourceType(type).setResourceName(name).setConfigurationKeys(keys))));
        return r == null ? null : r.results().get(0);
    }

    static String configValue(Broker b, String topic, String key) throws IOException {
        DescribeConfigsResponseData.DescribeConfigsResult r = describeConfigs(b, (byte) 2, topic, List.of(key));
        if (r == null) return CLOSED;
        if (r.errorCode() != 0) return err(r.errorCode());
        for (DescribeConfigsResponseData.DescribeConfigsResourceResult c : r.configs())
            if (c.name().equals(key)) return c.value() + " source=" + c.configSource();
        return "absent";
    }

    /**
     * The value of a topic config once it is no longer {@code before}, or after 5 s: Kafka answers an
     * alter once its controller committed it, and the broker that answers DescribeConfigs applies it a
     * moment later (Strata installs it before it answers).
     */
    static String configValueChangedFrom(Broker b, String topic, String key, String before) throws IOException {
        long deadline = System.nanoTime() + 5_000_000_000L;
        String now = configValue(b, topic, key);
        while (now.equals(before) && System.nanoTime() < deadline) {
            try {
                Thread.sleep(50);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                break;
            }
            now = configValue(b, topic, key);
        }
        return now;
    }

    // groups

    /** The topic the scenario's group members subscribe to. */
    static String subscribedTopic = "none";

    static byte[] consumerSubscription(String topic) {
        // ConsumerProtocolSubscription v0: version, topics [string], user data (null)
        byte[] t = topic.getBytes(StandardCharsets.UTF_8);
        ByteBuffer b = ByteBuffer.allocate(16 + t.length);
        b.putShort((short) 0).putInt(1).putShort((short) t.length).put(t).putInt(-1);
        return Arrays.copyOf(b.array(), b.position());
    }

    static JoinGroupResponseData join(Broker b, String group, String member, String protocolType, int sessionTimeout,
            boolean withProtocols) throws IOException {
        return join(b, group, member, null, protocolType, sessionTimeout, withProtocols);
    }

    static JoinGroupResponseData join(Broker b, String group, String member, String instance, String protocolType,
            int sessionTimeout, boolean withProtocols) throws IOException {
        JoinGroupRequestData.JoinGroupRequestProtocolCollection pc = new JoinGroupRequestData.JoinGroupRequestProtocolCollection();
        if (withProtocols) pc.add(new JoinGroupRequestData.JoinGroupRequestProtocol().setName("range").setMetadata(consumerSubscription(subscribedTopic)));
        return (JoinGroupResponseData) b.call(ApiKeys.JOIN_GROUP, JOIN_V, new JoinGroupRequestData().setGroupId(group)
                .setSessionTimeoutMs(sessionTimeout).setRebalanceTimeoutMs(10000).setMemberId(member)
                .setGroupInstanceId(instance).setProtocolType(protocolType).setProtocols(pc).setReason("differential"));
    }

    static String joinResult(JoinGroupResponseData j, String member) {
        if (j == null) return CLOSED;
        if (j.errorCode() != 0) return err(j.errorCode()) + (j.memberId().isEmpty() ? "" : " member-id-assigned");
        return "NONE generation=" + j.generationId() + " protocolType=" + j.protocolType() + " protocol=" + j.protocolName()
                + " leader=" + (j.leader().equals(member) ? "self" : j.leader()) + " members=" + j.members().size()
                + " skipAssignment=" + j.skipAssignment();
    }

    static String sync(Broker b, String group, int gen, String member, boolean withAssignment) throws IOException {
        List<SyncGroupRequestData.SyncGroupRequestAssignment> a = new ArrayList<>();
        if (withAssignment) a.add(new SyncGroupRequestData.SyncGroupRequestAssignment().setMemberId(member)
                .setAssignment(new byte[] {0, 0, 0, 0, 0, 0, -1, -1, -1, -1}));
        SyncGroupResponseData r = (SyncGroupResponseData) b.call(ApiKeys.SYNC_GROUP, SYNC_V, new SyncGroupRequestData()
                .setGroupId(group).setGenerationId(gen).setMemberId(member).setProtocolType("consumer")
                .setProtocolName("range").setAssignments(a));
        if (r == null) return CLOSED;
        if (r.errorCode() != 0) return err(r.errorCode());
        return "NONE protocol=" + r.protocolName() + " assignment=" + HexFormat.of().formatHex(r.assignment());
    }

    static String heartbeat(Broker b, String group, int gen, String member) throws IOException {
        return heartbeat(b, group, gen, member, null);
    }

    static String heartbeat(Broker b, String group, int gen, String member, String instance) throws IOException {
        HeartbeatResponseData r = (HeartbeatResponseData) b.call(ApiKeys.HEARTBEAT, HB_V,
                new HeartbeatRequestData().setGroupId(group).setGenerationId(gen).setMemberId(member).setGroupInstanceId(instance));
        return r == null ? CLOSED : err(r.errorCode());
    }

    static String describeGroup(Broker b, String group) throws IOException {
        return describeGroup(b, group, DG_V);
    }

    static String describeGroup(Broker b, String group, int version) throws IOException {
        DescribeGroupsResponseData r = (DescribeGroupsResponseData) b.call(ApiKeys.DESCRIBE_GROUPS, version,
                new DescribeGroupsRequestData().setGroups(List.of(group)));
        if (r == null) return CLOSED;
        DescribeGroupsResponseData.DescribedGroup g = r.groups().get(0);
        return err(g.errorCode()) + " state=" + g.groupState() + " protocolType=" + g.protocolType() + " protocol="
                + g.protocolData() + " members=" + g.members().size() + g.members().stream().map(m -> " metadata-bytes="
                + m.memberMetadata().length + " assignment-bytes=" + m.memberAssignment().length).sorted().reduce("", String::concat);
    }

    static String offsetCommit(Broker b, String group, int gen, String member, String topic, int partition, long offset)
            throws IOException {
        OffsetCommitResponseData r = (OffsetCommitResponseData) b.call(ApiKeys.OFFSET_COMMIT, OC_V, new OffsetCommitRequestData()
                .setGroupId(group).setGenerationIdOrMemberEpoch(gen).setMemberId(member)
                .setTopics(List.of(new OffsetCommitRequestData.OffsetCommitRequestTopic().setName(topic).setPartitions(List.of(
                        new OffsetCommitRequestData.OffsetCommitRequestPartition().setPartitionIndex(partition)
                                .setCommittedOffset(offset).setCommittedMetadata("m").setCommittedLeaderEpoch(-1))))));
        if (r == null) return CLOSED;
        return err(r.topics().get(0).partitions().get(0).errorCode());
    }

    static String offsetFetch(Broker b, String group, String topic, int partition) throws IOException {
        OffsetFetchRequestData req = new OffsetFetchRequestData().setGroupId(group).setRequireStable(false)
                .setTopics(topic == null ? null : List.of(new OffsetFetchRequestData.OffsetFetchRequestTopic().setName(topic)
                        .setPartitionIndexes(List.of(partition))));
        OffsetFetchResponseData r = (OffsetFetchResponseData) b.call(ApiKeys.OFFSET_FETCH, 7, req);
        if (r == null) return CLOSED;
        if (r.errorCode() != 0) return err(r.errorCode());
        StringBuilder s = new StringBuilder("NONE");
        for (OffsetFetchResponseData.OffsetFetchResponseTopic t : r.topics())
            for (OffsetFetchResponseData.OffsetFetchResponsePartition p : t.partitions())
                s.append(" ").append(p.partitionIndex()).append(":").append(err(p.errorCode())).append(",offset=")
                        .append(p.committedOffset()).append(",metadata=").append(p.metadata());
        if (r.topics().isEmpty()) s.append(" no-topics");
        return s.toString();
    }

    static String offsetFetchV8(Broker b, String group, String topic, int partition) throws IOException {
        OffsetFetchRequestData req = new OffsetFetchRequestData().setRequireStable(false).setGroups(List.of(
                new OffsetFetchRequestData.OffsetFetchRequestGroup().setGroupId(group).setTopics(topic == null ? null
                        : List.of(new OffsetFetchRequestData.OffsetFetchRequestTopics().setName(topic)
                                .setPartitionIndexes(List.of(partition))))));
        OffsetFetchResponseData r = (OffsetFetchResponseData) b.call(ApiKeys.OFFSET_FETCH, OF_V, req);
        if (r == null) return CLOSED;
        OffsetFetchResponseData.OffsetFetchResponseGroup g = r.groups().get(0);
        StringBuilder s = new StringBuilder(err(g.errorCode()));
        for (OffsetFetchResponseData.OffsetFetchResponseTopics t : g.topics())
            for (OffsetFetchResponseData.OffsetFetchResponsePartitions p : t.partitions())
                s.append(" ").append(p.partitionIndex()).append(":").append(err(p.errorCode())).append(",offset=")
                        .append(p.committedOffset()).append(",metadata=").append(p.metadata());
        if (g.topics().isEmpty()) s.append(" no-topics");
        return s.toString();
    }

    static String deleteGroup(Broker b, String group) throws IOException {
        return deleteGroup(b, group, DEL_G_V);
    }

    /** From v3 the answer carries an error message (compared as whether there is one). */
    static String deleteGroup(Broker b, String group, int version) throws IOException {
        DeleteGroupsResponseData r = (DeleteGroupsResponseData) b.call(ApiKeys.DELETE_GROUPS, version,
                new DeleteGroupsRequestData().setGroupsNames(List.of(group)));
        if (r == null) return CLOSED;
        DeleteGroupsResponseData.DeletableGroupResult g = r.results().iterator().next();
        return err(g.errorCode()) + (version >= 3 ? " message=" + g.errorMessage() : "");
    }

    static String leave(Broker b, String group, String member) throws IOException {
        LeaveGroupResponseData r = (LeaveGroupResponseData) b.call(ApiKeys.LEAVE_GROUP, LEAVE_V, new LeaveGroupRequestData()
                .setGroupId(group).setMembers(List.of(new LeaveGroupRequestData.MemberIdentity().setMemberId(member)
                        .setReason("differential"))));
        if (r == null) return CLOSED;
        String m = r.members().isEmpty() ? "no-members" : err(r.members().get(0).errorCode());
        return err(r.errorCode()) + " member=" + m;
    }

    static short initProducerId(Broker b, Obs o, String key, String txId, long pid, short epoch, long[] outPid, short[] outEpoch)
            throws IOException {
        InitProducerIdResponseData r = null;
        for (int i = 0; i < 50; i++) {
            r = (InitProducerIdResponseData) b.call(ApiKeys.INIT_PRODUCER_ID, IPID_V, new InitProducerIdRequestData()
                    .setTransactionalId(txId).setTransactionTimeoutMs(60000).setProducerId(pid).setProducerEpoch(epoch));
            // The transaction coordinator may still be loading (__transaction_state is created on first use).
            if (r == null || (r.errorCode() != Errors.COORDINATOR_NOT_AVAILABLE.code()
                    && r.errorCode() != Errors.COORDINATOR_LOAD_IN_PROGRESS.code()
                    && r.errorCode() != Errors.NOT_COORDINATOR.code())) break;
            sleep(200);
        }
        if (r == null) { o.put(key, CLOSED); return -1; }
        o.put(key, err(r.errorCode()) + (r.errorCode() == 0 ? " pid>=0:" + (r.producerId() >= 0) + " epoch=" + r.producerEpoch() : ""));
        outPid[0] = r.producerId();
        outEpoch[0] = r.producerEpoch();
        return r.errorCode();
    }

    // ---------------------------------------------------------------- scenarios

    static final LinkedHashMap<String, Scenario> SCENARIOS = new LinkedHashMap<>();

    static {
        SCENARIOS.put("apiversions", (b, o, sfx) -> {
            ApiVersionsResponseData r = (ApiVersionsResponseData) b.call(ApiKeys.API_VERSIONS, 3, new ApiVersionsRequestData()
                    .setClientSoftwareName("strata-differential").setClientSoftwareVersion("1"));
            o.put("apiversions.error", r == null ? CLOSED : err(r.errorCode()));
            if (r == null) return;
            for (ApiKeys k : ApiKeys.values()) {
                ApiVersionsResponseData.ApiVersion v = r.apiKeys().find(k.id);
                o.put("apiversions." + k.name, v == null ? "absent" : v.minVersion() + "-" + v.maxVersion());
            }
            for (ApiVersionsResponseData.ApiVersion v : r.apiKeys())
                if (!ApiKeys.hasId(v.apiKey())) o.put("apiversions.key" + v.apiKey(), v.minVersion() + "-" + v.maxVersion());
            // An ApiVersions request of a version the broker does not know: the v0-format answer (KIP-511).
            ApiVersionsResponseData u = (ApiVersionsResponseData) b.call(ApiKeys.API_VERSIONS, (short) 127, (short) 3,
                    new ApiVersionsRequestData().setClientSoftwareName("x").setClientSoftwareVersion("1"), true);
            o.put("apiversions.v127", u == null ? CLOSED : err(u.errorCode()) + " lists-ApiVersions:"
                    + (u.apiKeys().find(ApiKeys.API_VERSIONS.id) != null));
            // A version below the broker's minimum for another API: Kafka closes the connection.
            ApiMessage p = b.call(ApiKeys.METADATA, (short) 0, (short) 0, new MetadataRequestData().setTopics(List.of()), true);
            o.put("metadata.v0", p == null ? CLOSED : "answered");
            // v5 (KIP-1242): the client names the cluster and node it means to reach.
            MetadataResponseData md = metadata(b, null, false);
            String cluster = md == null ? "" : md.clusterId();
            int node = md == null || md.brokers().isEmpty() ? -1 : md.brokers().iterator().next().nodeId();
            BiFunction<String, Integer, String> v5 = (c, n) -> {
                try {
                    ApiVersionsResponseData a5 = (ApiVersionsResponseData) b.call(ApiKeys.API_VERSIONS, 5, new ApiVersionsRequestData()
                            .setClientSoftwareName("strata-differential").setClientSoftwareVersion("1").setClusterId(c).setNodeId(n));
                    return a5 == null ? CLOSED : err(a5.errorCode()) + " keys=" + !a5.apiKeys().isEmpty();
                } catch (IOException e) { throw new UncheckedIOException(e); }
            };
            o.put("apiversions.v5.unnamed", v5.apply(null, -1));
            o.put("apiversions.v5.right", v5.apply(cluster, node));
            o.put("apiversions.v5.wrong-cluster", v5.apply("not-" + cluster, node));
            o.put("apiversions.v5.wrong-node", v5.apply(cluster, node + 7));
            o.put("apiversions.v5.cluster-only", v5.apply(cluster, -1));
            o.put("apiversions.v5.wrong-cluster-only", v5.apply("not-" + cluster, -1));
            o.put("apiversions.v5.node-only", v5.apply(null, node));
            o.put("apiversions.v5.wrong-node-only", v5.apply(null, node + 7));
            o.put("apiversions.v5.then-metadata", metadata(b, null, false) == null ? CLOSED : "answered");
        });

        SCENARIOS.put("metadata", (b, o, sfx) -> {
            MetadataResponseData m = metadata(b, null, false);
            o.put("metadata.brokers", m == null ? CLOSED : m.brokers().size() + " controller-known=" + (m.controllerId() >= 0));
            String t = "nope-" + sfx;
            m = metadata(b, t, false);
            o.put("metadata.unknown-topic.no-autocreate", m == null ? CLOSED : err(m.topics().find(t).errorCode()));
            String a = "auto-" + sfx;
            m = metadata(b, a, true);
            o.put("metadata.unknown-topic.autocreate.first", m == null ? CLOSED : err(m.topics().find(a).errorCode()));
            waitForLeader(b, a, 1);
            m = metadata(b, a, false);
            o.put("metadata.unknown-topic.autocreate.then", m == null ? CLOSED : err(m.topics().find(a).errorCode())
                    + " partitions=" + m.topics().find(a).partitions().size());
            m = metadata(b, "bad/name" + sfx, true);
            o.put("metadata.invalid-name.autocreate", m == null ? CLOSED : err(m.topics().find("bad/name" + sfx).errorCode()));
            m = metadata(b, "__auto-internal-" + sfx, true);
            waitForLeader(b, "__auto-internal-" + sfx, 1);
            MetadataRequestData byId = new MetadataRequestData().setAllowAutoTopicCreation(false).setTopics(List.of(
                    new MetadataRequestData.MetadataRequestTopic().setTopicId(Uuid.randomUuid()).setName(null)));
            MetadataResponseData mi = (MetadataResponseData) b.call(ApiKeys.METADATA, META_V, byId);
            o.put("metadata.unknown-topic-id", mi == null ? CLOSED : mi.topics().isEmpty() ? "no-topics" : err(mi.topics().iterator().next().errorCode()));
            Uuid known = topicId(b, a);
            mi = (MetadataResponseData) b.call(ApiKeys.METADATA, META_V, new MetadataRequestData().setAllowAutoTopicCreation(false)
                    .setTopics(List.of(new MetadataRequestData.MetadataRequestTopic().setTopicId(known).setName(null))));
            o.put("metadata.by-topic-id", mi == null ? CLOSED : mi.topics().isEmpty() ? "no-topics" : err(mi.topics().iterator().next().errorCode())
                    + " name=" + a.equals(mi.topics().iterator().next().name()));
            m = metadata(b, "__consumer_offsets", false);
            o.put("metadata.consumer-offsets.internal", m == null ? CLOSED : m.topics().find("__consumer_offsets") == null
                    ? "absent" : err(m.topics().find("__consumer_offsets").errorCode()) + " internal="
                    + m.topics().find("__consumer_offsets").isInternal());
        });

        SCENARIOS.put("createtopics", (b, o, sfx) -> {
            String t = "ct-" + sfx;
            o.put("createtopics.ok", createTopic(b, t, 2, Map.of(), false, 1));
            waitForLeader(b, t, 2);
            o.put("createtopics.existing", createTopic(b, t, 2, Map.of(), false, 1));
            o.put("createtopics.existing.validate-only", createTopic(b, t, 2, Map.of(), true, 1));
            o.put("createtopics.invalid-name.chars", createTopic(b, "bad name!" + sfx, 1, Map.of(), false, 1));
            o.put("createtopics.invalid-name.dot", createTopic(b, ".", 1, Map.of(), false, 1));
            o.put("createtopics.invalid-name.dotdot", createTopic(b, "..", 1, Map.of(), false, 1));
            o.put("createtopics.invalid-name.empty", createTopic(b, "", 1, Map.of(), false, 1));
            o.put("createtopics.invalid-name.too-long", createTopic(b, "x".repeat(250), 1, Map.of(), false, 1));
            o.put("createtopics.name-249-chars", createTopic(b, ("l" + sfx + "x".repeat(249)).substring(0, 249), 1, Map.of(), false, 1));
            o.put("createtopics.partitions.0", createTopic(b, "p0-" + sfx, 0, Map.of(), false, 1));
            o.put("createtopics.partitions.-5", createTopic(b, "p5-" + sfx, -5, Map.of(), false, 1));
            o.put("createtopics.partitions.-1-default", createTopic(b, "pd-" + sfx, -1, Map.of(), false, 1));
            o.put("createtopics.replication.3", createTopic(b, "r3-" + sfx, 1, Map.of(), false, 3));
            o.put("createtopics.replication.0", createTopic(b, "r0-" + sfx, 1, Map.of(), false, 0));
            o.put("createtopics.replication.-2", createTopic(b, "rm2-" + sfx, 1, Map.of(), false, -2));
            o.put("createtopics.config.unknown-name", createTopic(b, "cu-" + sfx, 1, Map.of("no.such.config", "1"), false, 1));
            o.put("createtopics.config.not-a-number", createTopic(b, "cn-" + sfx, 1, Map.of("retention.ms", "abc"), false, 1));
            o.put("createtopics.config.out-of-range", createTopic(b, "cr-" + sfx, 1, Map.of("segment.bytes", "10"), false, 1));
            o.put("createtopics.config.bad-enum", createTopic(b, "ce-" + sfx, 1, Map.of("message.timestamp.type", "Sometime"), false, 1));
            o.put("createtopics.config.bad-cleanup-policy", createTopic(b, "cc-" + sfx, 1, Map.of("cleanup.policy", "shred"), false, 1));
            o.put("createtopics.config.valid", createTopic(b, "cv-" + sfx, 1, Map.of("retention.ms", "1000", "cleanup.policy", "compact"), false, 1));
            o.put("createtopics.internal-name", createTopic(b, "__consumer_offsets", 1, Map.of(), false, 1));
            CreateTopicsRequestData.CreatableTopicCollection asg = new CreateTopicsRequestData.CreatableTopicCollection();
            asg.add(new CreateTopicsRequestData.CreatableTopic().setName("asg-" + sfx).setNumPartitions(-1).setReplicationFactor((short) -1)
                    .setAssignments(new CreateTopicsRequestData.CreatableReplicaAssignmentCollection(List.of(
                            new CreateTopicsRequestData.CreatableReplicaAssignment().setPartitionIndex(0).setBrokerIds(List.of(999))).iterator())));
            CreateTopicsResponseData ar = (CreateTopicsResponseData) b.call(ApiKeys.CREATE_TOPICS, CT_V,
                    new CreateTopicsRequestData().setTopics(asg).setTimeoutMs(10000));
            o.put("createtopics.assignment-unknown-broker", ar == null ? CLOSED : err(ar.topics().find("asg-" + sfx).errorCode()));
            MetadataResponseData md = metadata(b, null, false);
            int self = md == null || md.brokers().isEmpty() ? 0 : md.brokers().iterator().next().nodeId();
            BiFunction<int[][], Integer, String> assign = (parts, n) -> {
                try {
                    String name = "as" + Arrays.deepHashCode(parts) + "-" + n + "-" + sfx;
                    CreateTopicsRequestData.CreatableReplicaAssignmentCollection ac = new CreateTopicsRequestData.CreatableReplicaAssignmentCollection();
                    for (int[] p : parts) {
                        List<Integer> ids = new ArrayList<>();
                        for (int i = 1; i < p.length; i++) ids.add(p[i] < 0 ? self : p[i]);
                        ac.add(new CreateTopicsRequestData.CreatableReplicaAssignment().setPartitionIndex(p[0]).setBrokerIds(ids));
                    }
                    CreateTopicsRequestData.CreatableTopicCollection c1 = new CreateTopicsRequestData.CreatableTopicCollection();
                    c1.add(new CreateTopicsRequestData.CreatableTopic().setName(name).setNumPartitions(n).setReplicationFactor((short) -1)
                            .setAssignments(ac));
                    CreateTopicsResponseData cr = (CreateTopicsResponseData) b.call(ApiKeys.CREATE_TOPICS, CT_V,
                            new CreateTopicsRequestData().setTopics(c1).setTimeoutMs(10000));
                    if (cr == null) return CLOSED;
                    CreateTopicsResponseData.CreatableTopicResult res = cr.topics().find(name);
                    return err(res.errorCode()) + (res.errorCode() == 0 ? " partitions=" + res.numPartitions() : "");
                } catch (IOException e) { throw new UncheckedIOException(e); }
            };
            o.put("createtopics.assignment-self", assign.apply(new int[][] {{0, -1}, {1, -1}}, -1));
            o.put("createtopics.assignment-and-count", assign.apply(new int[][] {{0, -1}}, 1));
            o.put("createtopics.assignment-gap", assign.apply(new int[][] {{0, -1}, {2, -1}}, -1));
            o.put("createtopics.assignment-twice-same-broker", assign.apply(new int[][] {{0, -1, -1}}, -1));
            o.put("createtopics.assignment-no-broker", assign.apply(new int[][] {{0}}, -1));
            o.put("createtopics.validate-only.ok", createTopic(b, "vo-" + sfx, 3, Map.of(), true, 1));
            MetadataResponseData m = metadata(b, "vo-" + sfx, false);
            o.put("createtopics.validate-only.not-created", m == null ? CLOSED : err(m.topics().find("vo-" + sfx).errorCode()));
            o.put("createtopics.validate-only.partitions.0", createTopic(b, "vp-" + sfx, 0, Map.of(), true, 1));
            o.put("createtopics.validate-only.bad-config", createTopic(b, "vc-" + sfx, 1, Map.of("retention.ms", "x"), true, 1));
            // The same topic twice in one request.
            CreateTopicsRequestData.CreatableTopicCollection tc = new CreateTopicsRequestData.CreatableTopicCollection();
            tc.add(new CreateTopicsRequestData.CreatableTopic().setName("dup-" + sfx).setNumPartitions(1).setReplicationFactor((short) 1));
            tc.add(new CreateTopicsRequestData.CreatableTopic().setName("dup-" + sfx).setNumPartitions(1).setReplicationFactor((short) 1));
            CreateTopicsResponseData r = (CreateTopicsResponseData) b.call(ApiKeys.CREATE_TOPICS, CT_V,
                    new CreateTopicsRequestData().setTopics(tc).setTimeoutMs(10000));
            o.put("createtopics.duplicate-in-request", r == null ? CLOSED : r.topics().size() + "x"
                    + err(r.topics().iterator().next().errorCode()));
            // What the v5+ answer carries for a created topic.
            String c = "cfg-" + sfx;
            CreateTopicsRequestData.CreatableTopicCollection one = new CreateTopicsRequestData.CreatableTopicCollection();
            one.add(new CreateTopicsRequestData.CreatableTopic().setName(c).setNumPartitions(-1).setReplicationFactor((short) -1));
            r = (CreateTopicsResponseData) b.call(ApiKeys.CREATE_TOPICS, CT_V, new CreateTopicsRequestData().setTopics(one).setTimeoutMs(10000));
            if (r == null) { o.put("createtopics.response", CLOSED); return; }
            CreateTopicsResponseData.CreatableTopicResult res = r.topics().find(c);
            o.put("createtopics.response", err(res.errorCode()) + " partitions=" + res.numPartitions() + " rf=" + res.replicationFactor()
                    + " topicId-set=" + !res.topicId().equals(Uuid.ZERO_UUID));
            o.put("createtopics.response.configs-listed", res.configs() == null ? "null" : res.configs().size() > 0);
        });

        SCENARIOS.put("deletetopics", (b, o, sfx) -> {
            String t = "dt-" + sfx;
            createTopic(b, t, 1);
            Function<String, String> del = name -> {
                try {
                    DeleteTopicsResponseData r = (DeleteTopicsResponseData) b.call(ApiKeys.DELETE_TOPICS, DT_V,
                            new DeleteTopicsRequestData().setTopicNames(List.of(name)).setTimeoutMs(10000));
                    return r == null ? CLOSED : err(r.responses().find(name).errorCode());
                } catch (IOException e) { throw new UncheckedIOException(e); }
            };
            o.put("deletetopics.ok", del.apply(t));
            o.put("deletetopics.unknown", del.apply("nope-" + sfx));
            o.put("deletetopics.again", del.apply(t));
            // (Not asked: deleting __consumer_offsets, which Kafka 4.4 does, would break the group scenarios.)
            DeleteTopicsResponseData dr = (DeleteTopicsResponseData) b.call(ApiKeys.DELETE_TOPICS, 6, new DeleteTopicsRequestData()
                    .setTopics(List.of(new DeleteTopicsRequestData.DeleteTopicState().setName(null).setTopicId(Uuid.randomUuid())))
                    .setTimeoutMs(10000));
            o.put("deletetopics.v6.unknown-id", dr == null ? CLOSED : err(dr.responses().iterator().next().errorCode()));
            MetadataResponseData m = metadata(b, t, false);
            o.put("deletetopics.then-metadata", m == null ? CLOSED : err(m.topics().find(t).errorCode()));
        });

        SCENARIOS.put("produce", (b, o, sfx) -> {
            String t = "pr-" + sfx;
            createTopic(b, t, 1);
            long now = System.currentTimeMillis();
            o.put("produce.ok", produceResult(produce(b, PRODUCE_V, (short) -1, t, 0, records(batch(now, 3).encode()))));
            o.put("produce.acks-1", produceResult(produce(b, PRODUCE_V, (short) 1, t, 0, records(batch(now, 2).encode()))));
            o.put("produce.two-batches", produceResult(produce(b, PRODUCE_V, (short) -1, t, 0,
                    records(batch(now, 2).encode(), batch(now, 1).encode()))));
            o.put("produce.acks-2", produceErr(b, t, 0, (short) 2, batch(now, 1).encode()));
            o.put("produce.acks--2", produceErr(b, t, 0, (short) -2, batch(now, 1).encode()));
            produce(b, PRODUCE_V, (short) 0, t, 0, records(batch(now, 4).encode()));
            sleep(300);
            o.put("produce.acks-0.then-latest", listOffsetResult(listOffset(b, LO_V, t, 0, -1)));
            o.put("produce.unknown-topic", produceErr(b, "nope-" + sfx, 0, (short) -1, batch(now, 1).encode()));
            o.put("produce.internal-topic", produceErr(b, "__consumer_offsets", 0, (short) -1, batch(now, 1).encode()));
            ProduceRequestData.TopicProduceDataCollection txc = new ProduceRequestData.TopicProduceDataCollection();
            txc.add(new ProduceRequestData.TopicProduceData().setName(t).setPartitionData(List.of(
                    new ProduceRequestData.PartitionProduceData().setIndex(0).setRecords(records(batch(now, 1).encode())))));
            ProduceResponseData txr = (ProduceResponseData) b.call(ApiKeys.PRODUCE, PRODUCE_V, new ProduceRequestData()
                    .setTransactionalId("tx-" + sfx).setAcks((short) -1).setTimeoutMs(10000).setTopicData(txc));
            o.put("produce.transactional-id-plain-batch", txr == null ? CLOSED
                    : err(txr.responses().iterator().next().partitionResponses().get(0).errorCode()));
            o.put("produce.unknown-partition", produceErr(b, t, 7, (short) -1, batch(now, 1).encode()));
            o.put("produce.negative-partition", produceErr(b, t, -1, (short) -1, batch(now, 1).encode()));
            Batch crc = batch(now, 2); crc.corruptCrc = true;
            o.put("produce.corrupt-crc", produceErr(b, t, 0, (short) -1, crc.encode()));
            Batch m1 = batch(now, 1); m1.magic = 1;
            o.put("produce.magic-1", produceErr(b, t, 0, (short) -1, m1.encode()));
            Batch m3 = batch(now, 1); m3.magic = 3;
            o.put("produce.magic-3", produceErr(b, t, 0, (short) -1, m3.encode()));
            Batch cnt = batch(now, 2); cnt.countOverride = 3;
            o.put("produce.record-count-too-high", produceErr(b, t, 0, (short) -1, cnt.encode()));
            Batch cnt0 = batch(now, 2); cnt0.countOverride = 0;
            o.put("produce.record-count-zero", produceErr(b, t, 0, (short) -1, cnt0.encode()));
            o.put("produce.truncated-header", produceErr(b, t, 0, (short) -1, Arrays.copyOf(batch(now, 3).encode(), 30)));
            byte[] trunc = Arrays.copyOf(batch(now, 3).encode(), 70);
            o.put("produce.truncated-batch", produceErr(b, t, 0, (short) -1, trunc));
            o.put("produce.empty-records", produceErr(b, t, 0, (short) -1, new byte[0]));
            Batch base = batch(now, 1); base.baseOffset = 1000;
            o.put("produce.nonzero-base-offset", produceResult(produce(b, PRODUCE_V, (short) -1, t, 0, records(base.encode()))));
            o.put("produce.timestamp-2h-ahead", produceErr(b, t, 0, (short) -1, batch(now + 2 * 3600_000L, 1).encode()));
            o.put("produce.timestamp-1y-ago", produceErr(b, t, 0, (short) -1, batch(now - 365L * 86400_000L, 1).encode()));
            o.put("produce.v2-below-min", b.call(ApiKeys.PRODUCE, (short) 2, (short) 3, new ProduceRequestData().setAcks((short) 1)
                    .setTimeoutMs(1000).setTopicData(new ProduceRequestData.TopicProduceDataCollection()), true) == null ? CLOSED : "answered");
            // max.message.bytes: a topic with 2000, a batch of ~3000 bytes.
            String small = "prs-" + sfx;
            createTopic(b, small, 1, Map.of("max.message.bytes", "2000"), false, 1);
            waitForLeader(b, small, 1);
            Batch big = new Batch().add(new Rec(now, new byte[3000]));
            o.put("produce.batch-over-max-message-bytes", produceErr(b, small, 0, (short) -1, big.encode()));
            Batch fits = new Batch().add(new Rec(now, new byte[1000]));
            o.put("produce.batch-under-max-message-bytes", produceErr(b, small, 0, (short) -1, fits.encode()));
            // LogAppendTime topics answer with the broker's time.
            String lat = "prl-" + sfx;
            createTopic(b, lat, 1, Map.of("message.timestamp.type", "LogAppendTime"), false, 1);
            waitForLeader(b, lat, 1);
            ProduceResponseData.PartitionProduceResponse p = produce(b, PRODUCE_V, (short) -1, lat, 0, records(batch(1000, 1).encode()));
            o.put("produce.log-append-time", p == null ? CLOSED : err(p.errorCode()) + " logAppendTime-set=" + (p.logAppendTimeMs() >= now));
            p = produce(b, PRODUCE_V, (short) -1, t, 0, records(batch(now, 1).encode()));
            o.put("produce.create-time.log-append-time", p == null ? CLOSED : String.valueOf(p.logAppendTimeMs()));
            // Every version up to 13; v13 names the topic by id (KIP-516).
            for (int v = 10; v <= 12; v++)
                o.put("produce.v" + v, produceResult(produce(b, v, (short) -1, t, 0, records(batch(now, 1).encode()))));
            Uuid id = topicId(b, t);
            o.put("produce.v13.by-id", produceResult(produceById(b, 13, id, 0, records(batch(now, 1).encode()))));
            o.put("produce.v13.by-id.unknown-partition", produceResult(produceById(b, 13, id, 5, records(batch(now, 1).encode()))));
            o.put("produce.v13.unknown-id", produceResult(produceById(b, 13, Uuid.randomUuid(), 0, records(batch(now, 1).encode()))));
            o.put("produce.v13.zero-id", produceResult(produceById(b, 13, Uuid.ZERO_UUID, 0, records(batch(now, 1).encode()))));
            o.put("produce.v13.then-latest", listOffsetResult(listOffset(b, LO_V, t, 0, -1)));
        });

        SCENARIOS.put("fetch", (b, o, sfx) -> {
            String t = "fe-" + sfx;
            createTopic(b, t, 1);
            long now = System.currentTimeMillis();
            produce(b, PRODUCE_V, (short) -1, t, 0, records(batch(now, 3).encode()));
            produce(b, PRODUCE_V, (short) -1, t, 0, records(batch(now, 2).encode()));
            o.put("fetch.from-0", fetchResult(fetch(b, FETCH_V, t, Uuid.ZERO_UUID, 0, 0)));
            o.put("fetch.mid-batch", fetchResult(fetch(b, FETCH_V, t, Uuid.ZERO_UUID, 0, 1)));
            o.put("fetch.at-end", fetchResult(fetch(b, FETCH_V, t, Uuid.ZERO_UUID, 0, 5)));
            o.put("fetch.above-end", fetchResult(fetch(b, FETCH_V, t, Uuid.ZERO_UUID, 0, 6)));
            o.put("fetch.far-above-end", fetchResult(fetch(b, FETCH_V, t, Uuid.ZERO_UUID, 0, 1000)));
            o.put("fetch.negative-offset", fetchResult(fetch(b, FETCH_V, t, Uuid.ZERO_UUID, 0, -5)));
            o.put("fetch.unknown-partition", fetchResult(fetch(b, FETCH_V, t, Uuid.ZERO_UUID, 0 + 9, 0)));
            o.put("fetch.unknown-topic", fetchResult(fetch(b, FETCH_V, "nope-" + sfx, Uuid.ZERO_UUID, 0, 0)));
            FetchRequestData rc = new FetchRequestData().setReplicaId(-1).setMaxWaitMs(0).setMinBytes(0).setMaxBytes(1 << 20)
                    .setIsolationLevel((byte) 1).setSessionId(0).setSessionEpoch(-1)
                    .setTopics(List.of(new FetchRequestData.FetchTopic().setTopic(t).setPartitions(List.of(
                            new FetchRequestData.FetchPartition().setPartition(0).setFetchOffset(0).setPartitionMaxBytes(1 << 20)
                                    .setCurrentLeaderEpoch(-1).setLogStartOffset(-1)))));
            FetchResponseData rcr = (FetchResponseData) b.call(ApiKeys.FETCH, FETCH_V, rc);
            o.put("fetch.read-committed", rcr == null ? CLOSED : fetchResult(rcr.responses().get(0).partitions().get(0))
                    + " lastStable=" + rcr.responses().get(0).partitions().get(0).lastStableOffset());
            FetchResponseData.PartitionData full = fetch(b, FETCH_V, t, Uuid.ZERO_UUID, 0, 0);
            o.put("fetch.last-stable-offset", full == null ? CLOSED : full.lastStableOffset());
            o.put("fetch.preferred-replica", full == null ? CLOSED : full.preferredReadReplica());
            Uuid id = topicId(b, t);
            o.put("fetch.v13.zero-id", fetchResult(fetch(b, 13, "", Uuid.ZERO_UUID, 0, 0)));
            o.put("fetch.v13.by-id", fetchResult(fetch(b, 13, "", id, 0, 0)));
            o.put("fetch.v13.unknown-id", fetchResult(fetch(b, 13, "", Uuid.randomUuid(), 0, 0)));
            for (int v = 14; v <= 18; v++) {
                o.put("fetch.v" + v + ".by-id", fetchResult(fetch(b, v, "", id, 0, 0)));
                o.put("fetch.v" + v + ".unknown-id", fetchResult(fetch(b, v, "", Uuid.randomUuid(), 0, 0)));
            }
        });

        SCENARIOS.put("retention", (b, o, sfx) -> {
            // Retention moves the log start: records older than retention.ms go (Kafka checks every second
            // here, log.retention.check.interval.ms=1000; Strata every 30 s).
            String t = "rt-" + sfx;
            createTopic(b, t, 1, Map.of("retention.ms", "600000", "segment.ms", "500"), false, 1);
            waitForLeader(b, t, 1);
            long old = System.currentTimeMillis() - 3600_000L;
            o.put("retention.produce-old", produceResult(produce(b, PRODUCE_V, (short) -1, t, 0, records(batch(old, 2).encode()))));
            sleep(1200);
            // A current record in a new segment (segment.ms has passed): only the first segment expires. (The
            // answer's log start offset depends on whether retention already ran: not compared.)
            o.put("retention.produce-current", produceResult(produce(b, PRODUCE_V, (short) -1, t, 0,
                    records(batch(System.currentTimeMillis(), 1).encode()))).replaceAll(" logStart=\\d+", ""));
            long deadline = System.currentTimeMillis() + 45_000;
            ListOffsetsResponseData.ListOffsetsPartitionResponse e = listOffset(b, LO_V, t, 0, -2);
            while (e != null && e.errorCode() == 0 && e.offset() == 0 && System.currentTimeMillis() < deadline) {
                sleep(250);
                e = listOffset(b, LO_V, t, 0, -2);
            }
            o.put("retention.earliest", listOffsetResult(e));
            o.put("retention.latest", listOffsetResult(listOffset(b, LO_V, t, 0, -1)));
            o.put("retention.fetch-below-start", fetchResult(fetch(b, FETCH_V, t, Uuid.ZERO_UUID, 0, 0)));
            ListOffsetsResponseData.ListOffsetsPartitionResponse byTime = listOffset(b, LO_V, t, 0, old - 1000);
            o.put("retention.listoffsets-old-timestamp", byTime == null || byTime.errorCode() != 0 || byTime.timestamp() < 0
                    ? listOffsetResult(byTime) : "offset=" + byTime.offset() + " timestamp-is-the-current-record="
                    + (byTime.timestamp() > old + 3000_000L));
            o.put("retention.produce-after", produceResult(produce(b, PRODUCE_V, (short) -1, t, 0,
                    records(batch(System.currentTimeMillis(), 1).encode()))));
        });

        SCENARIOS.put("listoffsets", (b, o, sfx) -> {
            String t = "lo-" + sfx;
            createTopic(b, t, 1);
            long t0 = System.currentTimeMillis() - 60_000;
            produce(b, PRODUCE_V, (short) -1, t, 0, records(new Batch().add(new Rec(t0, "a", "0")).add(new Rec(t0 + 100, "a", "1")).encode()));
            produce(b, PRODUCE_V, (short) -1, t, 0, records(new Batch().add(new Rec(t0 + 1000, "a", "2")).add(new Rec(t0 + 1100, "a", "3")).encode()));
            produce(b, PRODUCE_V, (short) -1, t, 0, records(new Batch().add(new Rec(t0 + 2000, "a", "4")).encode()));
            BiFunction<Long, Long, String> rel = (ts, dummy) -> {
                try {
                    ListOffsetsResponseData.ListOffsetsPartitionResponse p = listOffset(b, LO_V, t, 0, ts);
                    if (p == null || p.errorCode() != 0 || p.timestamp() < 0) return listOffsetResult(p);
                    return "offset=" + p.offset() + " timestamp=t0+" + (p.timestamp() - t0);
                } catch (IOException e) { throw new UncheckedIOException(e); }
            };
            o.put("listoffsets.earliest", rel.apply(-2L, 0L));
            o.put("listoffsets.latest", rel.apply(-1L, 0L));
            o.put("listoffsets.ts.first", rel.apply(t0, 0L));
            o.put("listoffsets.ts.before-all", rel.apply(t0 - 5000, 0L));
            o.put("listoffsets.ts.mid-first-batch", rel.apply(t0 + 50, 0L));
            o.put("listoffsets.ts.between-batches", rel.apply(t0 + 500, 0L));
            o.put("listoffsets.ts.last", rel.apply(t0 + 2000, 0L));
            o.put("listoffsets.ts.after-all", rel.apply(t0 + 5000, 0L));
            o.put("listoffsets.ts.invalid-negative", rel.apply(-7L, 0L));
            o.put("listoffsets.unknown-partition", listOffsetResult(listOffset(b, LO_V, t, 4, -1)));
            o.put("listoffsets.unknown-topic", listOffsetResult(listOffset(b, LO_V, "nope-" + sfx, 0, -1)));
            ListOffsetsResponseData.ListOffsetsPartitionResponse p = listOffset(b, 7, t, 0, -3);
            o.put("listoffsets.v7.max-timestamp", p == null ? CLOSED : p.errorCode() != 0 ? err(p.errorCode())
                    : "offset=" + p.offset() + " timestamp=t0+" + (p.timestamp() - t0));
            p = listOffset(b, 1, t, 0, -1);
            o.put("listoffsets.v1.latest", listOffsetResult(p));
            // The tiered-storage queries on a topic without remote storage (KIP-405, KIP-1005), each at the first
            // version that knows it and at the one before; v10 adds a timeout (KIP-1075).
            for (int v = 7; v <= 11; v++) {
                final int ver = v;
                Function<Long, String> at = ts -> {
                    try {
                        ListOffsetsResponseData.ListOffsetsPartitionResponse q = listOffset(b, ver, t, 0, ts);
                        return q == null ? CLOSED : q.errorCode() != 0 ? err(q.errorCode())
                                : "offset=" + q.offset() + " timestamp=" + q.timestamp() + " epoch=" + q.leaderEpoch();
                    } catch (IOException e) { throw new UncheckedIOException(e); }
                };
                o.put("listoffsets.v" + v + ".earliest", at.apply(-2L));
                o.put("listoffsets.v" + v + ".earliest-local", at.apply(-4L));
                o.put("listoffsets.v" + v + ".latest-tiered", at.apply(-5L));
                o.put("listoffsets.v" + v + ".earliest-pending-upload", at.apply(-6L));
                o.put("listoffsets.v" + v + ".unknown-special", at.apply(-9L));
            }
            o.put("listoffsets.v10.unknown-partition", listOffsetResult(listOffset(b, 10, t, 3, -4)));
        });

        SCENARIOS.put("describeconfigs", (b, o, sfx) -> {
            String t = "dc-" + sfx;
            createTopic(b, t, 1);
            DescribeConfigsResponseData.DescribeConfigsResult r = describeConfigs(b, (byte) 2, t, null);
            if (r == null) { o.put("describeconfigs.topic", CLOSED); return; }
            o.put("describeconfigs.topic.error", err(r.errorCode()));
            TreeMap<String, String> seen = new TreeMap<>();
            for (DescribeConfigsResponseData.DescribeConfigsResourceResult c : r.configs())
                seen.put(c.name(), "value=" + c.value() + " source=" + c.configSource() + " readOnly=" + c.readOnly()
                        + " sensitive=" + c.isSensitive() + " type=" + c.configType());
            // One observation per config name that either broker reports (the other side reports "absent").
            for (Map.Entry<String, String> e : seen.entrySet()) o.put("describeconfigs.topic." + e.getKey(), e.getValue());
            o.values.put("describeconfigs.topic.*names", String.join(",", seen.keySet()));
            r = describeConfigs(b, (byte) 2, t, List.of("retention.ms", "no.such.config"));
            o.put("describeconfigs.topic.selected-keys", r == null ? CLOSED : err(r.errorCode()) + " "
                    + r.configs().stream().map(c -> c.name()).sorted().toList());
            DescribeConfigsResponseData syn = (DescribeConfigsResponseData) b.call(ApiKeys.DESCRIBE_CONFIGS, DC_V,
                    new DescribeConfigsRequestData().setIncludeSynonyms(true).setIncludeDocumentation(true)
                            .setResources(List.of(new DescribeConfigsRequestData.DescribeConfigsResource()
                                    .setResourceType((byte) 2).setResourceName(t).setConfigurationKeys(List.of("retention.ms")))));
            o.put("describeconfigs.synonyms-and-documentation", syn == null ? CLOSED : syn.results().get(0).configs().stream()
                    .map(c -> "synonyms=" + c.synonyms().stream().map(x -> x.name() + "=" + x.value() + "@" + x.source()).toList()
                            + " documented=" + (c.documentation() != null && !c.documentation().isEmpty())).toList());
            r = describeConfigs(b, (byte) 2, "nope-" + sfx, null);
            o.put("describeconfigs.unknown-topic", r == null ? CLOSED : err(r.errorCode()));
            r = describeConfigs(b, (byte) 2, "", null);
            o.put("describeconfigs.empty-topic-name", r == null ? CLOSED : err(r.errorCode()));
            MetadataResponseData m = metadata(b, null, false);
            String node = m == null || m.brokers().isEmpty() ? "1" : String.valueOf(m.brokers().iterator().next().nodeId());
            r = describeConfigs(b, (byte) 4, node, null);
            o.put("describeconfigs.broker", r == null ? CLOSED : err(r.errorCode()) + " has-configs=" + !r.configs().isEmpty());
            r = describeConfigs(b, (byte) 4, node, List.of("log.retention.hours", "num.partitions"));
            o.put("describeconfigs.broker.selected", r == null ? CLOSED : err(r.errorCode()) + " "
                    + r.configs().stream().map(c -> c.name() + "=" + c.value()).sorted().toList());
            r = describeConfigs(b, (byte) 4, "999", null);
            o.put("describeconfigs.broker.other-id", r == null ? CLOSED : err(r.errorCode()));
            r = describeConfigs(b, (byte) 9, "x", null);
            o.put("describeconfigs.bad-resource-type", r == null ? CLOSED : err(r.errorCode()));
        });

        SCENARIOS.put("alterconfigs", (b, o, sfx) -> {
            String t = "ac-" + sfx;
            createTopic(b, t, 1);
            BiFunction<String, Map<String, String>, String> alter = (topic, cfg) -> alter(b, topic, cfg, false);
            String before = configValue(b, t, "retention.ms");
            o.put("alterconfigs.ok", alter.apply(t, Map.of("retention.ms", "100000")));
            o.put("alterconfigs.ok.value", configValueChangedFrom(b, t, "retention.ms", before));
            o.put("alterconfigs.replaces-others", alter.apply(t, Map.of("segment.ms", "200000")) + " retention.ms="
                    + configValue(b, t, "retention.ms"));
            o.put("alterconfigs.bad-value", alter.apply(t, Map.of("retention.ms", "abc")));
            o.put("alterconfigs.out-of-range", alter.apply(t, Map.of("segment.bytes", "10")));
            o.put("alterconfigs.unknown-name", alter.apply(t, Map.of("no.such.config", "1")));
            o.put("alterconfigs.unknown-topic", alter.apply("nope-" + sfx, Map.of("retention.ms", "1000")));
            o.put("alterconfigs.validate-only", alter(b, t, Map.of("retention.ms", "5000"), true) + " then "
                    + configValue(b, t, "retention.ms"));

            before = configValue(b, t, "retention.ms");
            o.put("incremental.set", incr(b, t, "retention.ms", (byte) 0, "300000"));
            o.put("incremental.set.value", configValueChangedFrom(b, t, "retention.ms", before));
            o.put("incremental.set.kept-other", configValue(b, t, "segment.ms"));
            before = configValue(b, t, "retention.ms");
            o.put("incremental.delete", incr(b, t, "retention.ms", (byte) 1, null));
            o.put("incremental.delete.value", configValueChangedFrom(b, t, "retention.ms", before));
            o.put("incremental.delete-not-set", incr(b, t, "retention.bytes", (byte) 1, null));
            o.put("incremental.bad-value", incr(b, t, "retention.ms", (byte) 0, "abc"));
            o.put("incremental.null-value-set", incr(b, t, "retention.ms", (byte) 0, null));
            o.put("incremental.out-of-range", incr(b, t, "segment.bytes", (byte) 0, "10"));
            o.put("incremental.unknown-name", incr(b, t, "no.such.config", (byte) 0, "1"));
            o.put("incremental.append-non-list", incr(b, t, "retention.ms", (byte) 2, "5"));
            before = configValue(b, t, "cleanup.policy");
            o.put("incremental.append-list", incr(b, t, "cleanup.policy", (byte) 2, "compact"));
            o.put("incremental.append-list.value", configValueChangedFrom(b, t, "cleanup.policy", before));
            before = configValue(b, t, "cleanup.policy");
            o.put("incremental.subtract-list", incr(b, t, "cleanup.policy", (byte) 3, "compact"));
            o.put("incremental.subtract-list.value", configValueChangedFrom(b, t, "cleanup.policy", before));
            o.put("incremental.bad-operation", incr(b, t, "retention.ms", (byte) 9, "5"));
            o.put("incremental.unknown-topic", incr(b, "nope-" + sfx, "retention.ms", (byte) 0, "5"));
        });

        SCENARIOS.put("createpartitions", (b, o, sfx) -> {
            String t = "cp-" + sfx;
            createTopic(b, t, 2);
            o.put("createpartitions.grow", createPartitions(b, t, 3, false));
            waitForLeader(b, t, 3);
            MetadataResponseData m = metadata(b, t, false);
            o.put("createpartitions.grow.metadata", m == null ? CLOSED : m.topics().find(t).partitions().size());
            o.put("createpartitions.same", createPartitions(b, t, 3, false));
            o.put("createpartitions.shrink", createPartitions(b, t, 1, false));
            o.put("createpartitions.validate-only", createPartitions(b, t, 5, true));
            m = metadata(b, t, false);
            o.put("createpartitions.validate-only.metadata", m == null ? CLOSED : m.topics().find(t).partitions().size());
            o.put("createpartitions.unknown-topic", createPartitions(b, "nope-" + sfx, 3, false));
        });

        SCENARIOS.put("groups", (b, o, sfx) -> {
            String t = "gt-" + sfx;
            createTopic(b, t, 1);
            subscribedTopic = t;
            String g = "g-" + sfx;
            FindCoordinatorResponseData fc = (FindCoordinatorResponseData) b.call(ApiKeys.FIND_COORDINATOR, FC_V,
                    new FindCoordinatorRequestData().setKeyType((byte) 0).setCoordinatorKeys(List.of(g)));
            o.put("findcoordinator.group", fc == null ? CLOSED : err(fc.coordinators().get(0).errorCode()));
            JoinGroupResponseData j = join(b, g, "", "consumer", 10000, true);
            o.put("join.no-member-id", joinResult(j, ""));
            String member = j == null ? "" : j.memberId();
            j = join(b, g, member, "consumer", 10000, true);
            o.put("join.with-member-id", joinResult(j, member));
            int gen = j == null ? -1 : j.generationId();
            o.put("describegroups.after-join", describeGroup(b, g));
            o.put("heartbeat.before-sync", heartbeat(b, g, gen, member));
            o.put("sync.bad-generation", sync(b, g, gen + 5, member, true));
            o.put("sync.unknown-member", sync(b, g, gen, "nobody", true));
            SyncGroupResponseData wp = (SyncGroupResponseData) b.call(ApiKeys.SYNC_GROUP, SYNC_V, new SyncGroupRequestData()
                    .setGroupId(g).setGenerationId(gen).setMemberId(member).setProtocolType("connect").setProtocolName("range")
                    .setAssignments(List.of()));
            o.put("sync.wrong-protocol-type", wp == null ? CLOSED : err(wp.errorCode()));
            wp = (SyncGroupResponseData) b.call(ApiKeys.SYNC_GROUP, SYNC_V, new SyncGroupRequestData()
                    .setGroupId(g).setGenerationId(gen).setMemberId(member).setProtocolType("consumer").setProtocolName("roundrobin")
                    .setAssignments(List.of()));
            o.put("sync.wrong-protocol-name", wp == null ? CLOSED : err(wp.errorCode()));
            o.put("sync.ok", sync(b, g, gen, member, true));
            o.put("describegroups.after-sync", describeGroup(b, g));
            o.put("describegroups.v6.after-sync", describeGroup(b, g, 6));
            o.put("heartbeat.ok", heartbeat(b, g, gen, member));
            o.put("heartbeat.bad-generation", heartbeat(b, g, gen + 5, member));
            o.put("heartbeat.unknown-member", heartbeat(b, g, gen, "nobody"));
            o.put("heartbeat.unknown-group", heartbeat(b, "nog-" + sfx, 1, "nobody"));
            o.put("join.other-protocol-type", joinResult(join(b, g, "", "connect", 10000, true), ""));
            o.put("join.no-protocols", joinResult(join(b, "g2-" + sfx, "", "consumer", 10000, false), ""));
            o.put("join.session-timeout-too-small", joinResult(join(b, "g3-" + sfx, "", "consumer", 1, true), ""));
            o.put("join.session-timeout-too-large", joinResult(join(b, "g4-" + sfx, "", "consumer", 3_600_000, true), ""));
            o.put("join.unknown-member-id", joinResult(join(b, g, "nobody", "consumer", 10000, true), "nobody"));
            o.put("join.empty-group-id", joinResult(join(b, "", "", "consumer", 10000, true), ""));

            o.put("offsetcommit.ok", offsetCommit(b, g, gen, member, t, 0, 42));
            o.put("offsetcommit.bad-generation", offsetCommit(b, g, gen + 5, member, t, 0, 43));
            OffsetCommitResponseData big = (OffsetCommitResponseData) b.call(ApiKeys.OFFSET_COMMIT, OC_V, new OffsetCommitRequestData()
                    .setGroupId(g).setGenerationIdOrMemberEpoch(gen).setMemberId(member)
                    .setTopics(List.of(new OffsetCommitRequestData.OffsetCommitRequestTopic().setName(t).setPartitions(List.of(
                            new OffsetCommitRequestData.OffsetCommitRequestPartition().setPartitionIndex(0)
                                    .setCommittedOffset(44).setCommittedMetadata("m".repeat(5000)).setCommittedLeaderEpoch(-1))))));
            o.put("offsetcommit.metadata-too-large", big == null ? CLOSED : err(big.topics().get(0).partitions().get(0).errorCode()));
            o.put("offsetcommit.negative-offset", offsetCommit(b, g, gen, member, t, 0, -7));
            o.put("offsetcommit.unknown-member", offsetCommit(b, g, gen, "nobody", t, 0, 43));
            o.put("offsetcommit.unknown-topic", offsetCommit(b, g, gen, member, "nope-" + sfx, 0, 43));
            o.put("offsetcommit.unknown-partition", offsetCommit(b, g, gen, member, t, 5, 43));
            o.put("offsetcommit.simple-to-new-group", offsetCommit(b, "simple-" + sfx, -1, "", t, 0, 7));
            o.put("offsetcommit.simple-to-active-group", offsetCommit(b, g, -1, "", t, 0, 7));
            o.put("offsetfetch.v7.committed", offsetFetch(b, g, t, 0));
            // v10: topics by id (KIP-848), for a simple consumer's group.
            String sg10 = "simple-v10-" + sfx;
            Uuid tid = topicId(b, t);
            BiFunction<Uuid, Integer, String> commit10 = (id, part) -> {
                try {
                    OffsetCommitResponseData r = (OffsetCommitResponseData) b.call(ApiKeys.OFFSET_COMMIT, 10, new OffsetCommitRequestData()
                            .setGroupId(sg10).setGenerationIdOrMemberEpoch(-1).setMemberId("")
                            .setTopics(List.of(new OffsetCommitRequestData.OffsetCommitRequestTopic().setTopicId(id).setPartitions(List.of(
                                    new OffsetCommitRequestData.OffsetCommitRequestPartition().setPartitionIndex(part)
                                            .setCommittedOffset(11).setCommittedMetadata("m10").setCommittedLeaderEpoch(-1))))));
                    if (r == null) return CLOSED;
                    OffsetCommitResponseData.OffsetCommitResponseTopic rt = r.topics().get(0);
                    return err(rt.partitions().get(0).errorCode()) + " id-echoed=" + rt.topicId().equals(id);
                } catch (IOException e) { throw new UncheckedIOException(e); }
            };
            o.put("offsetcommit.v10.by-id", commit10.apply(tid, 0));
            o.put("offsetcommit.v10.by-id.unknown-partition", commit10.apply(tid, 9));
            o.put("offsetcommit.v10.unknown-id", commit10.apply(Uuid.randomUuid(), 0));
            o.put("offsetcommit.v10.zero-id", commit10.apply(Uuid.ZERO_UUID, 0));
            BiFunction<Uuid, Boolean, String> fetch10 = (id, all) -> {
                try {
                    OffsetFetchRequestData req = new OffsetFetchRequestData().setRequireStable(false).setGroups(List.of(
                            new OffsetFetchRequestData.OffsetFetchRequestGroup().setGroupId(sg10).setTopics(all ? null
                                    : List.of(new OffsetFetchRequestData.OffsetFetchRequestTopics().setTopicId(id)
                                            .setPartitionIndexes(List.of(0, 1))))));
                    OffsetFetchResponseData r = (OffsetFetchResponseData) b.call(ApiKeys.OFFSET_FETCH, 10, req);
                    if (r == null) return CLOSED;
                    OffsetFetchResponseData.OffsetFetchResponseGroup gr = r.groups().get(0);
                    StringBuilder sb = new StringBuilder(err(gr.errorCode()));
                    for (OffsetFetchResponseData.OffsetFetchResponseTopics rt : gr.topics()) {
                        sb.append(" [id=").append(rt.topicId().equals(tid) ? "topic" : rt.topicId().equals(id) ? "asked" : rt.topicId().toString());
                        for (OffsetFetchResponseData.OffsetFetchResponsePartitions p : rt.partitions())
                            sb.append(" ").append(p.partitionIndex()).append(":").append(err(p.errorCode())).append(",offset=")
                                    .append(p.committedOffset()).append(",epoch=").append(p.committedLeaderEpoch())
                                    .append(",metadata=").append(p.metadata());
                        sb.append("]");
                    }
                    return sb.toString();
                } catch (IOException e) { throw new UncheckedIOException(e); }
            };
            o.put("offsetfetch.v10.by-id", fetch10.apply(tid, false));
            o.put("offsetfetch.v10.unknown-id", fetch10.apply(Uuid.randomUuid(), false));
            o.put("offsetfetch.v10.all", fetch10.apply(null, true));
            o.put("offsetfetch.v9.after-v10-commit", offsetFetchV8(b, sg10, t, 0));

            o.put("offsetfetch.v8.committed", offsetFetchV8(b, g, t, 0));
            o.put("offsetfetch.v8.simple", offsetFetchV8(b, "simple-" + sfx, t, 0));
            o.put("offsetfetch.v8.uncommitted-partition", offsetFetchV8(b, g, "nope-" + sfx, 0));
            o.put("offsetfetch.v8.unknown-group", offsetFetchV8(b, "nog-" + sfx, t, 0));
            o.put("offsetfetch.v8.unknown-group.all-topics", offsetFetchV8(b, "nog-" + sfx, null, 0));
            o.put("offsetfetch.v8.all-topics", offsetFetchV8(b, g, null, 0));

            ListGroupsResponseData lg = (ListGroupsResponseData) b.call(ApiKeys.LIST_GROUPS, LG_V, new ListGroupsRequestData());
            o.put("listgroups.all", lg == null ? CLOSED : err(lg.errorCode()) + " " + lg.groups().stream()
                    .filter(x -> x.groupId().equals(g)).map(x -> x.protocolType() + "/" + x.groupState() + "/" + x.groupType()).toList());
            lg = (ListGroupsResponseData) b.call(ApiKeys.LIST_GROUPS, LG_V, new ListGroupsRequestData().setStatesFilter(List.of("Empty")));
            o.put("listgroups.filter-empty", lg == null ? CLOSED : err(lg.errorCode()) + " has-stable-group="
                    + lg.groups().stream().anyMatch(x -> x.groupId().equals(g)) + " has-simple-group="
                    + lg.groups().stream().anyMatch(x -> x.groupId().equals("simple-" + sfx)));
            lg = (ListGroupsResponseData) b.call(ApiKeys.LIST_GROUPS, LG_V, new ListGroupsRequestData().setTypesFilter(List.of("consumer")));
            o.put("listgroups.filter-type-consumer", lg == null ? CLOSED : err(lg.errorCode()) + " has-classic-group="
                    + lg.groups().stream().anyMatch(x -> x.groupId().equals(g)));
            lg = (ListGroupsResponseData) b.call(ApiKeys.LIST_GROUPS, LG_V, new ListGroupsRequestData().setTypesFilter(List.of("classic")));
            o.put("listgroups.filter-type-classic", lg == null ? CLOSED : err(lg.errorCode()) + " has-classic-group="
                    + lg.groups().stream().anyMatch(x -> x.groupId().equals(g)));
            lg = (ListGroupsResponseData) b.call(ApiKeys.LIST_GROUPS, 2, new ListGroupsRequestData());
            o.put("listgroups.v2", lg == null ? CLOSED : err(lg.errorCode()) + " " + lg.groups().stream()
                    .filter(x -> x.groupId().equals(g)).map(x -> x.protocolType()).toList());

            OffsetDeleteResponseData od = offsetDelete(b, g, t);
            o.put("offsetdelete.subscribed", od == null ? CLOSED : err(od.errorCode()) + " partition="
                    + (od.topics().isEmpty() ? "-" : err(od.topics().iterator().next().partitions().iterator().next().errorCode())));
            od = offsetDelete(b, "nog-" + sfx, t);
            o.put("offsetdelete.unknown-group", od == null ? CLOSED : err(od.errorCode()));

            o.put("deletegroups.non-empty", deleteGroup(b, g));
            o.put("deletegroups.unknown", deleteGroup(b, "nog-" + sfx));
            o.put("deletegroups.v3.non-empty", deleteGroup(b, g, 3));
            o.put("deletegroups.v3.unknown", deleteGroup(b, "nog-" + sfx, 3));
            o.put("leavegroup.unknown-member", leave(b, g, "nobody"));
            o.put("leavegroup.ok", leave(b, g, member));
            o.put("describegroups.after-leave", describeGroup(b, g));
            o.put("heartbeat.after-leave", heartbeat(b, g, gen, member));
            o.put("offsetfetch.v8.after-leave", offsetFetchV8(b, g, t, 0));
            od = offsetDelete(b, g, t);
            o.put("offsetdelete.empty-group", od == null ? CLOSED : err(od.errorCode()) + " partition="
                    + (od.topics().isEmpty() ? "-" : err(od.topics().iterator().next().partitions().iterator().next().errorCode())));
            o.put("offsetfetch.v8.after-offsetdelete", offsetFetchV8(b, g, t, 0));
            o.put("deletegroups.empty", deleteGroup(b, g));
            o.put("describegroups.after-delete", describeGroup(b, g));
            o.put("describegroups.unknown", describeGroup(b, "nog-" + sfx));
            o.put("describegroups.v6.unknown", describeGroup(b, "nog-" + sfx, 6));
            o.put("describegroups.v6.simple", describeGroup(b, "simple-" + sfx, 6));
            o.put("deletegroups.simple", deleteGroup(b, "simple-" + sfx, 3));
        });

        SCENARIOS.put("rebalance", (b, o, sfx) -> {
            // Two members on two connections: the second member's join puts a Stable group into
            // PreparingRebalance until the first rejoins.
            String t = "rb-" + sfx;
            createTopic(b, t, 2);
            subscribedTopic = t;
            String g = "rb-" + sfx;
            JoinGroupResponseData j = join(b, g, "", "consumer", 10000, true);
            String a = j == null ? "" : j.memberId();
            j = join(b, g, a, "consumer", 10000, true);
            int gen1 = j == null ? -1 : j.generationId();
            o.put("rebalance.a.sync", sync(b, g, gen1, a, true));
            try (Broker b2 = new Broker(b.name + "-2", b.host + ":" + b.port)) {
                j = join(b2, g, "", "consumer", 10000, true);
                o.put("rebalance.b.first-join", joinResult(j, ""));
                String bm = j == null ? "" : j.memberId();
                java.util.concurrent.CompletableFuture<JoinGroupResponseData> bJoin = java.util.concurrent.CompletableFuture.supplyAsync(() -> {
                    try { return join(b2, g, bm, "consumer", 10000, true); } catch (IOException e) { throw new UncheckedIOException(e); }
                });
                sleep(1500); // long enough for the join to reach the coordinator on a loaded machine
                o.put("rebalance.b.join-waits", bJoin.isDone() ? "answered at once" : "waiting");
                o.put("rebalance.describe.preparing", describeGroup(b, g));
                o.put("rebalance.a.heartbeat", heartbeat(b, g, gen1, a));
                o.put("rebalance.a.commit-old-generation", offsetCommit(b, g, gen1, a, t, 0, 5));
                o.put("rebalance.a.sync-during-rebalance", sync(b, g, gen1, a, true));
                JoinGroupResponseData ja = join(b, g, a, "consumer", 10000, true);
                JoinGroupResponseData jb = bJoin.get(15, java.util.concurrent.TimeUnit.SECONDS);
                o.put("rebalance.a.rejoin", joinResult(ja, a).replace("leader=" + bm, "leader=other"));
                o.put("rebalance.b.join", joinResult(jb, bm).replace("leader=" + a, "leader=other"));
                int gen2 = ja == null ? -1 : ja.generationId();
                o.put("rebalance.describe.completing", describeGroup(b, g));
                o.put("rebalance.b.heartbeat-completing", heartbeat(b2, g, gen2, bm));
                o.put("rebalance.a.heartbeat-old-generation", heartbeat(b, g, gen1, a));
                boolean aLeads = ja != null && ja.leader().equals(a);
                Broker leader = aLeads ? b : b2, follower = aLeads ? b2 : b;
                String lm = aLeads ? a : bm, fm = aLeads ? bm : a;
                java.util.concurrent.CompletableFuture<String> fSync = java.util.concurrent.CompletableFuture.supplyAsync(() -> {
                    try { return sync(follower, g, gen2, fm, false); } catch (IOException e) { throw new UncheckedIOException(e); }
                });
                sleep(1000);
                o.put("rebalance.follower-sync-waits", fSync.isDone() ? "answered at once" : "waiting");
                List<SyncGroupRequestData.SyncGroupRequestAssignment> asg = List.of(
                        new SyncGroupRequestData.SyncGroupRequestAssignment().setMemberId(lm).setAssignment(new byte[] {1}),
                        new SyncGroupRequestData.SyncGroupRequestAssignment().setMemberId(fm).setAssignment(new byte[] {2, 2}));
                SyncGroupResponseData ls = (SyncGroupResponseData) leader.call(ApiKeys.SYNC_GROUP, SYNC_V, new SyncGroupRequestData()
                        .setGroupId(g).setGenerationId(gen2).setMemberId(lm).setProtocolType("consumer").setProtocolName("range")
                        .setAssignments(asg));
                o.put("rebalance.leader-sync", ls == null ? CLOSED : err(ls.errorCode()) + " assignment=" + HexFormat.of().formatHex(ls.assignment()));
                o.put("rebalance.follower-sync", fSync.get(15, java.util.concurrent.TimeUnit.SECONDS));
                o.put("rebalance.describe.stable", describeGroup(b, g));
                o.put("rebalance.leave-follower", leave(follower, g, fm));
                o.put("rebalance.describe.after-leave", describeGroup(b, g));
                o.put("rebalance.leader-heartbeat-after-leave", heartbeat(leader, g, gen2, lm));
            }
            // Static membership: a second join with the same instance id fences the first member.
            String sg = "static-" + sfx;
            j = join(b, sg, "", "i-1", "consumer", 10000, true);
            o.put("static.first-join", joinResult(j, j == null ? "" : j.memberId()));
            String s1 = j == null ? "" : j.memberId();
            int sgen = j == null ? -1 : j.generationId();
            o.put("static.sync", sync(b, sg, sgen, s1, true).replaceAll("assignment=\\w+", "assignment"));
            j = join(b, sg, "", "i-1", "consumer", 10000, true);
            String s2 = j == null ? "" : j.memberId();
            o.put("static.rejoin-same-instance", joinResult(j, s2) + " new-member-id=" + !s2.equals(s1));
            o.put("static.old-member-heartbeat", heartbeat(b, sg, sgen, s1, "i-1"));
            o.put("static.new-member-heartbeat", heartbeat(b, sg, j == null ? -1 : j.generationId(), s2, "i-1"));
            LeaveGroupResponseData lv = (LeaveGroupResponseData) b.call(ApiKeys.LEAVE_GROUP, LEAVE_V, new LeaveGroupRequestData()
                    .setGroupId(sg).setMembers(List.of(new LeaveGroupRequestData.MemberIdentity().setGroupInstanceId("i-1"))));
            o.put("static.leave-by-instance", lv == null ? CLOSED : err(lv.errorCode()) + " member="
                    + (lv.members().isEmpty() ? "-" : err(lv.members().get(0).errorCode())));
            o.put("static.describe.after-leave", describeGroup(b, sg));
        });

        SCENARIOS.put("idempotence", (b, o, sfx) -> {
            String t = "id-" + sfx;
            createTopic(b, t, 1);
            long[] pid = {-1};
            short[] epoch = {-1};
            initProducerId(b, o, "initproducerid.idempotent", null, -1, (short) -1, pid, epoch);
            long p = pid[0];
            short e = epoch[0];
            long now = System.currentTimeMillis();
            o.put("idempotent.seq-0", produceResult(produce(b, PRODUCE_V, (short) -1, t, 0, records(batch(now, 2).idem(p, e, 0).encode()))));
            o.put("idempotent.duplicate", produceResult(produce(b, PRODUCE_V, (short) -1, t, 0, records(batch(now, 2).idem(p, e, 0).encode()))));
            o.put("idempotent.gap", produceResult(produce(b, PRODUCE_V, (short) -1, t, 0, records(batch(now, 1).idem(p, e, 5).encode()))));
            o.put("idempotent.next", produceResult(produce(b, PRODUCE_V, (short) -1, t, 0, records(batch(now, 1).idem(p, e, 2).encode()))));
            o.put("idempotent.older-duplicate", produceResult(produce(b, PRODUCE_V, (short) -1, t, 0, records(batch(now, 2).idem(p, e, 0).encode()))));
            o.put("idempotent.overlapping", produceResult(produce(b, PRODUCE_V, (short) -1, t, 0, records(batch(now, 2).idem(p, e, 2).encode()))));
            o.put("idempotent.future-epoch", produceResult(produce(b, PRODUCE_V, (short) -1, t, 0, records(batch(now, 1).idem(p, (short) (e + 3), 0).encode()))));
            long[] pid2 = {-1};
            short[] epoch2 = {-1};
            initProducerId(b, o, "initproducerid.bump", null, p, (short) (e + 3), pid2, epoch2);
            o.put("initproducerid.bump.same-pid", pid2[0] == p);
            o.put("idempotent.stale-epoch", produceResult(produce(b, PRODUCE_V, (short) -1, t, 0, records(batch(now, 1).idem(p, e, 3).encode()))));
            o.put("idempotent.new-epoch-nonzero-seq", produceResult(produce(b, PRODUCE_V, (short) -1, t, 0,
                    records(batch(now, 1).idem(pid2[0], epoch2[0], 7).encode()))));
            o.put("idempotent.unknown-pid-seq-5", produceResult(produce(b, PRODUCE_V, (short) -1, t, 0,
                    records(batch(now, 1).idem(987654321L, (short) 0, 5).encode()))));
            o.put("idempotent.unknown-pid-seq-0", produceResult(produce(b, PRODUCE_V, (short) -1, t, 0,
                    records(batch(now, 1).idem(987654322L, (short) 0, 0).encode()))) .replaceAll("base=\\d+", "base=N"));
            initProducerId(b, o, "initproducerid.bad-epoch", null, p, (short) 999, new long[1], new short[1]);
            long[] tpid = {-1};
            short[] tepoch = {-1};
            initProducerId(b, o, "initproducerid.transactional", "tx-" + sfx, -1, (short) -1, tpid, tepoch);
            // A transactional batch whose partition was never added to the transaction.
            Batch txb = batch(now, 1).idem(tpid[0], tepoch[0], 0);
            txb.attributes = 0x10;
            ProduceRequestData.TopicProduceDataCollection txc = new ProduceRequestData.TopicProduceDataCollection();
            txc.add(new ProduceRequestData.TopicProduceData().setName(t).setPartitionData(List.of(
                    new ProduceRequestData.PartitionProduceData().setIndex(0).setRecords(records(txb.encode())))));
            ProduceResponseData txr = (ProduceResponseData) b.call(ApiKeys.PRODUCE, PRODUCE_V, new ProduceRequestData()
                    .setTransactionalId("tx-" + sfx).setAcks((short) -1).setTimeoutMs(10000).setTopicData(txc));
            o.put("produce.transactional-batch-not-in-transaction", txr == null ? CLOSED
                    : err(txr.responses().iterator().next().partitionResponses().get(0).errorCode()));
            // A transactional batch in a request without a transactional id.
            ProduceResponseData.PartitionProduceResponse np = produce(b, PRODUCE_V, (short) -1, t, 0, records(txb.encode()));
            o.put("produce.transactional-batch-without-transactional-id", np == null ? CLOSED : err(np.errorCode()));
            FindCoordinatorResponseData fc = (FindCoordinatorResponseData) b.call(ApiKeys.FIND_COORDINATOR, FC_V,
                    new FindCoordinatorRequestData().setKeyType((byte) 1).setCoordinatorKeys(List.of("tx-" + sfx)));
            o.put("findcoordinator.transaction", fc == null ? CLOSED : err(fc.coordinators().get(0).errorCode()));
            for (int v = 5; v <= 6; v++) {
                fc = (FindCoordinatorResponseData) b.call(ApiKeys.FIND_COORDINATOR, v,
                        new FindCoordinatorRequestData().setKeyType((byte) 0).setCoordinatorKeys(List.of("g-" + sfx)));
                o.put("findcoordinator.v" + v + ".group", fc == null ? CLOSED : err(fc.coordinators().get(0).errorCode()));
            }
            fc = (FindCoordinatorResponseData) b.call(ApiKeys.FIND_COORDINATOR, 6, new FindCoordinatorRequestData()
                    .setKeyType((byte) 2).setCoordinatorKeys(List.of("sg-" + sfx + ":" + Uuid.randomUuid() + ":0")));
            o.put("findcoordinator.v6.share", fc == null ? CLOSED : err(fc.coordinators().get(0).errorCode()));
            fc = (FindCoordinatorResponseData) b.call(ApiKeys.FIND_COORDINATOR, FC_V,
                    new FindCoordinatorRequestData().setKeyType((byte) 7).setCoordinatorKeys(List.of("x-" + sfx)));
            o.put("findcoordinator.unknown-key-type", fc == null ? CLOSED : err(fc.coordinators().get(0).errorCode()));
            InitProducerIdResponseData ip = (InitProducerIdResponseData) b.call(ApiKeys.INIT_PRODUCER_ID, 5,
                    new InitProducerIdRequestData().setTransactionalId(null).setTransactionTimeoutMs(60000)
                            .setProducerId(-1).setProducerEpoch((short) -1));
            o.put("initproducerid.v5", ip == null ? CLOSED : err(ip.errorCode()) + " pid>=0:" + (ip.producerId() >= 0)
                    + " epoch=" + ip.producerEpoch());
        });

        SCENARIOS.put("describeproducers", (b, o, sfx) -> {
            String t = "dp-" + sfx;
            createTopic(b, t, 2);
            long[] pid = {-1};
            short[] epoch = {-1};
            initProducerId(b, o, "describeproducers.init", null, -1, (short) -1, pid, epoch);
            long now = System.currentTimeMillis();
            produce(b, PRODUCE_V, (short) -1, t, 0, records(batch(now, 2).idem(pid[0], epoch[0], 0).encode()));
            produce(b, PRODUCE_V, (short) -1, t, 0, records(batch(now + 10, 3).idem(pid[0], epoch[0], 2).encode()));
            produce(b, PRODUCE_V, (short) -1, t, 1, records(batch(now, 1).encode()));      // not idempotent
            DescribeProducersRequestData.TopicRequestCollection dtc = new DescribeProducersRequestData.TopicRequestCollection();
            dtc.add(new DescribeProducersRequestData.TopicRequest().setName(t).setPartitionIndexes(List.of(0, 1, 9)));
            dtc.add(new DescribeProducersRequestData.TopicRequest().setName("nope-" + sfx).setPartitionIndexes(List.of(0)));
            DescribeProducersRequestData req = new DescribeProducersRequestData().setTopics(dtc);
            DescribeProducersResponseData r = null;
            // Kafka's replica manager may not lead a partition of a new topic yet: NOT_LEADER_OR_FOLLOWER, retried.
            for (int i = 0; i < 50; i++) {
                r = (DescribeProducersResponseData) b.call(ApiKeys.DESCRIBE_PRODUCERS, 0, req);
                if (r == null || r.topics().stream().flatMap(x -> x.partitions().stream())
                        .noneMatch(x -> x.errorCode() == Errors.NOT_LEADER_OR_FOLLOWER.code())) break;
                sleep(200);
            }
            if (r == null) { o.put("describeproducers", CLOSED); return; }
            for (DescribeProducersResponseData.TopicResponse tr : r.topics()) {
                String name = tr.name().equals(t) ? "topic" : "unknown-topic";
                for (DescribeProducersResponseData.PartitionResponse pr : tr.partitions()) {
                    StringBuilder v = new StringBuilder(err(pr.errorCode()));
                    for (DescribeProducersResponseData.ProducerState ps : pr.activeProducers())
                        v.append(" [pid-matches=").append(ps.producerId() == pid[0]).append(" epoch=").append(ps.producerEpoch())
                                .append(" lastSeq=").append(ps.lastSequence()).append(" lastTs=now+").append(ps.lastTimestamp() - now)
                                .append(" coordinatorEpoch=").append(ps.coordinatorEpoch())
                                .append(" txnStart=").append(ps.currentTxnStartOffset()).append("]");
                    o.put("describeproducers." + name + ".p" + pr.partitionIndex(), v);
                }
            }
        });

        SCENARIOS.put("describetopicpartitions", (b, o, sfx) -> {
            String a = "dtp-" + sfx + "-a", c = "dtp-" + sfx + "-c";
            createTopic(b, a, 3);
            createTopic(b, c, 1);
            class Dtp {
                String ask(String key, List<String> names, int limit, String curTopic, int curPartition) throws IOException {
                    DescribeTopicPartitionsRequestData req = new DescribeTopicPartitionsRequestData().setResponsePartitionLimit(limit)
                            .setTopics(names.stream().map(n -> new DescribeTopicPartitionsRequestData.TopicRequest().setName(n)).toList());
                    if (curTopic != null)
                        req.setCursor(new DescribeTopicPartitionsRequestData.Cursor().setTopicName(curTopic).setPartitionIndex(curPartition));
                    DescribeTopicPartitionsResponseData r = (DescribeTopicPartitionsResponseData) b.call(ApiKeys.DESCRIBE_TOPIC_PARTITIONS, 0, req);
                    if (r == null) { o.put(key, CLOSED); return null; }
                    List<String> topics = new ArrayList<>();
                    for (DescribeTopicPartitionsResponseData.DescribeTopicPartitionsResponseTopic t : r.topics()) {
                        StringBuilder v = new StringBuilder(t.name() == null ? "null" : t.name().replace(sfx, "SFX"));
                        v.append(":").append(err(t.errorCode())).append(" id-set=").append(!t.topicId().equals(Uuid.ZERO_UUID))
                                .append(" internal=").append(t.isInternal()).append(" ops=").append(t.topicAuthorizedOperations());
                        for (DescribeTopicPartitionsResponseData.DescribeTopicPartitionsResponsePartition p : t.partitions())
                            v.append(" p").append(p.partitionIndex()).append("(").append(err(p.errorCode()))
                                    .append(" leader-set=").append(p.leaderId() >= 0).append(" epoch=").append(p.leaderEpoch())
                                    .append(" replicas=").append(p.replicaNodes().size()).append(" isr=").append(p.isrNodes().size())
                                    .append(" elr=").append(p.eligibleLeaderReplicas()).append(" lastElr=").append(p.lastKnownElr())
                                    .append(" offline=").append(p.offlineReplicas()).append(")");
                        topics.add(v.toString());
                    }
                    DescribeTopicPartitionsResponseData.Cursor next = r.nextCursor();
                    String nextS = next == null ? "none" : next.topicName().replace(sfx, "SFX") + "/" + next.partitionIndex();
                    o.put(key, topics + " next=" + nextS);
                    return nextS;
                }
            }
            Dtp d = new Dtp();
            List<String> named = List.of(c, a, "dtp-" + sfx + "-missing", "bad/name");
            d.ask("describetopicpartitions.named.all", named, 2000, null, 0);
            d.ask("describetopicpartitions.named.page1", named, 2, null, 0);
            d.ask("describetopicpartitions.named.page2", named, 2, a, 2);
            d.ask("describetopicpartitions.named.page-at-topic-end", named, 3, null, 0);
            d.ask("describetopicpartitions.named.limit-0", named, 0, null, 0);
            d.ask("describetopicpartitions.cursor-not-listed", List.of(a), 10, c, 0);
            d.ask("describetopicpartitions.cursor-negative", List.of(a), 10, a, -1);
            d.ask("describetopicpartitions.cursor-beyond-partitions", List.of(a, c), 10, a, 7);
            d.ask("describetopicpartitions.internal", List.of("__consumer_offsets"), 1, null, 0);
            // All topics: from the cursor on (the topics after this scenario's differ between the brokers: only
            // whether the answer goes on is compared).
            d.ask("describetopicpartitions.all-from-cursor", List.of(), 3, a, 1);
            o.values.computeIfPresent("describetopicpartitions.all-from-cursor", (k, v) -> v.replaceAll(" next=(?!none).+$", " next=(a later topic)"));
        });

        SCENARIOS.put("offsetforleaderepoch", (b, o, sfx) -> {
            String t = "ofle-" + sfx, empty = "ofle-empty-" + sfx;
            createTopic(b, t, 1);
            createTopic(b, empty, 1);
            long now = System.currentTimeMillis();
            produce(b, PRODUCE_V, (short) -1, t, 0, records(batch(now, 3).encode()));
            class Ask {
                String at(int version, String topic, int partition, int current, int epoch) throws IOException {
                    OffsetForLeaderEpochRequestData.OffsetForLeaderTopicCollection tc = new OffsetForLeaderEpochRequestData.OffsetForLeaderTopicCollection();
                    tc.add(new OffsetForLeaderEpochRequestData.OffsetForLeaderTopic().setTopic(topic).setPartitions(List.of(
                            new OffsetForLeaderEpochRequestData.OffsetForLeaderPartition().setPartition(partition)
                                    .setCurrentLeaderEpoch(current).setLeaderEpoch(epoch))));
                    OffsetForLeaderEpochResponseData r = (OffsetForLeaderEpochResponseData) b.call(ApiKeys.OFFSET_FOR_LEADER_EPOCH, version,
                            new OffsetForLeaderEpochRequestData().setReplicaId(-1).setTopics(tc));
                    if (r == null) return CLOSED;
                    OffsetForLeaderEpochResponseData.EpochEndOffset e = r.topics().iterator().next().partitions().get(0);
                    return err(e.errorCode()) + " epoch=" + e.leaderEpoch() + " end=" + e.endOffset();
                }
            }
            Ask a = new Ask();
            // Kafka's leader may not have its epoch yet right after creation: wait for a plain answer.
            for (int i = 0; i < 50 && !a.at(4, t, 0, -1, 0).startsWith("NONE"); i++) sleep(100);
            o.put("offsetforleaderepoch.epoch-0", a.at(4, t, 0, -1, 0));
            o.put("offsetforleaderepoch.epoch-0.empty-topic", a.at(4, empty, 0, -1, 0));
            o.put("offsetforleaderepoch.epoch-0.current-0", a.at(4, t, 0, 0, 0));
            o.put("offsetforleaderepoch.epoch-1", a.at(4, t, 0, -1, 1));
            o.put("offsetforleaderepoch.epoch-undefined", a.at(4, t, 0, -1, -1));
            o.put("offsetforleaderepoch.current-newer", a.at(4, t, 0, 3, 0));
            o.put("offsetforleaderepoch.unknown-partition", a.at(4, t, 5, -1, 0));
            o.put("offsetforleaderepoch.unknown-topic", a.at(4, "nope-" + sfx, 0, -1, 0));
            o.put("offsetforleaderepoch.v2.epoch-0", a.at(2, t, 0, -1, 0));
            o.put("offsetforleaderepoch.v3.epoch-0", a.at(3, t, 0, -1, 0));
        });

        SCENARIOS.put("listconfigresources", (b, o, sfx) -> {
            String t = "lcr-" + sfx, g = "lcr-" + sfx;
            createTopic(b, t, 1);
            offsetCommit(b, g, -1, "", t, 0, 1);
            MetadataResponseData md = metadata(b, null, false);
            int node = md == null || md.brokers().isEmpty() ? -1 : md.brokers().iterator().next().nodeId();
            class Lcr {
                String ask(int version, List<Byte> types) throws IOException {
                    ListConfigResourcesRequestData req = new ListConfigResourcesRequestData();
                    if (version >= 1) req.setResourceTypes(types);
                    ListConfigResourcesResponseData r = (ListConfigResourcesResponseData) b.call(ApiKeys.LIST_CONFIG_RESOURCES, version, req);
                    if (r == null) return CLOSED;
                    // This scenario's resources by name, a broker's (named by its node id) as NODE (the other
                    // scenarios' topics are not compared).
                    TreeSet<String> mine = new TreeSet<>();
                    for (ListConfigResourcesResponseData.ConfigResource c : r.configResources()) {
                        String n = c.resourceName();
                        if (n.contains(sfx)) mine.add(c.resourceType() + ":" + n.replace(sfx, "SFX"));
                        else if (n.equals(String.valueOf(node)) && c.resourceType() != 2) mine.add(c.resourceType() + ":NODE");
                        else if (n.equals("__consumer_offsets")) mine.add(c.resourceType() + ":" + n);
                    }
                    return err(r.errorCode()) + " " + mine;
                }
            }
            Lcr l = new Lcr();
            o.put("listconfigresources.v1.all", l.ask(1, List.of()));
            o.put("listconfigresources.v1.topics", l.ask(1, List.of((byte) 2)));
            o.put("listconfigresources.v1.brokers", l.ask(1, List.of((byte) 4)));
            o.put("listconfigresources.v1.broker-loggers", l.ask(1, List.of((byte) 8)));
            o.put("listconfigresources.v1.client-metrics", l.ask(1, List.of((byte) 16)));
            o.put("listconfigresources.v1.groups", l.ask(1, List.of((byte) 32)));
            o.put("listconfigresources.v1.topics-and-groups", l.ask(1, List.of((byte) 2, (byte) 32)));
            o.put("listconfigresources.v1.unknown-type", l.ask(1, List.of((byte) 99)));
            o.put("listconfigresources.v0", l.ask(0, List.of()));
        });

        SCENARIOS.put("describecluster", (b, o, sfx) -> {
            DescribeClusterResponseData r = (DescribeClusterResponseData) b.call(ApiKeys.DESCRIBE_CLUSTER, 1,
                    new DescribeClusterRequestData().setEndpointType((byte) 1));
            o.put("describecluster.v1", r == null ? CLOSED : err(r.errorCode()) + " brokers=" + r.brokers().size()
                    + " controller-known=" + (r.controllerId() >= 0) + " cluster-id-set=" + (r.clusterId() != null && !r.clusterId().isEmpty()));
            r = (DescribeClusterResponseData) b.call(ApiKeys.DESCRIBE_CLUSTER, 1, new DescribeClusterRequestData().setEndpointType((byte) 2));
            o.put("describecluster.controllers-endpoint", r == null ? CLOSED : err(r.errorCode()));
            // DescribeLogDirs v5 (IsCordoned) of one topic: one log dir, not cordoned.
            String t = "ld-" + sfx;
            createTopic(b, t, 1);
            DescribeLogDirsRequestData.DescribableLogDirTopicCollection lt = new DescribeLogDirsRequestData.DescribableLogDirTopicCollection();
            lt.add(new DescribeLogDirsRequestData.DescribableLogDirTopic().setTopic(t).setPartitions(List.of(0)));
            for (int i = 0; i < 50; i++) {   // Kafka creates the log a moment after the topic has a leader
                DescribeLogDirsResponseData ld = (DescribeLogDirsResponseData) b.call(ApiKeys.DESCRIBE_LOG_DIRS, 4,
                        new DescribeLogDirsRequestData().setTopics(lt));
                if (ld == null || ld.results().stream().anyMatch(d -> !d.topics().isEmpty())) break;
                sleep(100);
            }
            // AlterReplicaLogDirs: to the one log dir (where the replica is) or to one the broker lacks.
            DescribeLogDirsResponseData cur = (DescribeLogDirsResponseData) b.call(ApiKeys.DESCRIBE_LOG_DIRS, 4,
                    new DescribeLogDirsRequestData().setTopics(lt));
            String logDir = cur == null || cur.results().isEmpty() ? "" : cur.results().get(0).logDir();
            BiFunction<String, Integer, String> move = (path, part) -> {
                try {
                    AlterReplicaLogDirsRequestData.AlterReplicaLogDirTopicCollection mt = new AlterReplicaLogDirsRequestData.AlterReplicaLogDirTopicCollection();
                    mt.add(new AlterReplicaLogDirsRequestData.AlterReplicaLogDirTopic().setName(t).setPartitions(List.of(part)));
                    AlterReplicaLogDirsRequestData.AlterReplicaLogDirCollection dc = new AlterReplicaLogDirsRequestData.AlterReplicaLogDirCollection();
                    dc.add(new AlterReplicaLogDirsRequestData.AlterReplicaLogDir().setPath(path).setTopics(mt));
                    AlterReplicaLogDirsResponseData ar = (AlterReplicaLogDirsResponseData) b.call(ApiKeys.ALTER_REPLICA_LOG_DIRS, 2,
                            new AlterReplicaLogDirsRequestData().setDirs(dc));
                    return ar == null ? CLOSED : err(ar.results().get(0).partitions().get(0).errorCode());
                } catch (IOException e) { throw new UncheckedIOException(e); }
            };
            o.put("alterreplicalogdirs.same-dir", move.apply(logDir, 0));
            o.put("alterreplicalogdirs.same-dir.unknown-partition", move.apply(logDir, 4));
            o.put("alterreplicalogdirs.other-dir", move.apply("/nonexistent-" + sfx, 0));
            o.put("alterreplicalogdirs.other-dir.unknown-partition", move.apply("/nonexistent-" + sfx, 4));
            for (int v = 4; v <= 5; v++) {
                DescribeLogDirsResponseData ld = (DescribeLogDirsResponseData) b.call(ApiKeys.DESCRIBE_LOG_DIRS, v,
                        new DescribeLogDirsRequestData().setTopics(lt));
                o.put("describelogdirs.v" + v, ld == null ? CLOSED : err(ld.errorCode()) + " dirs=" + ld.results().size()
                        + ld.results().stream().map(d -> " [" + err(d.errorCode()) + " cordoned=" + d.isCordoned() + " topics="
                                + d.topics().size() + " total-set=" + (d.totalBytes() > 0) + "]").reduce("", String::concat));
            }
        });
    }

    static String alter(Broker b, String topic, Map<String, String> cfg, boolean validateOnly) {
        try {
            AlterConfigsRequestData.AlterableConfigCollection cc = new AlterConfigsRequestData.AlterableConfigCollection();
            cfg.forEach((k, v) -> cc.add(new AlterConfigsRequestData.AlterableConfig().setName(k).setValue(v)));
            AlterConfigsRequestData.AlterConfigsResourceCollection rc = new AlterConfigsRequestData.AlterConfigsResourceCollection();
            rc.add(new AlterConfigsRequestData.AlterConfigsResource().setResourceType((byte) 2).setResourceName(topic).setConfigs(cc));
            AlterConfigsResponseData r = (AlterConfigsResponseData) b.call(ApiKeys.ALTER_CONFIGS, AC_V,
                    new AlterConfigsRequestData().setResources(rc).setValidateOnly(validateOnly));
            return r == null ? CLOSED : err(r.responses().get(0).errorCode());
        } catch (IOException e) { throw new UncheckedIOException(e); }
    }

    static String incr(Broker b, String topic, String name, byte op, String value) throws IOException {
        IncrementalAlterConfigsRequestData.AlterableConfigCollection cc = new IncrementalAlterConfigsRequestData.AlterableConfigCollection();
        cc.add(new IncrementalAlterConfigsRequestData.AlterableConfig().setName(name).setConfigOperation(op).setValue(value));
        IncrementalAlterConfigsRequestData.AlterConfigsResourceCollection rc = new IncrementalAlterConfigsRequestData.AlterConfigsResourceCollection();
        rc.add(new IncrementalAlterConfigsRequestData.AlterConfigsResource().setResourceType((byte) 2).setResourceName(topic).setConfigs(cc));
        IncrementalAlterConfigsResponseData r = (IncrementalAlterConfigsResponseData) b.call(ApiKeys.INCREMENTAL_ALTER_CONFIGS, IAC_V,
                new IncrementalAlterConfigsRequestData().setResources(rc));
        return r == null ? CLOSED : err(r.responses().get(0).errorCode());
    }

    static String createPartitions(Broker b, String topic, int count, boolean validateOnly) throws IOException {
        CreatePartitionsRequestData.CreatePartitionsTopicCollection tc = new CreatePartitionsRequestData.CreatePartitionsTopicCollection();
        tc.add(new CreatePartitionsRequestData.CreatePartitionsTopic().setName(topic).setCount(count).setAssignments(null));
        CreatePartitionsResponseData r = (CreatePartitionsResponseData) b.call(ApiKeys.CREATE_PARTITIONS, CP_V,
                new CreatePartitionsRequestData().setTopics(tc).setTimeoutMs(10000).setValidateOnly(validateOnly));
        return r == null ? CLOSED : err(r.results().get(0).errorCode());
    }

    static OffsetDeleteResponseData offsetDelete(Broker b, String group, String topic) throws IOException {
        OffsetDeleteRequestData.OffsetDeleteRequestTopicCollection tc = new OffsetDeleteRequestData.OffsetDeleteRequestTopicCollection();
        tc.add(new OffsetDeleteRequestData.OffsetDeleteRequestTopic().setName(topic).setPartitions(List.of(
                new OffsetDeleteRequestData.OffsetDeleteRequestPartition().setPartitionIndex(0))));
        return (OffsetDeleteResponseData) b.call(ApiKeys.OFFSET_DELETE, 0, new OffsetDeleteRequestData().setGroupId(group).setTopics(tc));
    }

    static void warmUp(Broker b, String sfx) throws IOException {
        // Kafka, the reference, must get there; Strata may lack a coordinator (no transactions yet).
        long deadline = System.currentTimeMillis() + (b.name.equals("kafka") ? 90_000 : 5_000);
        for (byte type : new byte[] {0, 1}) {
            while (System.currentTimeMillis() < deadline) {
                FindCoordinatorResponseData fc = (FindCoordinatorResponseData) b.call(ApiKeys.FIND_COORDINATOR, FC_V,
                        new FindCoordinatorRequestData().setKeyType(type).setCoordinatorKeys(List.of("warm-up-" + sfx)));
                if (fc == null || fc.coordinators().get(0).errorCode() != 0) { sleep(200); continue; }
                if (type == 0) {
                    DescribeGroupsResponseData d = (DescribeGroupsResponseData) b.call(ApiKeys.DESCRIBE_GROUPS, DG_V,
                            new DescribeGroupsRequestData().setGroups(List.of("warm-up-" + sfx)));
                    if (d == null || d.groups().get(0).errorCode() != 0) { sleep(200); continue; }
                }
                break;
            }
            if (type == 1) {
                // Strata has no transaction coordinator: the first answer is final there.
                InitProducerIdResponseData r = (InitProducerIdResponseData) b.call(ApiKeys.INIT_PRODUCER_ID, IPID_V,
                        new InitProducerIdRequestData().setTransactionalId("warm-up-" + sfx).setTransactionTimeoutMs(60000)
                                .setProducerId(-1).setProducerEpoch((short) -1));
                while (r != null && r.errorCode() != 0 && System.currentTimeMillis() < deadline
                        && (r.errorCode() == Errors.COORDINATOR_NOT_AVAILABLE.code() || r.errorCode() == Errors.NOT_COORDINATOR.code()
                            || r.errorCode() == Errors.COORDINATOR_LOAD_IN_PROGRESS.code())) {
                    sleep(200);
                    r = (InitProducerIdResponseData) b.call(ApiKeys.INIT_PRODUCER_ID, IPID_V,
                            new InitProducerIdRequestData().setTransactionalId("warm-up-" + sfx).setTransactionTimeoutMs(60000)
                                    .setProducerId(-1).setProducerEpoch((short) -1));
                }
            }
        }
    }

    // ---------------------------------------------------------------- README claims

    /** The README's protocol table: API name → "min-max". */
    static Map<String, String> readmeClaims(Path readme) throws IOException {
        Map<String, String> claims = new LinkedHashMap<>();
        boolean inTable = false;
        Pattern row = Pattern.compile("^\\|\\s*(\\w+)\\s*\\|\\s*(\\d+)(?:\\s*[–-]\\s*(\\d+))?\\s*\\|");
        for (String line : Files.readAllLines(readme)) {
            if (line.startsWith("## ")) inTable = line.trim().equals("## Kafka protocol");
            if (!inTable) continue;
            Matcher m = row.matcher(line);
            if (m.find()) claims.put(m.group(1), m.group(2) + "-" + (m.group(3) == null ? m.group(2) : m.group(3)));
        }
        return claims;
    }

    static String camelName(ApiKeys k) {
        return k.name; // e.g. "CreateTopics"
    }

    // ---------------------------------------------------------------- main

    /** A list of name globs, each with its one-sentence reason. */
    static LinkedHashMap<Pattern, String[]> loadList(Path p) throws IOException {
        LinkedHashMap<Pattern, String[]> m = new LinkedHashMap<>();
        if (p == null || !Files.exists(p)) return m;
        for (String line : Files.readAllLines(p)) {
            String s = line.strip();
            if (s.isEmpty() || s.startsWith("#")) continue;
            String[] parts = s.split("\\s+", 2);
            String glob = parts[0];
            Pattern pat = Pattern.compile(("\\Q" + glob + "\\E").replace("*", "\\E.*\\Q"));
            m.put(pat, new String[] {glob, parts.length > 1 ? parts[1] : ""});
        }
        return m;
    }

    static String[] match(LinkedHashMap<Pattern, String[]> list, String name, Set<String> used) {
        for (Map.Entry<Pattern, String[]> e : list.entrySet())
            if (e.getKey().matcher(name).matches()) { used.add(e.getValue()[0]); return e.getValue(); }
        return null;
    }

    static String json(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') b.append('\\').append(c);
            else if (c < 0x20) b.append(String.format("\\u%04x", (int) c));
            else b.append(c);
        }
        return b.append('"').toString();
    }

    public static void main(String[] args) throws Exception {
        Map<String, String> opt = new HashMap<>();
        for (int i = 0; i + 1 < args.length; i += 2) opt.put(args[i], args[i + 1]);
        if (!opt.containsKey("--kafka") || !opt.containsKey("--strata")) {
            System.err.println("usage: Differential --kafka HOST:PORT --strata HOST:PORT [--expected F] [--gaps F] [--readme F] [--json F] [--only NAME]");
            System.exit(2);
        }
        Broker kafka = new Broker("kafka", opt.get("--kafka"));
        Broker strata = new Broker("strata", opt.get("--strata"));
        LinkedHashMap<Pattern, String[]> expected = loadList(opt.containsKey("--expected") ? Path.of(opt.get("--expected")) : null);
        LinkedHashMap<Pattern, String[]> gaps = loadList(opt.containsKey("--gaps") ? Path.of(opt.get("--gaps")) : null);
        String sfx = Long.toString(System.currentTimeMillis() % 100_000_000L, 36);

        // Kafka creates __consumer_offsets and __transaction_state on first use: wait until both coordinators
        // answer, so that no scenario sees a coordinator still loading.
        for (Broker b : List.of(kafka, strata)) warmUp(b, sfx);

        List<String[]> rows = new ArrayList<>(); // name, kafka, strata, status, reason
        List<String> broken = new ArrayList<>();
        LinkedHashMap<String, String> strataApis = new LinkedHashMap<>();
        List<String> timings = new ArrayList<>();
        for (Map.Entry<String, Scenario> s : SCENARIOS.entrySet()) {
            if (opt.containsKey("--only") && !s.getKey().equals(opt.get("--only"))) continue;
            Obs ok = new Obs(), os = new Obs();
            String ek = null, es = null;
            long t0 = System.nanoTime();
            try { s.getValue().run(kafka, ok, sfx); } catch (Exception e) { ek = e.toString(); kafka.close(); }
            long t1 = System.nanoTime();
            try { s.getValue().run(strata, os, sfx); } catch (Exception e) { es = e.toString(); strata.close(); }
            long t2 = System.nanoTime();
            timings.add(String.format("%s kafka=%.1fs strata=%.1fs", s.getKey(), (t1 - t0) / 1e9, (t2 - t1) / 1e9));
            if (ek != null) {
                // Kafka is the reference: a scenario that fails against it is a harness bug.
                System.out.println("ERROR " + s.getKey() + ": against kafka: " + ek + (es != null ? "; against strata: " + es : ""));
                broken.add(s.getKey());
                continue;
            }
            if (es != null) os.put(s.getKey() + ".exception", es);
            if (s.getKey().equals("apiversions")) strataApis.putAll(os.values);
            LinkedHashSet<String> names = new LinkedHashSet<>(ok.values.keySet());
            names.addAll(os.values.keySet());
            for (String n : names) {
                if (n.endsWith(".*names")) continue;
                String kv = ok.values.getOrDefault(n, "absent"), sv = os.values.getOrDefault(n, "absent");
                rows.add(new String[] {n, kv, sv, kv.equals(sv) ? "same" : null, ""});
            }
        }

        // The README's claims against what Strata answers.
        if (opt.containsKey("--readme")) {
            for (Map.Entry<String, String> c : readmeClaims(Path.of(opt.get("--readme"))).entrySet()) {
                String answered = strataApis.getOrDefault("apiversions." + c.getKey(), "absent");
                String n = "readme." + c.getKey();
                rows.add(new String[] {n, c.getValue(), answered, c.getValue().equals(answered) ? "same" : null, ""});
            }
        }

        Set<String> usedExpected = new HashSet<>(), usedGaps = new HashSet<>();
        int same = 0, deliberate = 0, gap = 0, unexpected = 0;
        for (String[] r : rows) {
            if (r[3] != null) { same++; System.out.println("same " + r[0]); continue; }
            String[] e = match(expected, r[0], usedExpected);
            String[] g = e == null ? match(gaps, r[0], usedGaps) : null;
            String left = r[0].startsWith("readme.") ? "readme" : "kafka";
            String line = "DIFF " + r[0] + ": " + left + "=<" + r[1] + "> strata=<" + r[2] + ">";
            if (e != null) { deliberate++; r[3] = "deliberate"; r[4] = e[1]; System.out.println(line + "  (deliberate: " + e[1] + ")"); }
            else if (g != null) { gap++; r[3] = "known-gap"; r[4] = g[1]; System.out.println(line + "  (KNOWN GAP: " + g[1] + ")"); }
            else { unexpected++; r[3] = "unexpected"; System.out.println(line + "  (UNEXPECTED)"); }
        }
        List<String> stale = new ArrayList<>();
        if (!opt.containsKey("--only")) {
            for (String[] v : expected.values()) if (!usedExpected.contains(v[0])) stale.add("expected-differences.txt: " + v[0]);
            for (String[] v : gaps.values()) if (!usedGaps.contains(v[0])) stale.add("known-gaps.txt: " + v[0]);
        }
        System.out.println();
        System.out.println("differential: " + rows.size() + " observations: " + same + " same, " + deliberate + " deliberate, "
                + gap + " known gaps, " + unexpected + " unexpected, " + broken.size() + " scenarios could not run");
        if (gap > 0) {
            System.out.println("KNOWN GAPS (differences that are not done yet, not design choices):");
            for (String[] r : rows) if ("known-gap".equals(r[3])) System.out.println("  GAP " + r[0] + ": kafka=<" + r[1] + "> strata=<" + r[2] + ">");
        }
        System.out.println("time per scenario: " + String.join("; ", timings));
        for (String s : stale) System.out.println("stale entry (now the same, or no longer observed; remove it): " + s);

        if (opt.containsKey("--json")) {
            StringBuilder j = new StringBuilder("{\n  \"kafka\": " + json(opt.get("--kafka")) + ",\n  \"strata\": " + json(opt.get("--strata"))
                    + ",\n  \"summary\": {\"same\": " + same + ", \"deliberate\": " + deliberate + ", \"known_gaps\": " + gap
                    + ", \"unexpected\": " + unexpected + ", \"broken_scenarios\": " + broken.size() + "},\n  \"broken\": [");
            for (int i = 0; i < broken.size(); i++) j.append(i > 0 ? ", " : "").append(json(broken.get(i)));
            j.append("],\n  \"stale\": [");
            for (int i = 0; i < stale.size(); i++) j.append(i > 0 ? ", " : "").append(json(stale.get(i)));
            j.append("],\n  \"observations\": [\n");
            for (int i = 0; i < rows.size(); i++) {
                String[] r = rows.get(i);
                j.append("    {\"name\": ").append(json(r[0])).append(", \"reference\": ").append(json(r[1])).append(", \"strata\": ")
                        .append(json(r[2])).append(", \"status\": ").append(json(r[3])).append(", \"reason\": ").append(json(r[4]))
                        .append(i + 1 < rows.size() ? "},\n" : "}\n");
            }
            j.append("  ]\n}\n");
            Files.writeString(Path.of(opt.get("--json")), j.toString());
        }
        kafka.close();
        strata.close();
        System.exit(!broken.isEmpty() ? 2 : unexpected > 0 ? 1 : 0);
    }
}
