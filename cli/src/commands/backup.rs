//! `backup LOCALDIR ALIAS:path`: a dated snapshot of a local tree under
//! `path/Archives/<time>`, and `path/Latest` pointing at it (Tahoe's
//! layout).
//!
//! A local database (`<home>/backupdb.sqlite`) remembers, per file, the
//! size, times and inode it had when stored and the capability it got:
//! an unchanged file is not read again. It also remembers each snapshot
//! directory by a hash of its entries, so an unchanged directory is linked
//! again rather than made again: a backup with nothing changed reads no
//! file data and makes no directory but the top one's links.

use super::copy::{walk, LocalFile};
use anyhow::{Context, Result};
use cloudy_node::control::api::{Link, NewLink};
use cloudy_node::control::client::Client;
use cloudy_node::Home;
use futures::stream::{self, StreamExt, TryStreamExt};
use rusqlite::OptionalExtension;
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Instant;

/// The backup database of one home.
struct Db(rusqlite::Connection);

/// What identifies a file's version without reading it.
fn stamp(m: &std::fs::Metadata) -> (i64, i64, i64, i64) {
    (
        m.size() as i64,
        m.mtime() * 1_000_000_000 + m.mtime_nsec(),
        m.ctime() * 1_000_000_000 + m.ctime_nsec(),
        m.ino() as i64,
    )
}

impl Db {
    fn open(path: &Path) -> Result<Db> {
        let c = rusqlite::Connection::open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        c.execute_batch(
            "PRAGMA journal_mode=WAL;
             CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, size INTEGER, mtime INTEGER,
                                               ctime INTEGER, ino INTEGER, cap TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS dirs (hash TEXT PRIMARY KEY, cap TEXT NOT NULL);",
        )?;
        Ok(Db(c))
    }

    fn file(&self, path: &str, m: &std::fs::Metadata) -> Result<Option<String>> {
        let (size, mtime, ctime, ino) = stamp(m);
        Ok(self
            .0
            .query_row(
                "SELECT cap FROM files WHERE path = ?1 AND size = ?2 AND mtime = ?3 AND ctime = ?4 AND ino = ?5",
                rusqlite::params![path, size, mtime, ctime, ino],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn put_file(&self, path: &str, m: &std::fs::Metadata, cap: &str) -> Result<()> {
        let (size, mtime, ctime, ino) = stamp(m);
        self.0.execute(
            "INSERT OR REPLACE INTO files (path, size, mtime, ctime, ino, cap) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            rusqlite::params![path, size, mtime, ctime, ino, cap],
        )?;
        Ok(())
    }

    fn dir(&self, hash: &str) -> Result<Option<String>> {
        Ok(self
            .0
            .query_row("SELECT cap FROM dirs WHERE hash = ?1", [hash], |r| r.get(0))
            .optional()?)
    }

    fn put_dir(&self, hash: &str, cap: &str) -> Result<()> {
        self.0.execute("INSERT OR REPLACE INTO dirs (hash, cap) VALUES (?1, ?2)", [hash, cap])?;
        Ok(())
    }
}

fn hash_entries(entries: &[NewLink]) -> String {
    let mut h = blake3::Hasher::new_derive_key("cloudy-p2p backup directory v1");
    for e in entries {
        for part in [e.name.as_bytes(), b"\0", e.cap.as_bytes(), b"\0"] {
            h.update(part);
        }
        h.update(&e.size.to_be_bytes());
        h.update(&e.mtime.to_be_bytes());
    }
    h.finalize().to_hex().to_string()
}

fn depth(rel: &str) -> usize {
    if rel.is_empty() {
        0
    } else {
        rel.matches('/').count() + 1
    }
}

fn parent_and_name(rel: &str) -> (&str, &str) {
    rel.rsplit_once('/').unwrap_or(("", rel))
}

pub(super) async fn backup(home: &Home, local: &Path, dest: &str) -> Result<()> {
    let started = Instant::now();
    let (root, path) = crate::aliases::Aliases::load(home.root())?.grid(dest)?;
    if !local.is_dir() {
        anyhow::bail!("{} is not a directory", local.display());
    }
    let client = super::client(home)?;
    let db = Db::open(&home.root().join("backupdb.sqlite"))?;
    let base = std::fs::canonicalize(local)?;
    let (files, dirs) = walk(&base)?;
    let key = |f: &LocalFile| base.join(&f.dir).join(&f.name).to_string_lossy().into_owned();

    // Files: unchanged ones from the database, the rest stored now.
    let mut caps: HashMap<(String, String), String> = HashMap::new();
    let mut todo = Vec::new();
    for f in &files {
        match db.file(&key(f), &f.meta)? {
            Some(cap) => {
                caps.insert((f.dir.clone(), f.name.clone()), cap);
            }
            None => todo.push(f),
        }
    }
    let (reused, uploading) = (caps.len(), todo.len());
    let bar = crate::progress::count_bar(todo.len() as u64, "backing up");
    let stored: Vec<(&LocalFile, String)> = stream::iter(todo.into_iter().map(|f| {
        let (client, bar) = (&client, bar.clone());
        async move {
            let cap = super::copy::put_file(client, &f.path, "").await?;
            bar.inc(1);
            Ok::<_, anyhow::Error>((f, cap))
        }
    }))
    .buffer_unordered(8)
    .try_collect()
    .await?;
    bar.finish_and_clear();
    for (f, cap) in stored {
        db.put_file(&key(f), &f.meta, &cap)?;
        caps.insert((f.dir.clone(), f.name.clone()), cap);
    }

    // Directories, deepest first: an unchanged one is linked again.
    let mut entries: HashMap<String, Vec<NewLink>> =
        dirs.iter().map(|d| (d.clone(), Vec::new())).collect();
    for f in &files {
        let cap = caps[&(f.dir.clone(), f.name.clone())].clone();
        let mtime = f.meta.mtime().max(0) as u64;
        entries.entry(f.dir.clone()).or_default().push(NewLink {
            name: f.name.clone(),
            cap,
            size: f.meta.size(),
            mtime,
        });
    }
    let mut order = dirs.clone();
    order.sort_by_key(|d| std::cmp::Reverse(depth(d)));
    let (mut made, mut kept) = (0usize, 0usize);
    let mut dir_caps: HashMap<String, String> = HashMap::new();
    for d in &order {
        let mut list = entries.remove(d).unwrap_or_default();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        let hash = hash_entries(&list);
        let cap = match db.dir(&hash)? {
            Some(cap) => {
                kept += 1;
                cap
            }
            None => {
                made += 1;
                snapshot_dir(&client, list, &db, &hash).await?
            }
        };
        if !d.is_empty() {
            let (parent, name) = parent_and_name(d);
            entries.entry(parent.to_string()).or_default().push(NewLink {
                name: name.to_string(),
                cap: cap.clone(),
                size: 0,
                mtime: 0,
            });
        }
        dir_caps.insert(d.clone(), cap);
    }
    let top = dir_caps.remove("").context("the tree has no top directory")?;
    let now = snapshot_name();
    let archives = if path.is_empty() {
        "Archives".to_string()
    } else {
        format!("{}/Archives", path.trim_end_matches('/'))
    };
    let entry = |name: &str| NewLink {
        name: name.to_string(),
        cap: top.clone(),
        size: 0,
        mtime: unix_now(),
    };
    client
        .link(&Link {
            cap: root.clone(),
            path: archives,
            entries: vec![entry(&now)],
            replace: false,
        })
        .await?;
    client
        .link(&Link {
            cap: root,
            path: path.clone(),
            entries: vec![entry("Latest")],
            replace: true,
        })
        .await?;
    println!(
        "backed up {} files ({uploading} stored, {reused} unchanged) in {} directories ({made} new, {kept} unchanged) in {:.2} s as Archives/{now}",
        files.len(),
        order.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Makes the snapshot directory of `list` and remembers it.
async fn snapshot_dir(client: &Client, list: Vec<NewLink>, db: &Db, hash: &str) -> Result<String> {
    let made = client.mkdir(None, "").await?;
    for batch in list.chunks(500) {
        client
            .link(&Link {
                cap: made.cap.clone(),
                path: String::new(),
                entries: batch.to_vec(),
                replace: false,
            })
            .await?;
    }
    db.put_dir(hash, &made.read_cap)?;
    Ok(made.read_cap)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The snapshot's name: UTC time to the millisecond,
/// `2026-12-04_02-15-00.123Z` (no `:`, so it is also a fine file name on
/// every system).
fn snapshot_name() -> String {
    let t = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    t.replace('T', "_").replace(':', "-")
}
