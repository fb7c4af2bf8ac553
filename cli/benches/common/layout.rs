//! Whether the binary under test has its idle-code layout (cli/build.rs):
//! how many of the functions in `cli/layout/idle-functions.txt` it still
//! has, and whether they sit together. A list gone stale as the code
//! changed shows here before it shows as resident memory.

use std::collections::HashMap;

/// One table row: `| idle-code layout … | found of listed, span | … |`.
pub(crate) fn row(exe: &str) -> String {
    let measured = match measure(exe) {
        Some((found, listed, size, span)) => format!(
            "{found} of {listed} in the binary, {:.1} MB in {:.1} MB{}",
            size as f64 / 1e6,
            span as f64 / 1e6,
            if span <= 2 * size { "" } else { " (not placed together)" }
        ),
        None => "n/a".into(),
    };
    format!(
        "| idle-code layout: listed functions in the binary, their code in its span | {measured} | all, together | - |"
    )
}

/// (found, listed, bytes of the found functions, their address span).
fn measure(exe: &str) -> Option<(usize, usize, u64, u64)> {
    let list = concat!(env!("CARGO_MANIFEST_DIR"), "/layout/idle-functions.txt");
    let listed: Vec<String> = std::fs::read_to_string(list).ok()?.lines().map(Into::into).collect();
    let nm = std::process::Command::new("nm").args(["-S", exe]).output().ok()?;
    let mut symbols: HashMap<&str, (u64, u64)> = HashMap::new();
    let text = String::from_utf8_lossy(&nm.stdout);
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if let [addr, size, kind, name] = f[..] {
            if matches!(kind, "t" | "T" | "w" | "W") {
                let parse = |s| u64::from_str_radix(s, 16).ok();
                if let (Some(a), Some(s)) = (parse(addr), parse(size)) {
                    symbols.insert(name, (a, s));
                }
            }
        }
    }
    let found: Vec<(u64, u64)> =
        listed.iter().filter_map(|n| symbols.get(n.as_str())).copied().collect();
    let start = found.iter().map(|f| f.0).min()?;
    let end = found.iter().map(|f| f.0 + f.1).max()?;
    Some((found.len(), listed.len(), found.iter().map(|f| f.1).sum(), end - start))
}
