//! ListGroups (key 16, v0–v5): every group of every `__consumer_offsets` partition, with
//! its protocol type and (v4+) state, filtered by state (v4+) and type (v5+: "classic", or
//! "consumer" for KIP-848 groups).

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};

use super::{group_call, str_bytes, Ctx};
use crate::group::{GroupOp, GroupReply};

pub async fn handle(ctx: &Ctx, req: ListGroupsRequest) -> Option<ListGroupsResponse> {
    let mut groups = Vec::new();
    for tp in group_call::all_partitions() {
        match group_call::call_on(ctx, tp, GroupOp::List).await {
            Ok(GroupReply::Listed(found)) => groups.extend(found),
            Ok(_) => {}
            Err(code) => return Some(ListGroupsResponse::default().with_error_code(code)),
        }
    }
    let wanted_state = |s: &str| {
        req.states_filter.is_empty() || req.states_filter.iter().any(|f| f.eq_ignore_ascii_case(s))
    };
    let wanted_type = |t: &str| {
        req.types_filter.is_empty() || req.types_filter.iter().any(|f| f.eq_ignore_ascii_case(t))
    };
    let listed = groups
        .into_iter()
        .filter(|g| wanted_type(g.group_type) && wanted_state(g.state))
        .map(|g| {
            ListedGroup::default()
                .with_group_id(GroupId(str_bytes(&g.group)))
                .with_protocol_type(str_bytes(&g.protocol_type))
                .with_group_state(str_bytes(g.state))
                .with_group_type(str_bytes(g.group_type))
        })
        .collect();
    Some(ListGroupsResponse::default().with_groups(listed))
}
