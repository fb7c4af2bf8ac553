//! Syncthing-like folder sync for cloudy-p2p (issue 4). Depends only on
//! `cloudy-overlay` and reaches the network through `overlay::Handle`.
//!
//! # Layout
//! - Pure logic, tested without disks or sockets: [`chunk`] (content-defined
//!   blocks), [`vv`] (version vectors), [`path`] (safe relative paths),
//!   [`conflict`] (the conflict rule and conflict-copy names).
//! - Still to come: the SQLite index with its in-memory twin, the scanner
//!   and watcher, the sync protocol and puller, and the node and CLI wiring.
//!   DESIGN/sync.md holds the plan.

pub mod apply;
pub mod chunk;
pub mod conflict;
pub mod decide;
pub mod folders;
pub mod index;
pub mod path;
pub mod protocol;
mod runner;
pub mod scan;
pub mod service;
mod source;
pub mod vv;
