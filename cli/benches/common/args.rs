//! Command-line options of the benchmarks: `--name value`.
#![allow(dead_code)] // each benchmark uses part of it

/// The number after `name` on the command line, or `default`.
pub(crate) fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The `key = value` settings given as `--set key=value` (any number):
/// for trying other settings of the nodes' `config.toml`.
pub(crate) fn settings() -> Vec<(String, String)> {
    let args: Vec<String> = std::env::args().collect();
    args.windows(2)
        .filter(|w| w[0] == "--set")
        .filter_map(|w| w[1].split_once('=').map(|(k, v)| (k.trim().into(), v.trim().into())))
        .collect()
}

/// Applies [`settings`] to the `config.toml` text of a home: each
/// replaces the line that sets its key. Panics on a key the file does not
/// set, so that a mistyped setting does not go unnoticed.
pub(crate) fn apply_settings(config: &std::path::Path) {
    let sets = settings();
    if sets.is_empty() {
        return;
    }
    let text = std::fs::read_to_string(config).expect("config.toml");
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for (key, value) in &sets {
        let line = lines
            .iter_mut()
            .find(|l| l.split('=').next().is_some_and(|k| k.trim() == key))
            .unwrap_or_else(|| panic!("--set {key}: config.toml has no such setting"));
        *line = format!("{key} = {value}");
    }
    std::fs::write(config, lines.join("\n") + "\n").expect("config.toml");
}

/// Set in the environment, keeps the nodes' homes after a run.
const KEEP: &str = "CLOUDY_KEEP_COMMUNITY";

/// The directory for the nodes' homes. With `CLOUDY_KEEP_COMMUNITY` set
/// in the environment it outlives the run ([`keep_if_asked`]), for reading
/// the nodes' logs afterwards; its path is printed.
pub(crate) fn homes_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    if std::env::var_os(KEEP).is_some() {
        println!("keeping the nodes' homes in {}", dir.path().display());
    }
    dir
}

/// Keeps `dir` when `CLOUDY_KEEP_COMMUNITY` asks for it; removes it otherwise.
pub(crate) fn keep_if_asked(dir: tempfile::TempDir) {
    if std::env::var_os(KEEP).is_some() {
        let _ = dir.keep();
    }
}
