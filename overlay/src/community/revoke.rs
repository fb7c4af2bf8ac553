//! Evictions and admin removals: a revocation an admin signs, naming the
//! member evicted (or the admin removed). It is gossiped to every member at
//! once, carried in every admission handshake (so a member that was
//! offline learns it when it reconnects), and kept by every member for
//! good.

use super::cert::{self, Chain, Role, Standing};
use libp2p::identity::{Keypair, PublicKey};
use libp2p::PeerId;
use serde::{Deserialize, Serialize};

/// What every revocation's signature covers first.
const DOMAIN: &[u8] = b"cloudy-p2p revocation v1";
/// Longest reason kept.
pub const MAX_REASON: usize = 200;

/// What a revocation takes away.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// Membership: the peer is evicted.
    Evict,
    /// The admin role: the peer stays a member.
    RemoveAdmin,
}

/// A signed eviction or admin removal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// The community.
    pub community: PeerId,
    /// What it takes away.
    pub action: Action,
    /// The member evicted (or the admin removed).
    pub peer: PeerId,
    /// When (Unix seconds).
    pub at: u64,
    /// Why, as the admin put it.
    pub reason: String,
    /// The admin's public key (protobuf).
    #[serde(with = "serde_bytes")]
    pub issuer_key: Vec<u8>,
    /// The admin's chain when it signed.
    pub issuer_chain: Chain,
    /// The signature over the fields above the key.
    #[serde(with = "serde_bytes")]
    pub sig: Vec<u8>,
}

/// Why a revocation is not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RevocationError {
    /// For another community.
    #[error("a revocation for another community ({0})")]
    OtherCommunity(PeerId),
    /// Its signer's chain is not an admin's.
    #[error("a revocation signed by someone who is not an admin: {0}")]
    NotAdmin(#[from] cert::CertError),
    /// A member's chain, not an admin's.
    #[error("a revocation signed by a member, not an admin")]
    MemberSigned,
    /// The signature does not verify.
    #[error("a forged revocation (its signature does not verify)")]
    Forged,
    /// It does not decode.
    #[error("a malformed revocation")]
    Malformed,
}

impl Revocation {
    fn body(&self) -> Vec<u8> {
        let body = (DOMAIN, self.community, self.action, self.peer, self.at, &self.reason);
        postcard::to_stdvec(&body).expect("a revocation body serialises")
    }

    /// `admin` (with `chain`) evicts `peer` from `community` (or removes it
    /// as admin: `action`).
    #[allow(clippy::too_many_arguments)]
    pub fn sign(
        admin: &Keypair,
        chain: Chain,
        community: PeerId,
        action: Action,
        peer: PeerId,
        at: u64,
        reason: &str,
    ) -> Revocation {
        let mut reason = reason.to_string();
        reason.truncate(MAX_REASON);
        let mut r = Revocation {
            community,
            action,
            peer,
            at,
            reason,
            issuer_key: admin.public().encode_protobuf(),
            issuer_chain: chain,
            sig: Vec::new(),
        };
        r.sig = admin.sign(&r.body()).expect("ed25519 signing does not fail");
        r
    }

    /// Checks it: this community, signed by an admin whose chain was valid
    /// when it signed, as `standing` says.
    pub fn check(
        &self,
        community: PeerId,
        standing: impl Fn(&PeerId) -> Standing,
    ) -> Result<(), RevocationError> {
        if self.community != community {
            return Err(RevocationError::OtherCommunity(self.community));
        }
        let key = PublicKey::try_decode_protobuf(&self.issuer_key)
            .map_err(|_| RevocationError::Forged)?;
        let admin = key.to_peer_id();
        let role = cert::verify(&self.issuer_chain, community, admin, self.at, standing)?;
        if role != Role::Admin {
            return Err(RevocationError::MemberSigned);
        }
        if !key.verify(&self.body(), &self.sig) {
            return Err(RevocationError::Forged);
        }
        Ok(())
    }

    /// The signer.
    pub fn issuer(&self) -> Option<PeerId> {
        PublicKey::try_decode_protobuf(&self.issuer_key).ok().map(|k| k.to_peer_id())
    }

    /// Wire form (gossip).
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("a revocation serialises")
    }

    /// From the wire (the gate checks it).
    pub fn decode(bytes: &[u8]) -> Result<Revocation, RevocationError> {
        postcard::from_bytes(bytes).map_err(|_| RevocationError::Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::community::cert::Cert;

    #[test]
    fn only_an_admins_signed_revocation_is_taken() {
        let community = Keypair::generate_ed25519();
        let cid = community.public().to_peer_id();
        let admin = Keypair::generate_ed25519();
        let now = 1_800_000_000;
        let chain = vec![Cert::sign(
            &community,
            cid,
            admin.public().to_peer_id(),
            Role::Admin,
            now,
            now + 1000,
        )];
        let victim = Keypair::generate_ed25519().public().to_peer_id();
        let r =
            Revocation::sign(&admin, chain.clone(), cid, Action::Evict, victim, now + 10, "spam");
        let good = |_: &PeerId| Standing::Good;
        assert_eq!(Revocation::decode(&r.encode()), Ok(r.clone()));
        assert_eq!(r.check(cid, good), Ok(()));
        // Altered: another victim, or another reason.
        let mut other = r.clone();
        other.peer = Keypair::generate_ed25519().public().to_peer_id();
        assert_eq!(other.check(cid, good), Err(RevocationError::Forged));
        let mut other = r.clone();
        other.reason = "nothing".into();
        assert_eq!(other.check(cid, good), Err(RevocationError::Forged));
        // Signed by a member with a member's chain.
        let member = Keypair::generate_ed25519();
        let member_chain: Chain = std::iter::once(Cert::sign(
            &admin,
            cid,
            member.public().to_peer_id(),
            Role::Member,
            now,
            now + 1000,
        ))
        .chain(chain.clone())
        .collect();
        let by_member =
            Revocation::sign(&member, member_chain, cid, Action::Evict, victim, now + 10, "x");
        assert_eq!(by_member.check(cid, good), Err(RevocationError::MemberSigned));
        // Signed by a stranger presenting the admin's chain.
        let stranger = Keypair::generate_ed25519();
        let stolen = Revocation::sign(&stranger, chain, cid, Action::Evict, victim, now + 10, "x");
        assert!(matches!(stolen.check(cid, good), Err(RevocationError::NotAdmin(_))));
        // Signed by the admin after it was itself removed as admin.
        let admin_id = admin.public().to_peer_id();
        let removed = |p: &PeerId| {
            if *p == admin_id {
                Standing::AdminUntil(now + 5)
            } else {
                Standing::Good
            }
        };
        assert_eq!(r.check(cid, removed), Err(RevocationError::MemberSigned));
        let elsewhere = Keypair::generate_ed25519().public().to_peer_id();
        assert!(matches!(r.check(elsewhere, good), Err(RevocationError::OtherCommunity(_))));
        assert_eq!(Revocation::decode(b"garbage"), Err(RevocationError::Malformed));
        // Turned from an admin removal into an eviction.
        let mut other = r.clone();
        other.action = Action::RemoveAdmin;
        assert_eq!(other.check(cid, good), Err(RevocationError::Forged));
    }
}
