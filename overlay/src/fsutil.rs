//! Writing a file whole or not at all: through a temporary file beside it,
//! synced and renamed into place, so a crash or a full disk never leaves a
//! half-written file. Used for every small state file of the node (its
//! home, the community files, the folder list).

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` whole or not at all; `mode` sets the new
/// file's permissions (0600 for secrets). The temporary file is removed
/// when anything fails.
pub fn write_whole(path: &Path, bytes: &[u8], mode: Option<u32>) -> std::io::Result<()> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    let tmp = path.with_file_name(name);
    let written = (|| {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        if let Some(mode) = mode {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(mode);
        }
        let mut f = opts.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_file_is_replaced_whole_with_its_mode_and_no_temporary_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        write_whole(&path, b"one", None).unwrap();
        write_whole(&path, b"two", None).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let secret = dir.path().join("key");
        write_whole(&secret, b"k", Some(0o600)).unwrap();
        assert_eq!(std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777, 0o600);
        // Into a directory that does not exist: an error, nothing left.
        assert!(write_whole(&dir.path().join("no/such"), b"x", None).is_err());
        let names: Vec<_> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }
}
