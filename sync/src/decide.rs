//! What to do with an entry from a peer's index, given ours. Pure: the
//! puller carries the decision out.

use crate::conflict::{resolve, Resolution, Side};
use crate::index::FileInfo;
use crate::vv::Order;

/// The decision for one remote entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// We already have this version or a newer one.
    Nothing,
    /// Take the remote version: write (or delete) it and index it as is.
    Take,
    /// Same content both sides (changed concurrently to the same thing):
    /// index the merged version, touch nothing on disk.
    MergeSame,
    /// Concurrent; ours stays under the name (a modification beats their
    /// deletion, or ours is the later change). Index ours with the merged
    /// version bumped by us, so it propagates as newer than both. With
    /// `copy_theirs`, their content is saved under its conflict name.
    KeepOurs {
        /// Save their content as a conflict copy.
        copy_theirs: bool,
    },
    /// Concurrent; theirs takes the name. With `copy_ours`, our content is
    /// first moved to its conflict name (then synced as a new file).
    TakeTheirs {
        /// Keep our content as a conflict copy.
        copy_ours: bool,
    },
}

fn side(f: &FileInfo) -> Side {
    Side { deleted: f.deleted, mtime_ns: f.mtime_ns, by: f.modified_by }
}

fn same_content(a: &FileInfo, b: &FileInfo) -> bool {
    a.deleted == b.deleted
        && a.kind == b.kind
        && a.mode == b.mode
        && a.blocks.iter().map(|x| x.hash).eq(b.blocks.iter().map(|x| x.hash))
}

/// Decides what to do with `theirs`, given `ours` (if we have the path).
pub fn decide(ours: Option<&FileInfo>, theirs: &FileInfo) -> Action {
    let Some(ours) = ours else {
        // A deletion of something we never had needs nothing on disk, but
        // its tombstone is kept so it keeps propagating.
        return Action::Take;
    };
    match theirs.version.compare(&ours.version) {
        Order::Equal | Order::Older => Action::Nothing,
        Order::Newer => Action::Take,
        Order::Concurrent if same_content(ours, theirs) => Action::MergeSame,
        Order::Concurrent => match resolve(&side(ours), &side(theirs)) {
            Resolution::KeepA => Action::KeepOurs { copy_theirs: false },
            Resolution::AWins => Action::KeepOurs { copy_theirs: true },
            Resolution::KeepB => Action::TakeTheirs { copy_ours: false },
            Resolution::BWins => Action::TakeTheirs { copy_ours: true },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::Block;
    use crate::index::Kind;
    use crate::path::RelPath;
    use crate::vv::VersionVector;

    fn file(by: u64, version: VersionVector, mtime: i128, content: u8, deleted: bool) -> FileInfo {
        FileInfo {
            path: RelPath::parse("f").unwrap(),
            kind: Kind::File,
            size: 1,
            mtime_ns: mtime,
            mode: 0o644,
            version,
            deleted,
            modified_by: by,
            blocks: if deleted {
                vec![]
            } else {
                vec![Block { hash: [content; 32], offset: 0, size: 1 }]
            },
            sequence: 0,
        }
    }

    #[test]
    fn decisions() {
        let base = VersionVector::new().bumped(1);
        let ours = file(1, base.clone(), 10, 1, false);
        assert_eq!(decide(None, &ours), Action::Take);
        assert_eq!(decide(Some(&ours), &ours.clone()), Action::Nothing);
        let newer = file(2, base.bumped(2), 20, 2, false);
        assert_eq!(decide(Some(&ours), &newer), Action::Take);
        assert_eq!(decide(Some(&newer), &ours), Action::Nothing, "older news is ignored");

        // Concurrent edits from the same base.
        let mine = file(1, base.bumped(1), 30, 3, false);
        let theirs_later = file(2, base.bumped(2), 40, 4, false);
        assert_eq!(decide(Some(&mine), &theirs_later), Action::TakeTheirs { copy_ours: true });
        assert_eq!(
            decide(Some(&theirs_later), &mine),
            Action::KeepOurs { copy_theirs: true },
            "both members agree"
        );
        let theirs_same = file(2, base.bumped(2), 40, 3, false);
        assert_eq!(decide(Some(&mine), &theirs_same), Action::MergeSame);
        // Delete against modify: the modification stays, on both sides.
        let their_delete = file(2, base.bumped(2), 50, 0, true);
        assert_eq!(decide(Some(&mine), &their_delete), Action::KeepOurs { copy_theirs: false });
        assert_eq!(decide(Some(&their_delete), &mine), Action::TakeTheirs { copy_ours: false });
    }
}
