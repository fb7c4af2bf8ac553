//! Mutable files on the grid: a signed slot whose sealed payload names the
//! current contents (an immutable or literal capability).

use super::{Client, SlotWriteError, SlotsRead};
use crate::capability::{Cap, CapError};
use crate::mutable::{OpenError, ReadKey, Slot, WriteKey, FILE_WRITER};
use crate::placement::DEFAULT_PARAMS;
use crate::store::StorageIndex;

/// Servers asked for a storage index's slots: twice the shares of a file,
/// so that slots written past servers that were down are still found.
pub const SLOT_SPAN: usize = 2 * DEFAULT_PARAMS.n as usize;

/// Why a mutable file could not be read or changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MutableError {
    /// No server holds a version.
    #[error("no server holds this mutable file or directory ({answered} of {asked} servers answered; none has a version)")]
    NotFound {
        /// Servers that answered.
        answered: usize,
        /// Servers asked.
        asked: usize,
    },
    /// The payload does not decrypt.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// The payload decrypted but does not name contents.
    #[error("the newest version does not name its contents: {0}")]
    Payload(String),
    /// Writing the new version failed.
    #[error(transparent)]
    Write(#[from] SlotWriteError),
}

impl From<CapError> for MutableError {
    fn from(e: CapError) -> Self {
        MutableError::Payload(e.to_string())
    }
}

/// Servers a slot must reach before a write is acknowledged: three (or
/// every server of a smaller grid). A slot is whole on each server, so any
/// one of them can serve it; three survive two servers lost at once.
const SLOT_HAPPY: usize = 3;

/// The happiness of a slot write on a grid of `servers`.
pub fn slot_happy(servers: usize) -> usize {
    SLOT_HAPPY.min(servers).max(1)
}

impl Client {
    /// Slots of `si` on its servers.
    pub async fn slots_of(&self, si: &StorageIndex) -> SlotsRead {
        self.read_slots(si, SLOT_SPAN).await
    }

    /// Makes `content` the newest version of the mutable file of `key`;
    /// returns its version number.
    pub async fn publish(&self, key: &WriteKey, content: &Cap) -> Result<u64, MutableError> {
        let si = key.read().verify().storage_index();
        let read = self.slots_of(&si).await;
        let current = read.newest().get(&FILE_WRITER).map_or(0, |s| s.seqnum);
        let payload = key.read().seal(content.to_string().as_bytes());
        let slot = Slot::sign(key, FILE_WRITER, current + 1, payload);
        let servers = self.servers().len();
        let wrote =
            self.write_slot(&slot, DEFAULT_PARAMS.n as usize, slot_happy(servers), &[]).await?;
        if wrote.stale.is_some() {
            // Some server holds a newer version, or says so: it counts
            // only if a validly signed newer version can be read.
            let now = self.slots_of(&si).await.newest();
            if let Some(newer) = now.get(&FILE_WRITER).filter(|s| **s != slot) {
                if newer.seqnum >= slot.seqnum {
                    return Err(
                        SlotWriteError::Stale { held: newer.seqnum, tried: slot.seqnum }.into()
                    );
                }
            }
        }
        Ok(slot.seqnum)
    }

    /// The newest version of the mutable file of `key`: its number and
    /// the capability of its contents.
    pub async fn resolve(&self, key: &ReadKey) -> Result<(u64, Cap), MutableError> {
        let si = key.verify().storage_index();
        let read = self.slots_of(&si).await;
        let newest = read.newest();
        let slot = newest.get(&FILE_WRITER).ok_or(MutableError::NotFound {
            answered: read.answered(),
            asked: read.servers.len(),
        })?;
        let text = key.open(&slot.payload)?;
        let cap: Cap = String::from_utf8_lossy(&text).parse()?;
        if matches!(cap, Cap::Verify(_) | Cap::Mutable(_)) {
            return Err(MutableError::Payload(
                "it names something other than file contents".into(),
            ));
        }
        Ok((slot.seqnum, cap))
    }
}
