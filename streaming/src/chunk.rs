//! Signed chunks of a live channel.
//!
//! A channel is an ed25519 key pair held by its publisher; its id is the
//! key's peer id, which embeds the public key, so a viewer can check every
//! chunk knowing only the id. A signature covers a domain string, the
//! channel id, the sequence number, the timestamp, the flags and the blake3
//! hash of the data: a chunk cannot be altered, renumbered or moved to
//! another channel without failing [`Chunk::verify`].

use cloudy_overlay::{Keypair, PeerId, PublicKey};
use serde::{Deserialize, Serialize};

/// Flag: playback can start at this chunk's first byte.
pub const KEY: u8 = 1;
/// Flag: the channel ends with this chunk.
pub const END: u8 = 2;
/// Largest chunk payload accepted from anyone.
pub const MAX_DATA: usize = 1 << 20;

const DOMAIN: &[u8] = b"cloudy-stream-chunk/1";

/// Chunk failures.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChunkError {
    /// The text is not a channel id.
    #[error("not a channel id: {0}")]
    BadChannel(String),
    /// The signature does not match the chunk and the channel.
    #[error("chunk {seq} of channel {channel} is forged or altered (bad signature)")]
    Forged {
        /// The channel.
        channel: String,
        /// The chunk's sequence number.
        seq: u64,
    },
    /// The chunk is larger than any publisher makes.
    #[error("chunk {seq} holds {len} bytes, more than {max}")]
    TooLarge {
        /// The chunk's sequence number.
        seq: u64,
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
}

/// A channel as viewers know it: its id and public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelId {
    peer: PeerId,
    key: PublicKey,
}

impl ChannelId {
    /// Parses a channel id (a peer id that embeds an ed25519 key).
    pub fn parse(s: &str) -> Result<ChannelId, ChunkError> {
        let bad = || ChunkError::BadChannel(s.chars().take(80).collect());
        let peer: PeerId = s.parse().map_err(|_| bad())?;
        let mh = peer.as_ref();
        // Ed25519 peer ids hold the key itself (identity multihash).
        if mh.code() != 0 {
            return Err(bad());
        }
        let key = PublicKey::try_decode_protobuf(mh.digest()).map_err(|_| bad())?;
        Ok(ChannelId { peer, key })
    }

    /// The id's text.
    pub fn peer(&self) -> PeerId {
        self.peer
    }
}

impl std::fmt::Display for ChannelId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.peer.fmt(f)
    }
}

/// A publisher's channel: its key pair.
#[derive(Debug)]
pub struct Channel {
    key: Keypair,
    id: ChannelId,
}

impl Channel {
    /// A new channel.
    pub fn generate() -> Channel {
        Channel::from_key(Keypair::generate_ed25519())
    }

    /// The channel of an existing key pair.
    pub fn from_key(key: Keypair) -> Channel {
        let public = key.public();
        let id = ChannelId { peer: public.to_peer_id(), key: public };
        Channel { key, id }
    }

    /// Its id.
    pub fn id(&self) -> &ChannelId {
        &self.id
    }

    /// Chunk `seq` holding `data`, signed.
    pub fn sign(&self, seq: u64, timestamp_ms: u64, flags: u8, data: Vec<u8>) -> Chunk {
        let msg = signed_bytes(&self.id.peer, seq, timestamp_ms, flags, &data);
        let signature = self.key.sign(&msg).expect("ed25519 keys can sign");
        Chunk { seq, timestamp_ms, flags, data, signature }
    }
}

/// One numbered piece of a channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    /// Its number, from 0.
    pub seq: u64,
    /// When the publisher cut it (Unix milliseconds, publisher's clock).
    pub timestamp_ms: u64,
    /// [`KEY`] and [`END`].
    pub flags: u8,
    /// The stream bytes.
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
    /// The channel key's signature.
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
}

impl Chunk {
    /// Checks that `channel` signed exactly this chunk.
    pub fn verify(&self, channel: &ChannelId) -> Result<(), ChunkError> {
        if self.data.len() > MAX_DATA {
            return Err(ChunkError::TooLarge {
                seq: self.seq,
                len: self.data.len(),
                max: MAX_DATA,
            });
        }
        let msg = signed_bytes(&channel.peer, self.seq, self.timestamp_ms, self.flags, &self.data);
        if channel.key.verify(&msg, &self.signature) {
            Ok(())
        } else {
            Err(ChunkError::Forged { channel: channel.to_string(), seq: self.seq })
        }
    }

    /// Playback can start here.
    pub fn is_key(&self) -> bool {
        self.flags & KEY != 0
    }

    /// The channel's last chunk.
    pub fn is_end(&self) -> bool {
        self.flags & END != 0
    }
}

fn signed_bytes(channel: &PeerId, seq: u64, timestamp_ms: u64, flags: u8, data: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(DOMAIN.len() + 96);
    m.extend_from_slice(DOMAIN);
    m.extend_from_slice(&channel.to_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(&timestamp_ms.to_be_bytes());
    m.push(flags);
    m.extend_from_slice(blake3::hash(data).as_bytes());
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_verify_only_untouched_and_on_their_channel() {
        let ch = Channel::generate();
        let id = ChannelId::parse(&ch.id().to_string()).unwrap();
        assert_eq!(&id, ch.id());
        let c = ch.sign(7, 1_795_000_000_000, KEY, b"some ts packets".to_vec());
        c.verify(&id).unwrap();
        assert!(c.is_key() && !c.is_end());
        // Survives the wire.
        let wire = postcard::to_stdvec(&c).unwrap();
        let back: Chunk = postcard::from_bytes(&wire).unwrap();
        back.verify(&id).unwrap();
        // Any change is caught.
        let forged =
            |c: Chunk| matches!(c.verify(&id), Err(ChunkError::Forged { seq, .. }) if seq == c.seq);
        let mut altered = c.clone();
        altered.data[0] ^= 1;
        assert!(forged(altered));
        assert!(forged(Chunk { seq: 8, ..c.clone() }), "renumbered");
        assert!(forged(Chunk { flags: KEY | END, ..c.clone() }), "flags changed");
        assert!(forged(Chunk { timestamp_ms: 1, ..c.clone() }));
        assert!(forged(Chunk { signature: vec![0; 64], ..c.clone() }));
        // Signed by another channel.
        let other = Channel::generate().sign(7, c.timestamp_ms, KEY, c.data.clone());
        assert!(forged(other));
        let err = c
            .verify(&ChannelId::parse(&Channel::generate().id().to_string()).unwrap())
            .unwrap_err();
        assert!(err.to_string().contains("forged or altered"), "{err}");
        assert!(matches!(
            Chunk { data: vec![0; MAX_DATA + 1], ..c }.verify(&id),
            Err(ChunkError::TooLarge { .. })
        ));
    }

    #[test]
    fn channel_ids_are_checked() {
        for bad in ["", "hello", "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N"] {
            let err = ChannelId::parse(bad).unwrap_err();
            assert!(err.to_string().starts_with("not a channel id"), "{bad}: {err}");
        }
    }
}
