//! Lays out the release binary's code so that what an idle node runs sits
//! together: the functions listed in `layout/idle-functions.txt` (recorded
//! by `layout/record.sh`: 1,000 functions and 1.3 MB an idle node runs,
//! then 1.4 MB more it runs as members come and go) are placed first, in
//! that order, by lld's `--symbol-ordering-file`. Most of an idle node's
//! resident memory is the binary's code pages, and the kernel maps 64 KiB
//! around every page it runs: spread over 19 MB of code, those functions
//! kept 9–10 MB of it resident (ARCHITECTURE.md, "Memory").
//!
//! The linker is the toolchain's own rust-lld (rustup ships it), through
//! the `gcc-ld/ld.lld` wrapper rustc itself uses for `-Zlinker-features`.
//! Only in release builds of the binary; `CLOUDY_NO_LAYOUT=1` or a
//! toolchain without rust-lld links as before (the latter with a warning).
//! A function of the list the binary no longer has is skipped.

use std::path::Path;
use std::process::Command;

fn main() {
    let list = Path::new(env!("CARGO_MANIFEST_DIR")).join("layout/idle-functions.txt");
    println!("cargo:rerun-if-changed={}", list.display());
    println!("cargo:rerun-if-env-changed=CLOUDY_NO_LAYOUT");
    if std::env::var("PROFILE").as_deref() != Ok("release")
        || std::env::var_os("CLOUDY_NO_LAYOUT").is_some()
        || std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux")
    {
        return;
    }
    let Some(gcc_ld) = rust_lld() else {
        println!(
            "cargo:warning=the toolchain has no rust-lld: the binary links without its \
             idle-code layout (an idle node keeps ~6 MB more code resident)"
        );
        return;
    };
    println!("cargo:rustc-link-arg-bins=-fuse-ld=lld");
    println!("cargo:rustc-link-arg-bins=-B{}", gcc_ld.display());
    println!("cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}", list.display());
    println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
}

/// The directory of the toolchain's `ld.lld` wrapper around rust-lld
/// (what rustc's own `-Zlinker-features=+lld` uses), if it is there.
fn rust_lld() -> Option<std::path::PathBuf> {
    let rustc = std::env::var_os("RUSTC")?;
    let out = Command::new(rustc).args(["--print", "sysroot"]).output().ok()?;
    let sysroot = String::from_utf8(out.stdout).ok()?;
    let target = std::env::var("TARGET").ok()?;
    let dir = Path::new(sysroot.trim()).join("lib/rustlib").join(target).join("bin/gcc-ld");
    dir.join("ld.lld").is_file().then_some(dir)
}
