//! The invites an admin has handed out: each a random id and a one-time
//! secret (only its hash is kept), a number of uses and an expiry. Pure
//! logic; the gate saves the book after every change.

use serde::{Deserialize, Serialize};

/// An invite's id.
pub type InviteId = [u8; 16];
/// An invite's secret.
pub type Secret = [u8; 32];

/// One invite as the admin keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Issued {
    /// Its id (hex in the file).
    pub id: String,
    /// BLAKE3 of the secret, hex.
    pub secret_hash: String,
    /// Joins it still allows.
    pub uses_left: u32,
    /// When it stops working (Unix seconds).
    pub expires: u64,
}

/// Why an invite is not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InviteRefusal {
    /// No invite with this id was made here.
    #[error(
        "this invite is not known to the admin it names (forged, or made for another community)"
    )]
    Unknown,
    /// The id is known but the secret is not its own.
    #[error("this invite's secret is wrong (forged or altered)")]
    Forged,
    /// Every use is spent.
    #[error("this invite was already used")]
    Used,
    /// Past its expiry.
    #[error("this invite expired at {0} (Unix time); ask an admin for a new one")]
    Expired(u64),
    /// The admin's node is not an admin (any more).
    #[error("this node is not an admin of the community, so it cannot admit anyone")]
    NotAdmin,
}

/// The invites of one admin.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Book {
    /// Every invite made here, spent ones included (so a second use is
    /// told "already used", not "unknown").
    pub invites: Vec<Issued>,
}

impl Book {
    /// Records a new invite of `uses` joins until `expires`; returns its id
    /// and secret (the secret is not kept).
    pub fn make(&mut self, uses: u32, expires: u64) -> (InviteId, Secret) {
        let id: InviteId = rand::random();
        let secret: Secret = rand::random();
        self.invites.push(Issued {
            id: hex(&id),
            secret_hash: hex(blake3::hash(&secret).as_bytes()),
            uses_left: uses,
            expires,
        });
        (id, secret)
    }

    /// Spends one use of invite `id` if `secret` is its own and it is still
    /// good at `now`.
    pub fn spend(&mut self, id: &InviteId, secret: &Secret, now: u64) -> Result<(), InviteRefusal> {
        let inv =
            self.invites.iter_mut().find(|i| i.id == hex(id)).ok_or(InviteRefusal::Unknown)?;
        if inv.secret_hash != hex(blake3::hash(secret).as_bytes()) {
            return Err(InviteRefusal::Forged);
        }
        if inv.uses_left == 0 {
            return Err(InviteRefusal::Used);
        }
        if now >= inv.expires {
            return Err(InviteRefusal::Expired(inv.expires));
        }
        inv.uses_left -= 1;
        Ok(())
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invite_is_good_for_its_uses_until_it_expires_and_only_with_its_secret() {
        let mut book = Book::default();
        let (id, secret) = book.make(2, 1000);
        assert_eq!(book.spend(&id, &[0; 32], 10), Err(InviteRefusal::Forged));
        assert_eq!(book.spend(&[9; 16], &secret, 10), Err(InviteRefusal::Unknown));
        assert_eq!(book.spend(&id, &secret, 10), Ok(()));
        assert_eq!(book.spend(&id, &secret, 1000), Err(InviteRefusal::Expired(1000)));
        assert_eq!(book.spend(&id, &secret, 20), Ok(()));
        assert_eq!(book.spend(&id, &secret, 30), Err(InviteRefusal::Used));
        // The secret itself is not in the book.
        let saved = serde_json::to_string(&book).unwrap();
        assert!(!saved.contains(&hex(&secret)));
    }
}
