//! What a folder is doing, as `sync status` shows it. Kept as an enum and
//! written as the text users see (`"in sync"`, `"paused: disk full (…)"`),
//! so the JSON of the control API is unchanged.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// What a folder is doing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum FolderState {
    /// Indexing the directory (at start, before anything else).
    #[default]
    Scanning,
    /// Applying a batch of a member's changes.
    Syncing,
    /// Everything announced so far is applied and nothing is outstanding.
    InSync,
    /// Some changes could not be applied; the folder's errors say which.
    OutOfSync {
        /// Outstanding errors.
        errors: usize,
    },
    /// Joined, waiting for the owner to admit this node.
    WaitingForAdmission,
    /// The disk is full: nothing is written until there is room again.
    DiskFull {
        /// Where and what the system said.
        detail: String,
    },
    /// Not run at all (it holds the node's home).
    Paused {
        /// Why.
        why: String,
    },
}

impl fmt::Display for FolderState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FolderState::Scanning => f.write_str("scanning"),
            FolderState::Syncing => f.write_str("syncing"),
            FolderState::InSync => f.write_str("in sync"),
            FolderState::OutOfSync { errors } => {
                write!(f, "out of sync: {errors} errors (see errors)")
            }
            FolderState::WaitingForAdmission => f.write_str("waiting for admission"),
            FolderState::DiskFull { detail } => write!(f, "paused: disk full ({detail})"),
            FolderState::Paused { why } => write!(f, "paused: {why}"),
        }
    }
}

impl std::str::FromStr for FolderState {
    type Err = std::convert::Infallible;

    /// Reads what [`fmt::Display`] wrote. Text it does not know (a newer
    /// node may have more states) reads as `OutOfSync`, never as in sync.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "scanning" => FolderState::Scanning,
            "syncing" => FolderState::Syncing,
            "in sync" => FolderState::InSync,
            "waiting for admission" => FolderState::WaitingForAdmission,
            s => {
                if let Some(d) = s.strip_prefix("paused: disk full (") {
                    FolderState::DiskFull { detail: d.trim_end_matches(')').to_string() }
                } else if let Some(why) = s.strip_prefix("paused: ") {
                    FolderState::Paused { why: why.to_string() }
                } else if let Some(rest) = s.strip_prefix("out of sync: ") {
                    let errors = rest.split(' ').next().and_then(|n| n.parse().ok()).unwrap_or(0);
                    FolderState::OutOfSync { errors }
                } else {
                    FolderState::OutOfSync { errors: 0 }
                }
            }
        })
    }
}

impl Serialize for FolderState {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for FolderState {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Ok(text.parse().unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::FolderState;

    #[test]
    fn states_read_back_what_they_write() {
        for st in [
            FolderState::Scanning,
            FolderState::Syncing,
            FolderState::InSync,
            FolderState::OutOfSync { errors: 3 },
            FolderState::WaitingForAdmission,
            FolderState::DiskFull { detail: "a.bin: No space left on device".into() },
            FolderState::Paused { why: "it holds this node's home /h".into() },
        ] {
            let json = serde_json::to_string(&st).unwrap();
            assert_eq!(serde_json::from_str::<FolderState>(&json).unwrap(), st, "{json}");
        }
        assert_eq!(serde_json::to_string(&FolderState::InSync).unwrap(), "\"in sync\"");
    }
}
