//! A grid of five in-process nodes on QUIC at 127.0.0.1: put on one node,
//! get on another, survive n−k failures, fail clearly past that.
#![allow(clippy::unwrap_used)] // test and benchmark code: a failed unwrap is a failed run

use cloudy_overlay::tasks::Tasks;
use cloudy_overlay::testing::wait_until;
use cloudy_storage::capability::Cap;
use cloudy_storage::client::{GetError, PutOptions};
use cloudy_storage::coding::Params;
use cloudy_storage::server::SharedStore;
use cloudy_storage::store::ShareStore;
use std::sync::Arc;

mod common;
use common::{file, grid, grid_sized, grid_with};

const OPTS: PutOptions = PutOptions {
    params: Params { k: 3, n: 5, segment_size: 64 << 10 },
    happy: 4,
    random_key: false,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_on_one_get_on_another_and_survive_n_minus_k_failures() {
    let mut g = grid(5).await;
    for size in [0usize, 40, 56, 64 << 10, (64 << 10) * 3 + 17] {
        let f = file(size);
        let cap = g.clients[0].put(f.path(), OPTS).await.unwrap();
        let expected = std::fs::read(f.path()).unwrap();
        match &cap {
            Cap::Literal(d) => assert_eq!(d, &expected, "tiny files live in the capability"),
            Cap::Read(r) => {
                let mut out = Vec::new();
                g.clients[3].get(r, &mut out).await.unwrap();
                assert_eq!(out, expected, "size {size}");
            }
            Cap::Verify(_) | Cap::Mutable(_) => unreachable!(),
        }
        // Convergence: the same file from the same node gives the same capability.
        assert_eq!(g.clients[0].put(f.path(), OPTS).await.unwrap(), cap);
    }
    let f = file(300_000);
    let Cap::Read(cap) = g.clients[0].put(f.path(), OPTS).await.unwrap() else { panic!() };
    // Crash n−k = 2 servers other than the reader: still readable once the
    // overlay has noticed (before that, a dead holder costs a timeout).
    for _ in 0..2 {
        g.net.nodes.remove(1).crash().await;
        g.clients.remove(1);
    }
    wait_until(&g.net.nodes[2].handle, "crashes detected", |s| {
        s.providers(Some("storage")).len() == 3
    })
    .await
    .unwrap();
    let mut out = Vec::new();
    g.clients[2].get(&cap, &mut out).await.unwrap();
    assert_eq!(out, std::fs::read(f.path()).unwrap());
    // One more: k shares are no longer reachable, and the error says so.
    g.net.nodes.remove(1).crash().await;
    g.clients.remove(1);
    wait_until(&g.net.nodes[1].handle, "crash detected", |s| {
        s.providers(Some("storage")).len() == 2
    })
    .await
    .unwrap();
    let mut out = Vec::new();
    let err = g.clients[1].get(&cap, &mut out).await.unwrap_err();
    assert!(matches!(err, GetError::NotEnoughShares { k: 3, found: 2, .. }), "{err}");
    assert!(err.to_string().contains("need 3, found 2"), "{err}");
    assert!(out.is_empty(), "no partial output");
    g.cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_finds_corruption_and_repair_restores_full_health() {
    let mut g = grid(7).await;
    let f = file(200_000);
    let Cap::Read(cap) = g.clients[0].put(f.path(), OPTS).await.unwrap() else { panic!() };
    let vcap = cap.verify_cap();
    let report = g.clients[0].check(&vcap, false).await.unwrap();
    assert!(report.healthy(), "{report:?}");
    let index_of =
        |peer| g.net.nodes.iter().position(|n| n.handle.local_peer_id() == peer).unwrap();
    // Rot one copy on disk, and crash the holder of another share.
    let (rot_share, rot_peer) =
        report.good.iter().map(|(s, p)| (*s, p[0])).find(|(_, p)| index_of(*p) != 0).unwrap();
    g.stores[index_of(rot_peer)].corrupt(&vcap.storage_index, rot_share, 5);
    let report = g.clients[0].check(&vcap, true).await.unwrap();
    assert_eq!(report.corrupt.len(), 1, "{report:?}");
    assert_eq!(report.corrupt[0].0, rot_share);
    assert_eq!(report.good_shares(), 4);
    let (dead_share, dead_peer) = report
        .good
        .iter()
        .map(|(s, p)| (*s, p[0]))
        .find(|(_, p)| ![0, index_of(rot_peer)].contains(&index_of(*p)))
        .unwrap();
    let dead = index_of(dead_peer);
    g.net.nodes.remove(dead).crash().await;
    g.clients.remove(dead);
    g.stores.remove(dead);
    wait_until(&g.net.nodes[0].handle, "crash detected", |s| {
        s.providers(Some("storage")).len() == 6
    })
    .await
    .unwrap();
    let repaired = g.clients[0].repair(&vcap).await.unwrap();
    let mut fixed: Vec<u8> = repaired.placed.iter().map(|(s, _)| *s).collect();
    fixed.sort();
    let mut expected = vec![rot_share, dead_share];
    expected.sort();
    assert_eq!(fixed, expected, "{repaired:?}");
    let after = g.clients[0].check(&vcap, true).await.unwrap();
    assert!(after.healthy(), "{after:?}");
    // And the file still reads back, from another node.
    let mut out = Vec::new();
    g.clients[2].get(&cap, &mut out).await.unwrap();
    assert_eq!(out, std::fs::read(f.path()).unwrap());
    g.cancel.cancel();
}

/// Flips the byte at `offset` of shares 0 and 1 wherever they are held.
async fn rot_first_two_shares(
    g: &common::Grid,
    vcap: &cloudy_storage::capability::VerifyCap,
    offset: usize,
) {
    let report = g.clients[0].check(vcap, false).await.unwrap();
    for share in [0u8, 1] {
        for peer in &report.good[&share] {
            let i = g.net.nodes.iter().position(|n| n.handle.local_peer_id() == *peer).unwrap();
            g.stores[i].corrupt(&vcap.storage_index, share, offset);
        }
    }
}

/// Puts a file of `size` bytes, rots shares 0 and 1 at `offset`, reads it
/// back on the nodes `readers` from the three good shares, and checks that
/// a verifying check finds the two rotten ones.
async fn reads_around_two_rotten_shares(size: usize, offset: usize, readers: &[usize]) {
    let g = grid(5).await;
    let f = file(size);
    let Cap::Read(cap) = g.clients[0].put(f.path(), OPTS).await.unwrap() else { panic!() };
    let vcap = cap.verify_cap();
    rot_first_two_shares(&g, &vcap, offset).await;
    for &i in readers {
        let mut out = Vec::new();
        g.clients[i].get(&cap, &mut out).await.unwrap();
        assert_eq!(out, std::fs::read(f.path()).unwrap(), "rebuilt from the three good shares");
    }
    let verified = g.clients[4].check(&vcap, true).await.unwrap();
    assert_eq!(verified.corrupt.len(), 2, "{verified:?}");
    g.cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_switches_away_from_corrupt_shares() {
    // Shares are tried in ascending order: rot 0 and 1 so the first picks fail.
    reads_around_two_rotten_shares(300_000, 70_000, &[4]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_file_whose_blocks_come_with_the_answers_skips_corrupt_ones() {
    // One segment: each holder's block comes with its answer to `Find`,
    // and is checked against the hash list before it is used.
    reads_around_two_rotten_shares(3000, 10, &[0, 1, 2, 3, 4]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_that_goes_silent_mid_transfer_is_not_waited_on() {
    let g = grid(5).await;
    let f = file(1_500_000);
    let Cap::Read(cap) = g.clients[0].put(f.path(), OPTS).await.unwrap() else { panic!() };
    let report = g.clients[0].check(&cap.verify_cap(), false).await.unwrap();
    // The holders of shares 0 and 1, tried first, stop answering after
    // the first segments.
    let mut stalled = Vec::new();
    for share in [0u8, 1] {
        for peer in &report.good[&share] {
            let i = g.net.nodes.iter().position(|n| n.handle.local_peer_id() == *peer).unwrap();
            if i != 4 {
                g.stores[i].stall_from(3);
                stalled.push(i);
            }
        }
    }
    assert!(!stalled.is_empty());
    // The download switches to other shares after a silence of a few round
    // trips (at least 2 s here), well before the 10 s call timeout that a
    // silent holder used to cost each time.
    let mut out = Vec::new();
    let got = tokio::time::timeout(
        cloudy_storage::client::CALL_TIMEOUT,
        g.clients[4].get(&cap, &mut out),
    )
    .await;
    for i in &stalled {
        g.stores[*i].unstall();
    }
    got.expect("the download waited on a silent holder for the whole call timeout").unwrap();
    assert_eq!(out, std::fs::read(f.path()).unwrap());
    g.cancel.cancel();
}

/// A share whose session ends under the read (its holder restarted) is
/// read again over a new session when no other share is left: the churn
/// benchmark lost a read that way when three of five holders restarted at
/// once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_share_whose_session_ends_mid_read_is_read_again_when_no_other_is_left() {
    let g = grid(3).await;
    let opts = PutOptions {
        params: Params { k: 2, n: 2, segment_size: 64 << 10 },
        happy: 2,
        random_key: false,
    };
    let f = file((64 << 10) * 4 + 5);
    let Cap::Read(cap) = g.clients[0].put(f.path(), opts).await.unwrap() else { panic!() };
    let report = g.clients[0].check(&cap.verify_cap(), false).await.unwrap();
    // A holder other than the reader (node 2) ends the session at segment 2.
    let holder = report
        .good
        .values()
        .flatten()
        .map(|p| g.net.nodes.iter().position(|n| n.handle.local_peer_id() == *p).unwrap())
        .find(|i| *i != 2)
        .unwrap();
    g.stores[holder].break_once_at(2);
    let mut out = Vec::new();
    g.clients[2].get(&cap, &mut out).await.unwrap();
    assert_eq!(out, std::fs::read(f.path()).unwrap());
    g.cancel.cancel();
}

/// A writer that stops taking bytes for a while once, as a video player
/// that pauses.
struct Pausing {
    out: Vec<u8>,
    pause: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
    after: usize,
}

impl tokio::io::AsyncWrite for Pausing {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        if self.out.len() >= self.after {
            if let Some(p) = self.pause.as_mut() {
                std::task::ready!(std::future::Future::poll(p.as_mut(), cx));
                self.pause = None;
            }
        }
        self.out.extend_from_slice(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_pauses_does_not_make_the_holders_look_silent() {
    let g = grid(5).await;
    let f = file(2_000_000);
    let Cap::Read(cap) = g.clients[0].put(f.path(), OPTS).await.unwrap() else { panic!() };
    // The player stops reading for longer than the shortest tolerated
    // silence; the holders kept answering, so none may be dropped.
    let pause = Box::pin(tokio::time::sleep(std::time::Duration::from_secs(3)));
    let mut out = Pausing { out: Vec::new(), pause: Some(pause), after: 1_450_000 };
    g.clients[4].get(&cap, &mut out).await.unwrap();
    assert_eq!(out.out, std::fs::read(f.path()).unwrap());
    g.cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capability_with_a_changed_hash_or_size_says_so_first() {
    let g = grid(5).await;
    let f = file(100_000);
    let Cap::Read(cap) = g.clients[0].put(f.path(), OPTS).await.unwrap() else { panic!() };
    let mut wrong_size = cap.clone();
    wrong_size.size += 1;
    let mut wrong_root = cap.clone();
    wrong_root.root[0] ^= 1;
    for bad in [wrong_size, wrong_root] {
        let err = g.clients[1].get(&bad, &mut Vec::new()).await.unwrap_err();
        assert!(matches!(err, GetError::CapMismatch { shares: 5 }), "{err}");
        assert!(err.to_string().starts_with("the capability does not match the stored file"));
    }
    g.cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upkeep_repairs_after_a_holder_is_killed() {
    use cloudy_storage::upkeep::{self, Health, Maintained, UpkeepConfig};
    let mut g = grid(6).await;
    let f = file(200_000);
    let Cap::Read(cap) = g.clients[0].put(f.path(), OPTS).await.unwrap() else { panic!() };
    let vcap = cap.verify_cap();
    // Node 0 maintains the file; failures are acted on after 200 ms, and
    // no periodic pass runs during the test.
    let ms = std::time::Duration::from_millis;
    let cfg = UpkeepConfig {
        interval: ms(3_600_000),
        after_failure: ms(200),
        tolerance: 0,
        first_check: ms(100),
    };
    let up = upkeep::start(
        g.clients[0].clone(),
        Arc::new(Maintained::in_memory()),
        cfg,
        &Tasks::new("test", g.cancel.clone()),
    );
    assert!(up.add(&vcap).unwrap());
    let wait_status = |want: Health| {
        let up = up.clone();
        async move {
            for _ in 0..300 {
                let e = up.list().all().unwrap().remove(0);
                if e.status == want {
                    return e;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            panic!("status never became {want}: {:?}", up.list().all().unwrap());
        }
    };
    // The new file is checked soon after it is added.
    let first = wait_status(Health::Healthy).await;
    assert_eq!(first.good, Some(5));
    // Kill a holder (not node 0): upkeep notices, checks and repairs.
    let ids: Vec<_> = g.net.nodes.iter().map(|n| n.handle.local_peer_id()).collect();
    let victim = (1..ids.len()).find(|i| first.holders.contains(&ids[*i])).unwrap();
    g.net.nodes.remove(victim).crash().await;
    g.clients.remove(victim);
    let after = wait_status(Health::Repaired).await;
    assert_eq!(after.good, Some(5));
    assert!(!after.holders.contains(&ids[victim]));
    let report = g.clients[0].check(&vcap, true).await.unwrap();
    assert!(report.healthy(), "{report:?}");
    // Every holder, the new ones included, takes a lease renewal.
    let mut renewed = g.clients[0].renew(&vcap, &after.holders).await;
    let mut holders = after.holders.clone();
    renewed.sort();
    holders.sort();
    assert_eq!(renewed, holders);
    g.cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_reads_return_exactly_the_bytes_asked_for() {
    let g = grid(5).await;
    let f = file((64 << 10) * 3 + 17);
    let data = std::fs::read(f.path()).unwrap();
    let Cap::Read(cap) = g.clients[0].put(f.path(), OPTS).await.unwrap() else { panic!() };
    let seg = 64u64 << 10;
    for (a, b) in [
        (0, 1),
        (5, seg),
        (seg - 3, seg + 3),
        (seg, 2 * seg),
        (100, 3 * seg + 17),
        (3 * seg + 16, 3 * seg + 17),
        (7, 7),
    ] {
        let mut out = Vec::new();
        let n = g.clients[2].get_range(&cap, a..b, &mut out).await.unwrap();
        assert_eq!(n, b - a);
        assert_eq!(out, data[a as usize..b as usize], "range {a}..{b}");
    }
    let mut out = Vec::new();
    let err = g.clients[2].get_range(&cap, 10..3 * seg + 18, &mut out).await.unwrap_err();
    assert!(matches!(err, GetError::Range { .. }), "{err}");
    assert!(out.is_empty());
    g.cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_whose_disk_is_full_refuses_and_the_upload_places_elsewhere() {
    use cloudy_storage::store::FsStore;
    let Some(disk) = cloudy_overlay::tmpfs::Tmpfs::mount(2 << 20) else { return };
    let full: SharedStore = Arc::new(FsStore::open(&disk.path().join("shares"), 1 << 30).unwrap());
    let g = grid_with(6, Some(full)).await;
    // The disk fills up after the server announced ~2 MB free.
    disk.fill(4096);
    let full_peer = g.net.nodes[5].handle.local_peer_id();
    let f = file(600_000);
    let opts = PutOptions {
        params: Params { k: 3, n: 6, segment_size: 64 << 10 },
        happy: 5,
        random_key: true,
    };
    let Cap::Read(cap) = g.clients[0].put(f.path(), opts).await.unwrap() else { panic!() };
    let report = g.clients[0].check(&cap.verify_cap(), true).await.unwrap();
    assert!(report.healthy(), "all 6 shares placed: {report:?}");
    assert!(
        report.good.values().flatten().all(|p| *p != full_peer),
        "nothing on the full server: {report:?}"
    );
    let mut out = Vec::new();
    g.clients[5].get(&cap, &mut out).await.unwrap();
    assert_eq!(out, std::fs::read(f.path()).unwrap());
    g.cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shares_are_looked_for_a_placement_window_at_a_time_and_found_beyond_it() {
    use cloudy_storage::placement::{order, window};
    // Ten servers, seven too small for a share: each file goes to the
    // three with room, wherever they sit on its ring.
    let mut sizes = vec![1u64 << 30; 10];
    for s in sizes.iter_mut().take(7) {
        *s = 1000;
    }
    let g = grid_sized(&sizes, None).await;
    let big: Vec<_> = g.net.nodes[7..].iter().map(|n| n.handle.local_peer_id()).collect();
    let opts = PutOptions {
        params: Params { k: 2, n: 3, segment_size: 64 << 10 },
        happy: 3,
        random_key: true,
    };
    let (mut inside, mut beyond) = (0, 0);
    while inside == 0 || beyond == 0 {
        let f = file(100_000);
        let Cap::Read(cap) = g.clients[0].put(f.path(), opts).await.unwrap() else { panic!() };
        let si = cap.verify_cap().storage_index;
        let first: Vec<_> = order(&si, &g.clients[1].servers(), window(3))
            .into_iter()
            .take(window(3))
            .map(|s| s.peer)
            .collect();
        let all_in_first = big.iter().all(|p| first.contains(p));
        let mut out = Vec::new();
        g.clients[1].get(&cap, &mut out).await.unwrap();
        assert_eq!(out, std::fs::read(f.path()).unwrap());
        let report = g.clients[1].check(&cap.verify_cap(), false).await.unwrap();
        assert!(report.healthy(), "{report:?}");
        if all_in_first {
            // A healthy file costs one window of questions, not ten.
            assert_eq!(report.notes.len(), window(3), "{:?}", report.notes);
            inside += 1;
        } else {
            assert_eq!(report.notes.len(), 10, "{:?}", report.notes);
            beyond += 1;
        }
    }
    g.cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_sending_garbage_on_the_storage_protocol_is_cut_off_and_the_node_serves_on() {
    use futures::{AsyncReadExt, AsyncWriteExt};
    let g = grid(5).await;
    let target = g.net.nodes[1].handle.local_peer_id();
    let mut control = g.net.nodes[0].handle.stream_control();
    let proto = cloudy_overlay::StreamProtocol::new(cloudy_storage::protocol::PROTOCOL);
    for garbage in [
        &b"\x00\x00\x00\x05\xffjunk"[..],
        &b"\xff\xff\xff\xffxx"[..],
        &b"\x00\x00\x00\x03\x01\x02\x03"[..],
    ] {
        let mut s = control.open_stream(target, proto.clone()).await.unwrap();
        s.write_all(garbage).await.unwrap();
        s.flush().await.unwrap();
        // The server ends the session: the stream reaches its end (or fails).
        let mut rest = Vec::new();
        let ended =
            tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut rest))
                .await;
        assert!(ended.is_ok(), "the server kept a garbage session open");
    }
    // The node still stores and serves.
    let f = file(150_000);
    let Cap::Read(cap) = g.clients[1].put(f.path(), OPTS).await.unwrap() else { panic!() };
    let mut out = Vec::new();
    g.clients[0].get(&cap, &mut out).await.unwrap();
    assert_eq!(out, std::fs::read(f.path()).unwrap());
    g.cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_flooding_a_server_with_streams_is_cut_off_and_others_still_put_and_get() {
    let g = grid(4).await;
    let victim = g.net.nodes[1].handle.local_peer_id();
    let flooder = g.net.nodes[3].handle.local_peer_id();
    // Node 3 opens thousands of storage sessions on node 1: it holds the
    // first hundred (more than its share) and opens and drops the rest.
    let mut control = g.net.nodes[3].handle.stream_control();
    let mut held = Vec::new();
    let proto = cloudy_overlay::StreamProtocol::new(cloudy_storage::protocol::PROTOCOL);
    for i in 0..2000 {
        match control.open_stream(victim, proto.clone()).await {
            Ok(s) if i < 100 => held.push(s),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    // Node 1 disconnects it and lowers its score.
    wait_until(&g.net.nodes[1].handle, "the flooder cut off", |s| {
        s.peers.get(&flooder).is_some_and(|v| !v.connected && v.failures > 0.0)
    })
    .await
    .unwrap();
    drop(held);
    // The others still put and get through node 1.
    let f = file(300_000);
    let opts = PutOptions { happy: 3, ..OPTS };
    let Cap::Read(cap) = g.clients[0].put(f.path(), opts).await.unwrap() else { panic!() };
    let mut out = Vec::new();
    g.clients[2].get(&cap, &mut out).await.unwrap();
    assert_eq!(out, std::fs::read(f.path()).unwrap());
    let held_on_victim = g.stores[1].usage().unwrap();
    assert!(!held_on_victim.is_empty(), "node 1 took part in the put");
    g.cancel.cancel();
}

/// A stream that reads `prefix` first, then `r`, and writes to `w`: a
/// session whose first frame was already read, handed to the server.
struct Replayed<R, W> {
    r: futures::io::Chain<futures::io::Cursor<Vec<u8>>, R>,
    w: W,
}

impl<R: futures::AsyncRead + Unpin, W: Unpin> futures::AsyncRead for Replayed<R, W> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.r).poll_read(cx, buf)
    }
}

impl<R: Unpin, W: futures::AsyncWrite + Unpin> futures::AsyncWrite for Replayed<R, W> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.w).poll_write(cx, buf)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.w).poll_flush(cx)
    }
    fn poll_close(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.w).poll_close(cx)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_from_before_find_is_asked_with_list_and_its_shares_are_read() {
    use cloudy_storage::protocol::{read_frame, Request, PROTOCOL};
    use futures::{AsyncReadExt, StreamExt};
    // Three servers, all holding a share of a 2-of-3 file; the last is an
    // older version that does not know `Find` and closes the session, as
    // it does on any request it cannot decode.
    let net = cloudy_overlay::testing::TestNet::start(3, cloudy_overlay::testing::fast_config())
        .await
        .unwrap();
    net.wait_all_alive().await.unwrap();
    let cancel = tokio_util::sync::CancellationToken::new();
    let tasks = Tasks::new("test", cancel.clone());
    let mut clients = Vec::new();
    for node in &net.nodes[..2] {
        let store: SharedStore = Arc::new(cloudy_storage::store::MemStore::new(1 << 30));
        cloudy_storage::service::start(
            node.handle.clone(),
            store.clone(),
            Default::default(),
            &tasks,
        )
        .await
        .unwrap();
        clients.push(cloudy_storage::client::Client::new(
            node.handle.clone(),
            Some(store),
            [1; 32],
        ));
    }
    let old = &net.nodes[2].handle;
    let old_store: SharedStore = Arc::new(cloudy_storage::store::MemStore::new(1 << 30));
    let mut incoming =
        old.stream_control().accept(cloudy_overlay::StreamProtocol::new(PROTOCOL)).unwrap();
    old.announce("storage", [("free".to_string(), (1u64 << 30).to_string())].into()).await.unwrap();
    let finds = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (served, seen) = (old_store.clone(), finds.clone());
    tokio::spawn(async move {
        while let Some((peer, mut stream)) = incoming.next().await {
            let (store, seen) = (served.clone(), seen.clone());
            tokio::spawn(async move {
                let Ok(Some(frame)) = read_frame(&mut stream).await else { return };
                if matches!(Request::decode(&frame), Ok(Request::Find { .. })) {
                    seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    return; // "unknown request tag": the session ends
                }
                let mut prefix = (frame.len() as u32).to_be_bytes().to_vec();
                prefix.extend(frame);
                let (r, w) = stream.split();
                let mut s = Replayed { r: futures::io::Cursor::new(prefix).chain(r), w };
                let _ = cloudy_storage::server::serve(store, &peer.to_string(), &mut s, None, None)
                    .await;
            });
        }
    });
    for node in &net.nodes {
        wait_until(&node.handle, "three storage servers", |s| {
            s.providers(Some("storage")).len() == 3
        })
        .await
        .unwrap();
    }
    let opts = PutOptions {
        params: Params { k: 2, n: 3, segment_size: 64 << 10 },
        happy: 3,
        random_key: true,
    };
    let f = file(200_000);
    let Cap::Read(cap) = clients[0].put(f.path(), opts).await.unwrap() else { panic!() };
    let si = cap.verify_cap().storage_index;
    assert_eq!(old_store.list(&si).unwrap().len(), 1, "the older server holds a share");
    // Node 1 reads with the older server's share among the two it needs:
    // its own share is one, so the other must come from node 0 or node 2;
    // node 0's store loses its share.
    let held = clients[0].local_store().unwrap().list(&si).unwrap();
    for share in held {
        clients[0].local_store().unwrap().remove(&si, share).unwrap();
    }
    let mut out = Vec::new();
    clients[1].get(&cap, &mut out).await.unwrap();
    assert_eq!(out, std::fs::read(f.path()).unwrap());
    assert!(finds.load(std::sync::atomic::Ordering::Relaxed) > 0, "Find was tried first");
    cancel.cancel();
}
