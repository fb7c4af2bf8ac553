use super::*;
use std::collections::BTreeMap;
use wire::Accusation;

const T: Timing = Timing {
    suspicion_timeout: Duration::from_secs(2),
    suspicion_max_factor: 2,
    expected_accusers: 3,
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

fn suspect(peer: PeerId, inc: u64, seq: u64) -> Message {
    Message::Suspect(Accusation { peer, incarnation: inc, seq, by: PeerId::random() })
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
async fn unrefuted_suspicion_fails_member_and_expires_services() {
    let mut t = MemberTable::new(PeerId::random(), T);
    let p = PeerId::random();
    let now = Instant::now();
    let c = t.apply(alive(p, 1, 1, &["storage"]), now);
    assert_eq!(c[0], Change::State { peer: p, from: None, to: MemberState::Alive });
    assert!(
        matches!(&c[1], Change::Services { announced, .. } if announced == &["storage".to_string()])
    );
    assert_eq!(t.next_deadline(), None);
    let c = t.apply(suspect(p, 1, 1), now + Duration::from_secs(1));
    assert_eq!(states(&c), vec![MemberState::Suspect]);
    // One accuser: the longest suspicion (2 s × 2, three quarters of it
    // in a table this small).
    assert_eq!(t.next_deadline(), Some(now + Duration::from_secs(4)));
    assert!(t.tick(now + Duration::from_millis(3900)).is_empty());
    let c = t.tick(now + Duration::from_secs(4));
    assert_eq!(states(&c), vec![MemberState::Failed]);
    assert!(c.iter().any(
        |c| matches!(c, Change::Services { withdrawn, .. } if withdrawn == &["storage".to_string()])
    ));
}

#[tokio::test(start_paused = true)]
async fn newer_heartbeat_refutes_and_stale_suspicion_is_ignored() {
    let mut t = MemberTable::new(PeerId::random(), T);
    let p = PeerId::random();
    let now = Instant::now();
    t.apply(alive(p, 1, 5, &[]), now);
    t.apply(suspect(p, 1, 5), now);
    let c = t.apply(alive(p, 1, 6, &[]), now + Duration::from_millis(10));
    assert_eq!(states(&c), vec![MemberState::Alive]);
    assert!(t.tick(now + Duration::from_secs(10)).is_empty(), "refuted suspicion does not fail");
    // A suspicion about an older version arrives late: ignored.
    assert!(t.apply(suspect(p, 1, 5), now + Duration::from_secs(10)).is_empty());
    // An older heartbeat must not roll back state or services.
    assert!(t.apply(alive(p, 1, 3, &["x"]), now).is_empty());
    assert!(t.get(&p).unwrap().info.services.is_empty());
}

#[tokio::test(start_paused = true)]
async fn suspicion_about_us_asks_for_refutation() {
    let local = PeerId::random();
    let mut t = MemberTable::new(local, T);
    assert_eq!(t.apply(suspect(local, 1, 1), Instant::now()), vec![Change::Refute]);
    let failed =
        Message::Failed(Accusation { peer: local, incarnation: 1, seq: 1, by: PeerId::random() });
    assert_eq!(t.apply(failed, Instant::now()), vec![Change::Refute]);
    assert!(
        t.apply(alive(local, 1, 1, &[]), Instant::now()).is_empty(),
        "own heartbeats are ignored"
    );
}

#[tokio::test(start_paused = true)]
async fn failed_confirmation_and_no_failure_by_silence() {
    let mut t = MemberTable::new(PeerId::random(), T);
    let (p, q) = (PeerId::random(), PeerId::random());
    let now = Instant::now();
    t.apply(alive(p, 1, 1, &[]), now);
    t.apply(alive(q, 1, 1, &[]), now);
    let confirm =
        Message::Failed(Accusation { peer: p, incarnation: 1, seq: 1, by: PeerId::random() });
    // Another node's confirmation makes p suspect here, for the shortest
    // suspicion (a table of three: three quarters of 2 s), and this
    // node's own timer fails it.
    assert_eq!(states(&t.apply(confirm, now)), vec![MemberState::Suspect]);
    assert_eq!(t.next_deadline(), Some(now + Duration::from_millis(1500)));
    assert_eq!(states(&t.tick(now + Duration::from_millis(1500))), vec![MemberState::Failed]);
    // State is gossiped on change only: silence is not a failure (the
    // monitors' probes are the detector).
    assert!(t.tick(now + Duration::from_secs(3600)).is_empty());
    assert_eq!(t.get(&q).unwrap().state, MemberState::Alive);
}

#[tokio::test(start_paused = true)]
async fn a_refutation_that_beats_this_nodes_own_timer_undoes_another_nodes_failure() {
    let mut t = MemberTable::new(PeerId::random(), T);
    let p = PeerId::random();
    let now = Instant::now();
    t.apply(alive(p, 1, 1, &[]), now);
    t.apply(suspect(p, 1, 1), now);
    // The accuser's own timer ran out first (it heard the refutation
    // late); its confirmation reaches us before the refutation does.
    let confirm =
        Message::Failed(Accusation { peer: p, incarnation: 1, seq: 1, by: PeerId::random() });
    assert!(t.apply(confirm, now + Duration::from_millis(100)).is_empty(), "still suspect");
    let back = t.apply(alive(p, 1, 2, &[]), now + Duration::from_millis(500));
    assert_eq!(states(&back), vec![MemberState::Alive]);
    assert!(t.tick(now + Duration::from_secs(60)).is_empty(), "never failed here");
    assert_eq!(t.get(&p).unwrap().state, MemberState::Alive);
}

#[tokio::test(start_paused = true)]
async fn more_accusers_shorten_the_suspicion() {
    let at = |accusers| T.suspicion_for(accusers, 100);
    assert_eq!(at(1), Duration::from_secs(4));
    assert!(at(2) > Duration::from_secs(2) && at(2) < Duration::from_secs(3));
    assert_eq!(at(3), Duration::from_secs(2));
    assert_eq!(at(9), Duration::from_secs(2));
    let mut t = MemberTable::new(PeerId::random(), T);
    let p = PeerId::random();
    let now = Instant::now();
    t.apply(alive(p, 1, 1, &[]), now);
    let by =
        |who: PeerId| Message::Suspect(Accusation { peer: p, incarnation: 1, seq: 1, by: who });
    let (a, b, c) = (PeerId::random(), PeerId::random(), PeerId::random());
    // A table of two: three quarters of the timeouts (see the test below).
    t.apply(by(a), now);
    assert_eq!(t.next_deadline(), Some(now + Duration::from_secs(3)));
    assert!(t.apply(by(a), now).is_empty(), "the same accuser counts once");
    assert_eq!(t.next_deadline(), Some(now + Duration::from_secs(3)));
    t.apply(by(b), now + Duration::from_millis(300));
    t.apply(by(c), now + Duration::from_millis(600));
    let shortest = now + Duration::from_millis(1500);
    assert_eq!(t.next_deadline(), Some(shortest), "all three monitors accuse");
    assert_eq!(states(&t.tick(shortest)), vec![MemberState::Failed]);
}

#[tokio::test(start_paused = true)]
async fn leave_then_restart_with_new_incarnation() {
    let mut t = MemberTable::new(PeerId::random(), T);
    let p = PeerId::random();
    let now = Instant::now();
    t.apply(alive(p, 1, 1, &["a"]), now);
    let c = t.apply(Message::Leave { peer: p, incarnation: 1, seq: 2 }, now);
    assert_eq!(states(&c), vec![MemberState::Left]);
    assert!(t.apply(alive(p, 1, 1, &["a"]), now).is_empty(), "heartbeat from before the leave");
    assert!(t.apply(suspect(p, 1, 2), now).is_empty(), "left members are not suspected");
    assert!(t.tick(now + Duration::from_secs(600)).is_empty(), "left members do not fail");
    let c = t.apply(alive(p, 2, 1, &["a"]), now + Duration::from_secs(601));
    assert_eq!(states(&c), vec![MemberState::Alive]);
}

#[tokio::test(start_paused = true)]
async fn failed_member_comes_back_and_reaping() {
    let mut t = MemberTable::new(PeerId::random(), T);
    let p = PeerId::random();
    let now = Instant::now();
    t.apply(alive(p, 1, 1, &[]), now);
    t.apply(suspect(p, 1, 1), now);
    t.tick(now + Duration::from_secs(4));
    assert_eq!(t.get(&p).unwrap().state, MemberState::Failed);
    assert!(t.touch(&p, now + Duration::from_secs(6)).is_empty(), "a ping does not resurrect");
    let c = t.apply(alive(p, 1, 2, &[]), now + Duration::from_secs(6));
    assert_eq!(
        c,
        vec![Change::State { peer: p, from: Some(MemberState::Failed), to: MemberState::Alive }]
    );
    t.apply(suspect(p, 1, 2), now + Duration::from_secs(7));
    t.tick(now + Duration::from_secs(11));
    assert_eq!(t.get(&p).unwrap().state, MemberState::Failed);
    let q = PeerId::random();
    t.apply(alive(q, 1, 1, &[]), now);
    t.apply(Message::Leave { peer: q, incarnation: 1, seq: 2 }, now + Duration::from_secs(8));
    t.tick(now + Duration::from_secs(5) + T.reap_after);
    assert!(t.get(&p).is_some(), "its first failure's reaping was called off when it came back");
    t.tick(now + Duration::from_secs(9) + T.reap_after);
    assert!(t.get(&q).is_none(), "the member that left is forgotten first");
    assert!(t.get(&p).is_some());
    t.tick(now + Duration::from_secs(11) + T.reap_after);
    assert!(t.get(&p).is_none());
}

#[tokio::test(start_paused = true)]
async fn answered_probe_clears_local_suspicion() {
    let mut t = MemberTable::new(PeerId::random(), T);
    let p = PeerId::random();
    let now = Instant::now();
    t.apply(alive(p, 1, 1, &[]), now);
    t.apply(suspect(p, 1, 1), now);
    assert_eq!(states(&t.touch(&p, now + Duration::from_secs(1))), vec![MemberState::Alive]);
    assert!(t.tick(now + Duration::from_secs(5)).is_empty());
}

#[tokio::test(start_paused = true)]
async fn withdraw_and_meta_change_are_reported() {
    let mut t = MemberTable::new(PeerId::random(), T);
    let p = PeerId::random();
    let now = Instant::now();
    t.apply(alive(p, 1, 1, &["a", "b"]), now);
    let c = t.apply(alive(p, 1, 2, &["a"]), now);
    assert_eq!(
        c,
        vec![Change::Services { peer: p, announced: vec![], withdrawn: vec!["b".into()] }]
    );
    let mut m = alive(p, 1, 3, &["a"]);
    if let Message::Alive(a) = &mut m {
        a.services.get_mut("a").unwrap().insert("k".into(), "v".into());
    }
    assert_eq!(t.apply(m, now).len(), 1);
}

#[test]
fn every_member_gets_k_monitors() {
    let peers: Vec<PeerId> = (0..20).map(|_| PeerId::random()).collect();
    let mut probed_by: std::collections::HashMap<PeerId, usize> = Default::default();
    for me in &peers {
        let targets = monitor_targets(*me, peers.iter().copied(), 3);
        assert_eq!(targets.len(), 3);
        assert!(!targets.contains(me));
        for t in targets {
            *probed_by.entry(t).or_default() += 1;
        }
    }
    assert!(peers.iter().all(|p| probed_by[p] == 3), "{probed_by:?}");
    // With fewer members than k, everyone else is probed.
    assert_eq!(monitor_targets(peers[0], peers[..3].iter().copied(), 5).len(), 2);
    assert!(monitor_targets(peers[0], [peers[0]], 3).is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_restart_we_did_not_notice_is_reported() {
    let mut t = MemberTable::new(PeerId::random(), T);
    let p = PeerId::random();
    let now = Instant::now();
    t.apply(alive(p, 1, 5, &[]), now);
    assert!(t.apply(alive(p, 1, 6, &[]), now).is_empty(), "a newer heartbeat is no restart");
    assert_eq!(t.apply(alive(p, 2, 1, &[]), now), vec![Change::Restarted { peer: p }]);
    t.apply(suspect(p, 2, 1), now);
    let c = t.apply(alive(p, 3, 1, &[]), now);
    assert_eq!(
        c,
        vec![
            Change::State { peer: p, from: Some(MemberState::Suspect), to: MemberState::Alive },
            Change::Restarted { peer: p }
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn the_kept_ring_gives_the_monitor_targets_of_a_sort() {
    let me = PeerId::random();
    let mut t = MemberTable::new(me, T);
    let now = Instant::now();
    let peers: Vec<PeerId> = (0..40).map(|_| PeerId::random()).collect();
    for p in &peers {
        t.apply(alive(*p, 1, 1, &[]), now);
    }
    for (i, p) in peers.iter().enumerate().filter(|(i, _)| i % 3 == 0) {
        let seq = if i % 2 == 0 { 1 } else { 2 };
        t.apply(suspect(*p, 1, 1), now);
        if seq == 2 {
            t.apply(alive(*p, 1, 2, &[]), now);
        }
    }
    t.tick(now + Duration::from_secs(60));
    let up: Vec<PeerId> = t.iter().filter(|m| m.state.is_up()).map(|m| m.info.peer).collect();
    assert!(up.len() < peers.len(), "some members failed");
    for k in [0, 1, 3, 50] {
        assert_eq!(t.up_after(&me, k), monitor_targets(me, up.iter().copied(), k), "k = {k}");
        assert_eq!(t.up_after(&peers[5], k), monitor_targets(peers[5], up.iter().copied(), k));
    }
}

#[tokio::test(start_paused = true)]
async fn only_the_least_accuser_confirms_a_failure() {
    use super::detector::Detector;
    let now = Instant::now();
    let victim = PeerId::random();
    let mut monitors: Vec<PeerId> = (0..3).map(|_| PeerId::random()).collect();
    monitors.sort();
    let mut confirmations = 0;
    for me in &monitors {
        let mut t = MemberTable::new(*me, T);
        let mut d = Detector::default();
        t.apply(alive(victim, 1, 1, &[]), now);
        let (_, changes) = d.probe_failed(&mut t, *me, victim, now).expect("accuses");
        assert!(!changes.is_empty());
        for other in monitors.iter().filter(|o| *o != me) {
            let a = wire::Accusation { peer: victim, incarnation: 1, seq: 1, by: *other };
            t.apply(Message::Suspect(a), now);
        }
        for c in t.tick(now + Duration::from_secs(10)) {
            if let Change::State { peer, to, .. } = c {
                confirmations += usize::from(d.on_state(&t, *me, peer, to).is_some());
            }
        }
        assert_eq!(t.get(&victim).unwrap().state, MemberState::Failed);
    }
    assert_eq!(confirmations, 1, "one confirmation, from the least accuser");
}

#[test]
fn a_small_community_suspects_for_less() {
    let shortest = |members| T.suspicion_for(3, members).as_secs_f64();
    assert_eq!(shortest(1), 1.5, "never under three quarters");
    assert_eq!(shortest(20), 1.5);
    assert!((shortest(50) - 2.0 * 50f64.log10() / 2.0).abs() < 1e-9, "log N between");
    assert_eq!(shortest(100), 2.0);
    assert_eq!(shortest(10_000), 2.0, "never over the configured timeout");
    assert_eq!(T.suspicion_for(1, 20).as_secs_f64(), 3.0, "a lone accuser: twice as long");
}

#[tokio::test(start_paused = true)]
async fn a_node_that_is_behind_waits_longer_before_it_fails_a_member() {
    let mut t = MemberTable::new(PeerId::random(), T);
    let p = PeerId::random();
    let now = Instant::now();
    t.apply(alive(p, 1, 1, &[]), now);
    t.apply(suspect(p, 1, 1), now);
    // 3 s here when healthy (one accuser, a table this small).
    assert_eq!(t.next_deadline(), Some(now + Duration::from_secs(3)));
    t.set_slack(2);
    assert_eq!(t.next_deadline(), Some(now + Duration::from_secs(9)));
    assert!(t.tick(now + Duration::from_secs(8)).is_empty(), "still suspect while behind");
    // Caught up again: the suspicion ends as it would have.
    t.set_slack(0);
    assert_eq!(states(&t.tick(now + Duration::from_secs(8))), vec![MemberState::Failed]);
}

#[tokio::test(start_paused = true)]
async fn many_members_suspected_at_once_are_given_longer_to_refute() {
    let mut t = MemberTable::new(PeerId::random(), T);
    let peers: Vec<PeerId> = (0..20).map(|_| PeerId::random()).collect();
    let now = Instant::now();
    for p in &peers {
        t.apply(alive(*p, 1, 1, &[]), now);
    }
    let one = T.suspicion_for(1, peers.len());
    // Ten dying at once refute nothing: the usual suspicion for each.
    for p in &peers[10..20] {
        t.apply(suspect(*p, 1, 1), now);
    }
    assert_eq!(t.next_deadline(), Some(now + one));
    assert_eq!(t.tick(now + one).len(), 10);
    // Once a suspicion here was refuted (this node's suspicions may be
    // its own trouble)…
    let now = now + Duration::from_secs(60);
    t.apply(suspect(peers[19], 1, 1), now);
    t.apply(alive(peers[19], 1, 2, &[]), now);
    // … one suspect, two: still the usual suspicion (a kill -9 or two).
    t.apply(suspect(peers[0], 1, 1), now);
    t.apply(suspect(peers[1], 1, 1), now);
    assert_eq!(t.next_deadline(), Some(now + one));
    // Ten at once: five times as long, for the first ones too.
    for p in &peers[2..10] {
        t.apply(suspect(*p, 1, 1), now);
    }
    assert_eq!(crowd_slack(10), 4);
    assert_eq!(t.next_deadline(), Some(now + one * 5));
    // The crowd a suspicion saw stays with it: refutations of the others
    // do not shorten it.
    for p in &peers[1..10] {
        t.apply(alive(*p, 1, 2, &[]), now + Duration::from_secs(1));
    }
    assert!(t.tick(now + one * 5 - Duration::from_millis(1)).is_empty());
    assert_eq!(states(&t.tick(now + one * 5)), vec![MemberState::Failed]);
    // A new suspicion alone starts from the usual length again.
    let later = now + Duration::from_secs(60);
    t.apply(suspect(peers[1], 1, 2), later);
    assert_eq!(t.next_deadline(), Some(later + one));
    assert_eq!(crowd_slack(200), MAX_SLACK, "bounded");
}

#[tokio::test(start_paused = true)]
async fn only_accusations_of_us_and_suspects_news_settle_a_suspicion() {
    let local = PeerId::random();
    let mut t = MemberTable::new(local, T);
    let (p, q) = (PeerId::random(), PeerId::random());
    let now = Instant::now();
    t.apply(alive(p, 1, 1, &[]), now);
    t.apply(alive(q, 1, 1, &[]), now);
    assert!(t.settles_suspicion(&suspect(local, 1, 1)));
    let failed_us = Message::Failed(Accusation { peer: local, incarnation: 1, seq: 1, by: p });
    assert!(t.settles_suspicion(&failed_us));
    // Nobody is suspect: news of members and accusations of others wait.
    assert!(!t.settles_suspicion(&alive(p, 2, 1, &[])));
    assert!(!t.settles_suspicion(&suspect(p, 1, 1)));
    t.apply(suspect(p, 1, 1), now);
    assert!(t.settles_suspicion(&alive(p, 2, 1, &[])), "p's refutation");
    assert!(t.settles_suspicion(&Message::Leave { peer: p, incarnation: 1, seq: 2 }));
    assert!(!t.settles_suspicion(&alive(p, 1, 1, &[])), "what the suspicion is about");
    assert!(!t.settles_suspicion(&alive(q, 2, 1, &[])), "q is not suspect");
    assert!(!t.settles_suspicion(&suspect(q, 1, 1)));
    assert!(!t.settles_suspicion(&alive(PeerId::random(), 1, 1, &[])), "a stranger");
}

#[tokio::test(start_paused = true)]
async fn a_message_is_decoded_to_look_ahead_only_if_it_names_us_or_someone_is_suspect() {
    let local = PeerId::random();
    let mut t = MemberTable::new(local, T);
    let p = PeerId::random();
    let now = Instant::now();
    t.apply(alive(p, 1, 1, &[]), now);
    assert!(t.may_settle(&suspect(local, 1, 1).encode()));
    assert!(!t.may_settle(&suspect(p, 1, 1).encode()));
    assert!(!t.may_settle(&alive(p, 2, 1, &[]).encode()));
    t.apply(suspect(p, 1, 1), now);
    assert!(t.may_settle(&alive(p, 2, 1, &[]).encode()));
}
