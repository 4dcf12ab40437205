//! DeleteTopics (key 20): remove topics from the catalog; every core closes the topic's
//! partitions it owns and deletes their files before the answer. Topics are named (v1–v5) or named-or-id (v6).

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};

use super::{str_bytes, Ctx};
use crate::kafka::errors;

pub async fn handle(
    ctx: &Ctx,
    req: DeleteTopicsRequest,
    version: i16,
) -> Option<DeleteTopicsResponse> {
    let targets: Vec<(Option<String>, uuid::Uuid)> = if version >= 6 {
        req.topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.topic_id))
            .collect()
    } else {
        req.topic_names
            .iter()
            .map(|n| (Some(n.0.to_string()), uuid::Uuid::nil()))
            .collect()
    };
    let mut responses = Vec::new();
    for (name, id) in targets {
        let resolved = {
            let cat = ctx.shard.catalog();
            match (&name, id.is_nil()) {
                (Some(n), _) => cat.topic(n).map(|t| t.name.clone()),
                (None, false) => cat.topic_by_id(id.as_bytes()).map(|t| t.name.clone()),
                (None, true) => None,
            }
        };
        let mut result = DeletableTopicResult::default()
            .with_name(name.as_deref().map(|n| TopicName(str_bytes(n))))
            .with_topic_id(id);
        let Some(topic) = resolved else {
            let code = if name.is_none() {
                errors::UNKNOWN_TOPIC_ID
            } else {
                errors::UNKNOWN_TOPIC_OR_PARTITION
            };
            responses.push(result.with_error_code(code));
            continue;
        };
        if topic == crate::group::offsets::OFFSETS_TOPIC {
            // The cores cache the groups' offsets read from it: it is not deleted under them.
            let msg = "the internal topic __consumer_offsets cannot be deleted";
            responses.push(
                result
                    .with_error_code(errors::INVALID_REQUEST)
                    .with_error_message(if version >= 5 {
                        Some(str_bytes(msg))
                    } else {
                        None
                    }),
            );
            continue;
        }
        // Answered once every core has dropped the topic's partitions and their files.
        let deleted = ctx.shard.delete_topic(topic.clone()).await;
        match deleted {
            Ok(meta) => {
                tracing::info!(topic = %topic, "deleted topic");
                result = result
                    .with_name(Some(TopicName(str_bytes(&topic))))
                    .with_topic_id(uuid::Uuid::from_bytes(meta.id));
            }
            Err(e) => {
                result = result
                    .with_error_code(errors::catalog_code(&e))
                    .with_error_message(Some(str_bytes(&e.to_string())))
            }
        }
        responses.push(result);
    }
    Some(DeleteTopicsResponse::default().with_responses(responses))
}
