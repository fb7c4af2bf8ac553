//! Membership certificates: what an admin signs to say "this peer is a
//! member (or an admin) of this community until then", and the chain that
//! proves it back to the community key.
//!
//! A community is a key pair; its id is the peer id of its public key. The
//! founder's node keeps the secret half and signs the first admin
//! certificate, its own. An admin signs certificates with its node key;
//! the certificate it issues carries the admin's own chain, so anyone can
//! check a chain with nothing but the community id:
//!
//! `[member cert (issuer: admin A), A's admin cert (issuer: community key)]`
//!
//! Every certificate in a chain must be for this community, signed by the
//! next one's member (an admin), the last one by the community key, and
//! none may be expired or revoked. Pure logic: no I/O, time passed in.

use libp2p::identity::{Keypair, PublicKey};
use libp2p::PeerId;
use serde::{Deserialize, Serialize};

/// Longest chain accepted (admins naming admins).
pub const MAX_CHAIN: usize = 8;
/// How far a certificate's issue time may be ahead of our clock, seconds
/// (community boxes' clocks drift).
pub const CLOCK_SKEW: u64 = 600;
/// What every signature covers first, so a certificate's signature can
/// never be taken for another message's.
const DOMAIN: &[u8] = b"cloudy-p2p membership certificate v1";

/// What a certificate lets its holder do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// Use the community's services.
    Member,
    /// Also admit, renew, evict, and name admins.
    Admin,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Member => "member",
            Role::Admin => "admin",
        })
    }
}

/// One signed certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cert {
    /// The community (the peer id of its public key).
    pub community: PeerId,
    /// The member it is for.
    pub member: PeerId,
    /// Its role.
    pub role: Role,
    /// When it was signed (Unix seconds).
    pub issued: u64,
    /// When it stops being valid (Unix seconds).
    pub expires: u64,
    /// The signer's public key (protobuf encoding).
    #[serde(with = "serde_bytes")]
    pub issuer: Vec<u8>,
    /// The signature over everything above.
    #[serde(with = "serde_bytes")]
    pub sig: Vec<u8>,
}

/// A certificate and the admin certificates behind it, leaf first.
pub type Chain = Vec<Cert>;

/// Why a certificate or chain is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// No certificate at all.
    #[error("no certificate")]
    Empty,
    /// Longer than [`MAX_CHAIN`].
    #[error("certificate chain of {0} is longer than {MAX_CHAIN}")]
    TooLong(usize),
    /// For another community (the one in the certificate).
    #[error("the certificate is for another community, {0}")]
    OtherCommunity(PeerId),
    /// For another peer than the one presenting it (the one in the
    /// certificate).
    #[error("the certificate is for {0}, not for the peer presenting it")]
    OtherPeer(PeerId),
    /// Expired.
    #[error("the certificate of {member} expired at {expires} (Unix time)")]
    Expired {
        /// Its member.
        member: PeerId,
        /// When.
        expires: u64,
    },
    /// Issued in the future (beyond the clock skew allowed).
    #[error("the certificate of {0} is dated in the future (check the clocks)")]
    Future(PeerId),
    /// The signature does not verify, or the key is malformed.
    #[error("the certificate of {0} is forged (its signature does not verify)")]
    Forged(PeerId),
    /// Signed by someone who is not an admin of the community (the signer).
    #[error("a certificate is signed by {0}, who is not an admin of the community")]
    NotAdmin(PeerId),
    /// The member was evicted.
    #[error("{0} was evicted from the community")]
    Revoked(PeerId),
    /// Signed by an admin after it was removed as admin (the admin).
    #[error("a certificate is signed by {0} after it stopped being an admin")]
    RemovedAdmin(PeerId),
}

/// Where a peer stands, as the evictions and admin removals a node knows
/// of say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    /// Nothing against it.
    Good,
    /// Evicted: nothing it holds or signed counts.
    Evicted,
    /// Removed as admin at this time (Unix seconds): its admin certificates
    /// issued until then make it a member, and what it signed after then
    /// does not count. An admin certificate issued later (it was named
    /// again) is not affected.
    AdminUntil(u64),
}

impl Standing {
    /// Whether an admin certificate issued at `issued` still lets its
    /// holder sign at `signed`.
    fn admin_at(self, issued: u64, signed: u64) -> bool {
        match self {
            Standing::AdminUntil(t) => issued > t || signed <= t,
            _ => true,
        }
    }
}

impl Cert {
    /// The bytes the signature covers.
    fn body(&self) -> Vec<u8> {
        let body = (
            DOMAIN,
            self.community,
            self.member,
            self.role,
            self.issued,
            self.expires,
            &self.issuer,
        );
        postcard::to_stdvec(&body).expect("a certificate body serialises")
    }

    /// A certificate for `member`, signed by `signer` (the community key or
    /// an admin's node key).
    pub fn sign(
        signer: &Keypair,
        community: PeerId,
        member: PeerId,
        role: Role,
        issued: u64,
        expires: u64,
    ) -> Cert {
        let mut c = Cert {
            community,
            member,
            role,
            issued,
            expires,
            issuer: signer.public().encode_protobuf(),
            sig: Vec::new(),
        };
        c.sig = signer.sign(&c.body()).expect("ed25519 signing does not fail");
        c
    }

    /// The signer's peer id, if its key decodes.
    pub fn issuer_id(&self) -> Option<PeerId> {
        PublicKey::try_decode_protobuf(&self.issuer).ok().map(|k| k.to_peer_id())
    }

    /// Checks this one certificate on its own: community, time, signature.
    fn check(&self, community: PeerId, now: u64) -> Result<PeerId, CertError> {
        if self.community != community {
            return Err(CertError::OtherCommunity(self.community));
        }
        if now >= self.expires {
            return Err(CertError::Expired { member: self.member, expires: self.expires });
        }
        if self.issued > now + CLOCK_SKEW {
            return Err(CertError::Future(self.member));
        }
        let key = PublicKey::try_decode_protobuf(&self.issuer)
            .map_err(|_| CertError::Forged(self.member))?;
        if !key.verify(&self.body(), &self.sig) {
            return Err(CertError::Forged(self.member));
        }
        Ok(key.to_peer_id())
    }
}

/// Checks that `chain` proves `peer` belongs to `community` at `now`, with
/// nobody on it evicted and no certificate signed by an admin after its
/// removal, as `standing` says; returns `peer`'s role.
pub fn verify(
    chain: &[Cert],
    community: PeerId,
    peer: PeerId,
    now: u64,
    standing: impl Fn(&PeerId) -> Standing,
) -> Result<Role, CertError> {
    let leaf = chain.first().ok_or(CertError::Empty)?;
    if chain.len() > MAX_CHAIN {
        return Err(CertError::TooLong(chain.len()));
    }
    if leaf.member != peer {
        return Err(CertError::OtherPeer(leaf.member));
    }
    for (i, cert) in chain.iter().enumerate() {
        if standing(&cert.member) == Standing::Evicted {
            return Err(CertError::Revoked(cert.member));
        }
        let issuer = cert.check(community, now)?;
        let vouched = match chain.get(i + 1) {
            Some(next) => next.member == issuer && next.role == Role::Admin,
            None => issuer == community,
        };
        if !vouched {
            return Err(CertError::NotAdmin(issuer));
        }
        if let Some(next) = chain.get(i + 1) {
            if !standing(&next.member).admin_at(next.issued, cert.issued) {
                return Err(CertError::RemovedAdmin(next.member));
            }
        }
    }
    match standing(&leaf.member) {
        // From the moment of its removal on.
        Standing::AdminUntil(t) if leaf.role == Role::Admin && leaf.issued <= t && now >= t => {
            Ok(Role::Member)
        }
        _ => Ok(leaf.role),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;
    const DAY: u64 = 86_400;

    /// `p`'s standing when only `who` was evicted.
    fn evicted(p: &PeerId, who: PeerId) -> Standing {
        if *p == who {
            Standing::Evicted
        } else {
            Standing::Good
        }
    }

    struct World {
        community: Keypair,
        admin: Keypair,
        admin_chain: Chain,
    }

    fn world() -> World {
        let community = Keypair::generate_ed25519();
        let admin = Keypair::generate_ed25519();
        let cid = community.public().to_peer_id();
        let admin_cert = Cert::sign(
            &community,
            cid,
            admin.public().to_peer_id(),
            Role::Admin,
            NOW,
            NOW + 365 * DAY,
        );
        World { community, admin, admin_chain: vec![admin_cert] }
    }

    impl World {
        fn id(&self) -> PeerId {
            self.community.public().to_peer_id()
        }

        fn member(&self, who: &Keypair, role: Role, expires: u64) -> Chain {
            let c =
                Cert::sign(&self.admin, self.id(), who.public().to_peer_id(), role, NOW, expires);
            std::iter::once(c).chain(self.admin_chain.iter().cloned()).collect()
        }
    }

    #[test]
    fn a_member_chain_verifies_back_to_the_community_key() {
        let w = world();
        let m = Keypair::generate_ed25519();
        let chain = w.member(&m, Role::Member, NOW + 30 * DAY);
        let me = m.public().to_peer_id();
        assert_eq!(verify(&chain, w.id(), me, NOW + DAY, |_| Standing::Good), Ok(Role::Member));
        let admin = w.admin.public().to_peer_id();
        assert_eq!(verify(&w.admin_chain, w.id(), admin, NOW, |_| Standing::Good), Ok(Role::Admin));
        // An admin named by an admin can admit members too.
        let second = Keypair::generate_ed25519();
        let second_chain = w.member(&second, Role::Admin, NOW + 365 * DAY);
        let m2 = Keypair::generate_ed25519();
        let c = Cert::sign(&second, w.id(), m2.public().to_peer_id(), Role::Member, NOW, NOW + DAY);
        let chain2: Chain = std::iter::once(c).chain(second_chain).collect();
        let m2_id = m2.public().to_peer_id();
        assert_eq!(verify(&chain2, w.id(), m2_id, NOW, |_| Standing::Good), Ok(Role::Member));
    }

    #[test]
    fn forged_expired_foreign_misused_and_revoked_chains_are_refused() {
        let w = world();
        let m = Keypair::generate_ed25519();
        let me = m.public().to_peer_id();
        let good = w.member(&m, Role::Member, NOW + 30 * DAY);
        let ok = |c: &[Cert]| verify(c, w.id(), me, NOW + DAY, |_| Standing::Good);

        // A changed role, or expiry: the signature no longer covers it.
        let mut forged = good.clone();
        forged[0].role = Role::Admin;
        assert_eq!(ok(&forged), Err(CertError::Forged(me)));
        let mut forged = good.clone();
        forged[0].expires += 365 * DAY;
        assert_eq!(ok(&forged), Err(CertError::Forged(me)));
        // Someone else's chain presented by this peer.
        let other = w.member(&Keypair::generate_ed25519(), Role::Member, NOW + DAY * 30);
        assert!(matches!(ok(&other), Err(CertError::OtherPeer(_))));
        // Self-signed: a stranger making its own admin certificate.
        let stranger = Keypair::generate_ed25519();
        let own = vec![
            Cert::sign(&stranger, w.id(), me, Role::Member, NOW, NOW + 30 * DAY),
            w.admin_chain[0].clone(),
        ];
        assert!(matches!(ok(&own), Err(CertError::NotAdmin(_))));
        // Signed by a member (not an admin).
        let member_signed = {
            let c = Cert::sign(&m, w.id(), me, Role::Member, NOW, NOW + 30 * DAY);
            let mut v = vec![c];
            v.extend(good.clone());
            v
        };
        assert!(matches!(ok(&member_signed), Err(CertError::NotAdmin(_))));
        // A different community's key.
        let other_community = Keypair::generate_ed25519().public().to_peer_id();
        assert!(matches!(
            verify(&good, other_community, me, NOW, |_| Standing::Good),
            Err(CertError::OtherCommunity(_))
        ));
        // Expired, dated in the future, revoked (the member, or its admin).
        assert!(matches!(
            verify(&good, w.id(), me, NOW + 31 * DAY, |_| Standing::Good),
            Err(CertError::Expired { .. })
        ));
        assert_eq!(
            verify(&good, w.id(), me, NOW - CLOCK_SKEW - 1, |_| Standing::Good),
            Err(CertError::Future(me))
        );
        assert_eq!(verify(&good, w.id(), me, NOW, |p| evicted(p, me)), Err(CertError::Revoked(me)));
        let admin = w.admin.public().to_peer_id();
        assert_eq!(
            verify(&good, w.id(), me, NOW, |p| evicted(p, admin)),
            Err(CertError::Revoked(admin))
        );
        assert_eq!(verify(&[], w.id(), me, NOW, |_| Standing::Good), Err(CertError::Empty));
        let long: Chain = std::iter::repeat_n(good[0].clone(), MAX_CHAIN + 1).collect();
        assert_eq!(ok(&long), Err(CertError::TooLong(MAX_CHAIN + 1)));
    }

    #[test]
    fn a_removed_admin_is_a_member_and_signs_nothing_new() {
        let w = world();
        let admin = w.admin.public().to_peer_id();
        let removed_at = NOW + DAY;
        let standing = |p: &PeerId| {
            if *p == admin {
                Standing::AdminUntil(removed_at)
            } else {
                Standing::Good
            }
        };
        // Its own admin certificate now makes it a member.
        assert_eq!(
            verify(&w.admin_chain, w.id(), admin, NOW + 2 * DAY, standing),
            Ok(Role::Member)
        );
        assert_eq!(verify(&w.admin_chain, w.id(), admin, NOW, standing), Ok(Role::Admin));
        // What it signed before its removal stays good; after, it does not.
        let m = Keypair::generate_ed25519();
        let me = m.public().to_peer_id();
        let before = w.member(&m, Role::Member, NOW + 30 * DAY);
        assert_eq!(verify(&before, w.id(), me, NOW + 2 * DAY, standing), Ok(Role::Member));
        let late = Cert::sign(&w.admin, w.id(), me, Role::Member, NOW + 2 * DAY, NOW + 30 * DAY);
        let after: Chain = std::iter::once(late).chain(w.admin_chain.clone()).collect();
        assert_eq!(
            verify(&after, w.id(), me, NOW + 2 * DAY, standing),
            Err(CertError::RemovedAdmin(admin))
        );
        // Named admin again later: a newer admin certificate counts.
        let again = vec![Cert::sign(
            &w.community,
            w.id(),
            admin,
            Role::Admin,
            NOW + 3 * DAY,
            NOW + 300 * DAY,
        )];
        assert_eq!(verify(&again, w.id(), admin, NOW + 3 * DAY, standing), Ok(Role::Admin));
    }
}
