//! The in-process grid the storage tests share: nodes on QUIC at
//! 127.0.0.1, each serving a store.
#![allow(dead_code, unreachable_pub)] // each test file uses part of it

use cloudy_overlay::tasks::Tasks;
use cloudy_overlay::testing::{fast_config, wait_until, TestNet};
use cloudy_storage::client::Client;
use cloudy_storage::server::SharedStore;
use cloudy_storage::store::MemStore;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

pub struct Grid {
    pub net: TestNet,
    pub clients: Vec<Client>,
    pub stores: Vec<MemStore>,
    pub cancel: CancellationToken,
}

pub async fn grid(n: usize) -> Grid {
    grid_with(n, None).await
}

/// A grid whose last node serves `last` (when given) instead of a MemStore.
pub async fn grid_with(n: usize, last: Option<SharedStore>) -> Grid {
    grid_sized(&vec![1 << 30; n], last).await
}

/// A grid of one node per capacity, each serving a MemStore of that many
/// bytes, but the last, which serves `last` when given.
pub async fn grid_sized(capacities: &[u64], mut last: Option<SharedStore>) -> Grid {
    let n = capacities.len();
    let net = TestNet::start(n, fast_config()).await.unwrap();
    net.wait_all_alive().await.unwrap();
    let cancel = CancellationToken::new();
    let mut clients = Vec::new();
    let mut stores = Vec::new();
    for (i, node) in net.nodes.iter().enumerate() {
        let store: SharedStore = match last.take_if(|_| i == n - 1) {
            Some(store) => store,
            None => {
                let mem = MemStore::new(capacities[i]);
                stores.push(mem.clone());
                Arc::new(mem)
            }
        };
        cloudy_storage::service::start(
            node.handle.clone(),
            store.clone(),
            Default::default(),
            &Tasks::new("test", cancel.clone()),
        )
        .await
        .unwrap();
        clients.push(Client::new(node.handle.clone(), Some(store), [1; 32]));
    }
    for node in &net.nodes {
        wait_until(&node.handle, "all storage servers", |s| {
            s.providers(Some("storage")).len() == n
        })
        .await
        .unwrap();
    }
    Grid { net, clients, stores, cancel }
}

pub fn file(size: usize) -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().unwrap();
    let data: Vec<u8> = (0..size).map(|i| (i.wrapping_mul(2654435761) >> 7) as u8).collect();
    std::fs::write(f.path(), data).unwrap();
    f
}
