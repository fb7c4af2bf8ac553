//! A membership message as the broadcast tree carries it: signed by its
//! author, as gossipsub's strict signing did (`wire.rs` says which field
//! must name the signer).
//!
//! `author_len:u8 ‖ author (peer id bytes) ‖ sig_len:u8 ‖ signature ‖
//! message`. The author's public key is read from its peer id (Ed25519 and
//! other short keys are inlined in the id), so no key travels with it. The
//! tree's id of a message is BLAKE3 over the whole envelope, first 16
//! bytes: a forged id cannot name a real message.

use crate::broadcast::Id;
use libp2p::identity::{Keypair, PublicKey};
use libp2p::PeerId;

/// Why an envelope was refused.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// Shorter than its own lengths say.
    #[error("cut short")]
    Short,
    /// The author is not a peer id.
    #[error("the author is not a peer id")]
    Author,
    /// The author's key is not in its peer id.
    #[error("the author's peer id does not hold its public key")]
    NoKey,
    /// The signature does not match.
    #[error("bad signature by {0}")]
    Signature(PeerId),
    /// The id is not the envelope's.
    #[error("the id is not the message's")]
    Id,
}

/// Seals `message` with our key.
pub fn seal(key: &Keypair, message: &[u8]) -> Vec<u8> {
    let author = key.public().to_peer_id().to_bytes();
    let sig = key.sign(message).expect("ed25519 signing does not fail");
    let mut out = Vec::with_capacity(2 + author.len() + sig.len() + message.len());
    out.push(author.len() as u8);
    out.extend_from_slice(&author);
    out.push(sig.len() as u8);
    out.extend_from_slice(&sig);
    out.extend_from_slice(message);
    out
}

/// The tree's id of an envelope.
pub fn id_of(envelope: &[u8]) -> Id {
    let hash = blake3::hash(envelope);
    hash.as_bytes()[..16].try_into().expect("16 bytes")
}

/// Checks an envelope received under `id`: its author and message.
pub fn open<'a>(id: &Id, envelope: &'a [u8]) -> Result<(PeerId, &'a [u8]), EnvelopeError> {
    if id_of(envelope) != *id {
        return Err(EnvelopeError::Id);
    }
    let (author, rest) = field(envelope)?;
    let (sig, message) = field(rest)?;
    let author = PeerId::from_bytes(author).map_err(|_| EnvelopeError::Author)?;
    let key = key_of(&author).ok_or(EnvelopeError::NoKey)?;
    match key.verify(message, sig) {
        true => Ok((author, message)),
        false => Err(EnvelopeError::Signature(author)),
    }
}

/// The message in an envelope, unchecked: only to decide how soon to
/// check it ([`open`] checks it before anything is taken).
pub fn peek(envelope: &[u8]) -> Option<&[u8]> {
    let (_, rest) = field(envelope).ok()?;
    let (_, message) = field(rest).ok()?;
    Some(message)
}

/// A length-prefixed field and what follows it.
fn field(bytes: &[u8]) -> Result<(&[u8], &[u8]), EnvelopeError> {
    let (len, rest) = bytes.split_first().ok_or(EnvelopeError::Short)?;
    let len = usize::from(*len);
    (rest.len() >= len).then(|| rest.split_at(len)).ok_or(EnvelopeError::Short)
}

/// The public key inlined in a peer id (identity multihash).
fn key_of(peer: &PeerId) -> Option<PublicKey> {
    let mh: &libp2p::multihash::Multihash<64> = peer.as_ref();
    (mh.code() == 0).then(|| PublicKey::try_decode_protobuf(mh.digest()).ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_message_opens_and_a_changed_one_does_not() {
        let key = Keypair::generate_ed25519();
        let env = seal(&key, b"{\"kind\":\"alive\"}");
        let id = id_of(&env);
        let (author, msg) = open(&id, &env).unwrap();
        assert_eq!((author, msg), (key.public().to_peer_id(), &b"{\"kind\":\"alive\"}"[..]));
        let mut changed = env.clone();
        *changed.last_mut().unwrap() ^= 1;
        assert!(matches!(open(&id, &changed), Err(EnvelopeError::Id)));
        assert!(matches!(open(&id_of(&changed), &changed), Err(EnvelopeError::Signature(_))));
        // Another key's signature under our name.
        let other = seal(&Keypair::generate_ed25519(), b"x");
        let mut forged = env[..1 + env[0] as usize].to_vec();
        forged.extend_from_slice(&other[1 + other[0] as usize..]);
        assert!(matches!(open(&id_of(&forged), &forged), Err(EnvelopeError::Signature(_))));
        for cut in [&env[..0], &env[..5], &env[..40]] {
            assert!(open(&id_of(cut), cut).is_err());
        }
    }

    #[test]
    fn a_peek_shows_the_message_unchecked_and_nothing_in_a_cut_envelope() {
        let env = seal(&Keypair::generate_ed25519(), b"{\"kind\":\"alive\"}");
        assert_eq!(peek(&env), Some(&b"{\"kind\":\"alive\"}"[..]));
        let mut forged = env.clone();
        *forged.last_mut().unwrap() ^= 1;
        assert!(peek(&forged).is_some(), "a peek does not check the signature");
        for cut in [&env[..0], &env[..5], &env[..40]] {
            assert_eq!(peek(cut), None);
        }
    }
}
