//! The transport as `strata serve` starts it: on every core when the broker has peers, with
//! core 0 dialing core 0 of every peer at once so that the brokers learn each other's Kafka
//! listeners. Nothing else uses it yet; received messages are only logged (trace).

use std::rc::Rc;

use super::{CoreWiring, Inbound, RpcError, Transport, TransportConfig};
use crate::config::BrokerConfig;

/// This core's transport, or `None` for a one-node cluster (no listener, no task).
pub fn for_broker(
    config: &BrokerConfig,
    core: usize,
    wiring: Option<CoreWiring>,
    handler: Option<super::Handler>,
) -> Result<Option<Transport>, RpcError> {
    let (Some(peers), Some(wiring)) = (&config.peers, wiring) else {
        return Ok(None);
    };
    let host = &config.advertised_host;
    let kafka_listener = if host.contains(':') {
        format!("[{host}]:{}", config.advertised_port)
    } else {
        format!("{host}:{}", config.advertised_port)
    };
    let transport = Transport::start(
        TransportConfig {
            peers: peers.clone(),
            core,
            cores: config.cores,
            kafka_listener,
            cluster_id: 0,
        },
        wiring,
        handler.unwrap_or_else(|| {
            Rc::new(move |m: Inbound| {
                tracing::trace!(
                    core,
                    from = m.from_node,
                    channel = m.channel,
                    len = m.payload.len(),
                    "rpc message"
                );
            })
        }),
    )?;
    if core == 0 {
        tracing::info!(node = peers.me(), rpc_listen = %peers.rpc_listen(), peers = peers.len(), "inter-broker transport listening");
        for (node, _) in peers.others() {
            // Listed peers with core 0 always exist: this cannot fail.
            let _ = transport.connect((node, 0));
        }
    }
    Ok(Some(transport))
}
