//! Wire format of membership messages and of the join-time state exchange
//! ([`crate::protocols::MEMBERS_SYNC`]).
//!
//! Messages are UTF-8 JSON, one object each, signed by the author's libp2p
//! key. Between cloudy nodes they travel over the broadcast tree
//! ([`crate::protocols::BROADCAST`]) inside a signed envelope
//! (`signed.rs`); to and from peers that are not cloudy nodes (a js-libp2p
//! peer) they go as gossipsub messages on
//! [`crate::protocols::MEMBERSHIP_TOPIC`] with gossipsub's strict signing.
//! For `alive` and `leave` the `peer` field must equal the signer, for
//! `suspect` and `failed` the `by` field must; otherwise the message is
//! rejected:
//!
//! ```json
//! {"v":1,"kind":"alive","peer":"12D3Koo…","incarnation":1763800000000,"seq":42,
//!  "addrs":["/ip4/10.0.0.5/udp/7391/quic-v1"],"zone":"barcelona-sants",
//!  "coord":{"vec":[0.001,0,0,0,0,0,0,0],"error":0.4,"adjustment":0.0,"height":0.0001},
//!  "services":{"storage":{"free":"5000000000"}}}
//! {"v":1,"kind":"leave","peer":"12D3Koo…","incarnation":1763800000000,"seq":43}
//! {"v":1,"kind":"suspect","peer":"12D3Koo…","incarnation":1763800000000,"seq":42,"by":"12D3KooX…"}
//! {"v":1,"kind":"failed","peer":"12D3Koo…","incarnation":1763800000000,"seq":42,"by":"12D3KooX…"}
//! ```
//!
//! `suspect` says that `by` could not probe `peer`, whose latest message it
//! knew was `(incarnation, seq)`; `peer` refutes it with any newer `alive`.
//! `failed` confirms a suspicion nobody refuted.
//!
//! `incarnation` is the sender's start time in unix ms and `seq` counts its
//! messages within an incarnation; `(incarnation, seq)` orders a member's
//! messages, older ones are ignored. `coord` may be absent.

use crate::scoring::vivaldi::Coordinate;
use libp2p::{Multiaddr, PeerId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Current wire version.
pub const VERSION: u32 = 1;
/// Largest gossip message we accept.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Metadata of one announced service: free-form key/value pairs.
pub type ServiceMeta = BTreeMap<String, String>;

/// A member's heartbeat: who it is and what it offers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alive {
    /// The member.
    #[serde(with = "peer_str")]
    pub peer: PeerId,
    /// Start time of the member's process, unix ms.
    pub incarnation: u64,
    /// Message counter within the incarnation.
    pub seq: u64,
    /// Addresses others may dial.
    #[serde(default)]
    pub addrs: Vec<Multiaddr>,
    /// Zone label, free text, may be empty.
    #[serde(default)]
    pub zone: String,
    /// Network coordinate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coord: Option<Coordinate>,
    /// Announced services.
    #[serde(default)]
    pub services: BTreeMap<String, ServiceMeta>,
}

/// One membership message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Message {
    /// Heartbeat / announcement.
    Alive(Alive),
    /// The member leaves the community cleanly.
    Leave {
        /// The member.
        #[serde(with = "peer_str")]
        peer: PeerId,
        /// Its incarnation.
        incarnation: u64,
        /// Its message counter.
        seq: u64,
    },
    /// `by` could not reach `peer` (as of `peer`'s version `(incarnation, seq)`).
    Suspect(Accusation),
    /// `by` confirms that `peer` did not refute a suspicion in time.
    Failed(Accusation),
}

/// Body of `suspect` and `failed`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Accusation {
    /// The suspected member.
    #[serde(with = "peer_str")]
    pub peer: PeerId,
    /// Its incarnation as the accuser knew it.
    pub incarnation: u64,
    /// Its message counter as the accuser knew it.
    pub seq: u64,
    /// The accuser, who must be the message's author.
    #[serde(with = "peer_str")]
    pub by: PeerId,
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    v: u32,
    #[serde(flatten)]
    msg: Message,
}

/// Why a gossip message was rejected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Larger than [`MAX_MESSAGE_BYTES`].
    #[error("membership message of {0} bytes is over the {MAX_MESSAGE_BYTES}-byte limit")]
    TooLarge(usize),
    /// Not JSON of the documented shape.
    #[error("malformed membership message: {0}")]
    Malformed(#[from] serde_json::Error),
    /// A version we do not speak.
    #[error("membership message version {0} is not supported (we speak {VERSION})")]
    Version(u32),
    /// The coordinate holds NaN, infinities or absurd values.
    #[error("membership message carries an invalid network coordinate")]
    BadCoordinate,
}

impl Message {
    /// The member the message is about.
    pub fn peer(&self) -> PeerId {
        match self {
            Message::Alive(a) => a.peer,
            Message::Leave { peer, .. } => *peer,
            Message::Suspect(a) | Message::Failed(a) => a.peer,
        }
    }

    /// Who must have signed the message.
    pub fn author(&self) -> PeerId {
        match self {
            Message::Suspect(a) | Message::Failed(a) => a.by,
            _ => self.peer(),
        }
    }

    /// `(incarnation, seq)`: of the message for `alive`/`leave`, of the
    /// member as known to the accuser for `suspect`/`failed`.
    pub fn version(&self) -> (u64, u64) {
        match self {
            Message::Alive(a) => (a.incarnation, a.seq),
            Message::Leave { incarnation, seq, .. } => (*incarnation, *seq),
            Message::Suspect(a) | Message::Failed(a) => (a.incarnation, a.seq),
        }
    }

    /// Encodes as JSON.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(&Envelope { v: VERSION, msg: self.clone() }).unwrap_or_default()
    }

    /// Decodes and checks a message from the wire.
    pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
        if bytes.len() > MAX_MESSAGE_BYTES {
            return Err(DecodeError::TooLarge(bytes.len()));
        }
        let env: Envelope = serde_json::from_slice(bytes)?;
        if env.v != VERSION {
            return Err(DecodeError::Version(env.v));
        }
        if let Message::Alive(Alive { coord: Some(c), .. }) = &env.msg {
            if !c.is_valid() {
                return Err(DecodeError::BadCoordinate);
            }
        }
        Ok(env.msg)
    }
}

mod peer_str {
    use libp2p::PeerId;
    use serde::{de::Error, Deserialize, Deserializer, Serializer};
    use std::str::FromStr;

    pub(super) fn serialize<S: Serializer>(p: &PeerId, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(p)
    }
    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PeerId, D::Error> {
        let s = String::deserialize(d)?;
        PeerId::from_str(&s).map_err(|e| D::Error::custom(format!("invalid peer id {s:?}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alive() -> Alive {
        Alive {
            peer: PeerId::random(),
            incarnation: 1,
            seq: 2,
            addrs: vec!["/ip4/127.0.0.1/udp/1/quic-v1".parse().unwrap()],
            zone: "z".into(),
            coord: Some(Coordinate::default()),
            services: BTreeMap::from([(
                "storage".into(),
                BTreeMap::from([("free".into(), "9".into())]),
            )]),
        }
    }

    #[test]
    fn roundtrip_alive_and_leave() {
        let a = Message::Alive(alive());
        assert_eq!(Message::decode(&a.encode()).unwrap(), a);
        let l = Message::Leave { peer: PeerId::random(), incarnation: 5, seq: 9 };
        assert_eq!(Message::decode(&l.encode()).unwrap(), l);
        let acc =
            Accusation { peer: PeerId::random(), incarnation: 1, seq: 2, by: PeerId::random() };
        let s = Message::Suspect(acc.clone());
        assert_eq!(Message::decode(&s.encode()).unwrap(), s);
        assert_eq!(s.author(), acc.by);
        let json: serde_json::Value =
            serde_json::from_slice(&Message::Failed(acc.clone()).encode()).unwrap();
        assert_eq!(json["kind"], "failed");
        assert_eq!(json["by"], acc.by.to_string());
    }

    #[test]
    fn documented_shape() {
        let a = alive();
        let json: serde_json::Value =
            serde_json::from_slice(&Message::Alive(a.clone()).encode()).unwrap();
        assert_eq!(json["v"], 1);
        assert_eq!(json["kind"], "alive");
        assert_eq!(json["peer"], a.peer.to_string());
        assert_eq!(json["addrs"][0], "/ip4/127.0.0.1/udp/1/quic-v1");
        assert_eq!(json["services"]["storage"]["free"], "9");
    }

    #[test]
    fn garbage_is_rejected_with_a_reason() {
        assert!(matches!(Message::decode(b"\x00\xffnot json"), Err(DecodeError::Malformed(_))));
        let bad_peer = br#"{"v":1,"kind":"leave","peer":"nope","incarnation":1,"seq":1}"#;
        let err = Message::decode(bad_peer).unwrap_err().to_string();
        assert!(err.contains("invalid peer id"), "{err}");
        let v2 = format!(
            r#"{{"v":2,"kind":"leave","peer":"{}","incarnation":1,"seq":1}}"#,
            PeerId::random()
        );
        assert!(matches!(Message::decode(v2.as_bytes()), Err(DecodeError::Version(2))));
        assert!(matches!(
            Message::decode(&vec![b' '; MAX_MESSAGE_BYTES + 1]),
            Err(DecodeError::TooLarge(_))
        ));
        let mut a = alive();
        a.coord.as_mut().unwrap().height = f64::INFINITY;
        // serde_json writes infinity as null, which does not parse as f64.
        assert!(Message::decode(&Message::Alive(a).encode()).is_err());
    }
}
