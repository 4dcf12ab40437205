//! Consumer groups: the group coordinator and committed offsets, stored in the internal topic
//! `__consumer_offsets` on Strata's own log. A group belongs to one partition of that topic (a
//! hash of its id), and so to the core that owns the partition; that core keeps the group's
//! membership and offsets in memory, rebuilt from the partition when it is first used.
//!
//! This module holds the state machines and record formats, and the group service
//! ([`service`]) that runs them on the owning core and writes their records; the shard routes
//! [`GroupOp`]s to it, the Kafka handlers translate requests into them. Nothing here knows the
//! wire format of requests.

pub mod consumer;
pub mod coordinator;
pub mod expiry;
pub mod metadata;
pub mod offsets;
pub mod service;
pub mod slot;
pub mod state;

use bytes::Bytes;
use thiserror::Error;

use crate::shard::TopicPartition;
use coordinator::{JoinOutcome, JoinRequest, SyncOutcome, SyncRequest};
use offsets::{Committed, OffsetKey};

/// Why a group operation was refused; each is one Kafka error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum GroupError {
    #[error("unknown member id")]
    UnknownMemberId,
    #[error("illegal generation")]
    IllegalGeneration,
    #[error("rebalance in progress")]
    RebalanceInProgress,
    #[error("fenced by a newer member with the same group.instance.id")]
    FencedInstanceId,
    #[error("member id required: join again with the id given")]
    MemberIdRequired,
    #[error("inconsistent group protocol")]
    InconsistentGroupProtocol,
    #[error("session timeout out of the coordinator's bounds")]
    InvalidSessionTimeout,
    #[error("the group has reached its maximum size")]
    GroupMaxSizeReached,
    #[error("the group is not empty")]
    NonEmptyGroup,
    #[error("group not found")]
    GroupIdNotFound,
    #[error("the group is subscribed to the topic")]
    GroupSubscribedToTopic,
    #[error("coordinator not available")]
    CoordinatorNotAvailable,
    /// Consumer protocol: the member's epoch is ahead of, or too far behind, the group's.
    #[error("fenced member epoch")]
    FencedMemberEpoch,
    /// Consumer protocol: a commit or fetch with an older member epoch.
    #[error("stale member epoch")]
    StaleMemberEpoch,
    #[error("unsupported server assignor")]
    UnsupportedAssignor,
    #[error("the static member's instance id is still in use")]
    UnreleasedInstanceId,
    #[error("invalid request")]
    InvalidRequest,
    #[error("invalid regular expression")]
    InvalidRegularExpression,
    /// A consumer-protocol member committed with OffsetCommit older than v9.
    #[error("unsupported version")]
    UnsupportedVersion,
}

/// A group operation, run on the core owning the group's `__consumer_offsets` partition.
#[derive(Debug)]
pub enum GroupOp {
    Join(JoinRequest),
    Sync(SyncRequest),
    Heartbeat {
        group: String,
        generation: i32,
        member_id: String,
        instance_id: Option<String>,
    },
    /// Members leaving, each by member id or (empty id) by instance id.
    Leave {
        group: String,
        members: Vec<(String, Option<String>)>,
    },
    /// Store offsets, if the committer may commit (see `Coordinator::check_commit`).
    Commit {
        group: String,
        generation: i32,
        member_id: String,
        instance_id: Option<String>,
        commits: Vec<(String, i32, Committed)>,
        /// The OffsetCommit version: consumer-protocol members must use v9+.
        version: i16,
    },
    FetchOffsets {
        group: String,
    },
    Describe {
        group: String,
    },
    /// Every group of the partition.
    List,
    Delete {
        group: String,
    },
    DeleteOffsets {
        group: String,
        partitions: Vec<(String, i32)>,
    },
    /// ConsumerGroupHeartbeat (KIP-848), run by [`consumer::ConsumerGroups`].
    ConsumerHeartbeat(Box<consumer::HeartbeatRequest>),
    /// ConsumerGroupDescribe.
    ConsumerDescribe {
        group: String,
    },
    /// OffsetFetch v9+: like `FetchOffsets`, after checking a consumer group's member epoch.
    FetchOffsetsAs {
        group: String,
        member_id: Option<String>,
        member_epoch: i32,
    },
}

impl GroupOp {
    /// The group the op is about (`None` for a listing).
    pub fn group(&self) -> Option<&str> {
        match self {
            GroupOp::Join(r) => Some(&r.group),
            GroupOp::Sync(r) => Some(&r.group),
            GroupOp::Heartbeat { group, .. }
            | GroupOp::Leave { group, .. }
            | GroupOp::Commit { group, .. }
            | GroupOp::FetchOffsets { group }
            | GroupOp::Describe { group }
            | GroupOp::Delete { group }
            | GroupOp::DeleteOffsets { group, .. }
            | GroupOp::ConsumerDescribe { group }
            | GroupOp::FetchOffsetsAs { group, .. } => Some(group),
            GroupOp::ConsumerHeartbeat(r) => Some(&r.group),
            GroupOp::List => None,
        }
    }
}

/// A member as DescribeGroups shows it.
#[derive(Debug, Clone)]
pub struct MemberSummary {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// A group as DescribeGroups and ListGroups show it.
#[derive(Debug, Clone)]
pub struct GroupSummary {
    pub group: String,
    /// Kafka's state name; "Dead" for a group that does not exist.
    pub state: &'static str,
    /// "classic" or "consumer" (the KIP-848 protocol), as ListGroups v5 names them.
    pub group_type: &'static str,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<MemberSummary>,
}

/// (topic, partition, outcome)
pub type PartitionOutcome = (String, i32, Result<(), GroupError>);

#[derive(Debug)]
pub enum GroupReply {
    Join(JoinOutcome),
    Sync(SyncOutcome),
    Status(Result<(), GroupError>),
    Left(Vec<Result<(), GroupError>>),
    Offsets(Vec<(OffsetKey, Committed)>),
    Described(GroupSummary),
    Listed(Vec<GroupSummary>),
    OffsetsDeleted(Result<Vec<PartitionOutcome>, GroupError>),
    ConsumerHeartbeat(Result<consumer::HeartbeatOutcome, consumer::Refusal>),
    ConsumerDescribed(Result<consumer::Described, GroupError>),
}

/// The configs of `__consumer_offsets`: compacted, and a group's metadata record holds every
/// member's subscription and assignment, so a large group must not be refused by the 1 MiB
/// default (it would rebalance forever).
pub fn offsets_topic_configs() -> Vec<(String, String)> {
    vec![
        ("cleanup.policy".into(), "compact".into()),
        (
            "max.message.bytes".into(),
            crate::limits::MAX_BATCH_BYTES.to_string(),
        ),
    ]
}

/// The `__consumer_offsets` partition holding `group`.
pub fn group_partition(group: &str) -> TopicPartition {
    TopicPartition {
        topic: offsets::OFFSETS_TOPIC.into(),
        partition: offsets::offsets_partition(group),
    }
}

/// The topics a consumer-protocol member subscribes to, read from its JoinGroup metadata
/// (`ConsumerProtocolSubscription`, whose version is its first two bytes).
pub fn subscribed_topics(metadata: &Bytes) -> Vec<String> {
    use kafka_protocol::messages::ConsumerProtocolSubscription;
    use kafka_protocol::protocol::Decodable;
    let mut b = metadata.clone();
    if b.len() < 2 {
        return Vec::new();
    }
    let version = i16::from_be_bytes([b[0], b[1]]);
    let _ = bytes::Buf::get_i16(&mut b);
    ConsumerProtocolSubscription::decode(&mut b, version.clamp(0, 3))
        .map(|s| s.topics.into_iter().map(|t| t.to_string()).collect())
        .unwrap_or_default()
}
