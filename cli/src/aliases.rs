//! Aliases: names for directory capabilities, kept in `<home>/aliases.json`
//! (mode 0600: they hold write capabilities), and the `ALIAS:path`
//! arguments that use them, as in Tahoe-LAFS.

use anyhow::{bail, Context, Result};
use cloudy_node::control::api::valid_alias;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The aliases of one home.
pub(crate) struct Aliases {
    file: PathBuf,
    map: BTreeMap<String, String>,
}

/// Where a command-line argument points.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Loc {
    /// On the grid: a directory (or file) capability and a path under it.
    Grid { cap: String, path: String },
    /// On this machine.
    Local(PathBuf),
}

impl Aliases {
    /// The aliases of the home at `root` (none yet if the file is absent).
    pub(crate) fn load(root: &Path) -> Result<Self> {
        let file = root.join("aliases.json");
        let map = match std::fs::read(&file) {
            Ok(b) => serde_json::from_slice(&b)
                .with_context(|| format!("{} is not a valid aliases file", file.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", file.display())),
        };
        Ok(Aliases { file, map })
    }

    /// All aliases and their capabilities.
    pub(crate) fn all(&self) -> &BTreeMap<String, String> {
        &self.map
    }

    /// Adds `name` for `cap`; fails if the name is taken.
    pub(crate) fn add(&mut self, name: &str, cap: &str) -> Result<()> {
        if !valid_alias(name) {
            bail!("{name:?} cannot be an alias: use letters, digits, - and _");
        }
        if self.map.contains_key(name) {
            bail!("alias {name:?} already exists (see `cloudy-p2p alias list`)");
        }
        self.map.insert(name.to_string(), cap.to_string());
        self.save()
    }

    /// Removes `name`; fails if there is no such alias.
    pub(crate) fn remove(&mut self, name: &str) -> Result<String> {
        let cap = self.map.remove(name).with_context(|| format!("no alias {name:?}"))?;
        self.save()?;
        Ok(cap)
    }

    fn save(&self) -> Result<()> {
        let json = serde_json::to_vec_pretty(&self.map)?;
        let tmp = self.file.with_extension("json.tmp");
        {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .with_context(|| format!("cannot write {}", tmp.display()))?;
            f.write_all(&json)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &self.file)
            .with_context(|| format!("cannot write {}", self.file.display()))
    }

    /// Where `arg` points: `cloudy:…[/path]` and `ALIAS:path` on the grid,
    /// anything else on this machine. `NAME:…` with an unknown alias is an
    /// error unless a local file of that name exists.
    pub(crate) fn locate(&self, arg: &str) -> Result<Loc> {
        if arg.starts_with("cloudy:") {
            let (cap, path) = arg.split_once('/').unwrap_or((arg, ""));
            return Ok(Loc::Grid { cap: cap.to_string(), path: path.to_string() });
        }
        if arg.starts_with("URI:") && !self.map.contains_key("URI") {
            // A Tahoe-LAFS capability: the grid says what it is.
            return Ok(Loc::Grid { cap: arg.to_string(), path: String::new() });
        }
        if let Some((name, path)) = arg.split_once(':') {
            if let Some(cap) = self.map.get(name) {
                return Ok(Loc::Grid { cap: cap.clone(), path: path.to_string() });
            }
            if valid_alias(name) && !Path::new(arg).exists() {
                bail!("unknown alias {name:?} in {arg:?} (make one with `cloudy-p2p alias create {name}`, see `cloudy-p2p alias list`)");
            }
        }
        Ok(Loc::Local(PathBuf::from(arg)))
    }

    /// Where `arg` points on the grid; a local path is an error.
    pub(crate) fn grid(&self, arg: &str) -> Result<(String, String)> {
        match self.locate(arg)? {
            Loc::Grid { cap, path } => Ok((cap, path)),
            Loc::Local(_) => bail!(
                "{arg:?} is not a grid path: give ALIAS:path (see `cloudy-p2p alias list`) or a directory capability"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_located_and_aliases_persist_privately() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = Aliases::load(dir.path()).unwrap();
        a.add("home", "cloudy:dir:abc:def").unwrap();
        assert!(a.add("home", "x").is_err(), "taken");
        assert!(a.add("bad name", "x").is_err());
        let a = Aliases::load(dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join("aliases.json")).unwrap().permissions();
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o600);
        let grid = |cap: &str, path: &str| Loc::Grid { cap: cap.into(), path: path.into() };
        assert_eq!(
            a.locate("home:photos/a.jpg").unwrap(),
            grid("cloudy:dir:abc:def", "photos/a.jpg")
        );
        assert_eq!(a.locate("home:").unwrap(), grid("cloudy:dir:abc:def", ""));
        assert_eq!(a.locate("cloudy:dir:x:y/sub").unwrap(), grid("cloudy:dir:x:y", "sub"));
        assert_eq!(a.locate("./local.txt").unwrap(), Loc::Local("./local.txt".into()));
        let err = a.locate("nosuch:x").unwrap_err().to_string();
        assert!(err.contains("unknown alias \"nosuch\""), "{err}");
        assert!(a.grid("plain/path").is_err());
        // A Tahoe-LAFS capability goes to the grid, which names it.
        assert_eq!(a.locate("URI:CHK:abc:def:3:10:9").unwrap(), grid("URI:CHK:abc:def:3:10:9", ""));
    }
}
