//! Services announced through the control API, kept in the home so that a
//! restarted node announces them again.

use crate::error::NodeError;
use cloudy_overlay::ServiceMeta;
use std::collections::BTreeMap;
use std::path::PathBuf;
use tokio::sync::Mutex;

/// The persisted set of announcements.
#[derive(Debug)]
pub struct Announcements {
    path: PathBuf,
    map: Mutex<BTreeMap<String, ServiceMeta>>,
}

impl Announcements {
    /// Loads `path` (a missing file is an empty set).
    pub fn load(path: PathBuf) -> Result<Self, NodeError> {
        let map = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| NodeError::Config {
                path: path.clone(),
                message: format!("corrupt announcements file: {e}"),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(NodeError::io(&path, e)),
        };
        Ok(Announcements { path, map: Mutex::new(map) })
    }

    /// A copy of the set.
    pub async fn all(&self) -> BTreeMap<String, ServiceMeta> {
        self.map.lock().await.clone()
    }

    /// Adds or replaces one and saves.
    pub async fn insert(&self, name: String, meta: ServiceMeta) -> Result<(), NodeError> {
        let mut map = self.map.lock().await;
        map.insert(name, meta);
        self.save(&map)
    }

    /// Removes one and saves.
    pub async fn remove(&self, name: &str) -> Result<(), NodeError> {
        let mut map = self.map.lock().await;
        map.remove(name);
        self.save(&map)
    }

    /// Writes to a temporary file and renames it over the old one, so a crash
    /// leaves either the old or the new set.
    fn save(&self, map: &BTreeMap<String, ServiceMeta>) -> Result<(), NodeError> {
        let bytes = serde_json::to_vec_pretty(map).unwrap_or_default();
        cloudy_overlay::fsutil::write_whole(&self.path, &bytes, None)
            .map_err(|e| NodeError::io(&self.path, e))
    }
}
