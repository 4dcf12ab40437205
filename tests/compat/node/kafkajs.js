// KafkaJS (a pure JavaScript Kafka client, its own protocol implementation) against Strata:
// an idempotent producer, two members of a consumer group sharing a 4-partition topic with
// commits, a third member that resumes from the commits, and the admin API's view of the group.
// Usage: node kafkajs.js HOST:PORT   (kafkajs resolved from NODE_PATH)
const { Kafka, logLevel } = require('kafkajs');

const broker = process.argv[2];
const kafka = new Kafka({ clientId: 'compat', brokers: [broker], logLevel: logLevel.NOTHING });
const suffix = Math.random().toString(36).slice(2, 8);
const topic = `kafkajs-${suffix}`;
const groupId = `kafkajs-group-${suffix}`;
const N = 400;

function assert(cond, msg) {
  if (!cond) { console.error(`FAIL kafkajs: ${msg}`); process.exit(1); }
}

async function member(seen, id) {
  const c = kafka.consumer({ groupId, sessionTimeout: 10000, heartbeatInterval: 500 });
  await c.connect();
  await c.subscribe({ topic, fromBeginning: true });
  await c.run({
    eachMessage: async ({ partition, message }) => {
      seen.push({ id, partition, value: message.value.toString() });
    },
  });
  return c;
}

async function until(cond, ms, what) {
  const end = Date.now() + ms;
  while (!cond()) {
    assert(Date.now() < end, `timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

(async () => {
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: 4 }] });

  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const messages = Array.from({ length: N }, (_, i) => ({ key: `k${i % 10}`, value: `v-${i}`, partition: i % 4 }));
  await producer.send({ topic, messages, acks: -1 });
  console.log(`ok kafkajs: idempotent producer sent ${N} records`);

  const seen = [];
  const a = await member(seen, 'a');
  const b = await member(seen, 'b');
  await until(() => new Set(seen.map((s) => s.value)).size === N, 60000, 'all records');
  const byMember = { a: new Set(), b: new Set() };
  const desc = await admin.describeGroups([groupId]);
  const g = desc.groups[0];
  assert(g.state === 'Stable', `group state ${g.state}`);
  assert(g.members.length === 2, `${g.members.length} members`);
  for (const s of seen) byMember[s.id].add(s.partition);
  assert(byMember.a.size > 0 || byMember.b.size > 0, 'no member read anything');
  console.log(`ok kafkajs: two members read ${N} records (partitions ${[...byMember.a]} / ${[...byMember.b]})`);
  await a.disconnect();
  await b.disconnect();

  const offsets = await admin.fetchOffsets({ groupId, topics: [topic] });
  const committed = offsets[0].partitions.map((p) => Number(p.offset)).reduce((x, y) => x + y, 0);
  assert(committed === N, `committed offsets sum to ${committed}, want ${N}`);

  await producer.send({ topic, messages: [0, 1, 2, 3].map((p) => ({ value: 'late', partition: p })), acks: -1 });
  const late = [];
  const c = await member(late, 'c');
  await until(() => late.length >= 4, 60000, 'the late records');
  await new Promise((r) => setTimeout(r, 1000));
  assert(late.length === 4 && late.every((s) => s.value === 'late'), `resumed member read ${late.length} records`);
  await c.disconnect();
  console.log('ok kafkajs: a new member resumed from the commits (4 new records only)');

  const groups = (await admin.listGroups()).groups.map((x) => x.groupId);
  assert(groups.includes(groupId), 'group not listed');
  await admin.deleteGroups([groupId]);
  await producer.disconnect();
  await admin.disconnect();
  console.log('kafkajs: 3 passed, 0 failed');
})().catch((e) => { console.error(`FAIL kafkajs: ${e.stack || e}`); process.exit(1); });
