//! `demo`: a small local community of real node processes on 127.0.0.1.

use super::info;
use anyhow::{bail, Context, Result};
use cloudy_node::control::api::Announce;
use cloudy_node::control::client::Client;
use cloudy_node::process::NodeProcess;
use cloudy_node::Home;
use std::path::PathBuf;
use std::time::Duration;

pub(super) async fn run(n: usize, dir: Option<PathBuf>, keep: bool) -> Result<()> {
    if !(2..=50).contains(&n) {
        bail!("--nodes must be between 2 and 50, not {n}");
    }
    let exe = std::env::current_exe().context("finding the cloudy-p2p executable")?;
    // A temporary directory is removed on the way out unless --keep; one
    // the user named is theirs and stays.
    let (dir, temporary) = match dir {
        Some(d) => (d, None),
        None => {
            let t = tempfile::Builder::new()
                .prefix("cloudy-demo-")
                .tempdir()
                .context("making a temporary directory for the demo")?;
            (t.path().to_path_buf(), Some(t))
        }
    };
    println!("starting {n} nodes with homes under {}", dir.display());
    let mut nodes: Vec<NodeProcess> = Vec::new();
    let result = community(&exe, n, &dir, &mut nodes).await;
    if !nodes.is_empty() {
        println!("\nstopping the community");
    }
    for node in &mut nodes {
        if let Ok(c) = Client::for_home(&node.home) {
            let _ = c.shutdown().await;
        }
        node.wait_exit(Duration::from_secs(10)).await;
    }
    match temporary {
        Some(t) if keep => println!("homes kept under {}", t.keep().display()),
        Some(t) => {
            let path = t.path().display().to_string();
            t.close().with_context(|| format!("removing {path}"))?;
            println!("removed {path} (pass --keep to keep the homes)");
        }
        None => println!("homes kept under {}", dir.display()),
    }
    result
}

/// Starts the community, shows it and waits for Ctrl-C; the nodes it
/// started are left in `nodes` for the caller to stop.
async fn community(
    exe: &std::path::Path,
    n: usize,
    dir: &std::path::Path,
    nodes: &mut Vec<NodeProcess>,
) -> Result<()> {
    for i in 1..=n {
        let home = Home::new(dir.join(format!("node{i}")));
        if home.root().exists() {
            bail!("{} already exists; pick another --dir", home.root().display());
        }
        let node = NodeProcess::start_local(exe, &home, nodes.first(), i, None).await?;
        println!("  node{i}: peer {} api {}", node.peer_id, node.api);
        nodes.push(node);
    }
    let first = Client::for_home(&nodes[0].home)?;
    let second = Client::for_home(&nodes[1].home)?;
    let meta = [("port".to_string(), "8080".to_string())].into();
    second.announce(&Announce { name: "demo-web".into(), meta }).await?;
    wait_for_community(&first, n).await?;
    println!("\nnode1 sees:");
    info::status(&first, false).await?;
    println!();
    info::peers(&first, None, false).await?;
    println!();
    info::services(&first, None, false).await?;
    let home1 = nodes[0].home.root().display().to_string();
    let exe = exe.display();
    println!("\nThe community runs until you press Ctrl-C. Try, in another terminal:");
    println!("  {exe} --home {home1} peers");
    println!("  {exe} --home {home1} put /etc/services");
    println!("  {exe} --home {home1} announce my-service --meta url=http://example");
    println!(
        "  kill -9 {}   # node{n}: watch it become failed in `peers`",
        nodes[n - 1].pid().unwrap_or(0)
    );
    super::interrupted().await?;
    Ok(())
}

/// Waits (at most 30 s) until node1 sees every other node alive and the
/// demo service.
async fn wait_for_community(client: &Client, n: usize) -> Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tick.tick().await;
        let alive = client.peers().await?.iter().filter(|p| p.state == "alive").count();
        let web = client.services(Some("demo-web")).await?.len();
        if alive == n - 1 && web == 1 {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("after 30 s node1 sees {alive} of {} other nodes alive", n - 1);
        }
    }
}
