use super::*;
use crate::membership::wire::{Accusation, Message};
use crate::membership::Timing;
use std::time::Duration;

const T: Timing = Timing {
    suspicion_timeout: Duration::from_secs(2),
    suspicion_max_factor: 2,
    expected_accusers: 3,
    reap_after: Duration::from_secs(3600),
};

fn info(peer: PeerId, inc: u64, seq: u64) -> Alive {
    Alive {
        peer,
        incarnation: inc,
        seq,
        addrs: vec![],
        zone: String::new(),
        coord: None,
        services: Default::default(),
    }
}

/// Two tables exchange as the node does (`hello`, `answer`, `take`), `a`
/// starting; `a`'s changes. Their summaries agree exactly when their
/// digests do.
fn exchange(
    a: &mut MemberTable,
    me_a: &Alive,
    b: &mut MemberTable,
    me_b: &Alive,
    now: Instant,
) -> Vec<Change> {
    let mut changes = Vec::new();
    let mut next = Some(a.hello(me_a));
    while let Some(req) = next.take() {
        let (resp, _) = b.answer(me_b, req, now);
        let (again, c) = a.take(me_a, resp, now);
        changes.extend(c);
        next = again;
    }
    assert_eq!(
        a.summary(me_a) == b.summary(me_b),
        a.digest(me_a) == b.digest(me_b),
        "summaries and digests disagree"
    );
    changes
}

#[tokio::test(start_paused = true)]
async fn a_newcomer_learns_everyone_and_the_tables_agree() {
    let now = Instant::now();
    let (pa, pb) = (PeerId::random(), PeerId::random());
    let (me_a, me_b) = (info(pa, 1, 1), info(pb, 1, 3));
    let mut b = MemberTable::new(pb, T);
    for i in 0..50 {
        b.apply(Message::Alive(info(PeerId::random(), 1, i)), now);
    }
    let mut a = MemberTable::new(pa, T);
    assert_ne!(a.summary(&me_a), b.summary(&me_b));
    exchange(&mut a, &me_a, &mut b, &me_b, now);
    assert_eq!(
        a.iter().filter(|m| m.state == MemberState::Alive).count(),
        51,
        "the 50 and b itself"
    );
    assert_eq!(b.get(&pa).map(|m| m.state), Some(MemberState::Alive), "b learns the newcomer");
    assert_eq!(a.summary(&me_a), b.summary(&me_b));
    let (push, want) = a.compare(&me_a, &b.digest(&me_b));
    assert!(push.is_empty() && want.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_failure_travels_and_the_member_refutes_in_its_next_exchange() {
    let now = Instant::now();
    let (pa, pb, px) = (PeerId::random(), PeerId::random(), PeerId::random());
    let (me_a, me_b, me_x) = (info(pa, 1, 1), info(pb, 1, 1), info(px, 7, 2));
    let mut a = MemberTable::new(pa, T);
    let mut b = MemberTable::new(pb, T);
    let mut x = MemberTable::new(px, T);
    for t in [&mut a, &mut b] {
        t.apply(Message::Alive(me_x.clone()), now);
    }
    b.apply(
        Message::Failed(Accusation { peer: px, incarnation: 7, seq: 2, by: PeerId::random() }),
        now,
    );
    let now = now + Duration::from_secs(10);
    b.tick(now);
    assert_eq!(b.get(&px).unwrap().state, MemberState::Failed);
    // a holds x alive at the version b holds failed: a suspects x, and
    // fails it when its own (shortest) suspicion runs out unrefuted.
    exchange(&mut a, &me_a, &mut b, &me_b, now);
    assert_eq!(a.get(&px).unwrap().state, MemberState::Suspect);
    a.tick(now + Duration::from_secs(10));
    assert_eq!(a.get(&px).unwrap().state, MemberState::Failed);
    // x, alive, meets b: it learns it is held failed and must refute…
    let changes = exchange(&mut x, &me_x, &mut b, &me_b, now);
    assert!(changes.contains(&Change::Refute), "{changes:?}");
    // … with a newer heartbeat, which outranks the failure everywhere.
    let refuted = info(px, 7, 3);
    exchange(&mut b, &me_b, &mut x, &refuted, now);
    exchange(&mut a, &me_a, &mut b, &me_b, now);
    assert_eq!(a.get(&px).unwrap().state, MemberState::Alive);
    assert_eq!(b.get(&px).unwrap().state, MemberState::Alive);
    assert_eq!(a.summary(&me_a), b.summary(&me_b));
}

#[tokio::test(start_paused = true)]
async fn our_own_accused_entry_asks_for_a_refutation() {
    let now = Instant::now();
    let pa = PeerId::random();
    let mut a = MemberTable::new(pa, T);
    let accused = SyncEntry { info: info(pa, 1, 4), state: MemberState::Failed };
    assert_eq!(a.merge(accused, now).changes, vec![Change::Refute]);
}

#[tokio::test(start_paused = true)]
async fn reaped_members_do_not_come_back_and_old_news_is_ignored() {
    let now = Instant::now();
    let mut a = MemberTable::new(PeerId::random(), T);
    let x = PeerId::random();
    let dead = SyncEntry { info: info(x, 1, 1), state: MemberState::Failed };
    assert_eq!(
        a.merge(dead.clone(), now),
        Merged::default(),
        "an unknown failed member is not taken in"
    );
    assert!(a.get(&x).is_none());
    a.apply(Message::Alive(info(x, 1, 5)), now);
    let old = a.merge(dead, now);
    assert_eq!(
        old,
        Merged { ours_newer: true, ..Merged::default() },
        "an older version is ignored; ours is newer"
    );
    assert_eq!(a.get(&x).unwrap().state, MemberState::Alive);
    let newer = SyncEntry { info: info(x, 2, 1), state: MemberState::Left };
    a.merge(newer, now);
    assert_eq!(a.get(&x).unwrap().state, MemberState::Left);
}

/// The summary kept up to date, against one made from the digest.
#[tokio::test(start_paused = true)]
async fn the_running_summary_is_the_digests_through_every_kind_of_change() {
    let from_scratch = |t: &MemberTable, me: &Alive| {
        let sum = t
            .digest(me)
            .iter()
            .fold([0u64; 4], |acc, e| add(acc, share(&e.peer, e.incarnation, e.seq, e.state)));
        let mut buckets = vec![0u64; BUCKETS];
        for e in t.digest(me) {
            let b = usize::from(bucket(&e.peer));
            buckets[b] = buckets[b].wrapping_add(share(&e.peer, e.incarnation, e.seq, e.state)[0]);
        }
        assert_eq!(t.bucket_sums(me), buckets, "the bucket sums are the digest's");
        summary_bytes(sum)
    };
    let now = Instant::now();
    let me = info(PeerId::random(), 1, 1);
    let mut t = MemberTable::new(me.peer, T);
    let peers: Vec<PeerId> = (0..6).map(|_| PeerId::random()).collect();
    for (i, p) in peers.iter().enumerate() {
        t.apply(Message::Alive(info(*p, 1, i as u64)), now);
    }
    assert_eq!(t.summary(&me), from_scratch(&t, &me), "after joins");
    let accuse = |p: PeerId, seq: u64| Accusation { peer: p, incarnation: 1, seq, by: me.peer };
    t.apply(Message::Suspect(accuse(peers[0], 0)), now);
    t.apply(Message::Failed(accuse(peers[1], 1)), now);
    t.apply(Message::Leave { peer: peers[2], incarnation: 1, seq: 9 }, now);
    assert_eq!(t.summary(&me), from_scratch(&t, &me), "after a suspicion, a failure, a leave");
    t.tick(now + Duration::from_secs(10));
    assert_eq!(t.summary(&me), from_scratch(&t, &me), "after a suspicion ran out");
    t.touch(&peers[3], now + Duration::from_secs(10));
    t.merge(SyncEntry { info: info(peers[1], 2, 1), state: MemberState::Alive }, now);
    t.merge(SyncEntry { info: info(peers[4], 1, 4), state: MemberState::Failed }, now);
    assert_eq!(t.summary(&me), from_scratch(&t, &me), "after merges");
    t.tick(now + Duration::from_secs(7200));
    assert!(t.get(&peers[2]).is_none(), "reaped");
    assert_eq!(t.summary(&me), from_scratch(&t, &me), "after reaping");
}

#[tokio::test(start_paused = true)]
async fn large_tables_compare_bucket_sums_and_send_only_the_digest_of_what_differs() {
    let now = Instant::now();
    let (pa, pb) = (PeerId::random(), PeerId::random());
    let (me_a, me_b) = (info(pa, 1, 1), info(pb, 1, 1));
    let mut b = MemberTable::new(pb, T);
    let peers: Vec<PeerId> = (0..1000).map(|_| PeerId::random()).collect();
    for p in &peers {
        b.apply(Message::Alive(info(*p, 1, 1)), now);
    }
    // A newcomer learns the 1,000 through the buckets, every one of which differs.
    let mut a = MemberTable::new(pa, T);
    let resp = b.answer(&me_b, a.hello(&me_a), now).0;
    assert!(matches!(&resp, SyncResponse::Buckets(s) if s.len() == BUCKETS), "{resp:?}");
    exchange(&mut a, &me_a, &mut b, &me_b, now);
    assert_eq!(a.iter().filter(|m| m.state.is_up()).count(), 1001, "the 1,000 and b itself");
    assert_eq!(a.summary(&me_a), b.summary(&me_b));

    // One member restarts and another fails, as `b` alone heard: only
    // their buckets' digests travel, and the tables agree again.
    b.apply(Message::Alive(info(peers[7], 2, 1)), now);
    let by = pb;
    b.apply(Message::Failed(Accusation { peer: peers[9], incarnation: 1, seq: 1, by }), now);
    let now = now + Duration::from_secs(10);
    b.tick(now);
    let resp = b.answer(&me_b, a.hello(&me_a), now).0;
    let (req, _) = a.take(&me_a, resp, now);
    let Some(SyncRequest::Digest { buckets }) = &req else { panic!("{req:?}") };
    let mut expected = vec![bucket(&peers[7]), bucket(&peers[9])];
    expected.sort();
    expected.dedup();
    assert_eq!(*buckets, expected);
    let (part, _) = b.answer(&me_b, req.expect("a request"), now);
    let SyncResponse::Part { digest, .. } = &part else { panic!("{part:?}") };
    assert!(digest.len() < 40, "{} entries, not the whole table", digest.len());
    let (exch, _) = a.take(&me_a, part, now);
    let (entries, _) = b.answer(&me_b, exch.expect("an exchange"), now);
    a.take(&me_a, entries, now);
    assert_eq!(a.get(&peers[9]).map(|m| m.state), Some(MemberState::Suspect));
    a.tick(now + Duration::from_secs(10));
    assert_eq!(a.summary(&me_a), b.summary(&me_b), "they agree again");
    assert_eq!(a.get(&peers[9]).map(|m| m.state), Some(MemberState::Failed));
    assert_eq!(a.get(&peers[7]).map(|m| m.version), Some((2, 1)));
}
