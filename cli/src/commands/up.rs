//! `up`: run the node in the foreground.

use crate::args::LogFormat;
use anyhow::Result;
use cloudy_node::{Home, Node};
use std::io::{IsTerminal, Write};
use std::time::Duration;
use tracing_subscriber::EnvFilter;

pub(super) async fn run(home: &Home, format: LogFormat) -> Result<()> {
    init_logging(format);
    let node = Node::start(home).await?;
    let addrs = node.listen_addrs(Duration::from_secs(10)).await;
    let listen: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
    // The readiness line scripts and tests wait for.
    println!(
        "ready peer={} api={} listen={}",
        node.overlay.local_peer_id(),
        node.api_addr,
        listen.join(",")
    );
    std::io::stdout().flush()?;
    let stopping = node.stopping();
    tokio::select! {
        r = super::interrupted() => tracing::info!("{}, leaving", r?),
        _ = stopping.cancelled() => tracing::info!("asked to stop, leaving"),
    }
    node.shutdown().await;
    Ok(())
}

fn init_logging(format: LogFormat) {
    // libp2p-kad warns "Failed to trigger bootstrap: No known peers" on
    // every start of a node that is alone so far: the walk it means is one
    // this node never wants (`overlay/src/quiet_kad.rs`), and a new user
    // took it for a fault.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,libp2p=warn,libp2p_kad::behaviour=error"));
    let ansi = std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
