//! Syncthing-like folder sync for cloudy-p2p (issue 4). Depends only on
//! `cloudy-overlay` and reaches the network through `overlay::Handle`.
//!
//! # Layout
//! - Pure logic, tested without disks or sockets: [`chunk`] (content-defined
//!   blocks), [`blocklist`] (block lists cut into pieces for the wire),
//!   [`vv`] (version vectors), [`path`] (safe relative paths), [`conflict`]
//!   (the conflict rule and conflict-copy names), [`decide`] (what to do
//!   with a peer's entry).
//! - On disk: [`index`] (SQLite, with an in-memory twin), [`scan`] (folder
//!   → index), [`apply`] (a peer's entry → folder, safely), [`versions`]
//!   (kept versions and their retention), [`folders`] (the folder list and
//!   invites).
//! - On the network: [`protocol`] (`/cloudy/sync/1.0.0`), `source` (blocks
//!   from members), `runner` (a folder at work), [`service`] (the API the
//!   node uses). DESIGN/sync.md explains the design.

pub mod apply;
pub mod blocklist;
pub mod chunk;
mod config;
pub mod conflict;
pub mod decide;
mod errors;
pub mod fetch_error;
pub mod folder_state;
pub mod folders;
pub mod index;
pub mod path;
pub mod protocol;
mod runner;
pub mod scan;
pub mod service;
mod source;
pub mod versions;
pub mod vv;
