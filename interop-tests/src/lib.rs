//! The community harness: real `cloudy-p2p` processes, each with its own
//! home and OS-chosen ports, driven through the CLI (and, on loopback, the
//! HTTP API), killed with `kill -9`, stopped and restarted; and a testbed
//! of network namespaces joined by shaped, lossy links.
//!
//! ```no_run
//! # async fn demo() {
//! let mut c = cloudy_interop_tests::Community::start(3).await;
//! c.wait_alive(2, 20).await;
//! let out = c[1].cli(&["announce", "web"]).await;
//! assert!(out.ok, "{}", out.stderr);
//! c[2].kill9().await;
//! c[2].restart().await;
//! # }
//! ```
//!
//! When a test fails, the community's directory is kept and the end of
//! every node's log is printed (see [`Community`]'s `Drop`).
#![allow(clippy::unwrap_used)] // test and benchmark code: a failed unwrap is a failed run

mod community;
mod exe;
pub mod js;
pub mod media;
mod member;
pub mod netns;
pub mod sim;
mod wait;

pub use community::{Community, ConfigEdit, Options};
pub use exe::exe;
pub use member::{metric, peer_state, Member, Out};
pub use wait::{wait_file, wait_until};

/// A valid peer id that belongs to no test community.
pub const STRANGER: &str = "12D3KooWN4aihBqGyP3pNXD9wxEfGP7dY4u6YFejG8CNpMs8UybT";
