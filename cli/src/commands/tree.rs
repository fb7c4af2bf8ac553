//! `alias`, `mkdir`, `ls`, `mv`, `ln`, `rm`, `tree`: directories on the grid.

use crate::aliases::{Aliases, Loc};
use crate::args::AliasCommand;
use anyhow::{bail, Result};
use cloudy_node::control::api::{FsPath, Link, NewLink};
use cloudy_node::control::client::Client;
use cloudy_node::Home;

pub(super) async fn alias(home: &Home, command: AliasCommand) -> Result<()> {
    let mut aliases = Aliases::load(home.root())?;
    match command {
        AliasCommand::Create { name } => {
            if aliases.all().contains_key(&name) {
                bail!("alias {name:?} already exists (see `cloudy-p2p alias list`)");
            }
            let made = super::client(home)?.mkdir(None, "").await?;
            aliases.add(&name, &made.cap)?;
            println!("alias {name}: a new directory; read-only capability to share:");
            println!("{}", made.read_cap);
        }
        AliasCommand::Add { name, cap } => {
            match cap.parse::<cloudy_node::control::api::Cap>()? {
                cloudy_node::control::api::Cap::Mutable(m)
                    if m.kind == cloudy_node::control::api::MutKind::Dir => {}
                _ => bail!("an alias names a directory; this capability is not one"),
            }
            aliases.add(&name, &cap)?;
            println!("alias {name} added");
        }
        AliasCommand::List { json } => {
            if json {
                println!("{}", serde_json::to_string_pretty(aliases.all())?);
            } else if aliases.all().is_empty() {
                println!("no aliases (make one with `cloudy-p2p alias create NAME`)");
            }
            if !json {
                for (name, cap) in aliases.all() {
                    println!("{name}: {cap}");
                }
            }
        }
        AliasCommand::Remove { name } => {
            aliases.remove(&name)?;
            println!("alias {name} removed (the directory stays on the grid)");
        }
    }
    Ok(())
}

pub(super) async fn mkdir(home: &Home, path: Option<String>) -> Result<()> {
    let client = super::client(home)?;
    let made = match path {
        None => client.mkdir(None, "").await?,
        Some(p) => {
            let (cap, path) = Aliases::load(home.root())?.grid(&p)?;
            client.mkdir(Some(&cap), &path).await?
        }
    };
    println!("{}", made.cap);
    Ok(())
}

fn when(mtime: u64) -> String {
    if mtime == 0 {
        return "-".into();
    }
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime))
        .to_string()
}

pub(super) async fn ls(home: &Home, path: &str, long: bool, json: bool) -> Result<()> {
    let (cap, path) = Aliases::load(home.root())?.grid(path)?;
    let listing = super::client(home)?.ls(&cap, &path).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&listing)?);
        return Ok(());
    }
    for b in &listing.bad {
        eprintln!("warning: {b}");
    }
    if !long {
        for e in &listing.entries {
            println!("{}{}", e.name, if e.kind == "dir" { "/" } else { "" });
        }
        return Ok(());
    }
    let rows: Vec<Vec<String>> = listing
        .entries
        .iter()
        .map(|e| {
            vec![
                e.kind.clone(),
                if e.kind == "dir" { "-".into() } else { e.size.to_string() },
                when(e.mtime),
                e.name.clone(),
                e.cap.clone(),
            ]
        })
        .collect();
    crate::output::table(&["kind", "bytes", "modified", "name", "capability"], &rows);
    Ok(())
}

/// `from` as the capability it names: a capability as it is, or what a
/// grid path names.
async fn resolve(client: &Client, aliases: &Aliases, from: &str) -> Result<(String, u64, u64)> {
    match aliases.locate(from)? {
        Loc::Grid { cap, path } if path.is_empty() => Ok((cap, 0, 0)),
        Loc::Grid { cap, path } => {
            let st = client.stat(&cap, &path).await?;
            Ok((st.cap, st.size, st.mtime))
        }
        Loc::Local(p) => bail!("{} is a local path; `ln` links what is on the grid", p.display()),
    }
}

pub(super) async fn ln(home: &Home, from: &str, to: &str) -> Result<()> {
    let aliases = Aliases::load(home.root())?;
    let client = super::client(home)?;
    let (cap, size, mtime) = resolve(&client, &aliases, from).await?;
    let (root, path) = aliases.grid(to)?;
    let (dir, name) = split_last(&path)?;
    let entries = vec![NewLink { name: name.to_string(), cap, size, mtime }];
    client.link(&Link { cap: root, path: dir.to_string(), entries, replace: false }).await?;
    Ok(())
}

/// `a/b/c` → (`a/b`, `c`).
pub(super) fn split_last(path: &str) -> Result<(&str, &str)> {
    let path = path.trim_end_matches('/');
    match path.rsplit_once('/') {
        Some((dir, name)) if !name.is_empty() => Ok((dir, name)),
        None if !path.is_empty() => Ok(("", path)),
        _ => bail!("give a path to an entry (ALIAS:dir/name), not the directory itself"),
    }
}

pub(super) async fn mv(home: &Home, from: &str, to: &str) -> Result<()> {
    let aliases = Aliases::load(home.root())?;
    let (fc, fp) = aliases.grid(from)?;
    let (tc, tp) = aliases.grid(to)?;
    super::client(home)?.mv(FsPath { cap: fc, path: fp }, FsPath { cap: tc, path: tp }).await?;
    Ok(())
}

pub(super) async fn rm(home: &Home, path: &str) -> Result<()> {
    let (cap, path) = Aliases::load(home.root())?.grid(path)?;
    super::client(home)?.rm(&cap, &path).await?;
    Ok(())
}

pub(super) async fn tree(home: &Home, path: &str) -> Result<()> {
    let (cap, path) = Aliases::load(home.root())?.grid(path)?;
    let client = super::client(home)?;
    let start = client.ls(&cap, &path).await?;
    println!("{}", if path.is_empty() { "." } else { path.as_str() });
    let (mut files, mut dirs) = (0usize, 0usize);
    print_subtree(&client, start, "", &mut files, &mut dirs).await?;
    println!("\n{dirs} directories, {files} files");
    Ok(())
}

/// Prints the entries of `listing` under `indent`, depth first.
async fn print_subtree(
    client: &Client,
    listing: cloudy_node::control::api::DirListing,
    indent: &str,
    files: &mut usize,
    dirs: &mut usize,
) -> Result<()> {
    let mut stack = vec![(listing, indent.to_string(), 0usize)];
    while let Some((listing, indent, i)) = stack.pop() {
        let Some(e) = listing.entries.get(i).cloned() else { continue };
        let last = i + 1 == listing.entries.len();
        println!("{indent}{}{}", if last { "└── " } else { "├── " }, e.name);
        let deeper = format!("{indent}{}", if last { "    " } else { "│   " });
        stack.push((listing, indent, i + 1));
        if e.kind == "dir" {
            *dirs += 1;
            stack.push((client.ls(&e.cap, "").await?, deeper, 0));
        } else {
            *files += 1;
        }
    }
    Ok(())
}

pub(super) async fn deep_check(
    home: &Home,
    path: &str,
    verify: bool,
    repair: bool,
    json: bool,
) -> Result<()> {
    let (cap, path) = Aliases::load(home.root())?.grid(path)?;
    deep_check_cap(&super::client(home)?, &cap, &path, verify, repair, json).await
}

/// Deep check of `path` under `cap`, printed; the exit status says how it
/// went (as `check`'s).
pub(super) async fn deep_check_cap(
    client: &Client,
    cap: &str,
    path: &str,
    verify: bool,
    repair: bool,
    json: bool,
) -> Result<()> {
    let req = cloudy_node::control::api::DeepCheck {
        cap: cap.to_string(),
        path: path.to_string(),
        verify,
        repair,
    };
    let r = client.deep_check(&req).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!(
            "{} directories, {} files; {} objects healthy, {} not",
            r.dirs,
            r.files,
            r.healthy,
            r.problems.len()
        );
        for p in &r.problems {
            let state = match (p.repaired, p.recoverable) {
                (true, _) => "repaired",
                (false, true) => "degraded",
                (false, false) => "NOT recoverable",
            };
            let at = if p.path.is_empty() { "." } else { p.path.as_str() };
            println!("  {state}: {at}: {}", p.what);
        }
    }
    let lost = r.problems.iter().filter(|p| !p.recoverable).count();
    let open = r.problems.iter().filter(|p| p.recoverable && !p.repaired).count();
    if lost > 0 {
        return Err(
            super::Verdict { code: 4, message: format!("{lost} objects not recoverable") }.into()
        );
    }
    if open > 0 {
        return Err(super::Verdict {
            code: 3,
            message: format!("{open} objects degraded; run deep-check --repair"),
        }
        .into());
    }
    Ok(())
}
