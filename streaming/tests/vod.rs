//! Video on demand between in-process nodes on QUIC: a provider that
//! serves forged pieces is caught, and nothing forged reaches the reader.
#![allow(clippy::unwrap_used)] // test and benchmark code: a failed unwrap is a failed run

use cloudy_overlay::tasks::Tasks;
use cloudy_overlay::testing::{fast_config, TestNet};
use cloudy_overlay::StreamProtocol;
use cloudy_streaming::vod::manifest::Manifest;
use cloudy_streaming::vod::protocol::{recv, send, Req, Resp, PROTOCOL};
use cloudy_streaming::vod::service::{Vod, VodError};
use futures::{AsyncWriteExt, StreamExt};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_pieces_are_rejected_and_an_honest_provider_is_used() {
    let net = TestNet::start(3, fast_config()).await.unwrap();
    net.wait_all_alive().await.unwrap();
    let cancel = CancellationToken::new();
    let dir = tempfile::tempdir().unwrap();
    let film: Vec<u8> = (0..700_000u32).map(|i| (i % 241) as u8).collect();
    let src = dir.path().join("film");
    std::fs::write(&src, &film).unwrap();
    let m = Manifest::build(&film[..]).unwrap();
    let id = m.id();

    // Node 0 is a rogue provider: the true manifest, forged pieces.
    let forged = Arc::new(AtomicU64::new(0));
    let mut incoming =
        net.nodes[0].handle.stream_control().accept(StreamProtocol::new(PROTOCOL)).unwrap();
    let (count, manifest) = (forged.clone(), m.encode());
    tokio::spawn(async move {
        while let Some((_, mut s)) = incoming.next().await {
            let resp = match recv::<_, Req>(&mut s).await {
                Ok(Some(Req::Manifest(_))) => Resp::Manifest(manifest.clone()),
                Ok(Some(Req::Have(_))) => Resp::Have(vec![1; 3]),
                Ok(Some(Req::Piece(..))) => {
                    count.fetch_add(1, Ordering::Relaxed);
                    Resp::Piece(b"FORGED".repeat(1000))
                }
                _ => continue,
            };
            let _ = send(&mut s, &resp).await;
            let _ = s.close().await;
        }
    });
    net.nodes[0].handle.start_providing(id.dht_key()).await.unwrap();

    let viewer = Vod::start(
        net.nodes[1].handle.clone(),
        &dir.path().join("v1"),
        64 << 20,
        &Tasks::new("test", cancel.clone()),
    )
    .await
    .unwrap();
    let m = viewer.manifest(&id).await.unwrap();
    let first: Vec<Result<Vec<u8>, VodError>> = viewer.read(m.clone(), 0..1000).collect().await;
    assert!(forged.load(Ordering::Relaxed) >= 1, "the rogue was asked");
    match &first[..] {
        [Err(e @ VodError::Unavailable { piece: 0, .. })] => {
            assert!(e.to_string().contains("corrupt or forged"), "{e}")
        }
        other => panic!("expected piece 0 unavailable, got {other:?}"),
    }

    // An honest provider appears: the reader gets the film, exactly.
    let honest = Vod::start(
        net.nodes[2].handle.clone(),
        &dir.path().join("v2"),
        64 << 20,
        &Tasks::new("test", cancel.clone()),
    )
    .await
    .unwrap();
    assert_eq!(honest.publish(&src).await.unwrap().id(), id);
    let mut got = Vec::new();
    let mut bytes = viewer.read(m, 0..film.len() as u64);
    while let Some(piece) = bytes.next().await {
        got.extend(piece.unwrap());
    }
    assert!(got == film, "byte-identical, nothing forged");
    assert_eq!(viewer.stats().fetched, film.len() as u64);
    cancel.cancel();
}
