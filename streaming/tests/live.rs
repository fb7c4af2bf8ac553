//! Live channels between in-process nodes on QUIC at 127.0.0.1: what the
//! publisher sends is what every viewer plays, a forged chunk goes nowhere,
//! and the end of the input ends the channel everywhere.
#![allow(clippy::unwrap_used)] // test and benchmark code: a failed unwrap is a failed run

use cloudy_overlay::tasks::Tasks;
use cloudy_overlay::testing::{fast_config, wait_until, TestNet};
use cloudy_overlay::StreamProtocol;
use cloudy_streaming::chunk::{Channel, Chunk, KEY};
use cloudy_streaming::live::state::{Params, Phase};
use cloudy_streaming::playout::Out;
use cloudy_streaming::protocol::{recv, send, Msg, PROTOCOL};
use cloudy_streaming::service::{Player, StreamError, Streaming};
use cloudy_streaming::window::BufferMap;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

const RATE: usize = 128 * 1024; // 1 Mbit/s

async fn services(
    n: usize,
) -> (TestNet, Vec<Streaming>, Vec<tempfile::TempDir>, CancellationToken) {
    let net = TestNet::start(n, fast_config()).await.unwrap();
    net.wait_all_alive().await.unwrap();
    let cancel = CancellationToken::new();
    let dirs: Vec<tempfile::TempDir> = (0..n).map(|_| tempfile::tempdir().unwrap()).collect();
    let svcs = net
        .nodes
        .iter()
        .zip(&dirs)
        .map(|(node, d)| {
            Streaming::start(
                node.handle.clone(),
                d.path(),
                Params::default(),
                &Tasks::new("test", cancel.clone()),
            )
            .unwrap()
        })
        .collect();
    (net, svcs, dirs, cancel)
}

/// Everything a player gets until the end (60 s at most).
async fn drain(mut p: Player) -> (Vec<u8>, Phase) {
    let mut got = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(o) = p.rx.recv().await {
            match o {
                Out::Bytes(b) => got.extend(b),
                Out::End => return true,
            }
        }
        false
    })
    .await;
    assert_eq!(ended, Ok(true), "the player saw the end");
    (got, p.state())
}

/// Writes `data` into the channel at `RATE`, then ends the input.
async fn paced(mut w: tokio::io::DuplexStream, data: Vec<u8>) {
    for piece in data.chunks(RATE / 10) {
        w.write_all(piece).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_play_exactly_what_the_publisher_sent_and_see_the_end() {
    let (net, svcs, _dirs, cancel) = services(4).await;
    let created = svcs[0].create("test-channel").unwrap();
    // The directory shows the channel everywhere.
    for node in &net.nodes[1..] {
        wait_until(&node.handle, "the channel announced", |s| {
            !s.providers(Some(&format!("stream/{}", created.id))).is_empty()
        })
        .await
        .unwrap();
    }
    assert!(matches!(svcs[1].watch("no-such-channel").await, Err(StreamError::Unknown(_))));
    assert!(matches!(svcs[1].watch("12D3KooWnotachannel").await, Err(StreamError::BadChannel(_))));
    // Opaque bytes (not MPEG-TS), 6 s of them: long enough that the
    // start, when every viewer pulls from the publisher before its
    // neighbours have anything, does not decide the publisher's upload
    // (with 4 s, one loaded CI run saw 2.06× against the 2× bound).
    let source: Vec<u8> = (0..6 * RATE).map(|i| (i * 7 % 253) as u8).collect();
    let players: Vec<Player> =
        futures::future::join_all(svcs[1..].iter().map(|s| s.watch("test-channel")))
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
    let rows = svcs[0].list();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].name.as_str(), rows[0].publisher.clone()),
        ("test-channel", net.nodes[0].handle.local_peer_id().to_string())
    );
    let (w, r) = tokio::io::duplex(64 * 1024);
    let feeder = tokio::spawn(paced(w, source.clone()));
    let drains = futures::future::join_all(players.into_iter().map(drain));
    let (summary, outs) = tokio::join!(svcs[0].feed(&created.id, r), drains);
    feeder.await.unwrap();
    let summary = summary.unwrap();
    assert_eq!(summary.bytes, source.len() as u64);
    assert!(!summary.mpeg_ts && summary.error.is_none());
    for (i, (got, state)) in outs.iter().enumerate() {
        assert!(
            got.len() >= source.len() * 3 / 4,
            "viewer {i} got {} of {} bytes",
            got.len(),
            source.len()
        );
        assert!(source.ends_with(got), "viewer {i} played the source exactly from its first chunk");
        assert_eq!(*state, Phase::Ended);
    }
    // The mesh carries part of the stream: viewers relay to each other,
    // and the publisher sends less than serving every viewer itself
    // would. How large a share the mesh takes depends on how loaded the
    // machine is (a loaded CI run saw the publisher at 2.08×), so the 2×
    // bound is checked in the seeded simulation (`live::sim_tests`) and
    // measured by the stream benchmark, not here.
    let up = svcs[0].status(&created.id).unwrap().stats.bytes_up;
    let relayed: u64 =
        svcs[1..].iter().map(|s| s.status(&created.id).unwrap().stats.bytes_up).sum();
    let unicast = (svcs.len() - 1) * source.len();
    assert!(relayed > 0, "no viewer relayed anything (publisher sent {up})");
    assert!((up as usize) < unicast, "publisher sent {up}, as much as {unicast} by unicast");
    // Publishing the same name again keeps the id.
    tokio::time::timeout(Duration::from_secs(20), async {
        while svcs[0].status(&created.id).is_some_and(|s| s.stopped_ms.is_none()) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .unwrap();
    assert_eq!(svcs[0].create("test-channel").unwrap().id, created.id);
    assert!(matches!(svcs[0].create("bad name!"), Err(StreamError::BadName(_))));
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_chunk_is_rejected_and_never_played() {
    let (net, svcs, _dirs, cancel) = services(3).await;
    let created = svcs[0].create("real").unwrap();
    for node in &net.nodes[1..] {
        wait_until(&node.handle, "the channel announced", |s| {
            !s.providers(Some(&format!("stream/{}", created.id))).is_empty()
        })
        .await
        .unwrap();
    }
    let player = svcs[1].watch(&created.id).await.unwrap();
    let (w, r) = tokio::io::duplex(64 * 1024);
    let source: Vec<u8> = vec![b'a'; 4 * RATE];
    let feeder = tokio::spawn(paced(w, source.clone()));
    let publish = svcs[0].feed(&created.id, r);
    // The rogue (node 2, not watching) claims to hold chunks far ahead and
    // answers with chunks signed by another key.
    let rogue = async {
        tokio::time::sleep(Duration::from_millis(800)).await;
        let viewer = net.nodes[1].handle.local_peer_id();
        let mut s = net.nodes[2]
            .handle
            .stream_control()
            .open_stream(viewer, StreamProtocol::new(PROTOCOL))
            .await
            .unwrap();
        send(&mut s, &Msg::Hello { channel: created.id.clone() }).await.unwrap();
        assert_eq!(recv(&mut s).await.unwrap(), Some(Msg::Welcome));
        let now = cloudy_streaming::live::task::unix_ms();
        let fake = Channel::generate();
        let map = BufferMap { newest: now + 5, bits: u64::MAX, keys: u64::MAX, load: 0 };
        send(&mut s, &Msg::Have(map)).await.unwrap();
        let mut forged_sent = 0;
        while let Ok(Some(m)) = recv(&mut s).await {
            if let Msg::Want(seqs) = m {
                for seq in seqs {
                    let c: Chunk = fake.sign(seq, now, KEY, b"FORGED".repeat(100));
                    if cloudy_streaming::protocol::send(&mut s, &Msg::Chunk(c)).await.is_err() {
                        return forged_sent;
                    }
                    forged_sent += 1;
                }
            }
        }
        forged_sent
    };
    let (summary, (got, state), forged) = tokio::join!(publish, drain(player), rogue);
    feeder.await.unwrap();
    assert!(summary.is_ok());
    assert!(forged >= 1, "the viewer asked the rogue for something");
    assert!(!got.windows(6).any(|w| w == b"FORGED"), "no forged byte was played");
    assert!(got.len() >= source.len() / 2 && source.ends_with(&got));
    assert_eq!(state, Phase::Ended);
    cancel.cancel();
}
