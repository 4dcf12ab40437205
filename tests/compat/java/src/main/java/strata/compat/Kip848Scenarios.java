package strata.compat;

import static strata.compat.Main.scenario;

import java.util.Map;

/**
 * The KIP-848 consumer protocol ({@code group.protocol=consumer}). It needs ConsumerGroupHeartbeat
 * (key 68) and ConsumerGroupDescribe (key 69); while the broker does not advertise key 68 the
 * scenario prints skip. STRATA_KIP848=1 runs it regardless (to see how the client fails).
 */
final class Kip848Scenarios {
    static void all(Map<Integer, int[]> versions) {
        boolean forced = "1".equals(System.getenv("STRATA_KIP848"));
        scenario("java consumer protocol (KIP-848) group: two members share, commit, a new member resumes", () -> {
            if (!versions.containsKey(68) && !forced) {
                throw new Main.Skip("the broker does not advertise ConsumerGroupHeartbeat (key 68)");
            }
            return ClientScenarios.classicGroupShare("consumer");
        });
    }

    private Kip848Scenarios() {}
}
