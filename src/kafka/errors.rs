//! The one place where Strata's typed errors become Kafka error codes.

use kafka_protocol::error::ResponseError;

use crate::cluster::CatalogError;
use crate::group::GroupError;
use crate::partition::producer_state::SequenceError;
use crate::partition::PartitionError;
use crate::shard::ShardError;
use crate::storage::StorageError;

pub fn storage_code(e: &StorageError) -> i16 {
    match e {
        StorageError::Corrupt(_) => ResponseError::CorruptMessage.code(),
        StorageError::TooLarge { .. } => ResponseError::MessageTooLarge.code(),
        StorageError::InvalidRecord(_) => ResponseError::InvalidRecord.code(),
        StorageError::InvalidTimestamp { .. } => ResponseError::InvalidTimestamp.code(),
        StorageError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange.code(),
        StorageError::Closed => ResponseError::NotLeaderOrFollower.code(),
        StorageError::InvalidConfig(_) => ResponseError::InvalidConfig.code(),
        StorageError::BadFile { .. } | StorageError::Io(_) | StorageError::Encode { .. } => {
            ResponseError::KafkaStorageError.code()
        }
    }
}

pub fn shard_code(e: &ShardError) -> i16 {
    match e {
        ShardError::UnknownPartition => ResponseError::UnknownTopicOrPartition.code(),
        ShardError::Storage(s) => storage_code(s),
        ShardError::Mesh(_) => ResponseError::UnknownServerError.code(),
        ShardError::Partition(PartitionError::Storage(s)) => storage_code(s),
        ShardError::Partition(PartitionError::Sequence(SequenceError::StaleEpoch)) => {
            ResponseError::InvalidProducerEpoch.code()
        }
        ShardError::Partition(PartitionError::Sequence(SequenceError::OutOfOrder)) => {
            ResponseError::OutOfOrderSequenceNumber.code()
        }
        ShardError::Partition(PartitionError::ManyIdempotentBatches) => {
            ResponseError::InvalidRecord.code()
        }
        ShardError::Partition(PartitionError::SnapshotEncode(_)) => {
            ResponseError::UnknownServerError.code()
        }
        ShardError::Partition(PartitionError::DeleteNotAllowed(_)) => {
            ResponseError::PolicyViolation.code()
        }
        ShardError::Partition(PartitionError::DeleteBeyondHighWatermark { .. }) => {
            ResponseError::OffsetOutOfRange.code()
        }
        ShardError::Partition(PartitionError::NotLeader { .. }) => {
            ResponseError::NotLeaderOrFollower.code()
        }
        ShardError::Partition(PartitionError::NotEnoughReplicas { .. }) => {
            ResponseError::NotEnoughReplicas.code()
        }
        ShardError::Partition(PartitionError::NotEnoughReplicasAfterAppend { .. }) => {
            ResponseError::NotEnoughReplicasAfterAppend.code()
        }
        ShardError::Partition(PartitionError::FencedLeaderEpoch { .. }) => {
            ResponseError::FencedLeaderEpoch.code()
        }
        ShardError::Partition(PartitionError::UnknownLeaderEpoch { .. }) => {
            ResponseError::UnknownLeaderEpoch.code()
        }
        ShardError::Partition(PartitionError::LeaderNotReady) => {
            ResponseError::OffsetNotAvailable.code()
        }
        // The replica stopped after a disk failure, or the proposal was not taken: a
        // retriable answer, the client tries again (maybe at another leader).
        ShardError::Partition(PartitionError::Replication(_)) => {
            ResponseError::NotLeaderOrFollower.code()
        }
        ShardError::Controller(_) => ResponseError::UnknownServerError.code(),
        ShardError::Partition(PartitionError::NotSupportedReplicated(_)) => {
            ResponseError::InvalidRequest.code()
        }
    }
}

pub fn catalog_code(e: &CatalogError) -> i16 {
    match e {
        CatalogError::TopicExists(_) => ResponseError::TopicAlreadyExists.code(),
        CatalogError::UnknownTopic(_) => ResponseError::UnknownTopicOrPartition.code(),
        CatalogError::InvalidName(..) => ResponseError::InvalidTopicException.code(),
        CatalogError::InvalidPartitions(_) => ResponseError::InvalidPartitions.code(),
        CatalogError::InvalidConfig(_) => ResponseError::InvalidConfig.code(),
        CatalogError::Storage(s) => storage_code(s),
        CatalogError::Encode(_) => ResponseError::UnknownServerError.code(),
        CatalogError::Unreachable => ResponseError::RequestTimedOut.code(),
        CatalogError::InvalidReplicationFactor(..) => {
            ResponseError::InvalidReplicationFactor.code()
        }
        CatalogError::NotController(_) => ResponseError::NotController.code(),
    }
}

pub const NONE: i16 = 0;
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = ResponseError::UnknownTopicOrPartition.code();
pub const UNKNOWN_TOPIC_ID: i16 = ResponseError::UnknownTopicId.code();
pub const UNSUPPORTED_VERSION: i16 = ResponseError::UnsupportedVersion.code();
pub const REBOOTSTRAP_REQUIRED: i16 = ResponseError::RebootstrapRequired.code();
pub const UNKNOWN_LEADER_EPOCH: i16 = ResponseError::UnknownLeaderEpoch.code();
pub const LOG_DIR_NOT_FOUND: i16 = ResponseError::LogDirNotFound.code();
pub const INVALID_REQUEST: i16 = ResponseError::InvalidRequest.code();
pub const INVALID_TOPIC_EXCEPTION: i16 = ResponseError::InvalidTopicException.code();
pub const INVALID_REPLICA_ASSIGNMENT: i16 = ResponseError::InvalidReplicaAssignment.code();
pub const INVALID_REPLICATION_FACTOR: i16 = ResponseError::InvalidReplicationFactor.code();
pub const INVALID_REQUIRED_ACKS: i16 = ResponseError::InvalidRequiredAcks.code();
pub const INVALID_CONFIG: i16 = ResponseError::InvalidConfig.code();
pub const INVALID_TXN_STATE: i16 = ResponseError::InvalidTxnState.code();
pub const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 =
    ResponseError::TransactionalIdAuthorizationFailed.code();
pub const COORDINATOR_NOT_AVAILABLE: i16 = ResponseError::CoordinatorNotAvailable.code();
pub const INVALID_GROUP_ID: i16 = ResponseError::InvalidGroupId.code();
pub const UNKNOWN_MEMBER_ID: i16 = ResponseError::UnknownMemberId.code();
pub const OFFSET_METADATA_TOO_LARGE: i16 = ResponseError::OffsetMetadataTooLarge.code();
pub const UNKNOWN_SERVER_ERROR: i16 = ResponseError::UnknownServerError.code();
pub const LEADER_NOT_AVAILABLE: i16 = ResponseError::LeaderNotAvailable.code();
pub const NOT_COORDINATOR: i16 = ResponseError::NotCoordinator.code();

pub fn group_code(e: &GroupError) -> i16 {
    match e {
        GroupError::UnknownMemberId => ResponseError::UnknownMemberId.code(),
        GroupError::IllegalGeneration => ResponseError::IllegalGeneration.code(),
        GroupError::RebalanceInProgress => ResponseError::RebalanceInProgress.code(),
        GroupError::FencedInstanceId => ResponseError::FencedInstanceId.code(),
        GroupError::MemberIdRequired => ResponseError::MemberIdRequired.code(),
        GroupError::InconsistentGroupProtocol => ResponseError::InconsistentGroupProtocol.code(),
        GroupError::InvalidSessionTimeout => ResponseError::InvalidSessionTimeout.code(),
        GroupError::GroupMaxSizeReached => ResponseError::GroupMaxSizeReached.code(),
        GroupError::NonEmptyGroup => ResponseError::NonEmptyGroup.code(),
        GroupError::GroupIdNotFound => ResponseError::GroupIdNotFound.code(),
        GroupError::GroupSubscribedToTopic => ResponseError::GroupSubscribedToTopic.code(),
        GroupError::CoordinatorNotAvailable => ResponseError::CoordinatorNotAvailable.code(),
        GroupError::FencedMemberEpoch => ResponseError::FencedMemberEpoch.code(),
        GroupError::StaleMemberEpoch => ResponseError::StaleMemberEpoch.code(),
        GroupError::UnsupportedAssignor => ResponseError::UnsupportedAssignor.code(),
        GroupError::UnreleasedInstanceId => ResponseError::UnreleasedInstanceId.code(),
        GroupError::InvalidRequest => ResponseError::InvalidRequest.code(),
        GroupError::UnsupportedVersion => ResponseError::UnsupportedVersion.code(),
        GroupError::InvalidRegularExpression => ResponseError::InvalidRegularExpression.code(),
    }
}

/// The error code of an optional group error (`None` = success).
pub fn group_result(e: Option<GroupError>) -> i16 {
    e.as_ref().map_or(NONE, group_code)
}
