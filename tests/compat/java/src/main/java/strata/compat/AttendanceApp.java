package strata.compat;

import java.time.Duration;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.processor.TimestampExtractor;
import org.apache.kafka.streams.processor.api.FixedKeyProcessor;
import org.apache.kafka.streams.processor.api.FixedKeyProcessorContext;
import org.apache.kafka.streams.processor.api.FixedKeyRecord;

/**
 * The attendance query as a Kafka Streams application (run in a JVM of its own, so that the test
 * can kill -9 it):
 * <ul>
 *   <li>the running total of attendees and events, through a repartition topic (every event to the
 *       key "total"), to topic OUT_TOTAL as {@code total -> "sum,count"};
 *   <li>attendees per venue per one-minute tumbling window of event time with 10 s of grace, to
 *       OUT_MINUTES as {@code "venue@windowStartMs" -> "sum"}.
 * </ul>
 * Under at_least_once a crash makes Streams reprocess input after the last commit, on top of state
 * restored from a changelog that may already include it. So that the results can be compared
 * exactly, each aggregate remembers the last input offset (per input partition) it includes and
 * skips a record it has already counted: the offsets travel with the values through the repartition
 * topic. Broken offsets, lost records or a changelog that does not restore still show up as wrong
 * numbers.
 *
 * <p>Usage: AttendanceApp BOOTSTRAP APP_ID INPUT OUT_TOTAL OUT_MINUTES STATE_DIR
 */
public final class AttendanceApp {
    static final Pattern ATTENDEES = Pattern.compile("\"attendees\"\\s*:\\s*(\\d+)");
    static final Pattern EVENT_TIME = Pattern.compile("\"event_time\"\\s*:\\s*(-?\\d+)");

    static final java.util.concurrent.atomic.AtomicLong SKIPPED = new java.util.concurrent.atomic.AtomicLong();

    static long field(Pattern p, String json) {
        Matcher m = p.matcher(json);
        if (!m.find()) throw new IllegalArgumentException("no " + p + " in " + json);
        return Long.parseLong(m.group(1));
    }

    /** Event time from the JSON value. */
    public static final class EventTime implements TimestampExtractor {
        @Override
        public long extract(ConsumerRecord<Object, Object> record, long partitionTime) {
            return field(EVENT_TIME, (String) record.value());
        }
    }

    /** value -> "partition,offset,attendees" */
    static final class Tag implements FixedKeyProcessor<String, String, String> {
        private FixedKeyProcessorContext<String, String> ctx;

        @Override
        public void init(FixedKeyProcessorContext<String, String> context) {
            ctx = context;
        }

        @Override
        public void process(FixedKeyRecord<String, String> r) {
            var md = ctx.recordMetadata().orElseThrow();
            ctx.forward(r.withValue(md.partition() + "," + md.offset() + "," + field(ATTENDEES, r.value())));
        }
    }

    /** Aggregate "sum,count,last0;last1;..." (last input offset included per input partition). */
    static String add(String agg, String tagged) {
        String[] a = agg.split(",", -1);
        String[] t = tagged.split(",");
        int partition = Integer.parseInt(t[0]);
        long offset = Long.parseLong(t[1]), attendees = Long.parseLong(t[2]);
        String[] lasts = a[2].isEmpty() ? new String[0] : a[2].split(";");
        if (lasts.length <= partition) {
            String[] grown = new String[partition + 1];
            java.util.Arrays.fill(grown, "-1");
            System.arraycopy(lasts, 0, grown, 0, lasts.length);
            lasts = grown;
        }
        if (offset <= Long.parseLong(lasts[partition])) { // already counted before a crash
            SKIPPED.incrementAndGet();
            return agg;
        }
        lasts[partition] = Long.toString(offset);
        return (Long.parseLong(a[0]) + attendees) + "," + (Long.parseLong(a[1]) + 1) + "," + String.join(";", lasts);
    }

    static String sumCount(String agg) {
        String[] a = agg.split(",", -1);
        return a[0] + "," + a[1];
    }

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], appId = args[1], input = args[2], outTotal = args[3], outMinutes = args[4];
        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, appId);
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(StreamsConfig.STATE_DIR_CONFIG, args[5]);
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.AT_LEAST_ONCE);
        p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, "500");
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, "1");
        p.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
        p.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
        String rf = System.getenv("STREAMS_REPLICATION_FACTOR");
        if (rf != null) p.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, rf);
        p.put(StreamsConfig.consumerPrefix("auto.offset.reset"), "earliest");
        // Purge consumed repartition records (DeleteRecords) every second instead of every 30 s.
        p.put(StreamsConfig.REPARTITION_PURGE_INTERVAL_MS_CONFIG, "1000");

        StreamsBuilder b = new StreamsBuilder();
        KStream<String, String> tagged = b.stream(input,
                        Consumed.with(Serdes.String(), Serdes.String()).withTimestampExtractor(new EventTime()))
                .processValues(Tag::new);
        tagged.groupBy((k, v) -> "total", Grouped.with("total", Serdes.String(), Serdes.String()))
                .aggregate(() -> "0,0,", (k, v, agg) -> add(agg, v), Materialized.as("total-store"))
                .toStream()
                .mapValues(AttendanceApp::sumCount)
                .to(outTotal, Produced.with(Serdes.String(), Serdes.String()));
        tagged.groupByKey()
                .windowedBy(TimeWindows.ofSizeAndGrace(Duration.ofMinutes(1), Duration.ofSeconds(10)))
                .aggregate(() -> "0,0,", (k, v, agg) -> add(agg, v), Materialized.as("minutes-store"))
                .toStream()
                .map((wk, agg) -> KeyValue.pair(wk.key() + "@" + wk.window().start(), agg.split(",")[0]))
                .to(outMinutes, Produced.with(Serdes.String(), Serdes.String()));

        KafkaStreams streams = new KafkaStreams(b.build(), p);
        CountDownLatch done = new CountDownLatch(1);
        streams.setStateListener((now, before) -> {
            System.out.println("state " + before + " -> " + now);
            if (now == KafkaStreams.State.ERROR || now == KafkaStreams.State.NOT_RUNNING) done.countDown();
        });
        streams.setUncaughtExceptionHandler(e -> {
            System.out.println("uncaught: " + e);
            e.printStackTrace(System.out);
            return org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse
                    .SHUTDOWN_CLIENT;
        });
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            streams.close(Duration.ofSeconds(20));
            System.out.println("closed; skipped " + SKIPPED.get() + " aggregate updates for records already counted before a crash");
            done.countDown();
        }));
        streams.start();
        done.await();
        System.out.println("stopped in state " + streams.state() + "; skipped " + SKIPPED.get()
                + " aggregate updates for records already counted before a crash");
    }

    private AttendanceApp() {}
}
