//! What the benchmarks read from `/proc`, as `Option`s: a figure that
//! could not be read is printed `n/a` ([`na`]), never 0.

#![allow(dead_code)] // each benchmark uses a part

/// A `kB` field of `/proc/PID/status` (`VmRSS:`, `VmHWM:`) in MB.
fn status_mb(pid: Option<u32>, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    let kb: u64 =
        status.lines().find(|l| l.starts_with(field))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb as f64 * 1024.0 / 1e6)
}

/// Resident memory in MB.
pub(crate) fn rss_mb(pid: Option<u32>) -> Option<f64> {
    status_mb(pid, "VmRSS:")
}

/// Peak resident memory in MB since the last [`reset_peak`].
pub(crate) fn peak_rss_mb(pid: Option<u32>) -> Option<f64> {
    status_mb(pid, "VmHWM:")
}

/// Resets the peak that [`peak_rss_mb`] reads.
pub(crate) fn reset_peak(pid: Option<u32>) {
    if let Some(pid) = pid {
        let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
    }
}

/// CPU ticks (user + system, 100 a second) of a process so far.
pub(crate) fn cpu_ticks(pid: Option<u32>) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid?)).ok()?;
    let f: Vec<&str> = stat[stat.rfind(')')? + 2..].split_whitespace().collect();
    // After "pid (comm) ", field 14 (utime) and 15 (stime) are at 11 and 12.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// Context switches of a process so far, all its threads together
/// (voluntary and not): how often it woke up, which is what an idle
/// node's CPU mostly pays for.
pub(crate) fn wakeups(pid: Option<u32>) -> Option<u64> {
    let tasks = std::fs::read_dir(format!("/proc/{}/task", pid?)).ok()?;
    let mut total = 0;
    for task in tasks {
        let status = std::fs::read_to_string(task.ok()?.path().join("status")).ok()?;
        for field in ["voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:"] {
            let line = status.lines().find(|l| l.starts_with(field))?;
            total += line.split_whitespace().nth(1)?.parse::<u64>().ok()?;
        }
    }
    Some(total)
}

/// CPU seconds of a process so far.
pub(crate) fn cpu_secs(pid: Option<u32>) -> Option<f64> {
    cpu_ticks(pid).map(|t| t as f64 / 100.0)
}

/// Bytes received on `lo` so far (every loopback byte is received once).
pub(crate) fn lo_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/net/dev").ok()?;
    let line = text.lines().find(|l| l.trim_start().starts_with("lo:"))?;
    line.split(':').nth(1)?.split_whitespace().next()?.parse().ok()
}

/// UDP datagrams dropped so far because a socket's receive buffer was
/// full (`RcvbufErrors` in /proc/net/snmp): loss on a busy loopback.
pub(crate) fn udp_drops() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/net/snmp").ok()?;
    let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("Udp:")).collect();
    let names: Vec<&str> = rows.first()?.split_whitespace().collect();
    let vals: Vec<&str> = rows.get(1)?.split_whitespace().collect();
    vals.get(names.iter().position(|n| *n == "RcvbufErrors")?)?.parse().ok()
}

/// `b - a`, when both were read.
pub(crate) fn delta(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    Some(b?.saturating_sub(a?))
}

/// A figure with `prec` decimals, or `n/a` when it could not be measured.
pub(crate) fn na(v: Option<f64>, prec: usize) -> String {
    v.map_or_else(|| "n/a".to_string(), |v| format!("{v:.prec$}"))
}

/// Mean and max of figures that were all measured; `None` when any was
/// not (or there are none).
pub(crate) fn mean_max(v: &[Option<f64>]) -> Option<(f64, f64)> {
    let v: Vec<f64> = v.iter().copied().collect::<Option<_>>()?;
    (!v.is_empty()).then(|| {
        (v.iter().sum::<f64>() / v.len() as f64, v.iter().copied().fold(f64::MIN, f64::max))
    })
}
