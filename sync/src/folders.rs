//! The folders a node shares, kept in `folders.json` in the sync data
//! directory (written to a temporary file and renamed, so a crash never
//! leaves it half written).

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// One shared folder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Folder {
    /// Random id, 32 hex digits.
    pub id: String,
    /// A label for people.
    pub name: String,
    /// Where it is on this machine.
    pub path: PathBuf,
    /// The peer that created it and admits members.
    pub owner: String,
    /// Peers that may read and change it (the owner included).
    pub members: Vec<String>,
    /// Peers that asked to join and wait for `admit` (owner only).
    #[serde(default)]
    pub pending: Vec<String>,
}

impl Folder {
    /// The text a member gives others so they can ask to join.
    pub fn invite(&self) -> String {
        format!("cloudy-sync:{}:{}", self.id, self.owner)
    }
}

/// Parses an invite into (folder id, owner peer id).
pub fn parse_invite(s: &str) -> Result<(String, String), FolderError> {
    let bad = |why: &str| FolderError::Invite(format!("{s:?}: {why}"));
    let rest = s
        .trim()
        .strip_prefix("cloudy-sync:")
        .ok_or_else(|| bad("does not start with cloudy-sync:"))?;
    let (id, owner) =
        rest.split_once(':').ok_or_else(|| bad("expected cloudy-sync:<folder>:<owner>"))?;
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad("the folder id is not 32 hex digits"));
    }
    owner
        .parse::<cloudy_overlay::PeerId>()
        .map_err(|e| bad(&format!("the owner is not a peer id ({e})")))?;
    Ok((id.to_ascii_lowercase(), owner.to_string()))
}

/// Folder-list errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FolderError {
    /// A malformed invite.
    #[error("bad invite {0}")]
    Invite(String),
    /// Reading or writing the list failed.
    #[error("{path}: {reason}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

/// The folder list.
#[derive(Debug)]
pub struct Folders {
    file: PathBuf,
    list: Mutex<Vec<Folder>>,
}

impl Folders {
    /// Loads `file` (an absent file is an empty list).
    pub fn load(file: &Path) -> Result<Folders, FolderError> {
        let io = |e: &dyn std::fmt::Display| FolderError::Io {
            path: file.display().to_string(),
            reason: e.to_string(),
        };
        let list = match std::fs::read(file) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| io(&e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io(&e)),
        };
        Ok(Folders { file: file.to_path_buf(), list: Mutex::new(list) })
    }

    fn save(&self, list: &[Folder]) -> Result<(), FolderError> {
        let io = |e: &dyn std::fmt::Display| FolderError::Io {
            path: self.file.display().to_string(),
            reason: e.to_string(),
        };
        let bytes = serde_json::to_vec_pretty(list).expect("folders serialise");
        cloudy_overlay::fsutil::write_whole(&self.file, &bytes, None).map_err(|e| io(&e))
    }

    /// Every folder.
    pub fn all(&self) -> Vec<Folder> {
        self.list.lock().expect("folders lock").clone()
    }

    /// One folder by id.
    pub fn get(&self, id: &str) -> Option<Folder> {
        self.all().into_iter().find(|f| f.id == id)
    }

    /// Changes (or with `None`, removes) folder `id` and saves the list;
    /// returns the folder after the change.
    pub fn update(
        &self,
        id: &str,
        change: impl FnOnce(Option<Folder>) -> Option<Folder>,
    ) -> Result<Option<Folder>, FolderError> {
        let mut list = self.list.lock().expect("folders lock");
        let old = list.iter().position(|f| f.id == id);
        let new = change(old.map(|i| list[i].clone()));
        let mut next = list.clone();
        match (old, &new) {
            (Some(i), Some(f)) => next[i] = f.clone(),
            (Some(i), None) => drop(next.remove(i)),
            (None, Some(f)) => next.push(f.clone()),
            (None, None) => {}
        }
        self.save(&next)?;
        *list = next;
        Ok(new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invites_and_persistence() {
        let owner = cloudy_overlay::PeerId::random().to_string();
        let f = Folder {
            id: "ab".repeat(16),
            name: "photos".into(),
            path: "/srv/p".into(),
            owner: owner.clone(),
            members: vec![owner.clone()],
            pending: vec![],
        };
        assert_eq!(parse_invite(&f.invite()).unwrap(), (f.id.clone(), owner.clone()));
        for bad in [
            "",
            "cloudy-sync:",
            "cloudy-sync:xyz:abc",
            &format!("cloudy-sync:{}:notapeer", "ab".repeat(16)),
            "http://x",
        ] {
            assert!(parse_invite(bad).is_err(), "{bad:?}");
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("folders.json");
        let list = Folders::load(&file).unwrap();
        list.update(&f.id, |_| Some(f.clone())).unwrap();
        list.update(&f.id, |old| {
            old.map(|mut o| {
                o.pending.push("p".into());
                o
            })
        })
        .unwrap();
        let again = Folders::load(&file).unwrap();
        assert_eq!(again.get(&f.id).unwrap().pending, vec!["p".to_string()]);
        again.update(&f.id, |_| None).unwrap();
        assert!(Folders::load(&file).unwrap().all().is_empty());
        std::fs::write(&file, b"{not json").unwrap();
        assert!(Folders::load(&file).err().unwrap().to_string().contains("folders.json"));
    }
}
