//! How many members a newcomer connects to: a bounded few, not the
//! community. Thirty overlays on QUIC at 127.0.0.1 in one process.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed run

use cloudy_overlay::testing::TestNet;
use cloudy_overlay::Config;
use std::time::Duration;
use tokio::time::Instant;

/// More than Kademlia's 20: its bootstrap walk, which libp2p-kad starts
/// whenever a routing table of fewer than 20 gains a peer, reached most
/// of a community this size.
const N: usize = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newcomer_connects_to_a_few_members_not_to_all() {
    let net = TestNet::start(N, Config::for_test()).await.unwrap();
    net.wait_all_alive().await.unwrap();
    // Watch the last node for a few seconds after all are alive: the walk
    // ran within a second of its start and its connections stay open for
    // the idle timeout (30 s), so they would be seen here.
    let last = &net.nodes[N - 1].handle;
    let mut watch = last.watch();
    let until = Instant::now() + Duration::from_secs(3);
    let mut most = 0;
    while let Ok(Ok(())) = tokio::time::timeout_at(until, watch.changed()).await {
        let connected = watch.borrow().peers.values().filter(|p| p.connected).count();
        most = most.max(connected);
    }
    most = most.max(last.snapshot().peers.values().filter(|p| p.connected).count());
    // Its monitor targets and random links, those for whom it is one,
    // the bootstrap node and Kademlia's first requests: about a dozen.
    assert!(most <= 18, "the newcomer connected to {most} of {} members", N - 1);
    assert!(most >= 3, "the newcomer connected to only {most} members");
}
