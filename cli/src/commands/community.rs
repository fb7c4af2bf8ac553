//! `community create` and `community status`.

use crate::args::{AdminCommand, CommunityCommand};
use crate::output::{short, table};
use anyhow::{bail, Result};
use cloudy_node::control::api::{AddAdmin, Evict};
use cloudy_node::control::client::Client;
use cloudy_node::Home;

pub(super) async fn run(home: &Home, command: CommunityCommand) -> Result<()> {
    match command {
        CommunityCommand::Create { name, open } => create(home, &name, open).await,
        CommunityCommand::Status { json } => status(&Client::for_home(home)?, json).await,
        CommunityCommand::Admin { command: AdminCommand::Add { peer } } => {
            let client = Client::for_home(home)?;
            let peer = super::peer::resolve(&client, &peer).await?;
            client.add_admin(&AddAdmin { peer: peer.clone() }).await?;
            println!("{peer} is now an admin (it takes its certificate at its next handshake with this node)");
            Ok(())
        }
        CommunityCommand::Admin { command: AdminCommand::Remove { peer } } => {
            let client = Client::for_home(home)?;
            let peer = super::peer::resolve(&client, &peer).await?;
            client.remove_admin(&AddAdmin { peer: peer.clone() }).await?;
            println!("{peer} is no longer an admin; it stays a member");
            Ok(())
        }
        CommunityCommand::Evict { peer, reason } => {
            let client = Client::for_home(home)?;
            let peer = super::peer::resolve(&client, &peer).await?;
            client.evict(&Evict { peer: peer.clone(), reason }).await?;
            println!("evicted {peer}: every member disconnects it and refuses it from now on");
            Ok(())
        }
    }
}

/// Whether a node is running on `home` (its API answers).
pub(super) async fn running(home: &Home) -> bool {
    match Client::for_home(home) {
        Ok(c) => c.status().await.is_ok(),
        Err(_) => false,
    }
}

async fn create(home: &Home, name: &str, open: bool) -> Result<()> {
    if running(home).await {
        bail!(
            "the node of {} is running; stop it first (`cloudy-p2p --home {} stop`): the new community takes effect when it starts",
            home.root().display(),
            home.root().display()
        );
    }
    if open {
        cloudy_node::community::create_open(home, name)?;
        println!("community {name} is open: anyone who reaches a member may join");
        println!("`cloudy-p2p community create {name}` (without --open) makes it private later");
        return Ok(());
    }
    let id = cloudy_node::community::create(home, name)?;
    println!("created private community {name} ({id}); this node is its first admin");
    println!("start the node, then `cloudy-p2p invite` prints an invite for each new member");
    Ok(())
}

async fn status(client: &Client, json: bool) -> Result<()> {
    let c = client.community().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&c)?);
        return Ok(());
    }
    let Some(id) = &c.id else {
        let named = c.name.as_ref().map_or(String::new(), |n| format!(", {n}"));
        println!("community: open{named} (anyone who reaches a member may join)");
        println!(
            "make it private with `cloudy-p2p community create NAME` while the node is stopped"
        );
        return Ok(());
    };
    match &c.name {
        Some(n) => println!("community: private, {n} ({id})"),
        None => println!("community: private ({id})"),
    }
    match (&c.role, &c.problem) {
        (Some(r), _) => println!("this node: {r}"),
        (None, Some(p)) => println!("this node: no valid certificate: {p}"),
        (None, None) => println!("this node: no certificate"),
    }
    if let Some(exp) = c.expires {
        let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(exp);
        println!("certificate: valid until {}", humantime::format_rfc3339_seconds(when));
    }
    if let Some(i) = &c.issuer {
        println!(
            "signed by: {}{}",
            i,
            if Some(i) == c.id.as_ref() { " (the community key)" } else { "" }
        );
    }
    println!("admins seen: {}", if c.admins.is_empty() { "-".into() } else { c.admins.join(", ") });
    println!("connections refused since start: {}", c.refused);
    for (peer, reason) in &c.evicted {
        let why = if reason.is_empty() { String::new() } else { format!(": {reason}") };
        println!("evicted: {peer}{why}");
    }
    Ok(())
}

pub(super) async fn usage(client: &Client, json: bool) -> Result<()> {
    let u = client.usage().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&u)?);
        return Ok(());
    }
    let mib = |b: u64| format!("{:.1} MiB", b as f64 / (1 << 20) as f64);
    match u.quota_here {
        Some(q) => println!("this node keeps at most {} for each member", mib(q)),
        None => println!("this node is not a storage server"),
    }
    let rows: Vec<Vec<String>> = u
        .members
        .iter()
        .map(|r| {
            vec![
                short(&r.peer),
                mib(r.stored_here),
                r.stored_there.map_or("n/a".into(), mib),
                r.quota_there.map_or("-".into(), mib),
                format!("{} / {}", mib(r.stream_sent), mib(r.stream_received)),
                format!("{} / {}", mib(r.video_sent), mib(r.video_received)),
            ]
        })
        .collect();
    table(
        &[
            "MEMBER",
            "STORED HERE FOR IT",
            "IT STORES FOR US",
            "ITS QUOTA",
            "LIVE TO / FROM",
            "VIDEO TO / FROM",
        ],
        &rows,
    );
    Ok(())
}
