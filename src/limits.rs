//! Every hard limit of Strata, in one place, with the reason it exists.
//!
//! Limits are named so that a reader can find where a number comes from and so that tests can
//! probe exactly the edge. Nothing here is tunable at run time except through the per-topic
//! configuration that defaults to these values.

/// Largest request frame the broker reads (`socket.request.max.bytes` in Kafka, 100 MiB).
/// A length prefix above it closes the connection before any allocation.
pub const MAX_REQUEST_FRAME_BYTES: usize = 100 * 1024 * 1024;

/// Default largest record batch a topic accepts (`message.max.bytes`, Kafka's 1 MiB + overhead).
pub const DEFAULT_MAX_MESSAGE_BYTES: u32 = 1024 * 1024 + 12;

/// Absolute ceiling of `max.message.bytes`: a batch is held in memory whole while validated.
pub const MAX_BATCH_BYTES: u32 = 64 * 1024 * 1024;

/// Default segment size before a roll (`segment.bytes`, 1 GiB as in Kafka).
pub const DEFAULT_SEGMENT_BYTES: u64 = 1024 * 1024 * 1024;

/// Segment offsets are stored relative to the base offset as `u32`, positions as `u32`:
/// a segment can never grow past 4 GiB.
pub const MAX_SEGMENT_BYTES: u64 = u32::MAX as u64;

/// Smallest segment size accepted (Kafka's minimum is 14 bytes; we want at least one page).
pub const MIN_SEGMENT_BYTES: u64 = 4096;

/// Default `message.timestamp.after.max.ms`: how far ahead of the broker's clock a CreateTime
/// batch may be (Kafka 4's default, one hour).
pub const DEFAULT_TIMESTAMP_AFTER_MAX_MS: i64 = 60 * 60 * 1000;

/// Default segment age before a roll (`segment.ms`, 7 days).
pub const DEFAULT_SEGMENT_MS: i64 = 7 * 24 * 60 * 60 * 1000;

/// Default retention by time (`retention.ms`, 7 days).
pub const DEFAULT_RETENTION_MS: i64 = 7 * 24 * 60 * 60 * 1000;

/// Default bytes between two offset-index entries (`index.interval.bytes`).
pub const DEFAULT_INDEX_INTERVAL_BYTES: u32 = 4096;

/// Alignment of every direct-I/O write: the page size of the devices we target.
pub const IO_ALIGNMENT: usize = 4096;

/// Bytes the segment writer buffers before it writes whole pages out even without a flush.
/// Large enough for big sequential DMA writes, small enough to bound memory per partition.
pub const WRITE_BUFFER_BYTES: usize = 4 * 1024 * 1024;

/// Staged bytes of a partition whose flush policy does not sync every append, past which a
/// produce waits for the write-out itself instead of leaving it to the background: the disk is
/// behind, and producers must slow down rather than grow memory.
pub const MAX_WRITE_BEHIND_BYTES: usize = 2 * WRITE_BUFFER_BYTES;

/// Segment files are allocated (fallocate) ahead of the write position, by as much as is
/// already written, between these bounds (a quiet partition reserves little, a busy one 32 MiB
/// at a time, as Redpanda's `segment_fallocation_step`). An O_DIRECT write that has to allocate
/// blocks is carried out synchronously by the filesystem (measured on ext4 here: single writes
/// stalling for up to a second under load); into allocated space it is not. Trimmed when the
/// segment is sealed.
pub const MIN_PREALLOCATE_BYTES: u64 = 1024 * 1024;
pub const MAX_PREALLOCATE_BYTES: u64 = 32 * 1024 * 1024;

/// Largest default memory per core for tail caches (`cache-bytes-per-core` may set more).
pub const MAX_DEFAULT_CACHE_BYTES_PER_CORE: u64 = 512 << 20;

/// Largest `offsets.retention.minutes` (Kafka's config is an INT).
pub const MAX_OFFSETS_RETENTION_MINUTES: u64 = i32::MAX as u64;

/// Tail cache budget of a log opened on its own (tools and tests); a broker's partitions share
/// a budget per core instead.
pub const TAIL_CACHE_BYTES: usize = 32 * 1024 * 1024;

/// Requests one connection may have read but not yet answered. Consecutive Produce requests
/// are pipelined: the next is appended while the previous one waits for its sync, so one
/// producer connection keeps the disk busy (Kafka reads one request at a time per connection).
pub const MAX_PIPELINED_REQUESTS: usize = 16;

/// Bytes of request frames one connection may hold in its pipeline (a single larger frame is
/// still read, alone).
pub const MAX_PIPELINED_BYTES: usize = 64 * 1024 * 1024;

/// Bytes read per step when a whole range of a log is walked (rebuilding producer state or
/// consumer groups, searching by timestamp): large reads, few of them.
pub const SCAN_READ_BYTES: usize = 4 << 20;

/// Largest single read a fetch issues against a segment file.
pub const MAX_READ_BYTES: usize = 64 * 1024 * 1024;

/// Producer ids a core reserves from the catalog at a time: the block's end is persisted
/// once, then each InitProducerId takes the next id without a sync (Kafka's controller hands
/// brokers blocks of 1000 the same way).
pub const PRODUCER_ID_BLOCK: i64 = 1000;

/// Most partitions one topic may have (Kafka has no hard limit; we bound memory and file handles).
pub const MAX_PARTITIONS_PER_TOPIC: i32 = 10_000;

/// Longest topic name (Kafka's limit: 249 characters).
pub const MAX_TOPIC_NAME_LEN: usize = 249;

/// Memory of the log cleaner's key map per core (Kafka's `log.cleaner.dedupe.buffer.size`,
/// 128 MiB shared by its cleaner threads): one partition is cleaned at a time on a core, so
/// this bounds the map of each pass; a log with more distinct keys in its dirty part is
/// cleaned in several passes.
pub const CLEANER_KEY_MAP_BYTES_PER_CORE: usize = 32 << 20;

/// Longest stretch the log cleaner computes on its core before it gives the core up (the
/// executor then polls I/O and runs the tasks waiting: appends, fetches, Raft), so that a
/// clean never stalls them for more than about this. glommio's own `yield_if_needed` yields
/// only every 100 ms (its default preemption timer) on a core with one task queue.
pub const CLEANER_SLICE: std::time::Duration = std::time::Duration::from_micros(500);

/// Bytes the cleaner reads per step. Each direct read is copied out of its DMA buffer at
/// once, into fresh memory: at [`SCAN_READ_BYTES`] (4 MiB) the copy and its page faults held
/// the core for 1–2 ms per read (measured: a task beside the cleaner woke over 1 ms late
/// ~280 times in a 1.3 s clean of 509 MiB), so the cleaner reads in smaller steps.
pub const CLEANER_READ_BYTES: usize = 1 << 20;

/// Bytes of a cleaned segment the cleaner buffers before writing them out.
pub const CLEANER_WRITE_BYTES: usize = 4 << 20;

/// Most bytes the records of one compressed batch may decompress to when the broker reads
/// them (the cleaner; the produce-time key check of compacted topics). Beyond it the cleaner
/// leaves the batch as it is (uncleaned) and a produce to a compacted topic is refused
/// (INVALID_RECORD), rather than allocate whatever a compression bomb asks for.
pub const MAX_DECOMPRESSED_BATCH_BYTES: usize = 64 << 20;

/// Default `delete.retention.ms`: how long tombstones stay in a compacted log (1 day).
pub const DEFAULT_DELETE_RETENTION_MS: i64 = 24 * 60 * 60 * 1000;

/// Recent batches a replica keeps in memory per partition (shared with the request that
/// brought them, not copied), so a leader sends them to followers and answers Raft without a
/// disk read; a follower further behind is served by reads of the segments.
pub const REPLICA_ENTRY_CACHE_BYTES: usize = 32 * 1024 * 1024;

/// Ticks of a Raft group between heartbeats and before an election (raft-rs's
/// `heartbeat_tick` and `election_tick`); the broker ticks every `RAFT_TICK_MS`.
pub const RAFT_HEARTBEAT_TICKS: usize = 2;
pub const RAFT_ELECTION_TICKS: usize = 10;
pub const RAFT_TICK_MS: u64 = 100;

/// Default `replica.lag.time.max.ms` (Kafka's): a follower that has not caught up with the
/// leader for this long leaves the in-sync replicas.
pub const DEFAULT_REPLICA_LAG_TIME_MAX_MS: u64 = 30_000;

/// Default interval of the automatic return of leaderships to preferred replicas (Kafka's
/// `leader.imbalance.check.interval.seconds`, 300).
pub const DEFAULT_LEADER_IMBALANCE_CHECK_INTERVAL_MS: u64 = 300_000;

/// Ticks (10 s at [`RAFT_TICK_MS`]) after which a peer the leader has not heard from stops
/// holding the partition's cleaner back (`Replica::raft_needs_from`): a broker that is down
/// must not stop compaction on the others for as long as it stays away; when it returns it
/// is sent the compacted batches, as a peer further behind than a cleaned stretch is.
pub const RAFT_CLEANER_PEER_TIMEOUT_TICKS: u64 = 100;

/// Largest batch of entries a leader sends in one append message to a follower.
pub const RAFT_MAX_APPEND_BYTES: u64 = 1024 * 1024;

/// Append messages a leader keeps in flight to one follower.
pub const RAFT_MAX_INFLIGHT_APPENDS: usize = 256;
/// Largest inter-broker frame (`crate::rpc`): one replicated batch of the largest size a topic
/// may accept, plus room for the Raft message around it. A length prefix above it closes the
/// connection before any allocation.
pub const RPC_MAX_FRAME_BYTES: usize = MAX_BATCH_BYTES as usize + (1 << 20);

/// Bytes of messages past which a frame takes no more: what was queued beyond it goes in the
/// next frame, written right after. Heartbeats of every group still share a frame; a backlog of
/// record batches is not gathered into one huge frame the receiver must hold whole before it
/// can deliver any of it. (A single larger message still travels, alone.)
pub const RPC_FRAME_TARGET_BYTES: usize = 1 << 20;

/// Largest handshake frame: a handful of ids and one host:port string.
pub const RPC_MAX_HANDSHAKE_BYTES: usize = 1024;

/// Longest advertised Kafka listener (host:port) a handshake carries.
pub const RPC_MAX_LISTENER_LEN: usize = 255;

/// Messages queued for one peer core and not yet written. Past it (a peer down or slow) the
/// oldest are dropped and counted: Raft resends what matters, and memory stays bounded.
pub const RPC_MAX_QUEUED_MESSAGES: usize = 16 * 1024;

/// Payload bytes queued for one peer core and not yet written (see [`RPC_MAX_QUEUED_MESSAGES`]).
pub const RPC_MAX_QUEUED_BYTES: usize = 2 * RPC_MAX_FRAME_BYTES;

/// Bytes an inter-broker connection reads per step (the read buffer grows to hold a frame
/// larger than this).
pub const RPC_READ_CHUNK_BYTES: usize = 64 * 1024;

/// Payloads smaller than this are copied into the frame's header buffer (one socket write for
/// a batch of small Raft messages); larger ones are written from their own buffers, uncopied.
pub const RPC_COPY_BELOW_BYTES: usize = 4096;
/// Most partitions one DescribeTopicPartitions answer carries (Kafka's
/// `max.request.partition.size.limit`, 2000); the rest follow through its cursor.
pub const DESCRIBE_TOPIC_PARTITIONS_LIMIT: i32 = 2000;

/// How often each core enforces retention and starts its log cleaner unless told otherwise
/// (Kafka's `log.retention.check.interval.ms` is 5 minutes).
pub const DEFAULT_RETENTION_CHECK_INTERVAL: std::time::Duration =
    std::time::Duration::from_secs(30);
/// The longest `log-retention-check-interval-ms` accepted: a day.
pub const MAX_RETENTION_CHECK_INTERVAL_MS: u64 = 24 * 60 * 60 * 1000;

/// The widest offset range one segment may hold (its indexes store offsets relative to its
/// base in 32 bits; Kafka keeps a merged segment within `Int.MaxValue` the same way).
pub const MAX_SEGMENT_OFFSET_SPAN: i64 = i32::MAX as i64;
