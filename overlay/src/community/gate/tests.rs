use super::*;
use crate::community::cert::verify;

const DAY: u64 = 86_400;

/// A community with an admin gate and a member's key.
struct World {
    admin: Gate,
    community: Keypair,
}

fn world() -> World {
    let community = Keypair::generate_ed25519();
    let cid = community.public().to_peer_id();
    let admin_key = Keypair::generate_ed25519();
    let now = now_secs();
    let admin_cert = Cert::sign(
        &community,
        cid,
        admin_key.public().to_peer_id(),
        Role::Admin,
        now,
        now + 3650 * DAY,
    );
    let admin = Gate::new(admin_key, cid, vec![admin_cert], Book::default(), None);
    World { admin, community }
}

#[test]
fn an_invite_admits_once_and_the_issued_chain_verifies() {
    let w = world();
    let cid = w.admin.community();
    let (invite, secret, _) = w.admin.make_invite(1, Duration::from_secs(3600)).unwrap();
    let newcomer = Keypair::generate_ed25519().public().to_peer_id();
    let now = now_secs();
    let hello = || Hello::Join { community: cid, invite, secret };
    let chain = w.admin.decide(newcomer, hello(), now).unwrap().expect("a chain is issued");
    assert_eq!(verify(&chain, cid, newcomer, now, |_| Standing::Good), Ok(Role::Member));
    // Its chain now admits it as a member, with no renewal yet.
    let again =
        Hello::Member { community: cid, chain: chain.clone(), revoked: vec![], issued: None };
    assert!(w.admin.decide(newcomer, again, now).unwrap().is_none());
    // A second use, a forged secret, another community.
    let err = w.admin.decide(newcomer, hello(), now).unwrap_err().to_string();
    assert!(err.contains("already used"), "{err}");
    let forged = Hello::Join { community: cid, invite, secret: [7; 32] };
    assert!(w.admin.decide(newcomer, forged, now).unwrap_err().to_string().contains("forged"));
    let elsewhere = Keypair::generate_ed25519().public().to_peer_id();
    let other = Hello::Join { community: elsewhere, invite, secret };
    assert!(matches!(w.admin.decide(newcomer, other, now), Err(Refusal::OtherCommunity(_))));
}

#[test]
fn members_cannot_invite_strangers_are_refused_and_old_certificates_are_renewed() {
    let w = world();
    let cid = w.admin.community();
    let now = now_secs();
    // A member's gate cannot make invites.
    let member_key = Keypair::generate_ed25519();
    let member = member_key.public().to_peer_id();
    let chain = w.admin.issue(member, Role::Member, now);
    let gate = Gate::new(member_key, cid, chain.clone(), Book::default(), None);
    assert!(gate
        .make_invite(1, Duration::from_secs(60))
        .unwrap_err()
        .to_string()
        .contains("not an admin"));
    // A stranger with a self-made chain, or with none.
    let stranger = Keypair::generate_ed25519();
    let own = vec![Cert::sign(
        &stranger,
        cid,
        stranger.public().to_peer_id(),
        Role::Admin,
        now,
        now + DAY,
    )];
    let hello = Hello::Member { community: cid, chain: own, revoked: vec![], issued: None };
    assert!(matches!(
        w.admin.decide(stranger.public().to_peer_id(), hello, now),
        Err(Refusal::Cert(CertError::NotAdmin(_)))
    ));
    let none = Hello::Member { community: cid, chain: vec![], revoked: vec![], issued: None };
    assert!(matches!(w.admin.decide(member, none, now), Err(Refusal::Cert(CertError::Empty))));
    // A member's chain past half its life is renewed by an admin.
    let later = now + MEMBER_LIFETIME / 2 + DAY;
    let renewed = w
        .admin
        .decide(
            member,
            Hello::Member { community: cid, chain, revoked: vec![], issued: None },
            later,
        )
        .unwrap();
    let renewed = renewed.expect("renewed");
    assert_eq!(renewed[0].expires, later + MEMBER_LIFETIME);
    assert_eq!(verify(&renewed, cid, member, later, |_| Standing::Good), Ok(Role::Member));
    let _ = &w.community;
}

#[test]
fn an_evicted_member_is_refused_and_the_eviction_travels_in_handshakes() {
    let w = world();
    let cid = w.admin.community();
    let now = now_secs();
    let key = Keypair::generate_ed25519();
    let evicted = key.public().to_peer_id();
    let chain = w.admin.issue(evicted, Role::Member, now);
    let hello = |chain: &Chain| Hello::Member {
        community: cid,
        chain: chain.clone(),
        revoked: vec![],
        issued: None,
    };
    assert!(w.admin.decide(evicted, hello(&chain), now).is_ok());
    let r = w.admin.evict(evicted, "flooding").unwrap();
    assert_eq!(w.admin.evicted_since(), vec![evicted], "the overlay is told to disconnect it");
    assert!(matches!(
        w.admin.decide(evicted, hello(&chain), now),
        Err(Refusal::Cert(CertError::Revoked(p))) if p == evicted
    ));
    assert!(matches!(w.admin.evict(w.admin.me, "oops"), Err(Refusal::SelfEviction)));
    // Another member that did not hear the gossip learns it from the
    // admin's handshake, and refuses the evicted member from then on.
    let other_key = Keypair::generate_ed25519();
    let other_id = other_key.public().to_peer_id();
    let other = Gate::new(
        other_key,
        cid,
        w.admin.issue(other_id, Role::Member, now),
        Book::default(),
        None,
    );
    assert!(other.decide(evicted, hello(&chain), now).is_ok(), "not told yet");
    let admin_hello = Hello::Member {
        community: cid,
        chain: w.admin.chain(),
        revoked: w.admin.revocations(),
        issued: None,
    };
    assert!(other.decide(w.admin.me, admin_hello, now).is_ok());
    assert!(other.is_revoked(&evicted));
    assert!(other.decide(evicted, hello(&chain), now).is_err());
    // A member cannot evict; a forged revocation is not taken.
    assert!(other.evict(w.admin.me, "coup").is_err());
    let mut forged = r.clone();
    forged.peer = w.admin.me;
    assert!(other.take(forged).is_err());
    assert!(!other.is_revoked(&w.admin.me));
}

#[test]
fn a_member_past_half_its_life_asks_an_admin_once_an_hour() {
    let w = world();
    let cid = w.admin.community();
    let key = Keypair::generate_ed25519();
    let me = key.public().to_peer_id();
    let now = now_secs();
    // Issued long ago: 10 days left of 30.
    let old = now - 20 * DAY;
    let chain = w.admin.issue(me, Role::Member, old);
    let gate = Gate::new(key, cid, chain, Book::default(), None);
    assert_eq!(gate.renewal_due(), Some(vec![w.admin.me]), "the admin in its chain is asked");
    assert_eq!(gate.renewal_due(), None, "not again within the hour");
    // A fresh certificate is not due.
    let key = Keypair::generate_ed25519();
    let fresh = w.admin.issue(key.public().to_peer_id(), Role::Member, now);
    assert_eq!(Gate::new(key, cid, fresh, Book::default(), None).renewal_due(), None);
}

#[test]
fn an_admin_names_another_who_can_then_admit() {
    let w = world();
    let cid = w.admin.community();
    let now = now_secs();
    let key = Keypair::generate_ed25519();
    let second = key.public().to_peer_id();
    let chain = w.admin.issue(second, Role::Member, now);
    let gate = Gate::new(key, cid, chain.clone(), Book::default(), None);
    assert!(gate.make_invite(1, Duration::from_secs(60)).is_err(), "a member cannot invite yet");
    w.admin.promote(second).unwrap();
    // Its next handshake with the admin hands the admin chain over.
    let hello = Hello::Member { community: cid, chain, revoked: vec![], issued: None };
    let issued = w.admin.decide(second, hello, now).unwrap().expect("the promotion");
    assert_eq!(verify(&issued, cid, second, now, |_| Standing::Good), Ok(Role::Admin));
    gate.accept_issued(issued).unwrap();
    assert_eq!(gate.role(), Ok(Role::Admin));
    // Now it admits a newcomer itself.
    let (invite, secret, _) = gate.make_invite(1, Duration::from_secs(60)).unwrap();
    let newcomer = Keypair::generate_ed25519().public().to_peer_id();
    let join = Hello::Join { community: cid, invite, secret };
    let c = gate.decide(newcomer, join, now).unwrap().expect("a chain");
    assert_eq!(verify(&c, cid, newcomer, now, |_| Standing::Good), Ok(Role::Member));
    // Delivered: presenting the admin chain clears the promotion.
    let again =
        Hello::Member { community: cid, chain: gate.chain(), revoked: vec![], issued: None };
    assert!(w.admin.decide(second, again, now).unwrap().is_none());
}

#[test]
fn a_removed_admin_stays_a_member_and_what_it_signs_later_is_refused() {
    let w = world();
    let cid = w.admin.community();
    let now = now_secs();
    let key = Keypair::generate_ed25519();
    let second = key.public().to_peer_id();
    let first = w.admin.me;
    let gate =
        Gate::new(key.clone(), cid, w.admin.issue(second, Role::Admin, now), Book::default(), None);
    w.admin.note_admins(&gate.chain());
    assert_eq!(gate.role(), Ok(Role::Admin));
    // A member that is not an admin, and the last admin, cannot be removed.
    let member = Keypair::generate_ed25519().public().to_peer_id();
    assert!(matches!(w.admin.remove_admin(member), Err(Refusal::NotAnAdmin(_))));
    let alone = world().admin;
    assert!(matches!(alone.remove_admin(alone.me), Err(Refusal::LastAdmin)));

    let r = w.admin.remove_admin(second).unwrap();
    assert_eq!(w.admin.status().admins, vec![first]);
    // The removed admin takes the removal (gossip or handshake): it is a
    // member, cannot invite or evict, and is not evicted.
    assert_eq!(gate.take(r.clone()), Ok(true));
    assert_eq!(gate.take(r), Ok(false), "taken once");
    assert_eq!(gate.role(), Ok(Role::Member));
    assert!(gate.make_invite(1, Duration::from_secs(60)).is_err());
    assert!(gate.evict(first, "coup").is_err());
    let hello =
        Hello::Member { community: cid, chain: gate.chain(), revoked: vec![], issued: None };
    assert!(w.admin.decide(second, hello, now).is_ok(), "still admitted as a member");
    // A certificate it signs after its removal is refused.
    let newcomer = Keypair::generate_ed25519().public().to_peer_id();
    let late = Cert::sign(&key, cid, newcomer, Role::Member, now + 5, now + 5 + DAY);
    let chain: Chain = std::iter::once(late).chain(gate.chain()).collect();
    assert_eq!(w.admin.verify(&chain, newcomer, now + 5), Err(CertError::RemovedAdmin(second)));
}
