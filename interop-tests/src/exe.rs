//! Where the `cloudy-p2p` binary under test is.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The `cloudy-p2p` binary: `$CLOUDY_EXE` if set, else the one cargo built
/// beside this test (`target/<profile>/cloudy-p2p`). `cargo test --workspace`
/// builds it; alone, `cargo test -p cloudy-interop-tests` needs
/// `cargo build -p cloudy-cli` first, and this panics saying so.
pub fn exe() -> &'static Path {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    EXE.get_or_init(|| {
        let path = match std::env::var_os("CLOUDY_EXE") {
            Some(p) => PathBuf::from(p),
            None => {
                let me = std::env::current_exe().expect("the test's own path");
                // target/<profile>/deps/<test> → target/<profile>/cloudy-p2p
                let profile = me.parent().and_then(Path::parent).expect("a cargo target directory");
                profile.join("cloudy-p2p")
            }
        };
        assert!(
            path.is_file(),
            "{} is missing: run `cargo test --workspace`, or `cargo build -p cloudy-cli` before testing this package alone, or set CLOUDY_EXE",
            path.display()
        );
        path
    })
}
