//! `status`, `peers`, `services`.

use crate::output::{ms, short, table};
use anyhow::Result;
use cloudy_node::control::api::PeerRow;
use cloudy_node::control::client::Client;

pub(super) async fn status(client: &Client, json: bool) -> Result<()> {
    let s = client.status().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(());
    }
    println!("peer id:  {}", s.peer_id);
    println!("zone:     {}", if s.zone.is_empty() { "-" } else { &s.zone });
    println!(
        "uptime:   {}",
        humantime::format_duration(std::time::Duration::from_secs(s.uptime_secs))
    );
    let m = &s.members;
    println!(
        "members:  {} alive, {} suspect, {} failed, {} left (plus this node)",
        m.alive, m.suspect, m.failed, m.left
    );
    println!("listening on:");
    for a in &s.listen_addrs {
        println!("  {a}");
    }
    Ok(())
}

pub(super) async fn peers(client: &Client, peer: Option<&str>, json: bool) -> Result<()> {
    let rows = match peer {
        Some(id) => vec![client.peer(id).await?],
        None => client.peers().await?,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    let header = ["PEER", "STATE", "RTT", "EST-RTT", "AVAIL", "ZONE", "SCORE", "ADDRESSES"];
    let cells: Vec<Vec<String>> = rows.iter().map(peer_cells).collect();
    table(&header, &cells);
    Ok(())
}

fn peer_cells(r: &PeerRow) -> Vec<String> {
    vec![
        short(&r.peer_id),
        r.state.clone(),
        ms(r.rtt_ms),
        ms(r.est_rtt_ms),
        format!("{:.0}%", r.availability * 100.0),
        if r.zone.is_empty() { "-".into() } else { r.zone.clone() },
        format!("{:.3}", r.score),
        r.addrs.join(","),
    ]
}

pub(super) async fn services(client: &Client, name: Option<&str>, json: bool) -> Result<()> {
    let rows = client.services(name).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if rows.is_empty() {
        match name {
            Some(n) => println!("no member provides {n}"),
            None => println!("no services announced"),
        }
        return Ok(());
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let meta: Vec<String> = r.meta.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let who = if r.local {
                format!("{} (this node)", short(&r.peer_id))
            } else {
                short(&r.peer_id)
            };
            vec![r.name.clone(), who, format!("{:.3}", r.score), meta.join(" ")]
        })
        .collect();
    table(&["SERVICE", "PROVIDER", "SCORE", "META"], &cells);
    Ok(())
}
