//! The brokers of a cluster as the operator listed them: every broker's node id and
//! inter-broker (RPC) address, and which of them is this broker.
//!
//! Parsed once at start-up from `--peers 1=host:port,2=host:port,...` (the same string in the
//! TOML file's `peers` key and in `STRATA_PEERS`), checked there, and then only read. It owns
//! no connection and no state that changes: the transport (`crate::rpc`) dials these addresses
//! and refuses handshakes from ids not listed here.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};

use thiserror::Error;

/// A broker's id (Kafka's `node.id` / `broker.id`).
pub type NodeId = i32;

#[derive(Debug, Error, PartialEq)]
pub enum PeersError {
    #[error("peers: '{0}' is not id=host:port")]
    Entry(String),
    #[error("peers: '{0}' is not a node id (a number from 0 to 2147483647)")]
    Id(String),
    #[error("peers: node {0} is listed twice")]
    Duplicate(NodeId),
    #[error("peers: cannot resolve the address '{0}' of node {1}: {2}")]
    Address(String, NodeId, String),
    #[error("peers: the list is empty")]
    Empty,
    #[error("node id {0} is not in the peers list ({1})")]
    NotListed(NodeId, String),
    #[error("--peers needs --node-id: which of the listed brokers is this one")]
    NoNodeId,
    #[error("--rpc-listen needs --peers: a one-node cluster has no inter-broker listener")]
    RpcListenAlone,
    #[error("rpc-listen: '{0}' is not host:port: {1}")]
    RpcListen(String, String),
}

/// The resolved peer set of a cluster member.
#[derive(Debug, Clone, PartialEq)]
pub struct Peers {
    me: NodeId,
    addrs: BTreeMap<NodeId, SocketAddr>,
    rpc_listen: SocketAddr,
}

impl Peers {
    /// Parses `1=127.0.0.1:19092,2=127.0.0.1:19093`: ids unique, every address resolvable.
    pub fn parse_list(list: &str) -> Result<BTreeMap<NodeId, SocketAddr>, PeersError> {
        let mut addrs = BTreeMap::new();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (id, addr) = entry
                .split_once('=')
                .ok_or_else(|| PeersError::Entry(entry.into()))?;
            let id: NodeId = id
                .trim()
                .parse()
                .ok()
                .filter(|id| *id >= 0)
                .ok_or_else(|| PeersError::Id(id.trim().into()))?;
            let addr =
                resolve(addr.trim()).map_err(|e| PeersError::Address(addr.trim().into(), id, e))?;
            if addrs.insert(id, addr).is_some() {
                return Err(PeersError::Duplicate(id));
            }
        }
        if addrs.is_empty() {
            return Err(PeersError::Empty);
        }
        Ok(addrs)
    }

    /// The peer set of node `me`, which must be listed; `rpc_listen` (if given) is where this
    /// broker listens instead of its own entry (behind NAT or on 0.0.0.0, say).
    pub fn new(
        me: NodeId,
        addrs: BTreeMap<NodeId, SocketAddr>,
        rpc_listen: Option<SocketAddr>,
    ) -> Result<Peers, PeersError> {
        let Some(own) = addrs.get(&me).copied() else {
            let ids: Vec<String> = addrs.keys().map(|id| id.to_string()).collect();
            return Err(PeersError::NotListed(me, ids.join(", ")));
        };
        Ok(Peers {
            me,
            addrs,
            rpc_listen: rpc_listen.unwrap_or(own),
        })
    }

    /// From the settings as given: `None` without a peers list (a one-node cluster).
    pub fn from_settings(
        node_id: Option<NodeId>,
        peers: Option<&str>,
        rpc_listen: Option<&str>,
    ) -> Result<Option<Peers>, PeersError> {
        let Some(list) = peers else {
            return match rpc_listen {
                Some(_) => Err(PeersError::RpcListenAlone),
                None => Ok(None),
            };
        };
        let me = node_id.ok_or(PeersError::NoNodeId)?;
        let rpc_listen = rpc_listen
            .map(|a| resolve(a).map_err(|e| PeersError::RpcListen(a.into(), e)))
            .transpose()?;
        Peers::new(me, Peers::parse_list(list)?, rpc_listen).map(Some)
    }

    /// This broker's id.
    pub fn me(&self) -> NodeId {
        self.me
    }

    /// Where this broker accepts connections from its peers.
    pub fn rpc_listen(&self) -> SocketAddr {
        self.rpc_listen
    }

    /// The RPC address of `node`, if it is a member.
    pub fn addr(&self, node: NodeId) -> Option<SocketAddr> {
        self.addrs.get(&node).copied()
    }

    pub fn contains(&self, node: NodeId) -> bool {
        self.addrs.contains_key(&node)
    }

    /// Every member's id, this broker's included, in order.
    pub fn ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.addrs.keys().copied()
    }

    /// The other members and their RPC addresses.
    pub fn others(&self) -> impl Iterator<Item = (NodeId, SocketAddr)> + '_ {
        self.addrs
            .iter()
            .filter(|(id, _)| **id != self.me)
            .map(|(id, a)| (*id, *a))
    }

    pub fn len(&self) -> usize {
        self.addrs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.addrs.is_empty()
    }
}

fn resolve(addr: &str) -> Result<SocketAddr, String> {
    addr.to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or_else(|| "no address".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = "1=127.0.0.1:19092,2=127.0.0.1:19093,3=127.0.0.1:19094";

    #[test]
    fn a_listed_node_gets_its_own_entry_or_the_override() {
        let p = Peers::from_settings(Some(2), Some(LIST), None)
            .expect("valid")
            .expect("a cluster");
        assert_eq!(p.me(), 2);
        assert_eq!(p.rpc_listen().to_string(), "127.0.0.1:19093");
        assert_eq!(p.ids().collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(p.others().map(|(id, _)| id).collect::<Vec<_>>(), vec![1, 3]);
        let p = Peers::from_settings(Some(2), Some(LIST), Some("0.0.0.0:29093"))
            .expect("valid")
            .expect("a cluster");
        assert_eq!(p.rpc_listen().to_string(), "0.0.0.0:29093");
        assert_eq!(p.addr(2).map(|a| a.port()), Some(19093));
    }

    #[test]
    fn no_peers_is_a_single_node() {
        assert_eq!(Peers::from_settings(Some(7), None, None), Ok(None));
        assert_eq!(
            Peers::from_settings(None, None, Some("127.0.0.1:1")),
            Err(PeersError::RpcListenAlone)
        );
    }

    #[test]
    fn bad_lists_are_refused_with_the_reason() {
        let err = |id, list: &str, rpc: Option<&str>| {
            Peers::from_settings(id, Some(list), rpc)
                .expect_err("invalid")
                .to_string()
        };
        assert!(err(None, LIST, None).contains("--peers needs --node-id"));
        assert!(err(Some(4), LIST, None).contains("node id 4 is not in the peers list (1, 2, 3)"));
        assert!(
            err(Some(1), "1=127.0.0.1:1,1=127.0.0.1:2", None).contains("node 1 is listed twice")
        );
        assert!(
            err(Some(1), "1=127.0.0.1:1,2=nonsense", None).contains("address 'nonsense' of node 2")
        );
        assert!(err(Some(1), "1=127.0.0.1:99999", None).contains("address '127.0.0.1:99999'"));
        assert!(
            err(Some(1), "1=127.0.0.1:1,two=127.0.0.1:2", None).contains("'two' is not a node id")
        );
        assert!(
            err(Some(1), "1=127.0.0.1:1,-2=127.0.0.1:2", None).contains("'-2' is not a node id")
        );
        assert!(err(Some(1), "127.0.0.1:1", None).contains("is not id=host:port"));
        assert!(err(Some(1), " , ", None).contains("empty"));
        assert!(err(Some(1), LIST, Some("nowhere")).contains("rpc-listen: 'nowhere'"));
    }
}
