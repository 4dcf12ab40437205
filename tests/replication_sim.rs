//! Deterministic simulation of replication: three replicas of one partition, each a
//! `strata::replication::Replica` over Strata's own entry store (the code that maps Raft
//! entries onto batches, orders syncs and truncates), on a seeded in-memory disk and network.
//!
//! The network drops, delays (and so reorders) and partitions messages; replicas crash and
//! restart, losing whatever their disk had not synced (a random part of it, torn records
//! included). A client proposes unique values to whichever replica is leader.
//!
//! Checked all along: at most one leader per term; no committed entry is ever lost or
//! changed on any replica; the high watermark a ready leader shows never goes back. Checked
//! at the end, after the network heals: every acknowledged value is in the log exactly once,
//! at the offset it was acknowledged with; offsets are dense; all replicas hold the same log.
//!
//! A failing seed is printed; `STRATA_SIM_SEED=N cargo test --test replication_sim` replays
//! it, `STRATA_SIM_SEEDS=N` runs more seeds.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use futures_lite::future::block_on;
use raft::eraftpb::Message;
use strata::replication::{
    codec, DeviceError, Outcome, Proposed, Replica, ReplicaDevice, ReplicaSettings, Role,
};
use strata::storage::batch::{build_batch, iter_batches, BatchHeader};

/// A small deterministic generator (xorshift64*), so a seed replays on any machine.
struct Rng(u64);
impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

/// A file whose writes are lost in a crash until synced: `durable` is what the disk holds,
/// `current` what the process sees.
#[derive(Default, Clone)]
struct SimFile<T: Clone> {
    durable: Vec<T>,
    current: Vec<T>,
}

impl<T: Clone + PartialEq> SimFile<T> {
    fn sync(&mut self) {
        self.durable = self.current.clone();
    }
    /// What survives a crash: the operations since the last sync are lost from some point
    /// on (in order). An append-only tail survives in part; a truncation since the sync
    /// either took effect with part of what followed, or did not.
    fn crash(&mut self, rng: &mut Rng) {
        let common = self
            .durable
            .iter()
            .zip(&self.current)
            .take_while(|(a, b)| a == b)
            .count();
        if common == self.durable.len() {
            let extra = self.current.len() - common;
            let keep = common + rng.below(extra as u64 + 1) as usize;
            self.current.truncate(keep);
        } else if rng.chance(500) {
            self.current = self.durable.clone();
        } else {
            let extra = self.current.len() - common;
            let keep = common + rng.below(extra as u64 + 1) as usize;
            self.current.truncate(keep);
        }
        self.durable = self.current.clone();
    }
}

#[derive(Default)]
struct SimDisk {
    batches: SimFile<Bytes>,
    index: SimFile<u8>,
    state: Option<Vec<u8>>,
    syncs: u64,
}

#[derive(Clone, Default)]
struct SimDevice(Rc<RefCell<SimDisk>>);

impl SimDevice {
    fn batch_at(&self, offset: i64) -> Option<Bytes> {
        self.0
            .borrow()
            .batches
            .current
            .iter()
            .find(|b| BatchHeader::parse(b).is_some_and(|h| h.base_offset == offset))
            .cloned()
    }
}

impl ReplicaDevice for SimDevice {
    fn batch_end(&self) -> i64 {
        self.0
            .borrow()
            .batches
            .current
            .last()
            .and_then(|b| BatchHeader::parse(b))
            .map_or(0, |h| h.next_offset())
    }
    async fn append_batches(&self, batches: &[Bytes]) -> Result<(), DeviceError> {
        self.0
            .borrow_mut()
            .batches
            .current
            .extend_from_slice(batches);
        Ok(())
    }
    async fn truncate_batches(&self, offset: i64) -> Result<(), DeviceError> {
        let mut d = self.0.borrow_mut();
        let keep = d
            .batches
            .current
            .iter()
            .take_while(|b| BatchHeader::parse(b).is_some_and(|h| h.base_offset < offset))
            .count();
        d.batches.current.truncate(keep);
        Ok(())
    }
    async fn read_batches(&self, from: i64, max_bytes: usize) -> Result<Vec<Bytes>, DeviceError> {
        let d = self.0.borrow();
        let mut out = Vec::new();
        let mut size = 0;
        for b in &d.batches.current {
            let h = BatchHeader::parse(b).ok_or_else(|| DeviceError::Corrupt("batch".into()))?;
            if h.base_offset >= from {
                if !out.is_empty() && size + b.len() > max_bytes {
                    break;
                }
                size += b.len();
                out.push(b.clone());
            }
        }
        Ok(out)
    }
    async fn append_index(&self, bytes: &[u8]) -> Result<(), DeviceError> {
        self.0.borrow_mut().index.current.extend_from_slice(bytes);
        Ok(())
    }
    async fn truncate_index(&self, len: u64) -> Result<(), DeviceError> {
        self.0.borrow_mut().index.current.truncate(len as usize);
        Ok(())
    }
    async fn read_index(&self) -> Result<Vec<u8>, DeviceError> {
        Ok(self.0.borrow().index.current.clone())
    }
    async fn sync(&self) -> Result<(), DeviceError> {
        let mut d = self.0.borrow_mut();
        d.batches.sync();
        d.index.sync();
        d.syncs += 1;
        Ok(())
    }
    async fn write_state(&self, bytes: &[u8]) -> Result<(), DeviceError> {
        self.0.borrow_mut().state = Some(bytes.to_vec());
        Ok(())
    }
    async fn read_state(&self) -> Result<Option<Vec<u8>>, DeviceError> {
        Ok(self.0.borrow().state.clone())
    }
}

const NODES: u64 = 3;
const STEPS: u64 = 3000;
const HEAL_STEPS: u64 = 600;

struct Flight {
    at: u64,
    from: u64,
    to: u64,
    msg: Bytes,
}

struct Sim {
    seed: u64,
    rng: Rng,
    now: u64,
    disks: Vec<SimDevice>,
    nodes: Vec<Option<Replica<SimDevice>>>,
    /// Step at which a crashed node comes back.
    down_until: Vec<u64>,
    /// Pairs that cannot talk, until a step.
    cut: HashMap<(u64, u64), u64>,
    net: Vec<Flight>,
    /// The one leader seen in each term.
    leaders: BTreeMap<u64, u64>,
    /// Every committed entry seen anywhere: index → (term, batch bytes or empty).
    committed: BTreeMap<u64, (u64, Bytes)>,
    /// How far each node's committed entries were checked.
    checked: Vec<u64>,
    max_hw: i64,
    next_value: u64,
    /// Proposals waiting for their fate: (node, proposal, value).
    pending: Vec<(u64, Proposed, u64)>,
    /// Acknowledged values, by offset.
    acked: BTreeMap<i64, u64>,
    crashes: u64,
    lost: u64,
}

fn value_batch(value: u64) -> BytesMut {
    let v = format!("value-{value}");
    BytesMut::from(&build_batch(0, 1_700_000_000_000, &[(None, v.as_bytes())])[..])
}

fn value_of(batch: &[u8]) -> Option<u64> {
    let text = String::from_utf8_lossy(batch);
    let at = text.find("value-")?;
    text[at + 6..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .ok()
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let disks: Vec<SimDevice> = (0..NODES).map(|_| SimDevice::default()).collect();
        let mut sim = Sim {
            seed,
            rng: Rng::new(seed),
            now: 0,
            disks,
            nodes: Vec::new(),
            down_until: vec![0; NODES as usize],
            cut: HashMap::new(),
            net: Vec::new(),
            leaders: BTreeMap::new(),
            committed: BTreeMap::new(),
            checked: vec![0; NODES as usize],
            max_hw: 0,
            next_value: 0,
            pending: Vec::new(),
            acked: BTreeMap::new(),
            crashes: 0,
            lost: 0,
        };
        for i in 0..NODES {
            let r = sim.open(i);
            sim.nodes.push(Some(r));
        }
        sim
    }

    fn open(&self, i: u64) -> Replica<SimDevice> {
        let mut settings = ReplicaSettings::new(i + 1, (1..=NODES).collect(), format!("sim-{i}"));
        settings.fixed_election_timeout = true;
        block_on(Replica::open(settings, self.disks[i as usize].clone()))
            .unwrap_or_else(|e| panic!("seed {}: node {} does not reopen: {e}", self.seed, i + 1))
    }

    fn fail(&self, what: String) -> ! {
        panic!(
            "seed {} step {}: {what}\nreplay: STRATA_SIM_SEED={} cargo test --test replication_sim",
            self.seed, self.now, self.seed
        );
    }

    fn step(&mut self, faults: bool) {
        self.now += 1;
        // Faults: crashes, restarts, partitions.
        for i in 0..NODES as usize {
            if self.nodes[i].is_none() && self.now >= self.down_until[i] {
                self.nodes[i] = Some(self.open(i as u64));
                self.checked[i] = 0;
            } else if faults && self.nodes[i].is_some() && self.rng.chance(3) {
                self.nodes[i] = None;
                self.disks[i].0.borrow_mut().batches.crash(&mut self.rng);
                let mut d = self.disks[i].0.borrow_mut();
                d.index.crash(&mut self.rng);
                drop(d);
                self.down_until[i] = self.now + 5 + self.rng.below(60);
                self.pending.retain(|(n, _, _)| *n != i as u64);
                self.crashes += 1;
            }
        }
        if faults && self.rng.chance(5) {
            let a = self.rng.below(NODES);
            let b = (a + 1 + self.rng.below(NODES - 1)) % NODES;
            let until = self.now + 20 + self.rng.below(200);
            self.cut.insert((a, b), until);
            self.cut.insert((b, a), until);
        }
        let now = self.now;
        self.cut.retain(|_, until| *until > now);
        if !faults {
            self.cut.clear();
        }

        // Clocks: each replica ticks most steps, so their timeouts drift apart.
        for i in 0..NODES as usize {
            let tick = self.rng.chance(850);
            if let Some(n) = self.nodes[i].as_mut() {
                if tick {
                    n.tick();
                }
            }
        }

        // Deliveries due now.
        let mut due = Vec::new();
        let mut later = Vec::new();
        for f in self.net.drain(..) {
            if f.at <= now {
                due.push(f);
            } else {
                later.push(f);
            }
        }
        self.net = later;
        for f in due {
            if let Some(n) = self.nodes[f.to as usize].as_mut() {
                let msg = codec::decode(&f.msg).unwrap_or_else(|e| panic!("decode: {e}"));
                let _ = f.from;
                n.step(msg);
            }
        }

        // The client.
        if faults || self.now < STEPS + HEAL_STEPS / 2 {
            for i in 0..NODES as usize {
                let propose = self.rng.chance(300);
                let Some(n) = self.nodes[i].as_mut() else {
                    continue;
                };
                if propose && n.role() == Role::Leader {
                    let value = self.next_value;
                    self.next_value += 1;
                    if let Ok(p) = n.propose(value_batch(value)) {
                        self.pending.push((i as u64, p, value));
                    }
                }
            }
        }

        // I/O and sends.
        for i in 0..NODES as usize {
            let Some(n) = self.nodes[i].as_mut() else {
                continue;
            };
            let msgs: Vec<Message> = match block_on(n.process()) {
                Ok(m) => m,
                Err(e) => {
                    let seed = self.seed;
                    panic!("seed {seed}: node {} failed: {e}", i + 1)
                }
            };
            for m in msgs {
                let to = m.to - 1;
                let from = i as u64;
                if self.cut.contains_key(&(from, to)) || (faults && self.rng.chance(50)) {
                    continue;
                }
                let delay = 1 + self.rng.below(if faults { 6 } else { 2 });
                let bytes = codec::encode(&m).unwrap_or_else(|e| panic!("encode: {e}"));
                self.net.push(Flight {
                    at: now + delay,
                    from,
                    to,
                    msg: bytes,
                });
            }
        }
        self.check();
    }

    fn check(&mut self) {
        for i in 0..NODES as usize {
            let Some(n) = self.nodes[i].as_ref() else {
                continue;
            };
            if n.role() == Role::Leader {
                let term = n.term();
                match self.leaders.get(&term) {
                    Some(&l) if l != n.id() => {
                        self.fail(format!("two leaders in term {term}: {l} and {}", n.id()))
                    }
                    _ => {
                        self.leaders.insert(term, n.id());
                    }
                }
            }
            if n.leader_ready() {
                let hw = n.high_watermark();
                if hw < self.max_hw {
                    self.fail(format!(
                        "leader {} shows high watermark {hw} after {} was shown",
                        n.id(),
                        self.max_hw
                    ));
                }
                self.max_hw = hw;
            }
            // Every committed entry this node holds matches every other's, forever.
            let commit = n.commit_index();
            for index in self.checked[i] + 1..=commit {
                let Some(meta) = n.store().meta(index) else {
                    self.fail(format!(
                        "node {} committed {index} but does not hold it",
                        n.id()
                    ))
                };
                let data = if meta.next_offset > meta.base_offset {
                    match self.disks[i].batch_at(meta.base_offset) {
                        Some(b) => b,
                        None => self.fail(format!(
                            "node {} holds entry {index} but not its batch at {}",
                            n.id(),
                            meta.base_offset
                        )),
                    }
                } else {
                    Bytes::new()
                };
                match self.committed.get(&index) {
                    Some((t, d)) if *t != meta.term || *d != data => self.fail(format!(
                        "committed entry {index} changed: term {t} then {} (node {})",
                        meta.term,
                        n.id()
                    )),
                    Some(_) => {}
                    None => {
                        self.committed.insert(index, (meta.term, data));
                    }
                }
            }
            self.checked[i] = commit;
        }
        // Fates of proposals.
        let mut still = Vec::new();
        for (node, p, value) in std::mem::take(&mut self.pending) {
            let Some(n) = self.nodes[node as usize].as_ref() else {
                continue;
            };
            match n.outcome(&p) {
                Outcome::Pending => still.push((node, p, value)),
                Outcome::Committed => {
                    if let Some(old) = self.acked.insert(p.base_offset, value) {
                        self.fail(format!(
                            "offset {} acknowledged twice: values {old} and {value}",
                            p.base_offset
                        ));
                    }
                }
                Outcome::Lost => self.lost += 1,
            }
        }
        self.pending = still;
    }

    fn finish(&mut self) {
        for _ in 0..HEAL_STEPS {
            self.step(false);
        }
        let leader = (0..NODES as usize)
            .find(|&i| self.nodes[i].as_ref().is_some_and(|n| n.leader_ready()))
            .unwrap_or_else(|| self.fail("no leader after the network healed".into()));
        let hw = self.nodes[leader]
            .as_ref()
            .map_or(0, |n| n.high_watermark());
        // Every replica holds the same committed log: dense offsets, each acked value at its
        // offset exactly once.
        let mut logs = Vec::new();
        for i in 0..NODES as usize {
            let all = block_on(self.disks[i].read_batches(0, usize::MAX)).unwrap_or_default();
            let mut next = 0i64;
            let mut values = BTreeMap::new();
            for b in all {
                let h =
                    BatchHeader::parse(&b).unwrap_or_else(|| self.fail("unparsable batch".into()));
                if h.base_offset >= hw {
                    break;
                }
                if h.base_offset != next {
                    self.fail(format!(
                        "node {}: offset {} follows {next}",
                        i + 1,
                        h.base_offset
                    ));
                }
                let v = value_of(&b).unwrap_or_else(|| self.fail("batch without a value".into()));
                values.insert(h.base_offset, v);
                next = h.next_offset();
                assert_eq!(iter_batches(&b).count(), 1);
            }
            if next != hw {
                self.fail(format!(
                    "node {} holds up to {next}, the high watermark is {hw}",
                    i + 1
                ));
            }
            logs.push(values);
        }
        for (i, l) in logs.iter().enumerate().skip(1) {
            if *l != logs[0] {
                self.fail(format!("node {} holds another log than node 1", i + 1));
            }
        }
        let mut seen = HashMap::new();
        for (offset, v) in &logs[0] {
            if let Some(other) = seen.insert(*v, *offset) {
                self.fail(format!("value {v} at offsets {other} and {offset}"));
            }
        }
        for (offset, v) in &self.acked {
            if logs[0].get(offset) != Some(v) {
                self.fail(format!(
                    "acknowledged value {v} at offset {offset} is not there (found {:?})",
                    logs[0].get(offset)
                ));
            }
        }
    }
}

fn run(seed: u64) -> (usize, u64, u64, u64) {
    let mut sim = Sim::new(seed);
    for _ in 0..STEPS {
        sim.step(true);
    }
    sim.finish();
    (
        sim.acked.len(),
        sim.crashes,
        sim.lost,
        sim.leaders.len() as u64,
    )
}

#[test]
fn replication_survives_drops_partitions_and_crashes() {
    if let Ok(seed) = std::env::var("STRATA_SIM_SEED") {
        let seed: u64 = seed.parse().expect("STRATA_SIM_SEED is a number");
        let r = run(seed);
        eprintln!("seed {seed}: {r:?}");
        return;
    }
    let seeds: u64 = std::env::var("STRATA_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(24);
    let mut acked = 0;
    let mut crashes = 0;
    let mut terms = 0;
    for seed in 0..seeds {
        let (a, c, _, t) = match std::panic::catch_unwind(|| run(seed)) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("seed {seed} failed; replay: STRATA_SIM_SEED={seed} cargo test --test replication_sim");
                std::panic::resume_unwind(e)
            }
        };
        acked += a;
        crashes += c;
        terms += t;
    }
    eprintln!("{seeds} seeds: {acked} acknowledged values, {crashes} crashes, {terms} terms with a leader");
    // The faults must not have stopped all progress: the test proves nothing otherwise.
    assert!(
        acked > seeds as usize * 50,
        "too little progress: {acked} acknowledged"
    );
    assert!(crashes > seeds, "too few crashes: {crashes}");
}
