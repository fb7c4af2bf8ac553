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
    assert_eq!(verify(&chain, cid, newcomer, now, |_| false), Ok(Role::Member));
    // Its chain now admits it as a member, with no renewal yet.
    let again = Hello::Member { community: cid, chain: chain.clone() };
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
    let hello = Hello::Member { community: cid, chain: own };
    assert!(matches!(
        w.admin.decide(stranger.public().to_peer_id(), hello, now),
        Err(Refusal::Cert(CertError::NotAdmin(_)))
    ));
    let none = Hello::Member { community: cid, chain: vec![] };
    assert!(matches!(w.admin.decide(member, none, now), Err(Refusal::Cert(CertError::Empty))));
    // A member's chain past half its life is renewed by an admin.
    let later = now + MEMBER_LIFETIME / 2 + DAY;
    let renewed = w.admin.decide(member, Hello::Member { community: cid, chain }, later).unwrap();
    let renewed = renewed.expect("renewed");
    assert_eq!(renewed[0].expires, later + MEMBER_LIFETIME);
    assert_eq!(verify(&renewed, cid, member, later, |_| false), Ok(Role::Member));
    let _ = &w.community;
}
