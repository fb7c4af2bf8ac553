//! `sync add|join|admit|list|status|remove`.

use crate::args::SyncCommand;
use anyhow::{bail, Context, Result};
use cloudy_node::control::api::{AddFolder, FolderRow, JoinFolder};
use cloudy_node::control::client::Client;
use std::path::Path;

/// An absolute form of `dir` (the node may run elsewhere in the tree).
fn absolute(dir: &Path) -> Result<String> {
    let abs = std::path::absolute(dir).with_context(|| format!("{}", dir.display()))?;
    Ok(abs.display().to_string())
}

/// The folder `what` names: an id, a unique id prefix, or a name.
async fn find(client: &Client, what: &str) -> Result<FolderRow> {
    let all = client.folders().await?;
    let hits: Vec<FolderRow> =
        all.into_iter().filter(|f| f.id.starts_with(what) || f.name == what).collect();
    match hits.len() {
        1 => Ok(hits.into_iter().next().expect("one")),
        0 => bail!("no folder {what:?} (see `cloudy-p2p sync list`)"),
        n => bail!("{what:?} matches {n} folders; give more of the id"),
    }
}

fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

fn line(f: &FolderRow) -> String {
    let left = if f.status.need_files > 0 {
        format!(", {} files / {} left", f.status.need_files, human(f.status.need_bytes))
    } else {
        String::new()
    };
    format!(
        "{}  {:<12} {:<20} {} files, {}{left}  {}",
        &f.id[..8],
        f.name,
        f.status.state,
        f.status.files,
        human(f.status.bytes),
        f.path
    )
}

fn details(f: &FolderRow) {
    println!("{}", line(f));
    println!("  invite:  {}", f.invite);
    println!("  owner:   {}", f.owner);
    println!("  members: {}", f.members.join(", "));
    println!(
        "  since the node started: {} downloaded, {} served to members",
        human(f.status.downloaded),
        human(f.status.uploaded)
    );
    if !f.pending.is_empty() {
        println!("  waiting to be admitted: {}", f.pending.join(", "));
    }
    for e in &f.status.errors {
        println!("  error: {e}");
    }
}

pub(super) async fn run(client: &Client, cmd: SyncCommand) -> Result<()> {
    match cmd {
        SyncCommand::Add { dir, name, members } => {
            let mut full = Vec::new();
            for m in &members {
                full.push(super::peer::resolve(client, m).await?);
            }
            let members = full;
            let f = client.add_folder(&AddFolder { path: absolute(&dir)?, name, members }).await?;
            println!("sharing {} as {:?}; others join with:", f.path, f.name);
            println!("cloudy-p2p sync join {} DIR", f.invite);
        }
        SyncCommand::Join { invite, dir } => {
            let f = client.join_folder(&JoinFolder { invite, path: absolute(&dir)? }).await?;
            println!(
                "joined folder {} into {}; the owner {} must admit this node unless it already did",
                &f.id[..8],
                f.path,
                f.owner
            );
        }
        SyncCommand::Admit { folder, peer } => {
            let f = find(client, &folder).await?;
            let peer = super::peer::resolve(client, &peer).await?;
            client.admit(&f.id, &peer).await?;
            println!("admitted {peer} to {}", f.name);
        }
        SyncCommand::List { json } => {
            let all = client.folders().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else if all.is_empty() {
                println!("no shared folders (share one with `cloudy-p2p sync add DIR`)");
            } else {
                all.iter().for_each(|f| println!("{}", line(f)));
            }
        }
        SyncCommand::Status { folder, json } => {
            let all = match folder {
                Some(f) => vec![find(client, &f).await?],
                None => client.folders().await?,
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else {
                all.iter().for_each(details);
            }
        }
        SyncCommand::Remove { folder } => {
            let f = find(client, &folder).await?;
            client.remove_folder(&f.id).await?;
            println!("stopped syncing {} ({}); its files stay", f.name, f.path);
        }
    }
    Ok(())
}
