//! A grid of five in-process nodes on QUIC at 127.0.0.1: put on one node,
//! get on another, survive n−k failures, fail clearly past that.

use cloudy_overlay::testing::{fast_config, wait_until, TestNet};
use cloudy_storage::capability::Cap;
use cloudy_storage::client::{Client, GetError, PutOptions};
use cloudy_storage::coding::Params;
use cloudy_storage::server::SharedStore;
use cloudy_storage::store::MemStore;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

struct Grid {
    net: TestNet,
    clients: Vec<Client>,
    cancel: CancellationToken,
}

async fn grid(n: usize) -> Grid {
    let net = TestNet::start(n, fast_config()).await.unwrap();
    net.wait_all_alive().await.unwrap();
    let cancel = CancellationToken::new();
    let mut clients = Vec::new();
    for node in &net.nodes {
        let store: SharedStore = Arc::new(MemStore::new(1 << 30));
        cloudy_storage::service::start(node.handle.clone(), store.clone(), 1 << 30, cancel.clone()).await.unwrap();
        clients.push(Client::new(node.handle.clone(), Some(store), [1; 32]));
    }
    for node in &net.nodes {
        wait_until(&node.handle, "all storage servers", |s| s.providers(Some("storage")).len() == n).await.unwrap();
    }
    Grid { net, clients, cancel }
}

fn file(size: usize) -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().unwrap();
    let data: Vec<u8> = (0..size).map(|i| (i.wrapping_mul(2654435761) >> 7) as u8).collect();
    std::fs::write(f.path(), data).unwrap();
    f
}

const OPTS: PutOptions = PutOptions { params: Params { k: 3, n: 5, segment_size: 64 << 10 }, happy: 4, random_key: false };

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
            Cap::Verify(_) => unreachable!(),
        }
        // Convergence: the same file from the same node gives the same capability.
        assert_eq!(g.clients[0].put(f.path(), OPTS).await.unwrap(), cap);
    }
    let f = file(300_000);
    let Cap::Read(cap) = g.clients[0].put(f.path(), OPTS).await.unwrap() else { panic!() };
    // Crash n−k = 2 servers other than the reader: still readable once the
    // overlay has noticed (before that, a dead holder costs a timeout).
    for _ in 0..2 {
        g.net.nodes.remove(1).crash();
        g.clients.remove(1);
    }
    wait_until(&g.net.nodes[2].handle, "crashes detected", |s| s.providers(Some("storage")).len() == 3).await.unwrap();
    let mut out = Vec::new();
    g.clients[2].get(&cap, &mut out).await.unwrap();
    assert_eq!(out, std::fs::read(f.path()).unwrap());
    // One more: k shares are no longer reachable, and the error says so.
    g.net.nodes.remove(1).crash();
    g.clients.remove(1);
    wait_until(&g.net.nodes[1].handle, "crash detected", |s| s.providers(Some("storage")).len() == 2).await.unwrap();
    let mut out = Vec::new();
    let err = g.clients[1].get(&cap, &mut out).await.unwrap_err();
    assert!(matches!(err, GetError::NotEnoughShares { k: 3, found: 2, .. }), "{err}");
    assert!(err.to_string().contains("need 3, found 2"), "{err}");
    assert!(out.is_empty(), "no partial output");
    g.cancel.cancel();
}
