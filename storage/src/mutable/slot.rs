//! A signed slot: one version of one writer's part of a mutable file or
//! directory, as servers store it.
//!
//! ```text
//! si:16 ‖ writer:16 ‖ seqnum:u64 ‖ vk:32 ‖ sig:64 ‖ payload_len:u32 ‖ payload
//! ```
//!
//! The signature covers `"cloudy-p2p slot v1" ‖ si ‖ writer ‖ seqnum ‖
//! payload`. A server (and every reader) accepts a slot only if `vk` hashes
//! to the storage index and the signature verifies, so nobody without the
//! write key can make one; servers keep only the highest seqnum per
//! `(si, writer)`, so nobody can roll one back.

use super::keys::{storage_index, WriteKey};
use crate::store::StorageIndex;
use cloudy_overlay::ed25519;

/// Largest payload of one slot.
pub const MAX_PAYLOAD: usize = 64 << 10;
/// Writer id of a mutable file (it has one slot).
pub const FILE_WRITER: [u8; 16] = [0; 16];
const HEADER: usize = 16 + 16 + 8 + 32 + 64 + 4;

/// One signed version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slot {
    /// Where it is filed.
    pub si: StorageIndex,
    /// Whose part it is (a directory has one per writer).
    pub writer: [u8; 16],
    /// Version number; higher wins.
    pub seqnum: u64,
    /// Sealed contents.
    pub payload: Vec<u8>,
    /// Verifying key.
    pub vk: [u8; 32],
    /// Signature by the write key.
    pub sig: [u8; 64],
}

/// Why a slot is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SlotError {
    /// The bytes are not a slot.
    #[error("not a valid slot: {0}")]
    Malformed(&'static str),
    /// Its key does not belong to the storage index it claims.
    #[error("the slot's key does not match its storage index")]
    WrongKey,
    /// Not signed by the write key.
    #[error("the slot is not signed by the file's write key")]
    BadSignature,
}

fn message(si: &StorageIndex, writer: &[u8; 16], seqnum: u64, payload: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(60 + payload.len());
    m.extend_from_slice(b"cloudy-p2p slot v1");
    m.extend_from_slice(si);
    m.extend_from_slice(writer);
    m.extend_from_slice(&seqnum.to_be_bytes());
    m.extend_from_slice(payload);
    m
}

impl Slot {
    /// Signs version `seqnum` of `writer`'s part with `key`.
    pub fn sign(key: &WriteKey, writer: [u8; 16], seqnum: u64, payload: Vec<u8>) -> Slot {
        let si = key.read().verify().storage_index();
        let pair = key.keypair();
        let sig = pair.sign(&message(&si, &writer, seqnum, &payload));
        Slot {
            si,
            writer,
            seqnum,
            payload,
            vk: pair.public().to_bytes(),
            sig: sig.try_into().expect("ed25519 signatures are 64 bytes"),
        }
    }

    /// Checks the key and signature.
    pub fn verify(&self) -> Result<(), SlotError> {
        if storage_index(blake3::hash(&self.vk).as_bytes()) != self.si {
            return Err(SlotError::WrongKey);
        }
        let vk = ed25519::PublicKey::try_from_bytes(&self.vk).map_err(|_| SlotError::WrongKey)?;
        if !vk.verify(&message(&self.si, &self.writer, self.seqnum, &self.payload), &self.sig) {
            return Err(SlotError::BadSignature);
        }
        Ok(())
    }

    /// The wire form.
    pub fn encode(&self) -> Vec<u8> {
        let mut o = Vec::with_capacity(HEADER + self.payload.len());
        o.extend_from_slice(&self.si);
        o.extend_from_slice(&self.writer);
        o.extend_from_slice(&self.seqnum.to_be_bytes());
        o.extend_from_slice(&self.vk);
        o.extend_from_slice(&self.sig);
        o.extend_from_slice(&(self.payload.len() as u32).to_be_bytes());
        o.extend_from_slice(&self.payload);
        o
    }

    /// Parses the wire form (does not verify it).
    pub fn decode(b: &[u8]) -> Result<Slot, SlotError> {
        if b.len() < HEADER {
            return Err(SlotError::Malformed("shorter than its header"));
        }
        let len = u32::from_be_bytes(b[136..140].try_into().expect("4 bytes")) as usize;
        if len > MAX_PAYLOAD {
            return Err(SlotError::Malformed("payload larger than 64 KiB"));
        }
        if b.len() != HEADER + len {
            return Err(SlotError::Malformed("length disagrees with its header"));
        }
        Ok(Slot {
            si: b[..16].try_into().expect("16"),
            writer: b[16..32].try_into().expect("16"),
            seqnum: u64::from_be_bytes(b[32..40].try_into().expect("8")),
            vk: b[40..72].try_into().expect("32"),
            sig: b[72..136].try_into().expect("64"),
            payload: b[HEADER..].to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_slots_verify_and_any_change_is_refused() {
        let key = WriteKey::generate();
        let slot = Slot::sign(&key, [3; 16], 7, b"payload".to_vec());
        assert_eq!(slot.verify(), Ok(()));
        let back = Slot::decode(&slot.encode()).unwrap();
        assert_eq!(back, slot);
        let mut s = slot.clone();
        s.seqnum = 8;
        assert_eq!(s.verify(), Err(SlotError::BadSignature), "a bumped seqnum");
        let mut s = slot.clone();
        s.payload[0] ^= 1;
        assert_eq!(s.verify(), Err(SlotError::BadSignature));
        let mut s = slot.clone();
        s.writer = [4; 16];
        assert_eq!(s.verify(), Err(SlotError::BadSignature));
        // Another key signing for this storage index.
        let mut s = Slot::sign(&WriteKey::generate(), [3; 16], 9, b"forged".to_vec());
        s.si = slot.si;
        assert_eq!(s.verify(), Err(SlotError::WrongKey));
        let wire = slot.encode();
        assert!(Slot::decode(&wire[..wire.len() - 1]).is_err());
        assert!(Slot::decode(&wire[..10]).is_err());
    }
}
