//! Five overlays on QUIC at 127.0.0.1 in one process.
#![allow(clippy::unwrap_used)] // test and benchmark code: a failed unwrap is a failed run

use cloudy_overlay::membership::monitor_targets;
use cloudy_overlay::testing::{fast_config, wait_until, TestNet, TestNode};
use cloudy_overlay::{Keypair, MemberState};
use std::collections::BTreeMap;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_discover_each_other() {
    let net = TestNet::start(5, fast_config()).await.unwrap();
    net.wait_all_alive().await.unwrap();
    // Members are known beyond direct connections' bootstrap node: node 4
    // knows node 1 although both only bootstrapped from node 0.
    let s = net.nodes[4].handle.snapshot();
    let p1 = net.nodes[1].handle.local_peer_id();
    assert_eq!(s.peers[&p1].state, MemberState::Alive);
    assert!(!s.peers[&p1].addrs.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announce_and_withdraw_propagate() {
    let net = TestNet::start(5, fast_config()).await.unwrap();
    net.wait_all_alive().await.unwrap();
    let provider = net.nodes[2].handle.local_peer_id();
    let meta = BTreeMap::from([("free".to_string(), "42".to_string())]);
    net.nodes[2].handle.announce("storage", meta).await.unwrap();
    for node in &net.nodes {
        let s = wait_until(&node.handle, "storage announced", |s| {
            !s.providers(Some("storage")).is_empty()
        })
        .await
        .unwrap();
        let (name, p) = &s.providers(Some("storage"))[0];
        assert_eq!((name.as_str(), p.peer), ("storage", provider));
        assert_eq!(p.meta["free"], "42");
    }
    assert!(net.nodes[2].handle.withdraw("storage").await.unwrap());
    assert!(
        !net.nodes[2].handle.withdraw("storage").await.unwrap(),
        "second withdraw finds nothing"
    );
    for node in &net.nodes {
        wait_until(&node.handle, "storage withdrawn", |s| s.providers(Some("storage")).is_empty())
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashed_node_is_failed_and_its_services_expire_left_node_is_left() {
    let mut net = TestNet::start(5, fast_config()).await.unwrap();
    net.wait_all_alive().await.unwrap();
    net.nodes[3].handle.announce("video", Default::default()).await.unwrap();
    for node in &net.nodes {
        wait_until(&node.handle, "video announced", |s| !s.providers(Some("video")).is_empty())
            .await
            .unwrap();
    }
    let crashed = net.nodes.remove(3);
    let crashed_id = crashed.handle.local_peer_id();
    crashed.crash().await;
    for node in &net.nodes {
        let s = wait_until(&node.handle, "crashed node failed", |s| {
            s.peers.get(&crashed_id).is_some_and(|p| p.state == MemberState::Failed)
        })
        .await
        .unwrap();
        assert!(s.providers(Some("video")).is_empty(), "announcements expire with their node");
        assert!(s.peers[&crashed_id].failures > 0.0);
    }
    let leaving = net.nodes.remove(1);
    let leaving_id = leaving.handle.local_peer_id();
    leaving.cancel.cancel();
    leaving.task.await.unwrap();
    for node in &net.nodes {
        wait_until(&node.handle, "leaving node left", |s| {
            s.peers.get(&leaving_id).is_some_and(|p| p.state == MemberState::Left)
        })
        .await
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn falsely_suspected_node_refutes_and_is_never_failed() {
    let net = TestNet::start(4, fast_config()).await.unwrap();
    net.wait_all_alive().await.unwrap();
    let victim = net.nodes[2].handle.local_peer_id();
    let mut watcher = net.nodes[3].handle.watch();
    net.nodes[0].handle.accuse(victim).await.unwrap();
    // Everyone ends up seeing the victim alive again, at a newer version.
    for node in &net.nodes {
        if node.handle.local_peer_id() != victim {
            wait_until(&node.handle, "refutation", |s| {
                s.peers[&victim].state == MemberState::Alive
            })
            .await
            .unwrap();
        }
    }
    // Watch one node for longer than the suspicion timeout: never failed.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while tokio::time::timeout_at(deadline, watcher.changed()).await.is_ok() {
        assert_ne!(watcher.borrow().peers[&victim].state, MemberState::Failed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scoring_prefers_the_lower_rtt_peer() {
    let net = TestNet::start(5, fast_config()).await.unwrap();
    net.wait_all_alive().await.unwrap();
    let me = &net.nodes[0].handle;
    let near = net.nodes[1].handle.local_peer_id();
    let far = net.nodes[2].handle.local_peer_id();
    // Both provide the same service; the link to `far` gets 80 ms slower.
    for n in [1, 2] {
        net.nodes[n].handle.announce("storage", Default::default()).await.unwrap();
    }
    me.inject_rtt_delay(far, Duration::from_millis(80)).await.unwrap();
    let s = wait_until(me, "RTTs measured to both", |s| {
        s.providers(Some("storage")).len() == 2
            && s.peers[&far].rtt_measured.is_some_and(|r| r >= Duration::from_millis(80))
            && s.peers[&near].rtt_measured.is_some()
    })
    .await
    .unwrap();
    assert!(s.score(&near) > s.score(&far), "near {} far {}", s.score(&near), s.score(&far));
    let ranked: Vec<_> = s.providers(Some("storage")).into_iter().map(|(_, p)| p.peer).collect();
    assert_eq!(ranked, vec![near, far]);
    let mut peers = vec![far, near];
    s.rank(&mut peers);
    assert_eq!(peers, vec![near, far]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dht_provider_records_are_found_by_others() {
    let net = TestNet::start(3, fast_config()).await.unwrap();
    net.wait_all_alive().await.unwrap();
    let key = b"vod:some-root".to_vec();
    net.nodes[1].handle.start_providing(key.clone()).await.unwrap();
    let found = net.nodes[2].handle.get_providers(key).await.unwrap();
    assert!(found.contains(&net.nodes[1].handle.local_peer_id()), "{found:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_in_use_is_a_clear_error() {
    let a = TestNode::start(fast_config()).await.unwrap();
    let taken = a.handle.snapshot().local.listen_addrs[0].clone();
    let mut cfg = fast_config();
    cfg.listen = vec![taken.clone()];
    let err = TestNode::start(cfg).await.expect_err("second bind must fail").to_string();
    assert!(err.contains("address already in use") && err.contains(&taken.to_string()), "{err}");
}

/// Regression: a node whose event loop dies must stop answering probes
/// (its helper tasks used to outlive the loop and keep it "alive").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn successive_crashes_down_to_two_members_are_all_detected() {
    let mut net = TestNet::start(5, fast_config()).await.unwrap();
    net.wait_all_alive().await.unwrap();
    for _ in 0..3 {
        let victim = net.nodes.remove(1);
        let id = victim.handle.local_peer_id();
        victim.crash().await;
        for node in &net.nodes {
            wait_until(&node.handle, "crash detected", |s| {
                s.peers[&id].state == MemberState::Failed
            })
            .await
            .unwrap();
        }
    }
}

/// A node's connections do not grow with the community. Every node dialed
/// the bootstrap node, and gossipsub's streams used to keep all those
/// connections open for good (19 here); now it keeps only its ring, its
/// links and its gossip mesh, and the rest close once idle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_stay_few_and_the_bootstrap_node_lets_go() {
    let mut cfg = fast_config();
    cfg.monitors = 1;
    cfg.target_peers = 1;
    cfg.idle_timeout = Duration::from_secs(1);
    let net = TestNet::start(20, cfg).await.unwrap();
    net.wait_all_alive().await.unwrap();
    // 1 target and 1 monitor, 1 link out and a few in, a mesh of at most 6.
    const BOUND: usize = 12;
    for node in &net.nodes {
        wait_until(&node.handle, "at most 12 connections", |s| {
            s.peers.values().filter(|p| p.connected).count() <= BOUND
        })
        .await
        .unwrap();
    }
    net.wait_all_alive().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accept_loop_serves_at_most_its_limit_of_sessions_at_once() {
    use cloudy_overlay::tasks::{serve_streams, Tasks};
    use cloudy_overlay::StreamProtocol;
    use futures::{AsyncReadExt, AsyncWriteExt};
    const PROTO: StreamProtocol = StreamProtocol::new("/cloudy/test-limit/1.0.0");
    let net = TestNet::start(2, fast_config()).await.unwrap();
    net.wait_all_alive().await.unwrap();
    let server = &net.nodes[0].handle;
    let incoming = server.stream_control().accept(PROTO).unwrap();
    let tasks = Tasks::new("test", tokio_util::sync::CancellationToken::new());
    // Each session answers one byte, then holds its stream open until the
    // part stops.
    let held = tasks.clone();
    serve_streams(&tasks, "test session", incoming, 2, move |_, mut s| {
        let held = held.clone();
        async move {
            let _ = s.write_all(b"!").await;
            let _ = s.flush().await;
            held.cancelled().await;
        }
    });
    let mut control = net.nodes[1].handle.stream_control();
    let mut open = Vec::new();
    for _ in 0..3 {
        let mut s = control.open_stream(server.local_peer_id(), PROTO).await.unwrap();
        let mut b = [0u8; 1];
        let answered = tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut b)).await;
        open.push((answered.is_ok_and(|r| r.is_ok()), s));
    }
    let served: Vec<bool> = open.iter().map(|(ok, _)| *ok).collect();
    assert_eq!(served, [true, true, false], "the third session is refused while two run");
    drop(open);
    tasks.stop(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_in_a_gossip_storm_is_ignored_then_cut_off_and_the_others_carry_on() {
    let net = TestNet::start(3, fast_config()).await.unwrap();
    net.wait_all_alive().await.unwrap();
    let stormer = net.nodes[2].handle.local_peer_id();
    // A few hundred heartbeats at once: past the burst a member may gossip.
    net.nodes[2].handle.flood_gossip(2000).await.unwrap();
    // Each member takes at most its burst and rate of the stormer's
    // messages; one that gets far more cuts it off (disconnects it, keeps
    // it off, lowers its score). Which one depends on who received what.
    let other = net.nodes[1].handle.clone();
    let cut = |s: &cloudy_overlay::PeerScores| {
        s.peers.get(&stormer).is_some_and(|v| !v.connected && v.failures > 0.0)
    };
    wait_until(&net.nodes[0].handle, "a member to cut the stormer off", |s| {
        cut(s) || cut(&other.snapshot())
    })
    .await
    .unwrap();
    // The others still gossip to each other: an announcement gets through.
    let svc = BTreeMap::from([("k".to_string(), "v".to_string())]);
    net.nodes[0].handle.announce("after-the-storm", svc).await.unwrap();
    let first = net.nodes[0].handle.local_peer_id();
    wait_until(&net.nodes[1].handle, "the announcement", |s| {
        s.peers.get(&first).is_some_and(|v| v.services.contains_key("after-the-storm"))
    })
    .await
    .unwrap();
}

/// A member that restarts at new addresses while another member is still
/// dialling its old ones (a QUIC handshake to the closed port, which waits
/// out its 5 s timeout) is reached at its new addresses at once: until
/// that dial ended, every other dial to the member was refused as "already
/// dialling" and every stream opened to it (probes included) waited for
/// it, so the member was suspected again and again although alive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_back_at_new_addresses_is_reached_while_a_dial_to_its_old_ones_lasts() {
    let net = TestNet::start(2, fast_config()).await.unwrap();
    let (a, c) = (&net.nodes[0].handle, &net.nodes[1].handle);
    // The returning member probes only `c` and keeps no links, so nothing
    // of its own connects it to `a`: only `a`'s dials can.
    let key = loop {
        let key = Keypair::generate_ed25519();
        let me = key.public().to_peer_id();
        if monitor_targets(me, [a.local_peer_id(), c.local_peer_id()], 1) == [c.local_peer_id()] {
            break key;
        }
    };
    let b_id = key.public().to_peer_id();
    let mut cfg = fast_config();
    cfg.bootstrap = vec![net.nodes[1].addr()];
    cfg.monitors = 1;
    cfg.target_peers = 0;
    let b = TestNode::start_with_key(cfg.clone(), key.clone()).await.unwrap();
    let old_addr = b.addr();
    for node in [a, c] {
        wait_until(node, "the member alive", |s| {
            s.peers.get(&b_id).is_some_and(|p| p.state == MemberState::Alive)
        })
        .await
        .unwrap();
    }
    b.crash().await;
    wait_until(a, "the member failed, no connection left", |s| {
        s.peers.get(&b_id).is_some_and(|p| p.state == MemberState::Failed && !p.connected)
    })
    .await
    .unwrap();
    // A stream opened to it now dials its old address (as a probe does);
    // the dial lasts until the handshake times out.
    let opening = tokio::spawn({
        let a = a.clone();
        async move { a.open_stream(b_id, cloudy_overlay::StreamProtocol::new("/test/nothing")).await }
    });
    let b = TestNode::start_with_key(cfg, key).await.unwrap();
    assert_ne!(b.addr(), old_addr, "back on another port");
    wait_until(a, "the member back", |s| {
        s.peers.get(&b_id).is_some_and(|p| p.state == MemberState::Alive)
    })
    .await
    .unwrap();
    let back = tokio::time::Instant::now();
    wait_until(a, "connected to the member", |s| s.peers.get(&b_id).is_some_and(|p| p.connected))
        .await
        .unwrap();
    // The old dial has about 5 s left; a dial at the new address takes
    // milliseconds.
    let waited = back.elapsed();
    assert!(
        waited < Duration::from_secs(2),
        "reached only after {waited:?}: the old dial held it up"
    );
    opening.abort();
}
