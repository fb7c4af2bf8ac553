//! Paths under a directory (`photos/2026/a.jpg`), and the everyday
//! operations on them: walk, make directories, link, unlink, rename.

use super::grid::{now, Change, Child, DirError, Dirs, Listing};
use super::ops::Kind;
use crate::capability::Cap;
use crate::mutable::WriteKey;

/// The components of `path`, without empty ones (`a//b/` is `a/b`).
pub fn split(path: &str) -> Vec<&str> {
    path.split('/').filter(|c| !c.is_empty()).collect()
}

/// One new entry for [`Dirs::link_many`].
#[derive(Clone, Debug)]
pub struct NewEntry {
    /// Its name.
    pub name: String,
    /// The child.
    pub cap: Cap,
    /// Size (files).
    pub size: u64,
    /// Modification time.
    pub mtime: u64,
}

impl Dirs {
    /// The entry `name` of directory `dir`.
    pub async fn child(&self, dir: &Cap, name: &str) -> Result<Child, DirError> {
        let listing = self.list(dir).await?;
        listing.entry(name, || name.to_string()).cloned()
    }

    /// What `path` names under `root` (`root` itself for an empty path).
    /// Directories in the middle of the path may be read from a listing
    /// a second old (see `walked_recently`); the last one is read now.
    pub async fn lookup(&self, root: &Cap, path: &[&str]) -> Result<Cap, DirError> {
        let mut cap = root.clone();
        for (i, name) in path.iter().enumerate() {
            let kept = if i + 1 < path.len() { self.walked_recently(&cap) } else { None };
            let listing = match kept {
                Some(l) if l.get(name).is_some_and(|c| c.kind == Kind::Dir) => l,
                _ => self.list(&cap).await?,
            };
            let child = listing.entry(name, || path[..=i].join("/"))?.clone();
            if i + 1 < path.len() && child.kind != Kind::Dir {
                return Err(DirError::NotADirectory(path[..=i].join("/")));
            }
            cap = child.cap;
        }
        Ok(cap)
    }

    /// Makes the directories along `path` under `root` that do not exist
    /// yet; returns the capability of the last.
    pub async fn mkdir_p(&self, root: &Cap, path: &[&str]) -> Result<Cap, DirError> {
        let mut cap = root.clone();
        for (i, name) in path.iter().enumerate() {
            let listing = self.list(&cap).await?;
            cap = match listing.entry(name, String::new) {
                Ok(c) if c.kind == Kind::Dir => c.cap.clone(),
                Ok(_) => return Err(DirError::NotADirectory(path[..=i].join("/"))),
                Err(DirError::NoEntry(_)) => {
                    // Writers making the same name at once make the same
                    // directory (see `merge`).
                    let parent = match &cap {
                        Cap::Mutable(m) => m.write_key().ok_or(DirError::ReadOnly)?.clone(),
                        other => return Err(DirError::NotADirectory(other.to_string())),
                    };
                    let new =
                        self.create_sub(subdir_key(&parent, name, listing.lamport + 1)).await?;
                    let (owned, made) = (name.to_string(), new.clone());
                    let after = self
                        .update(&cap, move |l| match l.get(&owned) {
                            Some(_) => Ok(vec![]),
                            None => Ok(vec![Change::Add {
                                name: owned,
                                cap: made,
                                size: 0,
                                mtime: now(),
                            }]),
                        })
                        .await?;
                    let made =
                        after.get(name).ok_or_else(|| DirError::NoEntry(name.to_string()))?;
                    if made.kind != Kind::Dir {
                        return Err(DirError::NotADirectory(path[..=i].join("/")));
                    }
                    made.cap.clone()
                }
                Err(e) => return Err(e),
            };
        }
        Ok(cap)
    }

    /// Adds `entries` to directory `dir` in one update. An existing entry
    /// of the same name is replaced if `replace`, otherwise the update
    /// fails with [`DirError::Exists`] and nothing changes.
    pub async fn link_many(
        &self,
        dir: &Cap,
        entries: Vec<NewEntry>,
        replace: bool,
    ) -> Result<Listing, DirError> {
        self.update(dir, move |l| {
            let mut changes = Vec::new();
            for e in entries {
                for old in l.entries.iter().filter(|c| c.name == e.name) {
                    if !replace {
                        return Err(DirError::Exists(e.name));
                    }
                    changes.extend(old.ids().map(Change::Remove));
                }
                changes.push(Change::Add {
                    name: e.name,
                    cap: e.cap,
                    size: e.size,
                    mtime: e.mtime,
                });
            }
            Ok(changes)
        })
        .await
    }

    /// Removes entry `name` of `dir`; returns it.
    pub async fn unlink(&self, dir: &Cap, name: &str) -> Result<Child, DirError> {
        let name = name.to_string();
        let removed = std::sync::Arc::new(std::sync::Mutex::new(None));
        let (slot, looked_for) = (removed.clone(), name.clone());
        self.update(dir, move |l| {
            let c = l.get(&looked_for).ok_or_else(|| DirError::NoEntry(looked_for.clone()))?;
            let changes = c.ids().map(Change::Remove).collect();
            *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(c.clone());
            Ok(changes)
        })
        .await?;
        let removed = removed.lock().unwrap_or_else(|e| e.into_inner()).take();
        removed.ok_or(DirError::NoEntry(name))
    }

    /// Moves entry `from` of `from_dir` to `to` in `to_dir` (replacing an
    /// entry of that name). Within one directory this is one rename; across
    /// directories the new entry is added before the old one is removed,
    /// so a crash between leaves it in both, never in neither.
    pub async fn rename(
        &self,
        from_dir: &Cap,
        from: &str,
        to_dir: &Cap,
        to: &str,
    ) -> Result<(), DirError> {
        let (from, to) = (from.to_string(), to.to_string());
        if same_dir(from_dir, to_dir) {
            self.update(from_dir, move |l| {
                let c = l.get(&from).ok_or_else(|| DirError::NoEntry(from.clone()))?;
                let mut changes: Vec<Change> = l
                    .entries
                    .iter()
                    .filter(|o| o.name == to && o.id != c.id)
                    .flat_map(|o| o.ids().map(Change::Remove))
                    .collect();
                changes.extend(c.ids().map(|id| Change::Rename { target: id, name: to.clone() }));
                Ok(changes)
            })
            .await?;
            return Ok(());
        }
        let c = self.child(from_dir, &from).await?;
        let entry = NewEntry { name: to, cap: c.cap.clone(), size: c.size, mtime: c.mtime };
        self.link_many(to_dir, vec![entry], true).await?;
        let removes: Vec<Change> = c.ids().map(Change::Remove).collect();
        self.update(from_dir, move |_| Ok(removes)).await?;
        Ok(())
    }
}

/// The key of subdirectory `name` made at Lamport time `lamport` in the
/// directory of `parent`.
fn subdir_key(parent: &WriteKey, name: &str, lamport: u64) -> WriteKey {
    let mut h = blake3::Hasher::new_derive_key("cloudy-p2p subdirectory key v1");
    h.update(&parent.0);
    h.update(&lamport.to_be_bytes());
    h.update(name.as_bytes());
    WriteKey(*h.finalize().as_bytes())
}

fn same_dir(a: &Cap, b: &Cap) -> bool {
    match (a, b) {
        (Cap::Mutable(x), Cap::Mutable(y)) => x.verify_key() == y.verify_key(),
        _ => false,
    }
}
