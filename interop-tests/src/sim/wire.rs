//! What membership traffic costs on the wire, and how long it takes to
//! cross a community network: the link model of the membership
//! simulation (DESIGN/simulation.md has the sources and assumptions).

use std::hash::{DefaultHasher, Hash, Hasher};

/// IPv4 + UDP + QUIC short header + AEAD tag + a frame header: what every
/// QUIC packet costs beyond its payload (DESIGN/failure-detection.md
/// measured probe packets of 60–80 bytes for 8-byte payloads).
pub const PACKET: u64 = 59;
/// An acknowledgement packet.
pub const ACK: u64 = 60;
/// A gossipsub message beyond its data: author, sequence number, topic,
/// signature, protobuf framing.
pub const GOSSIP_ENVELOPE: u64 = 150;
/// A gossip message id in an IHAVE: the node's 16-byte BLAKE3 id
/// (`overlay/src/behaviour.rs`) and its protobuf field header.
pub const GOSSIP_ID: u64 = 18;
/// An IHAVE beyond its ids: the RPC, control and IHAVE framing and the
/// topic name.
pub const GOSSIP_IHAVE: u64 = 27;
/// A message pushed along the broadcast tree beyond its data: the author's
/// peer id (38 bytes) and signature (64), the 16-byte id, the frame's tag
/// and length (`overlay/src/broadcast.rs`).
pub const TREE_ENVELOPE: u64 = 123;
/// A broadcast tree control frame (IHave, Graft, Prune) beyond its ids.
pub const TREE_FRAME: u64 = 5;
/// An id in an IHave or Graft.
pub const TREE_ID: u64 = 16;
/// Opening a request-response stream: multistream-select's header and
/// the protocol name, each way.
pub const NEGOTIATION: u64 = 45;
/// A probe's nonce.
pub const NONCE: u64 = 8;

/// A deterministic uniform draw in [0, 1) from `parts` (order-independent
/// of the simulation's event order, so one seed gives one result).
pub fn draw(parts: impl Hash) -> f64 {
    let mut h = DefaultHasher::new();
    parts.hash(&mut h);
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// A community network: nodes on rooftops in a region, wireless hops.
#[derive(Clone, Debug)]
pub struct Links {
    /// Position of each node, km.
    pos: Vec<(f64, f64)>,
    /// Each node's own access-link delay, ms.
    access: Vec<f64>,
    /// Chance that a packet is lost on a path.
    pub loss: f64,
    seed: u64,
}

/// Side of the square region, km.
const REGION_KM: f64 = 40.0;
/// Length of one wireless hop, km.
const HOP_KM: f64 = 3.0;
/// One-way delay added by each wireless hop, ms.
const HOP_MS: f64 = 1.5;

impl Links {
    /// `n` nodes placed at random (by `seed`), losing `loss` of packets.
    pub fn new(n: usize, loss: f64, seed: u64) -> Links {
        let pos = (0..n)
            .map(|i| (draw((seed, "x", i)) * REGION_KM, draw((seed, "y", i)) * REGION_KM))
            .collect();
        let access = (0..n).map(|i| 0.5 + 4.5 * draw((seed, "access", i))).collect();
        Links { pos, access, loss, seed }
    }

    /// One-way delay from `a` to `b` without loss, ms.
    pub fn delay_ms(&self, a: usize, b: usize) -> f64 {
        let (pa, pb) = (self.pos[a], self.pos[b]);
        let km = ((pa.0 - pb.0).powi(2) + (pa.1 - pb.1).powi(2)).sqrt();
        let hops = (km / HOP_KM).ceil().max(1.0);
        self.access[a] + self.access[b] + HOP_MS * hops
    }

    /// When one packet (`what`, a unique tag) sent from `a` to `b` arrives,
    /// ms after it was sent, and how many times it was sent: a lost packet
    /// is sent again after QUIC's probe timeout (about three one-way
    /// delays plus 25 ms of acknowledgement delay).
    pub fn deliver(&self, a: usize, b: usize, what: impl Hash + Copy) -> (f64, u64) {
        let one_way = self.delay_ms(a, b);
        let mut at = one_way;
        let mut sent = 1;
        while sent < 10 && draw((self.seed, what, a, b, sent)) < self.loss {
            at += 3.0 * one_way + 25.0;
            sent += 1;
        }
        (at, sent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_are_those_of_a_community_network_and_losses_cost_time() {
        let l = Links::new(500, 0.01, 7);
        let mut d: Vec<f64> = (1..500).map(|b| l.delay_ms(0, b)).collect();
        d.sort_by(f64::total_cmp);
        assert!(d[0] >= 2.5 && d[d.len() - 1] <= 40.0, "{} … {}", d[0], d[d.len() - 1]);
        let lossy = Links::new(2, 0.5, 7);
        let tries: Vec<(f64, u64)> = (0..200).map(|i| lossy.deliver(0, 1, i)).collect();
        assert!(tries.iter().any(|t| t.1 > 1) && tries.iter().any(|t| t.1 == 1));
        assert!(tries.iter().all(|t| t.1 == 1 || t.0 > lossy.delay_ms(0, 1)));
        assert_eq!(lossy.deliver(0, 1, 3), lossy.deliver(0, 1, 3), "deterministic");
    }
}
