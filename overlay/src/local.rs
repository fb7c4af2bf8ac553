//! This node's own membership state: what its heartbeats say.

use crate::membership::wire::{Alive, Message, ServiceMeta};
use crate::scoring::vivaldi::VivaldiClient;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use std::collections::BTreeMap;

/// Our incarnation, message counter, addresses, services and coordinate.
pub(crate) struct LocalState {
    pub peer: PeerId,
    pub incarnation: u64,
    pub seq: u64,
    pub zone: String,
    pub listen_addrs: Vec<Multiaddr>,
    pub services: BTreeMap<String, ServiceMeta>,
    pub vivaldi: VivaldiClient,
}

impl LocalState {
    pub(crate) fn new(peer: PeerId, zone: String) -> Self {
        LocalState {
            peer,
            incarnation: crate::unix_ms(),
            seq: 0,
            zone,
            listen_addrs: Vec::new(),
            services: BTreeMap::new(),
            vivaldi: VivaldiClient::default(),
        }
    }

    /// The addresses we tell others to dial, QUIC (the primary transport) first.
    pub(crate) fn announced_addrs(&self, external: &[Multiaddr]) -> Vec<Multiaddr> {
        let mut out: Vec<Multiaddr> =
            self.listen_addrs.iter().filter(|a| !is_unspecified(a)).cloned().collect();
        for a in external {
            if !out.contains(a) {
                out.push(a.clone());
            }
        }
        crate::addresses::sort_quic_first(&mut out);
        out
    }

    /// Our next heartbeat.
    pub(crate) fn alive(&mut self, external: &[Multiaddr]) -> Message {
        self.seq += 1;
        Message::Alive(self.alive_info(external))
    }

    /// Our heartbeat without advancing the counter (for state exchange).
    pub(crate) fn alive_info(&self, external: &[Multiaddr]) -> Alive {
        Alive {
            peer: self.peer,
            incarnation: self.incarnation,
            seq: self.seq,
            addrs: self.announced_addrs(external),
            zone: self.zone.clone(),
            coord: Some(self.vivaldi.coordinate().clone()),
            services: self.services.clone(),
        }
    }

    /// Our goodbye.
    pub(crate) fn leave(&mut self) -> Message {
        self.seq += 1;
        Message::Leave { peer: self.peer, incarnation: self.incarnation, seq: self.seq }
    }
}

fn is_unspecified(a: &Multiaddr) -> bool {
    a.iter().any(|p| match p {
        Protocol::Ip4(ip) => ip.is_unspecified(),
        Protocol::Ip6(ip) => ip.is_unspecified(),
        _ => false,
    })
}
