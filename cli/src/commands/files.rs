//! `put`, `get`, `cap info`.

use crate::progress;
use anyhow::{bail, Context, Result};
use cloudy_node::control::api::Cap;
use cloudy_node::control::api::CheckReport;
use cloudy_node::control::client::Client;
use std::path::Path;

/// Options of `put` that go into the query string.
pub(super) struct PutQuery {
    pub k: Option<u8>,
    pub n: Option<u8>,
    pub happy: Option<usize>,
    pub random_key: bool,
    pub mutable: bool,
}

impl PutQuery {
    pub(super) fn to_query(&self) -> String {
        let mut q = Vec::new();
        if let Some(k) = self.k {
            q.push(format!("k={k}"));
        }
        if let Some(n) = self.n {
            q.push(format!("n={n}"));
        }
        if let Some(h) = self.happy {
            q.push(format!("happy={h}"));
        }
        if self.random_key {
            q.push("random_key=true".into());
        }
        if self.mutable {
            q.push("mutable=true".into());
        }
        q.join("&")
    }
}

pub(super) async fn put(client: &Client, file: &Path, q: PutQuery, json: bool) -> Result<()> {
    let stored = if file == Path::new("-") {
        let bar = progress::bar(None, "sending");
        let stored = client
            .put(progress::Reading::new(tokio::io::stdin(), bar.clone()), None, &q.to_query())
            .await;
        bar.finish_and_clear();
        stored?
    } else {
        if file.is_dir() {
            bail!(
                "{} is a directory; put stores one file (archive the directory first, for example with tar)",
                file.display()
            );
        }
        let f = tokio::fs::File::open(file)
            .await
            .with_context(|| format!("cannot read {}", file.display()))?;
        let len =
            f.metadata().await.with_context(|| format!("cannot read {}", file.display()))?.len();
        let bar = progress::bar(Some(len), "sending");
        let stored =
            client.put(progress::Reading::new(f, bar.clone()), Some(len), &q.to_query()).await;
        bar.finish_and_clear();
        stored?
    };
    if let Some(note) = &stored.note {
        eprintln!("note: {note}");
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&stored)?);
    } else {
        println!("{}", stored.cap);
    }
    Ok(())
}

/// `get CAP --url`: the gateway URL of a file, with the token in it, for
/// a player or a browser.
pub(super) fn get_url(client: &Client, cap: &str, name: Option<String>) -> Result<()> {
    let parsed = cap.parse::<Cap>()?;
    if matches!(parsed, Cap::Verify(_)) {
        bail!("a verify capability cannot read the file; give its read capability");
    }
    println!("{}", client.file_url(&parsed.to_string(), name.as_deref()));
    Ok(())
}

pub(super) async fn get(client: &Client, cap: &str, output: &Path) -> Result<()> {
    // Check the capability here so a typo gets a precise message at once.
    let size = match cap.parse::<Cap>()? {
        Cap::Read(r) => Some(r.size),
        _ => None,
    };
    let bar = progress::bar(size, "fetching");
    if output == Path::new("-") {
        let result = client.get_file(cap, &mut bar.wrap_async_write(tokio::io::stdout())).await;
        bar.finish_and_clear();
        result?;
        return Ok(());
    }
    let (part, mut f) = crate::output::PartFile::create(output).await?;
    let result = client.get_file(cap, &mut bar.wrap_async_write(&mut f)).await;
    bar.finish_and_clear();
    drop(f);
    part.finish(result).map(|_| ())
}

pub(super) fn cap_info(cap: &str) -> Result<()> {
    let cap: Cap = cap.parse()?;
    println!("{}", cap.describe());
    Ok(())
}

fn print_report(r: &cloudy_node::control::api::CheckReport) {
    let state = if r.healthy {
        "healthy"
    } else if r.recoverable {
        "degraded (repairable)"
    } else {
        "NOT recoverable"
    };
    let how = if r.verified { "verified block by block" } else { "listed" };
    println!("{state}: {} of {} shares present, {} needed ({how})", r.good_shares, r.n, r.k);
    for (share, peers) in &r.shares {
        let short: Vec<String> = peers.iter().map(|p| crate::output::short(p)).collect();
        println!("  share {share}: {}", short.join(", "));
    }
    for bad in &r.corrupt {
        println!(
            "  share {} on {} is CORRUPT: {}",
            bad.share,
            crate::output::short(&bad.peer_id),
            bad.reason
        );
    }
}

/// Whether `cap` names a mutable file or a directory (checked as a tree).
fn is_tree(cap: &str) -> bool {
    cap.starts_with("cloudy:mut") || cap.starts_with("cloudy:dir")
}

pub(super) async fn check(client: &Client, cap: &str, verify: bool, json: bool) -> Result<()> {
    if is_tree(cap) {
        return super::tree::deep_check_cap(client, cap, "", verify, false, json).await;
    }
    let r = client.check(cap, verify).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print_report(&r);
    }
    health_verdict(&r)
}

/// `check`'s exit status: 0 healthy, 3 degraded but recoverable, 4 not
/// recoverable (1 is left for a check that could not run, 2 for usage).
fn health_verdict(r: &CheckReport) -> Result<()> {
    let (k, n, good) = (r.k, r.n, r.good_shares);
    if r.healthy {
        Ok(())
    } else if r.recoverable {
        Err(super::Verdict {
            code: 3,
            message: format!("degraded: {good} of {n} shares are good ({k} needed); run `repair`"),
        }
        .into())
    } else {
        Err(super::Verdict {
            code: 4,
            message: format!(
                "unrecoverable: only {good} of {n} shares are good and {k} are needed"
            ),
        }
        .into())
    }
}

pub(super) async fn repair(client: &Client, cap: &str, json: bool) -> Result<()> {
    if is_tree(cap) {
        return super::tree::deep_check_cap(client, cap, "", false, true, json).await;
    }
    let r = client.repair(cap).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    print_report(&r.before);
    if r.placed.is_empty() && r.failures.is_empty() {
        println!("nothing to repair");
    }
    for (share, peer) in &r.placed {
        println!("regenerated share {share} on {}", crate::output::short(peer));
    }
    for f in &r.failures {
        println!("failed: {f}");
    }
    if !r.failures.is_empty() {
        anyhow::bail!("repair incomplete: {} failures", r.failures.len());
    }
    Ok(())
}

pub(super) async fn maintained(client: &Client, json: bool, only_trees: bool) -> Result<()> {
    let trees = client.maintained_trees().await?;
    let rows = if only_trees { Vec::new() } else { client.maintained().await? };
    if json && only_trees {
        println!("{}", serde_json::to_string_pretty(&trees)?);
        return Ok(());
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if rows.is_empty() && trees.is_empty() {
        println!("no maintained files");
    }
    for t in &trees {
        let state = match (t.checked, t.unrepaired) {
            (None, _) => "not checked yet".to_string(),
            (Some(_), Some(0)) => format!("healthy ({} objects)", t.healthy.unwrap_or(0)),
            (Some(_), left) => format!("{} problems left", left.unwrap_or(0)),
        };
        println!("tree  {state}  {}", t.cap);
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for r in rows {
        let shares = r.good_shares.map_or("?".to_string(), |g| g.to_string());
        let when = r.checked.map_or("never checked".to_string(), |t| {
            format!("checked {}s ago", now.saturating_sub(t))
        });
        println!(
            "{:<14} {shares}/{} shares  {} bytes  {when}  {}",
            r.status, r.n, r.size, r.verify_cap
        );
    }
    Ok(())
}
