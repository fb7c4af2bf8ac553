//! The local control API: [`api`] types, the [`server`] the node runs and the
//! [`client`] the CLI uses.

pub mod api;
mod catalogue;
pub mod client;
mod community;
mod community_gate;
mod convert;
mod dav;
pub mod dht;
mod drain;
mod gateway;
pub mod metrics;
mod player;
mod range;
mod sync;
pub use sync::ConflictCache;
pub mod server;
mod state;
mod streams;
mod tree;
mod tree_html;
pub mod ui;
mod upkeep;
mod usage;
mod vod;
