//! The versions directory: a replaced or deleted file is moved to
//! `.cloudy-versions/<path>~YYYYMMDD-HHMMSS` (UTC, `-N` added when two
//! versions fall in one second) instead of being destroyed, and versions
//! older than the folder's retention are deleted.

use crate::path::VERSIONS_DIR;
use std::path::Path;
use std::time::{Duration, SystemTime};
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

const STAMP: &[time::format_description::BorrowedFormatItem<'static>] =
    format_description!("[year][month][day]-[hour][minute][second]");

/// The stamp of a version made at `at`.
pub fn stamp(at: SystemTime) -> String {
    OffsetDateTime::from(at).format(STAMP).unwrap_or_default()
}

/// When the version named `name` was made, from its stamp.
pub fn made_at(name: &str) -> Option<SystemTime> {
    let (_, tail) = name.rsplit_once('~')?;
    let stamp = tail.get(..15)?;
    let rest = &tail[15..];
    if !(rest.is_empty()
        || rest
            .strip_prefix('-')
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())))
    {
        return None;
    }
    Some(PrimitiveDateTime::parse(stamp, STAMP).ok()?.assume_utc().into())
}

/// Deletes the versions in `root`'s versions directory made more than
/// `keep` before `now` (and the directories this empties); returns how
/// many. Files whose names carry no stamp are left alone.
pub fn prune(root: &Path, keep: Duration, now: SystemTime) -> usize {
    let dir = root.join(VERSIONS_DIR);
    let Some(limit) = now.checked_sub(keep) else { return 0 };
    let mut removed = 0;
    for entry in
        walkdir::WalkDir::new(&dir).follow_links(false).contents_first(true).into_iter().flatten()
    {
        let name = entry.file_name().to_string_lossy();
        if entry.file_type().is_file() {
            if made_at(&name).is_some_and(|t| t < limit)
                && std::fs::remove_file(entry.path()).is_ok()
            {
                removed += 1;
            }
        } else if entry.file_type().is_dir() && entry.path() != dir {
            // Only succeeds once empty.
            let _ = std::fs::remove_dir(entry.path());
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_roundtrip_and_odd_names_have_none() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        let s = stamp(t);
        assert_eq!(s.len(), 15);
        assert_eq!(made_at(&format!("a/b.txt~{s}")), Some(t));
        assert_eq!(made_at(&format!("b.txt~{s}-2")), Some(t));
        for odd in ["b.txt", "b.txt~", "b.txt~2026", &format!("b.txt~{s}x"), &format!("b~{s}-")] {
            assert_eq!(made_at(odd), None, "{odd}");
        }
    }

    #[test]
    fn old_versions_go_and_recent_ones_and_strangers_stay() {
        let dir = tempfile::tempdir().unwrap();
        let v = dir.path().join(VERSIONS_DIR);
        std::fs::create_dir_all(v.join("sub")).unwrap();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        let day = Duration::from_secs(86_400);
        std::fs::write(v.join(format!("sub/old.txt~{}", stamp(now - 40 * day))), b"old").unwrap();
        std::fs::write(v.join(format!("new.txt~{}", stamp(now - day))), b"new").unwrap();
        std::fs::write(v.join("notes, not a version"), b"mine").unwrap();
        assert_eq!(prune(dir.path(), 30 * day, now), 1);
        assert!(!v.join("sub").exists(), "an emptied directory goes too");
        let mut left: Vec<String> = std::fs::read_dir(&v)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left.len(), 2);
        assert!(left[0].starts_with("new.txt~") && left[1] == "notes, not a version");
        assert_eq!(prune(dir.path().join("missing").as_path(), day, now), 0);
    }
}
