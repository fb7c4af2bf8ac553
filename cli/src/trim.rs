//! Keeping an idle node's resident memory to what it uses: once a minute,
//! free heap pages go back to the system (`malloc_trim`), and the pages of
//! the read-only file mappings (the binary's and the libraries' code and
//! read-only data) are dropped from the process's resident set
//! (`madvise(MADV_DONTNEED)`). Startup runs most of the binary's code once
//! (every service, the config, the database), and each page fault maps its
//! neighbours too, so an idle node kept some 13 MB of code resident that it
//! never ran again. Dropped pages stay in the page cache (shared with every
//! other process running the binary, and reclaimable by the system); the
//! ones the node runs come back on the next minor fault. See
//! ARCHITECTURE.md.
//!
//! Between those minutes the thread looks every 10 s at the heap's free
//! bytes, and hands free pages back at once when a mebibyte more was freed
//! since the last trim: what a burst (a community joining through this
//! node, a transfer) frees stayed resident for up to a minute (a
//! membership benchmark of 100 nodes measured 60 s after the last start,
//! before the minute's trim: RSS 14.7 / 21.5 MB mean / max; 90 s after:
//! 12.2 / 17.3 MB).

/// The address ranges, in a `/proc/self/smaps` text, of the read-only
/// private file mappings (the binary's and the libraries' code and
/// read-only data) that hold no anonymous page: no page of them was ever
/// written (relocated data was, and is left alone), so dropping their pages
/// loses nothing.
pub(crate) fn clean_ranges(smaps: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, usize)> = None;
    for line in smaps.lines() {
        let mut f = line.split_whitespace();
        let Some(first) = f.next() else { continue };
        if let Some((start, end)) = first.split_once('-').filter(|_| !first.ends_with(':')) {
            // A mapping's header: `start-end perms offset dev inode path`.
            let perms = f.next().unwrap_or("");
            let path = f.nth(3).unwrap_or("");
            let range =
                usize::from_str_radix(start, 16).ok().zip(usize::from_str_radix(end, 16).ok());
            current = match range {
                Some((s, e))
                    if e > s && matches!(perms, "r-xp" | "r--p") && path.starts_with('/') =>
                {
                    Some((s, e - s))
                }
                _ => None,
            };
        } else if first == "Anonymous:" {
            if let Some(range) = current.take() {
                if f.next() == Some("0") {
                    out.push(range);
                }
            }
        }
    }
    out
}

/// Drops those pages from the resident set; returns the bytes of mappings
/// advised.
fn drop_clean_pages() -> usize {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else { return 0 };
    let mut advised = 0;
    for (start, len) in clean_ranges(&smaps) {
        // SAFETY: the range is a read-only, private file mapping none of
        // whose pages was ever written (checked above): MADV_DONTNEED only
        // unmaps its pages, and the next access maps them again from the
        // file, unchanged.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::madvise(start as *mut libc::c_void, len, libc::MADV_DONTNEED) };
        if rc == 0 {
            advised += len;
        }
    }
    advised
}

/// How often the thread looks at the node's memory.
const LOOK_EVERY: std::time::Duration = std::time::Duration::from_secs(10);
/// Looks between two full trims (heap and code pages): a minute.
const FULL_EVERY: u32 = 6;
/// Heap freed since the last trim that makes the thread trim before the
/// minute is up.
const FREED: u64 = 1 << 20;

/// Whether to trim the heap now: on every full trim, and between them
/// when the heap's free bytes (`free`) grew by [`FREED`] since the last
/// trim left them at `after_last` (the pages of free chunks a trim handed
/// back still count as free, so only new frees make the difference).
fn heap_due(look: u32, free: u64, after_last: Option<u64>) -> bool {
    look.is_multiple_of(FULL_EVERY) || after_last.is_some_and(|b| free >= b.saturating_add(FREED))
}

/// Bytes in free chunks of the heap (glibc's `mallinfo2().fordblks`).
fn free_heap() -> u64 {
    // SAFETY: mallinfo2 only reads malloc's statistics, under its locks.
    #[allow(unsafe_code)]
    let info = unsafe { libc::mallinfo2() };
    info.fordblks as u64
}

/// Starts the trimming thread of a node.
pub(crate) fn start() {
    let trim = std::thread::Builder::new().name("memory-trim".into()).spawn(|| {
        // First once the node has started and joined, then every minute,
        // and between whenever a burst left the heap larger.
        std::thread::sleep(std::time::Duration::from_secs(20));
        let mut after_last = None;
        for look in 0u32.. {
            if heap_due(look, free_heap(), after_last) {
                // SAFETY: malloc_trim only releases free pages; glibc's
                // malloc is thread-safe.
                #[allow(unsafe_code)]
                unsafe {
                    libc::malloc_trim(0);
                }
                after_last = Some(free_heap());
            }
            if look.is_multiple_of(FULL_EVERY) {
                drop_clean_pages();
            }
            std::thread::sleep(LOOK_EVERY);
        }
    });
    if let Err(e) = trim {
        eprintln!("warning: cannot start the memory trimmer: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_never_written_read_only_file_mappings_are_chosen() {
        let smaps = "\
55d0c0000000-55d0c0200000 r--p 00000000 fe:00 1 /opt/cloudy-p2p
Rss:                 800 kB
Anonymous:             0 kB
55d0c0200000-55d0c1200000 r-xp 00200000 fe:00 1 /opt/cloudy-p2p
Rss:                7000 kB
Anonymous:             0 kB
55d0c1200000-55d0c1300000 r--p 01200000 fe:00 1 /opt/cloudy-p2p
Rss:                 600 kB
Anonymous:           600 kB
55d0c1300000-55d0c1310000 rw-p 01300000 fe:00 1 /opt/cloudy-p2p
Anonymous:            64 kB
7f0000000000-7f0000100000 r-xp 00000000 fe:00 2 /usr/lib/x86_64-linux-gnu/libc.so.6
Anonymous:             0 kB
7f0000200000-7f0000300000 rw-p 00000000 00:00 0
Anonymous:          1024 kB
7ffd00000000-7ffd00001000 r-xp 00000000 00:00 0 [vdso]
Anonymous:             0 kB
";
        assert_eq!(
            clean_ranges(smaps),
            vec![
                (0x55d0c0000000, 0x200000),
                (0x55d0c0200000, 0x1000000),
                (0x7f0000000000, 0x100000)
            ]
        );
    }

    #[test]
    fn the_heap_is_trimmed_every_minute_and_after_frees() {
        let mib = 1 << 20;
        assert!(heap_due(0, 0, None), "the first look trims");
        assert!(heap_due(FULL_EVERY, 10 * mib, Some(10 * mib)), "every minute");
        assert!(!heap_due(1, 10 * mib + mib - 1, Some(10 * mib)), "little freed since");
        assert!(heap_due(1, 11 * mib, Some(10 * mib)), "a mebibyte freed since the last trim");
        assert!(!heap_due(1, 9 * mib, Some(10 * mib)), "free chunks taken again");
        assert!(!heap_due(1, 20 * mib, None), "before the first trim: wait for it");
        // Every other block freed, between blocks kept: free chunks in the
        // middle of the heap, which glibc does not hand back by itself.
        let mut held: Vec<Option<Vec<u8>>> = (0..64).map(|_| Some(vec![1u8; 64 << 10])).collect();
        let before = free_heap();
        for b in held.iter_mut().step_by(2) {
            *b = None;
        }
        assert!(free_heap() > before, "frees show in mallinfo2");
        drop(held);
    }

    #[test]
    fn dropping_this_test_binarys_clean_pages_keeps_it_running() {
        assert!(drop_clean_pages() > 0, "no clean mapping found");
        // Still running the same code, fetched back from the files.
        let v: Vec<u64> = (0..1000).map(|i| i * 3).collect();
        assert_eq!(v.iter().sum::<u64>(), 1_498_500);
        assert!(drop_clean_pages() > 0);
    }
}
