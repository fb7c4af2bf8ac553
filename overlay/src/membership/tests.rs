use super::*;
use std::collections::BTreeMap;

const T: Timing = Timing {
    suspect_after: Duration::from_millis(2500),
    fail_after: Duration::from_secs(4),
    reap_after: Duration::from_secs(3600),
};

fn alive(peer: PeerId, inc: u64, seq: u64, services: &[&str]) -> Message {
    Message::Alive(Alive {
        peer,
        incarnation: inc,
        seq,
        addrs: vec![],
        zone: String::new(),
        coord: None,
        services: services.iter().map(|s| (s.to_string(), BTreeMap::new())).collect(),
    })
}

fn states(changes: &[Change]) -> Vec<MemberState> {
    changes
        .iter()
        .filter_map(|c| match c {
            Change::State { to, .. } => Some(*to),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn silence_makes_suspect_then_failed_and_expires_services() {
    let mut t = MemberTable::new(PeerId::random(), T);
    let p = PeerId::random();
    let now = Instant::now();
    let c = t.apply(alive(p, 1, 1, &["storage"]), now);
    assert_eq!(c[0], Change::State { peer: p, from: None, to: MemberState::Alive });
    assert!(matches!(&c[1], Change::Services { announced, .. } if announced == &["storage".to_string()]));
    assert!(t.tick(now + Duration::from_secs(2)).is_empty());
    assert_eq!(states(&t.tick(now + Duration::from_millis(2600))), vec![MemberState::Suspect]);
    let c = t.tick(now + Duration::from_millis(4100));
    assert_eq!(states(&c), vec![MemberState::Failed]);
    assert!(c.iter().any(|c| matches!(c, Change::Services { withdrawn, .. } if withdrawn == &["storage".to_string()])));
}

#[tokio::test(start_paused = true)]
async fn heartbeats_keep_alive_and_stale_ones_are_ignored() {
    let mut t = MemberTable::new(PeerId::random(), T);
    let p = PeerId::random();
    let now = Instant::now();
    t.apply(alive(p, 1, 5, &[]), now);
    for i in 1..20u64 {
        t.apply(alive(p, 1, 5 + i, &[]), now + Duration::from_secs(i));
        assert!(t.tick(now + Duration::from_secs(i) + Duration::from_millis(900)).is_empty());
    }
    // An older message must not roll back state or services.
    assert!(t.apply(alive(p, 1, 3, &["x"]), now + Duration::from_secs(20)).is_empty());
    assert!(t.get(&p).unwrap().info.services.is_empty());
}

#[tokio::test(start_paused = true)]
async fn leave_then_restart_with_new_incarnation() {
    let mut t = MemberTable::new(PeerId::random(), T);
    let p = PeerId::random();
    let now = Instant::now();
    t.apply(alive(p, 1, 1, &["a"]), now);
    let c = t.apply(Message::Leave { peer: p, incarnation: 1, seq: 2 }, now);
    assert_eq!(states(&c), vec![MemberState::Left]);
    // A delayed heartbeat from before the leave changes nothing.
    assert!(t.apply(alive(p, 1, 1, &["a"]), now).is_empty());
    // Left members are not failed by silence.
    assert!(t.tick(now + Duration::from_secs(60)).is_empty());
    let c = t.apply(alive(p, 2, 1, &["a"]), now + Duration::from_secs(61));
    assert_eq!(states(&c), vec![MemberState::Alive]);
}

#[tokio::test(start_paused = true)]
async fn failed_member_comes_back_and_reaping() {
    let mut t = MemberTable::new(PeerId::random(), T);
    let p = PeerId::random();
    let now = Instant::now();
    t.apply(alive(p, 1, 1, &[]), now);
    t.tick(now + Duration::from_secs(5));
    assert_eq!(t.get(&p).unwrap().state, MemberState::Failed);
    // A ping to a failed member does not resurrect it; a heartbeat does.
    assert!(t.touch(&p, now + Duration::from_secs(6)).is_empty());
    let c = t.apply(alive(p, 1, 2, &[]), now + Duration::from_secs(6));
    assert_eq!(c, vec![Change::State { peer: p, from: Some(MemberState::Failed), to: MemberState::Alive }]);
    t.tick(now + Duration::from_secs(11));
    t.tick(now + Duration::from_secs(11) + T.reap_after);
    assert!(t.get(&p).is_none());
}

#[tokio::test(start_paused = true)]
async fn ping_clears_suspicion_and_own_messages_are_ignored() {
    let local = PeerId::random();
    let mut t = MemberTable::new(local, T);
    assert!(t.apply(alive(local, 1, 1, &[]), Instant::now()).is_empty());
    let p = PeerId::random();
    let now = Instant::now();
    t.apply(alive(p, 1, 1, &[]), now);
    t.tick(now + Duration::from_secs(3));
    assert_eq!(t.get(&p).unwrap().state, MemberState::Suspect);
    let c = t.touch(&p, now + Duration::from_secs(3));
    assert_eq!(states(&c), vec![MemberState::Alive]);
    assert!(t.tick(now + Duration::from_millis(5000)).is_empty());
}

#[tokio::test(start_paused = true)]
async fn withdraw_and_meta_change_are_reported() {
    let mut t = MemberTable::new(PeerId::random(), T);
    let p = PeerId::random();
    let now = Instant::now();
    t.apply(alive(p, 1, 1, &["a", "b"]), now);
    let c = t.apply(alive(p, 1, 2, &["a"]), now);
    assert_eq!(c, vec![Change::Services { peer: p, announced: vec![], withdrawn: vec!["b".into()] }]);
    let mut m = alive(p, 1, 3, &["a"]);
    if let Message::Alive(a) = &mut m {
        a.services.get_mut("a").unwrap().insert("k".into(), "v".into());
    }
    assert_eq!(t.apply(m, now).len(), 1);
}
