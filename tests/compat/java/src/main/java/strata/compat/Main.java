package strata.compat;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.UUID;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;

/**
 * Runs the JVM scenarios against one Strata broker, each printing {@code ok NAME},
 * {@code FAIL NAME: why}, {@code skip NAME: why} (the broker does not offer what the scenario needs
 * yet) or {@code gap NAME: why} (a known broker gap listed in FINDINGS.md: the call was made and
 * failed the way the finding says). Ends with {@code java: N passed, N failed, N skipped, N known gaps}
 * and exits 1 if anything failed.
 *
 * <p>Usage: {@code Main --bootstrap HOST:PORT --strata path/to/strata [--only clients,admin,kip848,tools,streams]}
 */
public final class Main {
    static String bootstrap;
    static String strataBin;
    static int passed, failed, skipped, gaps;
    static final List<String> failures = new ArrayList<>();

    /** Thrown by a scenario whose feature the broker does not offer yet (printed as skip). */
    static final class Skip extends RuntimeException {
        Skip(String why) { super(why); }
    }

    /** Thrown when a call failed exactly as a known, documented broker gap says (printed as gap). */
    static final class KnownGap extends RuntimeException {
        KnownGap(String why) { super(why); }
    }

    public static void main(String[] args) throws Exception {
        Set<String> only = new HashSet<>(Arrays.asList("clients", "admin", "kip848", "tools", "streams"));
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--bootstrap" -> bootstrap = args[++i];
                case "--strata" -> strataBin = args[++i];
                case "--only" -> only = new HashSet<>(Arrays.asList(args[++i].split(",")));
                default -> throw new IllegalArgumentException("unknown argument " + args[i]);
            }
        }
        if (bootstrap == null) throw new IllegalArgumentException("--bootstrap HOST:PORT is required");
        long started = System.nanoTime();
        Map<Integer, int[]> versions = apiVersions(bootstrap);
        System.out.println("# broker advertises " + versions.size() + " APIs: " + describe(versions));
        if (only.contains("clients")) ClientScenarios.all();
        if (only.contains("admin")) AdminScenarios.all();
        if (only.contains("kip848")) Kip848Scenarios.all(versions);
        if (only.contains("tools")) ToolScenarios.all();
        if (only.contains("streams")) StreamsScenario.all();
        System.out.printf("# %.1f s%n", (System.nanoTime() - started) / 1e9);
        for (String f : failures) System.out.println("# failed: " + f);
        System.out.printf("java: %d passed, %d failed, %d skipped, %d known gaps%n", passed, failed, skipped, gaps);
        System.out.flush();
        // Clients' background threads must not keep the JVM alive.
        Runtime.getRuntime().halt(failed == 0 ? 0 : 1);
    }

    /** Runs one scenario and prints its outcome; never throws. */
    static void scenario(String name, Callable<String> body) {
        long t = System.nanoTime();
        try {
            String note = body.call();
            passed++;
            System.out.printf("ok %s%s (%.1f s)%n", name, note == null || note.isEmpty() ? "" : ": " + note,
                    (System.nanoTime() - t) / 1e9);
        } catch (Skip s) {
            skipped++;
            System.out.println("skip " + name + ": " + s.getMessage());
        } catch (KnownGap g) {
            gaps++;
            System.out.println("gap " + name + ": " + g.getMessage());
        } catch (Throwable e) {
            failed++;
            failures.add(name);
            System.out.println("FAIL " + name + ": " + clip(why(e)));
            for (StackTraceElement f : e.getStackTrace()) {
                if (f.getClassName().startsWith("strata.")) System.out.println("    at " + f);
            }
        }
        System.out.flush();
    }

    static String why(Throwable e) {
        StringBuilder sb = new StringBuilder();
        for (Throwable c = e; c != null; c = c.getCause() == c ? null : c.getCause()) {
            if (sb.length() > 0) sb.append(" <- ");
            sb.append(c.getClass().getSimpleName()).append(": ").append(c.getMessage());
        }
        return sb.toString();
    }

    static void check(boolean cond, String fmt, Object... args) {
        if (!cond) throw new AssertionError(String.format(fmt, args));
    }

    static void checkEq(Object want, Object got, String what) {
        if (!java.util.Objects.equals(want, got)) {
            throw new AssertionError(clip(what + ": want " + want + ", got " + got));
        }
    }

    static String clip(String s) {
        return s.length() > 3000 ? s.substring(0, 3000) + "... (" + s.length() + " chars)" : s;
    }

    static String unique(String prefix) {
        return prefix + "-" + UUID.randomUUID().toString().substring(0, 8);
    }

    static Properties common() {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        return p;
    }

    static Admin admin() {
        Properties p = common();
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000");
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "20000");
        return Admin.create(p);
    }

    static void createTopic(Admin admin, String name, int partitions) throws Exception {
        admin.createTopics(List.of(new NewTopic(name, partitions, (short) 1))).all().get(30, TimeUnit.SECONDS);
    }

    /** Polls cond every 100 ms until it holds or timeoutMs passes; false on timeout. */
    static boolean waitFor(long timeoutMs, Callable<Boolean> cond) throws Exception {
        long deadline = System.currentTimeMillis() + timeoutMs;
        while (System.currentTimeMillis() < deadline) {
            if (cond.call()) return true;
            Thread.sleep(100);
        }
        return cond.call();
    }

    /**
     * ApiVersions v0 over a plain socket: api key to [min, max]. The Java client keeps the
     * broker's answer to itself, and the KIP-848 scenarios need to know whether key 68 is there.
     */
    static Map<Integer, int[]> apiVersions(String hostPort) throws Exception {
        String[] hp = hostPort.split(":");
        try (Socket s = new Socket(hp[0], Integer.parseInt(hp[1]))) {
            s.setSoTimeout(10_000);
            byte[] client = "strata-compat".getBytes(StandardCharsets.UTF_8);
            DataOutputStream out = new DataOutputStream(s.getOutputStream());
            out.writeInt(2 + 2 + 4 + 2 + client.length);
            out.writeShort(18); // ApiVersions
            out.writeShort(0);
            out.writeInt(7); // correlation id
            out.writeShort(client.length);
            out.write(client);
            out.flush();
            DataInputStream in = new DataInputStream(s.getInputStream());
            int size = in.readInt();
            check(size > 10 && size < 1 << 20, "ApiVersions response size %d", size);
            checkEq(7, in.readInt(), "ApiVersions correlation id");
            short error = in.readShort();
            checkEq((short) 0, error, "ApiVersions v0 error code");
            int n = in.readInt();
            Map<Integer, int[]> m = new TreeMap<>();
            for (int i = 0; i < n; i++) {
                int key = in.readShort();
                int min = in.readShort();
                int max = in.readShort();
                m.put(key, new int[] {min, max});
            }
            return m;
        }
    }

    static String describe(Map<Integer, int[]> versions) {
        StringBuilder sb = new StringBuilder();
        versions.forEach((k, v) -> sb.append(k).append(':').append(v[0]).append('-').append(v[1]).append(' '));
        return sb.toString().trim();
    }

    private Main() {}
}
