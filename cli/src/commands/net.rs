//! `connect`, `ping` and `dht`: the network underneath, for operators.

use crate::args::DhtCommand;
use anyhow::Result;
use cloudy_node::control::client::Client;
use serde::Serialize;

fn print_json(v: &impl Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

pub(super) async fn connect(client: &Client, addr: &str, json: bool) -> Result<()> {
    let r = client.connect(addr).await?;
    if json {
        return print_json(&r);
    }
    println!("connected to {}", r.peer_id);
    Ok(())
}

pub(super) async fn ping(client: &Client, peer: &str, json: bool) -> Result<()> {
    let r = client.ping(peer).await?;
    if json {
        return print_json(&r);
    }
    println!("{}: {:.1} ms", r.peer_id, r.rtt_ms.unwrap_or_default());
    Ok(())
}

pub(super) async fn dht(client: &Client, command: DhtCommand) -> Result<()> {
    match command {
        DhtCommand::Put { key, value } => {
            client.dht_put(&key, &value).await?;
            println!("stored {key}");
        }
        DhtCommand::Get { key, json } => {
            let r = client.dht_get(&key).await?;
            if json {
                return print_json(&r);
            }
            println!("{}", r.value);
        }
        DhtCommand::Provide { name } => {
            let r = client.dht_providers(&name, false).await?;
            println!("providing {name} (key {})", r.key);
        }
        DhtCommand::Providers { name, json } => {
            let r = client.dht_providers(&name, true).await?;
            if json {
                return print_json(&r);
            }
            for p in &r.providers {
                println!("{p}");
            }
            if r.providers.is_empty() {
                eprintln!("no providers of {name} found");
            }
        }
    }
    Ok(())
}
