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
    let named = s.community_name.as_ref().map_or(String::new(), |n| format!(", {n}"));
    match &s.community {
        Some(id) => {
            println!("community: private{named} ({id}); see `cloudy-p2p community status`")
        }
        None => println!("community: open{named} (anyone who reaches a member may join)"),
    }
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

/// "100% of 2h", or "-" while the member was not watched long enough for
/// the figure to mean anything.
fn availability(r: &PeerRow) -> String {
    match r.availability {
        Some(a) => format!("{:.0}% of {}", a * 100.0, span(r.observed_secs)),
        None => "-".into(),
    }
}

/// A duration in its largest whole unit: 45s, 12m, 3h, 9d.
fn span(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

fn peer_cells(r: &PeerRow) -> Vec<String> {
    vec![
        short(&r.peer_id),
        r.state.clone(),
        ms(r.rtt_ms),
        ms(r.est_rtt_ms),
        availability(r),
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
    // Announced services first, then the node's own (storage, channels).
    let mut rows = rows;
    rows.sort_by_key(|r| r.internal);
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let meta: Vec<String> = r.meta.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let who = if r.local {
                format!("{} (this node)", short(&r.peer_id))
            } else {
                short(&r.peer_id)
            };
            let kind = if r.internal { "node" } else { "announced" };
            vec![r.name.clone(), kind.into(), who, format!("{:.3}", r.score), meta.join(" ")]
        })
        .collect();
    table(&["SERVICE", "KIND", "PROVIDER", "SCORE", "META"], &cells);
    Ok(())
}
