use super::*;
use crate::capability::ReadCap;
use crate::coding::{Decoder, Params};
use crate::protocol::read_frame;
use crate::store::LEASE_SECS;
use crate::store::{share_len, MemStore};
use cloudy_overlay::limits::OverRate;
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};

type Pipe = Compat<tokio::io::DuplexStream>;

fn session(store: SharedStore) -> (Pipe, tokio::task::JoinHandle<Result<(), ProtocolError>>) {
    session_of(store, "peer-a")
}

fn session_of(
    store: SharedStore,
    owner: &'static str,
) -> (Pipe, tokio::task::JoinHandle<Result<(), ProtocolError>>) {
    session_with(store, owner, None)
}

fn session_with(
    store: SharedStore,
    owner: &'static str,
    quota: Option<u64>,
) -> (Pipe, tokio::task::JoinHandle<Result<(), ProtocolError>>) {
    let (client, server) = tokio::io::duplex(1 << 20);
    let task = tokio::spawn(async move {
        let mut server = server.compat();
        serve(store, owner, &mut server, quota, None).await
    });
    (client.compat(), task)
}

/// Uploads share `share` of a small file under storage index `si`.
async fn store_share(c: &mut Pipe, si: StorageIndex, share: u8) -> Response {
    let p = Params { k: 2, n: 3, segment_size: 500 };
    let data: Vec<u8> = (0..1234u32).map(|i| i as u8).collect();
    let (record, hashes, segments) = crate::coding::encode_all([4; 32], p, &data);
    let put = Request::Put { si, share, len: share_len(&record) };
    let ready = ask(c, put).await;
    if ready != Response::Ready {
        return ready;
    }
    for seg in &segments {
        write_frame(c, &Request::Block(seg[share as usize].clone()).encode()).await.unwrap();
    }
    let fin = Request::Finish { root: record.encode(), hashes: hashes[share as usize].clone() };
    ask(c, fin).await
}

#[tokio::test]
async fn a_member_past_its_quota_is_refused_and_others_are_not() {
    let store: SharedStore = Arc::new(MemStore::new(1 << 30));
    let (mut a, _ta) = session_with(store.clone(), "peer-a", Some(1200));
    assert_eq!(store_share(&mut a, [1; 16], 0).await, Response::Stored);
    let Response::Usage { bytes, quota } = ask(&mut a, Request::Usage).await else { panic!() };
    assert!(bytes > 0 && bytes <= 1200 && quota == 1200, "{bytes} {quota}");
    // A second share would take peer-a past 1200 bytes.
    let r = store_share(&mut a, [2; 16], 0).await;
    let Response::Error { kind: ErrorKind::Full, message } = r else { panic!("{r:?}") };
    assert!(message.contains("member quota reached") && message.contains("peer-a"), "{message}");
    // The session goes on, and another member still stores.
    assert_eq!(ask(&mut a, Request::List { si: [1; 16] }).await, Response::Shares(vec![0]));
    let (mut b, _tb) = session_with(store.clone(), "peer-b", Some(1200));
    assert_eq!(store_share(&mut b, [3; 16], 1).await, Response::Stored);
    let usage = store.usage().unwrap();
    assert_eq!(usage.len(), 2, "{usage:?}");
}

async fn ask(c: &mut Pipe, r: Request) -> Response {
    write_frame(c, &r.encode()).await.unwrap();
    Response::decode(&read_frame(c).await.unwrap().unwrap()).unwrap()
}

#[tokio::test]
async fn upload_then_download_over_the_protocol() {
    let store: SharedStore = Arc::new(MemStore::new(1 << 30));
    let (mut c, task) = session(store.clone());
    let p = Params { k: 2, n: 3, segment_size: 500 };
    let data: Vec<u8> = (0..1234u32).map(|i| i as u8).collect();
    let (record, hashes, segments) = crate::coding::encode_all([4; 32], p, &data);
    let si = [8; 16];
    for share in [0u8, 2] {
        let put = Request::Put { si, share, len: share_len(&record) };
        assert_eq!(ask(&mut c, put).await, Response::Ready);
        for seg in &segments {
            write_frame(&mut c, &Request::Block(seg[share as usize].clone()).encode())
                .await
                .unwrap();
        }
        let fin = Request::Finish { root: record.encode(), hashes: hashes[share as usize].clone() };
        assert_eq!(ask(&mut c, fin).await, Response::Stored);
    }
    assert_eq!(ask(&mut c, Request::List { si }).await, Response::Shares(vec![0, 2]));

    let cap = ReadCap { key: [4; 32], root: record.hash(), k: 2, n: 3, size: data.len() as u64 };
    let Response::Meta { root, hashes: h0 } = ask(&mut c, Request::Meta { si, share: 0 }).await
    else {
        panic!()
    };
    let mut dec = Decoder::for_read(&cap, &root).unwrap();
    dec.accept_hashes(0, h0).unwrap();
    let Response::Meta { hashes: h2, .. } = ask(&mut c, Request::Meta { si, share: 2 }).await
    else {
        panic!()
    };
    dec.accept_hashes(2, h2.clone()).unwrap();
    // `Find` answers what `List` and `Meta` do, in one round trip.
    let Response::Found { shares, metas } = ask(&mut c, Request::Find { si }).await else {
        panic!()
    };
    assert_eq!(shares, vec![0, 2]);
    assert_eq!(metas.len(), 2);
    assert_eq!((metas[1].share, &metas[1].root, &metas[1].hashes), (2, &root, &h2));
    assert_eq!(metas[1].block, None, "three segments: blocks are asked for");
    let none = ask(&mut c, Request::Find { si: [9; 16] }).await;
    assert_eq!(none, Response::Found { shares: vec![], metas: vec![] });
    // A one-segment file: its block comes with the answer.
    let small = Params { k: 2, n: 3, segment_size: 4096 };
    let (rec, hs, segs) = crate::coding::encode_all([5; 32], small, &data);
    assert_eq!(segs.len(), 1);
    let put = Request::Put { si: [7; 16], share: 1, len: share_len(&rec) };
    assert_eq!(ask(&mut c, put).await, Response::Ready);
    write_frame(&mut c, &Request::Block(segs[0][1].clone()).encode()).await.unwrap();
    let fin = Request::Finish { root: rec.encode(), hashes: hs[1].clone() };
    assert_eq!(ask(&mut c, fin).await, Response::Stored);
    let Response::Found { metas, .. } = ask(&mut c, Request::Find { si: [7; 16] }).await else {
        panic!()
    };
    assert_eq!(metas[0].block.as_ref(), Some(&segs[0][1]));
    let mut out = Vec::new();
    for segment in 0..segments.len() as u64 {
        let mut blocks = Vec::new();
        for share in [0u8, 2] {
            let Response::Block(b) = ask(&mut c, Request::Get { si, share, segment }).await else {
                panic!()
            };
            blocks.push((share as usize, b));
        }
        out.extend(dec.plaintext(segment, blocks).unwrap());
    }
    assert_eq!(out, data);
    let missing = ask(&mut c, Request::Meta { si, share: 1 }).await;
    assert!(matches!(missing, Response::Error { kind: ErrorKind::NotFound, .. }));
    drop(c);
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn full_server_refuses_and_the_session_goes_on() {
    let store: SharedStore = Arc::new(MemStore::new(100));
    let (mut c, _task) = session(store);
    let r = ask(&mut c, Request::Put { si: [1; 16], share: 0, len: 1000 }).await;
    let Response::Error { kind: ErrorKind::Full, message } = r else { panic!("{r:?}") };
    assert!(message.contains("storage full"), "{message}");
    assert_eq!(ask(&mut c, Request::List { si: [1; 16] }).await, Response::Shares(vec![]));
}

#[tokio::test]
async fn garbage_ends_the_session_and_a_broken_upload_stores_nothing() {
    let store: SharedStore = Arc::new(MemStore::new(1 << 20));
    let (mut c, task) = session(store.clone());
    write_frame(&mut c, b"\xffgarbage").await.unwrap();
    let err = task.await.unwrap().unwrap_err().to_string();
    assert!(err.contains("unknown request tag 255"), "{err}");

    let (mut c, task) = session(store.clone());
    assert_eq!(
        ask(&mut c, Request::Put { si: [2; 16], share: 0, len: 5000 }).await,
        Response::Ready
    );
    write_frame(&mut c, &Request::Block(vec![1; 100]).encode()).await.unwrap();
    drop(c); // the uploader dies mid-upload
    assert!(task.await.unwrap().is_err());
    assert!(store.list(&[2; 16]).unwrap().is_empty());
    // The writer is dropped on its blocking-pool thread, just after.
    for _ in 0..500 {
        if store.used() == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(store.used(), 0, "reservation released");
}

#[tokio::test]
async fn uploads_carry_a_lease_that_renew_extends_and_gc_honours() {
    let store: SharedStore = Arc::new(MemStore::new(1 << 30));
    let (mut alice, _t) = session_of(store.clone(), "alice");
    let p = Params { k: 1, n: 2, segment_size: 500 };
    let (record, hashes, segments) = crate::coding::encode_all([5; 32], p, &[7u8; 900]);
    let si = [9; 16];
    assert_eq!(
        ask(&mut alice, Request::Put { si, share: 0, len: share_len(&record) }).await,
        Response::Ready
    );
    for seg in &segments {
        write_frame(&mut alice, &Request::Block(seg[0].clone()).encode()).await.unwrap();
    }
    let fin = Request::Finish { root: record.encode(), hashes: hashes[0].clone() };
    assert_eq!(ask(&mut alice, fin).await, Response::Stored);
    let now = now_secs();
    assert!(store.expired(now).unwrap().is_empty(), "a fresh upload is leased");
    assert_eq!(
        store.expired(now + LEASE_SECS + 5).unwrap(),
        vec![si],
        "the lease lasts LEASE_SECS"
    );
    // Nothing is collected while a lease runs; everything once all ended.
    assert!(collect_garbage(store.as_ref(), now).unwrap().is_empty());
    // Another peer renews: its lease counts too, and GC honours the later one.
    let (mut bob, _t) = session_of(store.clone(), "bob");
    let Response::Renewed { shares: 1, until } = ask(&mut bob, Request::Renew { si }).await else {
        panic!()
    };
    assert!(until >= now + LEASE_SECS);
    let missing = ask(&mut bob, Request::Renew { si: [1; 16] }).await;
    assert!(matches!(missing, Response::Error { kind: ErrorKind::NotFound, .. }), "{missing:?}");
    assert_eq!(collect_garbage(store.as_ref(), until + 1).unwrap(), vec![(si, 0)]);
    assert!(store.list(&si).unwrap().is_empty());
    assert!(store.expired(until + 1).unwrap().is_empty(), "leases go with their shares");
}

#[tokio::test(start_paused = true)]
async fn a_peer_asking_over_its_rate_is_throttled_then_cut_off() {
    let store: SharedStore = Arc::new(MemStore::new(1 << 30));
    let pace = Pace::new(10.0, 5.0);
    let peer = PeerId::random();
    let (client, server) = tokio::io::duplex(1 << 20);
    let (p, s) = (pace.clone(), store.clone());
    let task = tokio::spawn(async move {
        let mut server = server.compat();
        serve(s, "peer-a", &mut server, None, Some((&p, peer))).await
    });
    let mut c = client.compat();
    let start = tokio::time::Instant::now();
    // The burst is answered at once; then one request per 1/rate.
    for _ in 0..5 {
        assert_eq!(ask(&mut c, Request::List { si: [1; 16] }).await, Response::Shares(vec![]));
    }
    assert!(start.elapsed() < std::time::Duration::from_millis(50));
    assert_eq!(ask(&mut c, Request::List { si: [1; 16] }).await, Response::Shares(vec![]));
    assert!(start.elapsed() >= std::time::Duration::from_millis(100), "throttled");
    // Asking on and on: the session ends with the peer named.
    let mut answered = 6;
    while write_frame(&mut c, &Request::List { si: [1; 16] }.encode()).await.is_ok() {
        match read_frame(&mut c).await {
            Ok(Some(_)) => answered += 1,
            _ => break,
        }
    }
    let err = task.await.unwrap().unwrap_err();
    assert!(matches!(err, ProtocolError::OverRate(_)), "{err}");
    assert!(err.to_string().contains(&peer.to_string()), "{err}");
    assert!(answered < 200, "{answered} answered before the cut-off");
    // Another peer is not held up.
    let (mut other, _t) = session(store);
    assert_eq!(ask(&mut other, Request::List { si: [1; 16] }).await, Response::Shares(vec![]));
}

#[tokio::test(start_paused = true)]
async fn a_peer_holding_its_bytes_in_flight_waits_then_its_session_is_closed() {
    use futures::AsyncWriteExt;
    let store: SharedStore = Arc::new(MemStore::new(1 << 30));
    let pace = Pace::new(1000.0, 1000.0).with_bytes(100 << 10);
    let peer = PeerId::random();
    let open = |pace: Pace, peer: PeerId| {
        let (client, server) = tokio::io::duplex(1 << 20);
        let s = store.clone();
        let task = tokio::spawn(async move {
            let mut server = server.compat();
            serve(s, "peer-a", &mut server, None, Some((&pace, peer))).await
        });
        (client.compat(), task)
    };
    // Session 1 announces a 90 KiB frame and sends 10 bytes of it.
    let (mut one, _t1) = open(pace.clone(), peer);
    one.write_all(&(90u32 << 10).to_be_bytes()).await.unwrap();
    one.write_all(&[0u8; 10]).await.unwrap();
    one.flush().await.unwrap();
    // Session 2's 50 KiB frame finds no room, waits, and is closed.
    let (mut two, t2) = open(pace.clone(), peer);
    two.write_all(&(50u32 << 10).to_be_bytes()).await.unwrap();
    two.flush().await.unwrap();
    let err = t2.await.unwrap().unwrap_err();
    assert!(matches!(err, ProtocolError::OverRate(OverRate::Bytes(..))), "{err}");
    assert!(err.to_string().contains("bytes in flight"), "{err}");
    // Another peer has a budget of its own.
    let (mut other, _t3) = open(pace, PeerId::random());
    assert_eq!(ask(&mut other, Request::List { si: [1; 16] }).await, Response::Shares(vec![]));
}
