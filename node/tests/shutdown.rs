//! A node started in this process, with each of its services put to work,
//! stops in order and leaves no task running.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed run

use cloudy_node::control::api::AddFolder;
use cloudy_node::control::client::Client;
use cloudy_node::{Home, Node};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_task_of_every_service_ends_at_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::new(dir.path().join("home"));
    cloudy_node::process::init_local_home(&home, Vec::new()).unwrap();
    let node = Node::start(&home).await.unwrap();
    let client = Client::for_home(&home).unwrap();

    // Storage: a file stored on this node alone, then read back through
    // the gateway (a download task of the API).
    let data = vec![7u8; 300_000];
    let stored = client
        .put(std::io::Cursor::new(data.clone()), Some(data.len() as u64), "k=1&n=1&happy=1")
        .await
        .unwrap();
    let mut back = Vec::new();
    client.get_file(&stored.cap, &mut back).await.unwrap();
    assert_eq!(back, data);
    client.run_upkeep().await.unwrap();
    // Sync: a folder with a file in it (scanner and subscriptions).
    let folder = dir.path().join("shared");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("a.txt"), b"hello").unwrap();
    let req = AddFolder { path: folder.display().to_string(), name: None, members: Vec::new() };
    client.add_folder(&req).await.unwrap();
    // Streaming: a live channel waiting for its input.
    client.create_channel("news").await.unwrap();

    let running = node.running();
    assert!(running.iter().all(|(_, n)| *n > 0), "each phase runs tasks: {running:?}");
    let left = node.shutdown().await;
    assert!(left.is_empty(), "tasks outlived the shutdown: {left:?}");
    assert!(!home.api_addr_path().exists(), "api.addr is removed");
}
