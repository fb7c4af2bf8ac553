//! `cp`: between this machine and the grid, or within the grid; and `put`
//! and `get` with grid paths.
//!
//! A recursive copy to the grid uploads files in parallel and adds each
//! directory's entries in one update (a few hundred per update), so
//! directory updates do not cost one round of writes per file.

use crate::aliases::{Aliases, Loc};
use anyhow::{bail, Context, Result};
use cloudy_node::control::api::{Link, NewLink};
use cloudy_node::control::client::Client;
use cloudy_node::Home;
use futures::stream::{self, StreamExt, TryStreamExt};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Uploads (and downloads) at once.
const PARALLEL: usize = 8;
/// Entries per directory update.
const BATCH: usize = 500;

fn mtime_of(meta: &std::fs::Metadata) -> u64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
}

fn join(dir: &str, name: &str) -> String {
    match dir.trim_end_matches('/') {
        "" => name.to_string(),
        d => format!("{d}/{name}"),
    }
}

fn file_name(p: &Path) -> Result<String> {
    let canon = std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    canon
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .with_context(|| format!("{} has no name to copy it under", p.display()))
}

pub(super) async fn cp(
    home: &Home,
    recursive: bool,
    paths: Vec<String>,
    query: &str,
) -> Result<()> {
    let aliases = Aliases::load(home.root())?;
    let client = super::client(home)?;
    let (dest, sources) = paths.split_last().context("give sources and a destination")?;
    let dest = aliases.locate(dest)?;
    let many = sources.len() > 1;
    for src in sources {
        match (aliases.locate(src)?, &dest) {
            (Loc::Local(from), Loc::Grid { cap, path }) => {
                up(&client, &from, cap, path, recursive, many, query).await?
            }
            (Loc::Grid { cap, path }, Loc::Local(to)) => {
                down(&client, src, &cap, &path, to, recursive, many).await?
            }
            (Loc::Grid { cap, path }, Loc::Grid { cap: dc, path: dp }) => {
                across(&client, &cap, &path, dc, dp).await?
            }
            (Loc::Local(_), Loc::Local(_)) => {
                bail!("both {src:?} and the destination are local paths; use the system's cp")
            }
        }
    }
    Ok(())
}

/// Whether `path` under `cap` is an existing directory.
async fn is_grid_dir(client: &Client, cap: &str, path: &str) -> bool {
    client.stat(cap, path).await.is_ok_and(|s| s.kind == "dir")
}

/// Local → grid.
async fn up(
    client: &Client,
    from: &Path,
    cap: &str,
    path: &str,
    recursive: bool,
    many: bool,
    query: &str,
) -> Result<()> {
    let meta =
        std::fs::metadata(from).with_context(|| format!("cannot read {}", from.display()))?;
    let into = path.ends_with('/') || many || is_grid_dir(client, cap, path).await;
    let target =
        if into { join(path, &file_name(from)?) } else { path.trim_end_matches('/').to_string() };
    if meta.is_dir() {
        if !recursive {
            bail!("{} is a directory; copy it with cp -r", from.display());
        }
        return up_tree(client, from, cap, &target, query).await;
    }
    let (dir, name) = super::tree::split_last(&target)?;
    let stored = put_file(client, from, query).await?;
    let entries =
        vec![NewLink { name: name.into(), cap: stored, size: meta.len(), mtime: mtime_of(&meta) }];
    client.link(&Link { cap: cap.into(), path: dir.into(), entries, replace: true }).await?;
    Ok(())
}

pub(super) async fn put_file(client: &Client, file: &Path, query: &str) -> Result<String> {
    let f = tokio::fs::File::open(file)
        .await
        .with_context(|| format!("cannot read {}", file.display()))?;
    let len = f.metadata().await?.len();
    let stored = client
        .put(f, Some(len), query)
        .await
        .with_context(|| format!("storing {}", file.display()))?;
    Ok(stored.cap)
}

/// A file found under a local directory.
pub(super) struct LocalFile {
    /// Its directory, relative to the root walked (`""`: the root).
    pub(super) dir: String,
    /// Its name.
    pub(super) name: String,
    /// Where it is.
    pub(super) path: PathBuf,
    /// Its metadata.
    pub(super) meta: std::fs::Metadata,
}

/// Every file under `root` and every directory (relative), in a stable
/// order.
pub(super) fn walk(root: &Path) -> Result<(Vec<LocalFile>, Vec<String>)> {
    let (mut files, mut dirs) = (Vec::new(), vec![String::new()]);
    let mut stack = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, rel)) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .collect::<std::io::Result<_>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name().to_string_lossy().into_owned();
            let meta = std::fs::metadata(e.path())
                .with_context(|| format!("cannot read {}", e.path().display()))?;
            if meta.is_dir() {
                let sub = join(&rel, &name);
                dirs.push(sub.clone());
                stack.push((e.path(), sub));
            } else if meta.is_file() {
                files.push(LocalFile { dir: rel.clone(), name, path: e.path(), meta });
            }
        }
    }
    Ok((files, dirs))
}

async fn up_tree(client: &Client, from: &Path, cap: &str, target: &str, query: &str) -> Result<()> {
    let (files, dirs) = walk(from)?;
    let bar = crate::progress::count_bar(files.len() as u64, "copying");
    let stored: Vec<(String, NewLink)> = stream::iter(files.into_iter().map(|f| {
        let bar = bar.clone();
        async move {
            let cap = put_file(client, &f.path, query).await?;
            bar.inc(1);
            let link = NewLink { name: f.name, cap, size: f.meta.len(), mtime: mtime_of(&f.meta) };
            Ok::<_, anyhow::Error>((f.dir, link))
        }
    }))
    .buffer_unordered(PARALLEL)
    .try_collect()
    .await?;
    bar.finish_and_clear();
    let mut by_dir: BTreeMap<String, Vec<NewLink>> =
        dirs.into_iter().map(|d| (d, Vec::new())).collect();
    for (rel, link) in stored {
        by_dir.entry(rel).or_default().push(link);
    }
    for (rel, mut entries) in by_dir {
        let path = join(target, &rel);
        if entries.is_empty() {
            client.mkdir(Some(cap), &path).await?;
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        while !entries.is_empty() {
            let rest = entries.split_off(entries.len().min(BATCH));
            let batch = std::mem::replace(&mut entries, rest);
            client
                .link(&Link { cap: cap.into(), path: path.clone(), entries: batch, replace: true })
                .await?;
        }
    }
    Ok(())
}

/// Grid → local.
async fn down(
    client: &Client,
    src: &str,
    cap: &str,
    path: &str,
    to: &Path,
    recursive: bool,
    many: bool,
) -> Result<()> {
    let st = client.stat(cap, path).await?;
    let name =
        super::tree::split_last(path).map(|(_, n)| n.to_string()).unwrap_or_else(|_| "root".into());
    let target = if many || to.is_dir() { to.join(&name) } else { to.to_path_buf() };
    if st.kind != "dir" {
        return get_into(client, &st.cap, &target).await;
    }
    if !recursive {
        bail!("{src} is a directory; copy it with cp -r");
    }
    let mut jobs = Vec::new();
    let mut stack = vec![(st.cap, target)];
    while let Some((dcap, dir)) = stack.pop() {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        for e in client.ls(&dcap, "").await?.entries {
            let local = dir.join(safe_name(&e.name)?);
            if e.kind == "dir" {
                stack.push((e.cap, local));
            } else {
                jobs.push((e.cap, local));
            }
        }
    }
    let bar = crate::progress::count_bar(jobs.len() as u64, "copying");
    stream::iter(jobs.into_iter().map(|(c, local)| {
        let bar = bar.clone();
        async move {
            get_into(client, &c, &local).await?;
            bar.inc(1);
            Ok::<_, anyhow::Error>(())
        }
    }))
    .buffer_unordered(PARALLEL)
    .try_collect::<Vec<()>>()
    .await?;
    bar.finish_and_clear();
    Ok(())
}

/// A directory entry's name as a local file name: refused if it could
/// step outside the target (a hostile directory).
fn safe_name(name: &str) -> Result<&str> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        bail!("the grid directory has an entry named {name:?}, which cannot be a local file name");
    }
    Ok(name)
}

async fn get_into(client: &Client, cap: &str, target: &Path) -> Result<()> {
    let (part, mut f) = crate::output::PartFile::create(target).await?;
    let result = client.get_file(cap, &mut f).await;
    drop(f);
    part.finish(result).map(|_| ())
}

/// Grid → grid: links what `path` names at the destination.
async fn across(client: &Client, cap: &str, path: &str, dc: &str, dp: &str) -> Result<()> {
    let st = client.stat(cap, path).await?;
    let into = dp.ends_with('/') || dp.is_empty() || is_grid_dir(client, dc, dp).await;
    let target = if into {
        let name = super::tree::split_last(path)?.1;
        join(dp, name)
    } else {
        dp.to_string()
    };
    let (dir, name) = super::tree::split_last(&target)?;
    let entries = vec![NewLink { name: name.into(), cap: st.cap, size: st.size, mtime: st.mtime }];
    client.link(&Link { cap: dc.into(), path: dir.into(), entries, replace: true }).await?;
    Ok(())
}

/// `put FILE DEST`: links the stored file at `ALIAS:path`, or makes it the
/// contents of the mutable file of write capability `DEST`.
pub(super) async fn put_to(home: &Home, file: &Path, dest: &str) -> Result<()> {
    let client = super::client(home)?;
    if file == Path::new("-") {
        bail!("put to a destination takes a file, not standard input");
    }
    // The mutable file whose contents the file becomes, if there is one.
    let mutable = if dest.starts_with("cloudy:") && !dest.contains('/') {
        // A capability: only a mutable file's write capability takes new contents.
        let cap: cloudy_node::control::api::Cap = dest.parse()?;
        let is_mutable_file = matches!(&cap, cloudy_node::control::api::Cap::Mutable(m)
            if m.kind == cloudy_node::control::api::MutKind::File && m.write_key().is_some());
        if !is_mutable_file {
            bail!("put FILE DEST: DEST is ALIAS:path, DIRCAP/path or a mutable file's write capability (cloudy:mut:…); this capability is none of them");
        }
        dest.to_string()
    } else {
        let (cap, path) = Aliases::load(home.root())?.grid(dest)?;
        let target = if path.ends_with('/') || is_grid_dir(&client, &cap, &path).await {
            join(&path, &file_name(file)?)
        } else {
            path
        };
        // A mutable file already there is changed in place.
        match client.stat(&cap, &target).await {
            Ok(st) if st.cap.starts_with("cloudy:mut:") => st.cap,
            _ => {
                up(&client, file, &cap, &target, false, false, "").await?;
                println!("{}", client.stat(&cap, &target).await?.cap);
                return Ok(());
            }
        }
    };
    let f = tokio::fs::File::open(file)
        .await
        .with_context(|| format!("cannot read {}", file.display()))?;
    let len = f.metadata().await?.len();
    println!("{}", client.put_mutable(&mutable, f, Some(len)).await?.cap);
    Ok(())
}

/// The capability `arg` names: itself, or what `ALIAS:path` names.
pub(super) async fn resolve_cap(home: &Home, client: &Client, arg: &str) -> Result<String> {
    if arg.starts_with("cloudy:") && !arg.contains('/') {
        return Ok(arg.to_string());
    }
    match Aliases::load(home.root())?.locate(arg)? {
        Loc::Grid { cap, path } if path.is_empty() => Ok(cap),
        Loc::Grid { cap, path } => Ok(client.stat(&cap, &path).await?.cap),
        Loc::Local(_) => Ok(arg.to_string()),
    }
}
