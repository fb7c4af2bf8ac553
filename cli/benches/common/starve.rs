//! Holding processes to a share of one core for a while (a cgroup's CPU
//! quota, v2 or v1): a machine starved of CPU, as a low-end box busy with
//! something else, or a host that stalls its VM. Needs root and the
//! cgroup CPU controller; without them [`Starved::start`] says why.

use std::path::{Path, PathBuf};

const PERIOD_US: u64 = 100_000;

/// Processes held to a CPU quota until dropped.
#[derive(Debug)]
pub(crate) struct Starved {
    group: PathBuf,
    /// Where the processes go back to.
    root: PathBuf,
}

impl Starved {
    /// Moves `pids` into a new group held to `quota_us` of CPU time per
    /// 100 ms (all of them together).
    pub(crate) fn start(pids: &[u32], quota_us: u64) -> Result<Starved, String> {
        let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers");
        let s = if std::fs::read_to_string(v2).is_ok_and(|c| c.contains("cpu")) {
            let root = PathBuf::from("/sys/fs/cgroup");
            let group = root.join("cloudy-starve");
            make(&group)?;
            write(&group.join("cpu.max"), &format!("{quota_us} {PERIOD_US}"))?;
            Starved { group, root }
        } else {
            let root = PathBuf::from("/sys/fs/cgroup/cpu");
            let group = root.join("cloudy-starve");
            make(&group)?;
            write(&group.join("cpu.cfs_period_us"), &PERIOD_US.to_string())?;
            write(&group.join("cpu.cfs_quota_us"), &quota_us.to_string())?;
            Starved { group, root }
        };
        for pid in pids {
            write(&s.group.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(s)
    }
}

impl Drop for Starved {
    fn drop(&mut self) {
        let procs = std::fs::read_to_string(self.group.join("cgroup.procs")).unwrap_or_default();
        for pid in procs.split_whitespace() {
            let _ = std::fs::write(self.root.join("cgroup.procs"), pid);
        }
        let _ = std::fs::remove_dir(&self.group);
    }
}

fn make(group: &Path) -> Result<(), String> {
    match std::fs::create_dir(group) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(format!("cannot make the cgroup {}: {e}", group.display())),
    }
}

fn write(file: &Path, value: &str) -> Result<(), String> {
    std::fs::write(file, value).map_err(|e| format!("cannot write {}: {e}", file.display()))
}
