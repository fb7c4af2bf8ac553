//! `stream publish|play|list|status`.

use crate::args::{StreamCommand, VodCommand};
use crate::output::{short, table};
use anyhow::{bail, Context, Result};
use cloudy_node::control::api::{ChannelStatus, Phase, PublishVideo};
use cloudy_node::control::client::Client;
use std::io::Write;
use std::path::Path;

pub(super) async fn run(client: &Client, cmd: StreamCommand) -> Result<()> {
    match cmd {
        StreamCommand::Publish { name, input } => publish(client, &name, &input).await,
        StreamCommand::Play { channel, output, url } => {
            let video = cloudy_node::control::api::is_video_id(&channel);
            if url {
                let kind = if video { "vod" } else { "stream" };
                println!("{}", client.media_url(&format!("/{kind}/{channel}")));
                return Ok(());
            }
            if video {
                return play_video(client, &channel, &output).await;
            }
            play(client, &channel, &output).await
        }
        StreamCommand::Vod { command: VodCommand::Publish { file, title, description } } => {
            let abs = std::path::absolute(&file).with_context(|| format!("{}", file.display()))?;
            let req = PublishVideo { path: abs.display().to_string(), title, description };
            let p = client.publish_video(&req).await?;
            println!("{}", p.id);
            eprintln!("found: {}", p.found);
            eprintln!(
                "published {} ({} bytes, {} pieces); every member lists it (`cloudy-p2p stream vod list`); watch with `cloudy-p2p stream play {}` or at /watch/vod/{} in the dashboard",
                file.display(),
                p.size,
                p.pieces,
                p.id,
                p.id
            );
            Ok(())
        }
        StreamCommand::Vod { command: VodCommand::List { json } } => {
            let v = client.videos_with_holders().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = v
                .catalogue
                .iter()
                .map(|r| {
                    vec![
                        r.title.clone(),
                        r.duration_s.map_or("n/a".into(), |d| format!("{d:.1} s")),
                        format!("{:.1} MB", r.size as f64 / 1e6),
                        format!(
                            "{}{}",
                            r.format,
                            if r.browser { "" } else { " (not in browsers)" }
                        ),
                        short(&r.publisher),
                        format!("{} of {}", r.held_here, r.pieces),
                        r.holders.as_ref().map_or("n/a".into(), |h| {
                            h.iter().map(|p| short(p)).collect::<Vec<_>>().join(" ")
                        }),
                        r.id.clone(),
                    ]
                })
                .collect();
            let head =
                ["TITLE", "DURATION", "SIZE", "FORMAT", "PUBLISHER", "HELD HERE", "HOLDERS", "ID"];
            table(&head, &rows);
            for r in v.videos.iter().filter(|r| !v.catalogue.iter().any(|c| c.id == r.id)) {
                let what = if r.published { "published here" } else { "cached" };
                println!(
                    "{}  {} bytes, {} of {} pieces held, {what} (not in the catalogue)",
                    r.id, r.size, r.held, r.pieces
                );
            }
            println!(
                "since start: {} bytes served to others, {} fetched",
                v.stats.served, v.stats.fetched
            );
            Ok(())
        }
        StreamCommand::List { json } => list(client, json).await,
        StreamCommand::Status { channel, json } => {
            let st = client.channel(&channel).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&st)?);
            } else {
                status(&st);
            }
            Ok(())
        }
    }
}

async fn publish(client: &Client, name: &str, input: &Path) -> Result<()> {
    // Open the input first: a typo must not leave an announced channel.
    let file = if input == Path::new("-") {
        None
    } else {
        Some(
            tokio::fs::File::open(input)
                .await
                .with_context(|| format!("cannot read {}", input.display()))?,
        )
    };
    let ch = client.create_channel(name).await?;
    println!("{}", ch.id);
    std::io::stdout().flush()?;
    eprintln!(
        "publishing {name:?} as channel {}; watch with `cloudy-p2p stream play {}`",
        ch.id, ch.id
    );
    let summary = match file {
        Some(f) => client.feed_channel(&ch.id, f).await?,
        None => client.feed_channel(&ch.id, tokio::io::stdin()).await?,
    };
    let kind = if summary.mpeg_ts { "MPEG-TS" } else { "bytes" };
    eprintln!("channel ended: {} bytes of {kind} in {} chunks", summary.bytes, summary.chunks);
    if let Some(e) = summary.error {
        bail!("the input broke off: {e}");
    }
    Ok(())
}

async fn play(client: &Client, channel: &str, output: &Path) -> Result<()> {
    let (id, bytes) = if output == Path::new("-") {
        client.play_channel(channel, &mut tokio::io::stdout()).await?
    } else {
        let mut f = tokio::fs::File::create(output)
            .await
            .with_context(|| format!("cannot write {}", output.display()))?;
        client.play_channel(channel, &mut f).await?
    };
    let state = client.channel(&id).await.map(|s| s.state);
    match state {
        Ok(Phase::Lost) => bail!("channel {id} was lost after {bytes} bytes: no chunk arrived for 10 s (is its publisher gone?)"),
        Ok(Phase::Ended) => {
            eprintln!("channel {id} ended ({bytes} bytes played)");
            Ok(())
        }
        Ok(other) => bail!("the stream of channel {id} stopped after {bytes} bytes (state: {other:?}); the node's log says why"),
        Err(e) => bail!("the stream of channel {id} stopped after {bytes} bytes, and its state cannot be read: {e}"),
    }
}

async fn play_video(client: &Client, id: &str, output: &Path) -> Result<()> {
    if output == Path::new("-") {
        client.get_video(id, &mut tokio::io::stdout()).await?;
        return Ok(());
    }
    let (part, mut f) = crate::output::PartFile::create(output).await?;
    let result = client.get_video(id, &mut f).await;
    drop(f);
    let n = part.finish(result)?;
    eprintln!("video {id}: {n} bytes");
    Ok(())
}

async fn list(client: &Client, json: bool) -> Result<()> {
    let rows = client.channels().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if rows.is_empty() {
        println!("no live channels");
    }
    for r in rows {
        let here = r.local.map(|l| format!("  (here: {} {})", l.role, l.state)).unwrap_or_default();
        println!("{}  {:<20} by {}  {} viewers{here}", r.id, r.name, r.publisher, r.viewers);
    }
    Ok(())
}

fn status(st: &ChannelStatus) {
    println!("{} {:?}: {} here, {}", st.id, st.name, st.role, st.state);
    println!(
        "  neighbours: {}",
        if st.neighbours.is_empty() { "none".to_string() } else { st.neighbours.join(", ") }
    );
    println!("  players: {}", st.players);
    let s = &st.stats;
    println!(
        "  chunks: {} ({} played, {} skipped, {} duplicates, {} rejected)",
        s.chunks, s.played, s.skipped, s.duplicates, s.rejected
    );
    println!("  bytes: {} received, {} sent to neighbours", s.bytes_down, s.bytes_up);
    if let Some((p50, p95, max)) = st.latency_ms {
        println!("  latency: p50 {p50} ms, p95 {p95} ms, max {max} ms");
    }
    if let Some(c) = st.continuity {
        println!("  continuity: {:.3}", c);
    }
}
