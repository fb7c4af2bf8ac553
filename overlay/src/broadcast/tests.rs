use super::*;

/// Nodes on a ring with chords (each links to the next two and one far
/// node), frames delivered in order, no time passing unless ticked.
struct Net {
    trees: Vec<Tree<usize>>,
    up: Vec<bool>,
    queue: VecDeque<(usize, usize, Frame)>,
    pushes: usize,
    delivered: Vec<Vec<Id>>,
    now: Instant,
}

impl Net {
    fn new(n: usize) -> Net {
        let mut trees: Vec<Tree<usize>> = (0..n).map(|_| Tree::new(Settings::default())).collect();
        for i in 0..n {
            for j in [(i + 1) % n, (i + 2) % n, (i * 7 + 3) % n] {
                if j != i {
                    trees[i].link_up(j, Instant::now());
                    trees[j].link_up(i, Instant::now());
                }
            }
        }
        Net {
            trees,
            up: vec![true; n],
            queue: VecDeque::new(),
            pushes: 0,
            delivered: vec![Vec::new(); n],
            now: Instant::now(),
        }
    }

    fn run(&mut self) {
        while let Some((to, from, frame)) = self.queue.pop_front() {
            if !self.up[to] {
                continue;
            }
            if matches!(frame, Frame::Push { .. }) {
                self.pushes += 1;
            }
            let r = self.trees[to].receive(from, frame, self.now);
            if let Some((id, _)) = r.fresh {
                self.delivered[to].push(id);
            }
            self.queue.extend(r.send.into_iter().map(|(p, f)| (p, to, f)));
        }
    }

    fn send(&mut self, from: usize, id: Id) {
        let out = self.trees[from].broadcast(id, id.to_vec(), self.now);
        self.delivered[from].push(id);
        self.queue.extend(out.into_iter().map(|(p, f)| (p, from, f)));
        self.run();
    }

    fn tick(&mut self, by: Duration) {
        self.now += by;
        for i in 0..self.trees.len() {
            if self.up[i] {
                let out = self.trees[i].tick(self.now);
                self.queue.extend(out.into_iter().map(|(p, f)| (p, i, f)));
            }
        }
        self.run();
    }

    fn all_have(&self, id: Id) -> bool {
        (0..self.trees.len()).filter(|i| self.up[*i]).all(|i| self.delivered[i].contains(&id))
    }
}

fn id(n: u8) -> Id {
    [n; 16]
}

/// A tree linked to 1 to `links`: link 1 eager, the others pruned lazy.
fn one_eager(links: usize, now: Instant) -> Tree<usize> {
    let mut t: Tree<usize> = Tree::new(Settings::default());
    for p in 1..=links {
        t.link_up(p, now);
    }
    for p in 2..=links {
        t.receive(p, Frame::Prune, now);
    }
    t
}

#[tokio::test(start_paused = true)]
async fn the_links_settle_into_a_tree_that_reaches_everyone_once() {
    let n = 40;
    let mut net = Net::new(n);
    net.send(0, id(1));
    assert!(net.all_have(id(1)));
    let flooded = net.pushes;
    assert!(flooded > 2 * n, "the first message floods every link: {flooded}");
    for m in 2..6 {
        net.pushes = 0;
        net.send(m as usize * 7 % n, id(m));
        assert!(net.all_have(id(m)), "message {m}");
        net.tick(Duration::from_millis(100));
    }
    // Settled: each member receives each message once (a tree has n − 1
    // edges), whoever sends it.
    for (m, from) in [(10, 3), (11, 29), (12, 0)] {
        net.pushes = 0;
        net.send(from, id(m));
        assert!(net.all_have(id(m)));
        assert_eq!(net.pushes, n - 1, "message {m} from {from}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_member_that_goes_away_is_routed_around_through_the_lazy_links() {
    let n = 40;
    let mut net = Net::new(n);
    for m in 1..6 {
        net.send(m as usize, id(m));
        net.tick(Duration::from_millis(300));
    }
    // The node with the most eager links goes away without a word.
    let hub = (0..n).max_by_key(|i| net.trees[*i].links().0.count()).unwrap();
    assert!(net.trees[hub].links().0.count() >= 3, "a branching node");
    net.up[hub] = false;
    let from = (hub + n / 2) % n;
    net.send(from, id(20));
    let reached = |net: &Net| (0..n).filter(|i| net.delivered[*i].contains(&id(20))).count();
    let before = reached(&net);
    assert!(before < n - 1, "the tree is cut: {before}");
    // Ticks announce the id over lazy links; those missing it graft.
    for _ in 0..4 {
        net.tick(Duration::from_millis(300));
    }
    assert!(net.all_have(id(20)), "{} of {}", reached(&net), n - 1);
    // The links to the gone node are dropped by the transport; the tree
    // that remains carries the next message to everyone at once.
    for i in 0..n {
        let out = net.trees[i].link_down(hub, net.now);
        net.queue.extend(out.into_iter().map(|(p, f)| (p, i, f)));
    }
    net.run();
    net.send(from, id(21));
    assert!(net.all_have(id(21)));
}

#[tokio::test(start_paused = true)]
async fn a_graft_asks_the_next_announcer_if_the_first_does_not_answer() {
    let now = Instant::now();
    let mut t: Tree<usize> = Tree::new(Settings::default());
    for p in [1, 2] {
        t.link_up(p, Instant::now());
    }
    assert!(t.receive(1, Frame::IHave(vec![id(9)]), now).send.is_empty());
    t.receive(2, Frame::IHave(vec![id(9)]), now);
    let after = Settings::default().graft_after;
    assert_eq!(t.next_deadline(), Some(now + after));
    assert!(t.tick(now + after / 2).is_empty(), "not due yet");
    let first = t.tick(now + after);
    assert_eq!(first, vec![(1, Frame::Graft(vec![id(9)]))]);
    let second = t.tick(now + after * 2);
    assert_eq!(second, vec![(2, Frame::Graft(vec![id(9)]))]);
    let r = t.receive(2, Frame::Push { id: id(9), data: vec![7] }, now + after * 3);
    assert_eq!(r.fresh, Some((id(9), vec![7])));
    assert!(t.missing.is_empty(), "no longer missing");
    let announce = t.next_deadline().expect("its announcement");
    assert!(t.tick(announce).iter().all(|(_, f)| !matches!(f, Frame::Graft(_))));
}

#[tokio::test(start_paused = true)]
async fn every_lazy_link_is_told_every_id_when_its_turn_comes() {
    let mut now = Instant::now();
    let mut t = one_eager(7, now);
    // Messages keep coming over the one eager link; each tick announces
    // to 3 of the 6 lazy links in turn.
    let mut told: BTreeMap<usize, BTreeSet<Id>> = BTreeMap::new();
    for m in 1..=4 {
        t.receive(1, Frame::Push { id: id(m), data: vec![m] }, now);
        now = t.next_deadline().expect("announcements due");
        for (p, f) in t.tick(now) {
            if let Frame::IHave(ids) = f {
                told.entry(p).or_default().extend(ids);
            }
        }
    }
    // The first id came while only 3 links had their turn; the other 3
    // are told it at theirs, not never.
    for p in 2..=7 {
        let ids = told.get(&p).cloned().unwrap_or_default();
        assert!(ids.contains(&id(1)), "link {p} was told {ids:?}");
    }
    assert!(!told.contains_key(&1), "the eager link is pushed, not told");
    // Once told, an id is not told again; ids older than `OWED_FOR` are
    // not told at all.
    t.receive(1, Frame::Push { id: id(9), data: vec![9] }, now);
    now += OWED_FOR;
    t.receive(1, Frame::Push { id: id(10), data: vec![10] }, now);
    assert!(t.next_deadline().is_some_and(|due| due <= now), "announcements due");
    let sent = t.tick(now);
    assert_eq!(sent.len(), 3, "{sent:?}");
    for (_, f) in sent {
        assert_eq!(f, Frame::IHave(vec![id(10)]));
    }
}

#[tokio::test(start_paused = true)]
async fn a_lazy_link_that_announced_an_id_is_not_told_it_back() {
    let now = Instant::now();
    let mut t = one_eager(4, now);
    // Link 2 announced id 1 before it arrived, link 3 right after: the
    // push came over link 1, so only link 4 is told.
    t.receive(2, Frame::IHave(vec![id(1)]), now);
    t.receive(1, Frame::Push { id: id(1), data: vec![1] }, now);
    t.receive(3, Frame::IHave(vec![id(1)]), now);
    let mut sent = Vec::new();
    while let Some(due) = t.next_deadline() {
        sent.extend(t.tick(due));
    }
    assert_eq!(sent, vec![(4, Frame::IHave(vec![id(1)]))]);
}

#[tokio::test(start_paused = true)]
async fn a_hostile_link_cannot_make_a_node_hold_more_than_its_bound() {
    let now = Instant::now();
    let mut t: Tree<usize> = Tree::new(Settings::default());
    t.link_up(1, Instant::now());
    for round in 0..40u32 {
        let ids: Vec<Id> = (0..1000u32)
            .map(|k| {
                let mut id = [0u8; 16];
                id[..4].copy_from_slice(&round.to_be_bytes());
                id[4..8].copy_from_slice(&k.to_be_bytes());
                id
            })
            .collect();
        t.receive(1, Frame::IHave(ids), now);
    }
    assert!(t.missing.len() <= MAX_KEPT, "{}", t.missing.len());
    // A stranger (no link) is not recorded as an announcer, nor grafted.
    let mut t: Tree<usize> = Tree::new(Settings::default());
    t.receive(5, Frame::IHave(vec![id(1)]), now);
    assert!(t.tick(now + Duration::from_secs(1)).is_empty());
    t.receive(5, Frame::Graft(vec![]), now);
    assert_eq!(t.links().0.count() + t.links().1.count(), 0);
}

#[test]
fn frames_read_back_and_garbage_is_refused() {
    for f in [
        Frame::Push { id: id(1), data: b"{}".to_vec() },
        Frame::IHave(vec![id(1), id(2)]),
        Frame::Graft(vec![]),
        Frame::Prune,
    ] {
        assert_eq!(Frame::decode(&f.encode()).unwrap(), f);
    }
    for bad in [&[][..], &[0; 17], &[1; 20], &[3, 0], &[9]] {
        assert!(Frame::decode(bad).is_err(), "{bad:?}");
    }
    let too_many = Frame::IHave(vec![id(1); MAX_IDS + 1]).encode();
    assert!(Frame::decode(&too_many).is_err());
}

#[tokio::test(start_paused = true)]
async fn a_newcomers_announcement_lost_on_its_first_link_reaches_the_next() {
    let mut now = Instant::now();
    let mut newcomer: Tree<usize> = Tree::new(Settings::default());
    let mut far: Tree<usize> = Tree::new(Settings::default());
    // The announcement goes out over the first link, whose far end drops
    // the stream unread; the link goes down.
    assert!(newcomer.link_up(1, now).is_empty());
    let out = newcomer.broadcast(id(1), vec![1], now);
    assert_eq!(out.len(), 1, "pushed over the one link");
    assert!(newcomer.link_down(1, now).is_empty(), "no other link to tell");
    // The next link is told of it, and its far end asks for it.
    now += Duration::from_millis(300);
    let told = newcomer.link_up(2, now);
    assert_eq!(told, vec![(2, Frame::IHave(vec![id(1)]))]);
    assert!(far.link_up(0, now).is_empty(), "nothing of its own to tell");
    let (_, frame) = told.into_iter().next().expect("one frame");
    far.receive(0, frame, now);
    now = far.next_deadline().expect("the missing id is due");
    let asks = far.tick(now);
    assert_eq!(asks, vec![(0, Frame::Graft(vec![id(1)]))]);
    let (_, graft) = asks.into_iter().next().expect("one frame");
    let answer = newcomer.receive(2, graft, now).send;
    assert_eq!(answer, vec![(2, Frame::Push { id: id(1), data: vec![1] })]);
    // Messages passed on for others are not told to new links, nor our
    // own while a link they went over is up; a lost one is told for
    // `OWED_FOR` only.
    newcomer.receive(2, Frame::Push { id: id(2), data: vec![2] }, now);
    assert_eq!(newcomer.broadcast(id(3), vec![3], now).len(), 1, "pushed over link 2");
    assert_eq!(newcomer.link_up(3, now), vec![(3, Frame::IHave(vec![id(1)]))]);
    assert!(newcomer.link_up(4, now + OWED_FOR).is_empty());
    // When link 2 goes, our message 3 went over no link still up: the
    // links left are told of it at once.
    let told = newcomer.link_down(2, now);
    let mut to: Vec<usize> =
        told.iter().filter(|(_, f)| *f == Frame::IHave(vec![id(3)])).map(|(p, _)| *p).collect();
    to.sort();
    assert_eq!(to, vec![3, 4]);
}

#[tokio::test(start_paused = true)]
async fn a_message_sent_before_any_link_is_not_told_to_new_links() {
    let now = Instant::now();
    let mut t: Tree<usize> = Tree::new(Settings::default());
    assert!(t.broadcast(id(1), vec![1], now).is_empty());
    assert!(
        t.link_up(1, now).is_empty(),
        "sent before any link: a newcomer announces itself afresh over its first"
    );
}

#[tokio::test(start_paused = true)]
async fn a_goodbye_goes_over_lazy_links_too() {
    let now = Instant::now();
    let mut t = one_eager(3, now);
    assert_eq!(t.broadcast(id(1), vec![1], now).len(), 1, "a message goes to the eager link");
    let mut to: Vec<usize> =
        t.broadcast_last(id(2), vec![2], now).into_iter().map(|(p, _)| p).collect();
    to.sort();
    assert_eq!(to, vec![1, 2, 3], "the goodbye goes to every link");
}

#[tokio::test(start_paused = true)]
async fn a_message_of_ours_that_came_back_is_not_lost_with_its_link() {
    let now = Instant::now();
    let mut t: Tree<usize> = Tree::new(Settings::default());
    for p in 1..=2 {
        t.link_up(p, now);
    }
    assert_eq!(t.broadcast(id(1), vec![1], now).len(), 2);
    t.link_down(2, now);
    // Link 1 pushes it back to us: it got out.
    t.receive(1, Frame::Push { id: id(1), data: vec![1] }, now);
    assert!(t.link_down(1, now).is_empty(), "nothing to tell, and no link left");
    assert!(t.link_up(3, now).is_empty(), "not lost: not told");
}

#[tokio::test(start_paused = true)]
async fn a_push_on_a_stream_that_ended_is_told_again_over_the_link() {
    let now = Instant::now();
    let mut t: Tree<usize> = Tree::new(Settings::default());
    t.link_up(1, now);
    assert_eq!(t.broadcast(id(1), vec![1], now).len(), 1);
    // The stream it went on ended; the link is still up over another.
    assert_eq!(t.pushes_lost(1, now), vec![(1, Frame::IHave(vec![id(1)]))]);
    assert!(t.pushes_lost(1, now).is_empty(), "told once");
}
