//! Concurrent changes to one file (version vectors neither of which
//! includes the other). The rule, the same on every member so they all
//! converge without talking:
//!
//! 1. A modification beats a deletion: the file stays, no copy is made.
//!    Two deletions agree.
//! 2. Otherwise the later modification time wins the name; on a tie, the
//!    change by the larger member id wins.
//! 3. The losing content is kept beside it as
//!    `NAME.sync-conflict-YYYYMMDD-HHMMSS-<member>.EXT`, stamped with the
//!    loser's own modification time and member, so every member derives
//!    the same name, and synced like any other file.

use crate::path::{PathError, RelPath};
use time::OffsetDateTime;

/// One side of a conflict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Side {
    /// The change is a deletion.
    pub deleted: bool,
    /// Modification time, Unix nanoseconds.
    pub mtime_ns: i128,
    /// Short id of the member that made the change.
    pub by: u64,
}

/// What to do with two concurrent versions `a` and `b`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// Keep `a`; `b` leaves no trace (it was a deletion, or both were).
    KeepA,
    /// Keep `b`; `a` was a deletion.
    KeepB,
    /// `a` keeps the name; `b` is saved as a conflict copy.
    AWins,
    /// `b` keeps the name; `a` is saved as a conflict copy.
    BWins,
}

/// Applies the rule in the module docs.
pub fn resolve(a: &Side, b: &Side) -> Resolution {
    match (a.deleted, b.deleted) {
        (true, true) | (false, true) => Resolution::KeepA,
        (true, false) => Resolution::KeepB,
        (false, false) => {
            if (a.mtime_ns, a.by) >= (b.mtime_ns, b.by) {
                Resolution::AWins
            } else {
                Resolution::BWins
            }
        }
    }
}

/// The name under which `loser`'s content of `path` is kept.
pub fn conflict_name(path: &RelPath, loser: &Side, member: &str) -> Result<RelPath, PathError> {
    let at = OffsetDateTime::from_unix_timestamp_nanos(loser.mtime_ns)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let stamp = at
        .format(time::macros::format_description!("[year][month][day]-[hour][minute][second]"))
        .unwrap_or_else(|_| "00000000-000000".into());
    let name = path.file_name();
    // "a.tar.gz" keeps ".gz" as its extension; ".bashrc" has none.
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i..]),
        _ => (name, ""),
    };
    path.with_file_name(&format!("{stem}.sync-conflict-{stamp}-{member}{ext}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i128 = 1_795_000_000_000_000_000; // 2026-11-18 11:06:40 UTC

    fn side(deleted: bool, mtime_ns: i128, by: u64) -> Side {
        Side { deleted, mtime_ns, by }
    }

    #[test]
    fn the_rule_is_symmetric() {
        let cases = [
            (side(false, T, 1), side(true, T + 9, 2)),
            (side(true, T, 1), side(true, T, 2)),
            (side(false, T + 1, 1), side(false, T, 2)),
            (side(false, T, 1), side(false, T, 2)),
        ];
        for (a, b) in cases {
            let flipped = match resolve(&b, &a) {
                Resolution::KeepA => Resolution::KeepB,
                Resolution::KeepB => Resolution::KeepA,
                Resolution::AWins => Resolution::BWins,
                Resolution::BWins => Resolution::AWins,
            };
            let both_deleted = a.deleted && b.deleted;
            assert!(both_deleted || resolve(&a, &b) == flipped, "{a:?} {b:?}");
        }
        assert_eq!(
            resolve(&side(false, T, 1), &side(true, T + 9, 2)),
            Resolution::KeepA,
            "modification beats deletion"
        );
        assert_eq!(
            resolve(&side(false, T + 1, 1), &side(false, T, 2)),
            Resolution::AWins,
            "later wins"
        );
        assert_eq!(
            resolve(&side(false, T, 1), &side(false, T, 2)),
            Resolution::BWins,
            "tie: larger member"
        );
    }

    #[test]
    fn conflict_names() {
        let loser = side(false, T, 2);
        let p = RelPath::parse("docs/report.final.pdf").unwrap();
        assert_eq!(
            conflict_name(&p, &loser, "ABCDEFG").unwrap().as_str(),
            "docs/report.final.sync-conflict-20261118-110640-ABCDEFG.pdf"
        );
        let dot = RelPath::parse(".bashrc").unwrap();
        assert_eq!(
            conflict_name(&dot, &loser, "X").unwrap().as_str(),
            ".bashrc.sync-conflict-20261118-110640-X"
        );
    }
}
