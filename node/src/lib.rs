//! The cloudy-p2p node: the composition root of the workspace.
//!
//! # Layout
//! - [`home`]: the home directory (identity, token, config, data).
//! - [`config`]: `config.toml`, with documented defaults.
//! - [`node`]: [`Node::start`] loads the home, binds the control API and
//!   spawns the overlay and services; [`Node::shutdown`] stops them in order.
//! - [`control`]: the local HTTP+JSON control API, its server and client.
//!
//! Dependency direction: `cli → node → {storage, sync, streaming} → overlay`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), cloudy_node::NodeError> {
//! let home = cloudy_node::Home::new("/tmp/cloudy-a");
//! home.init(&Default::default())?;
//! let node = cloudy_node::Node::start(&home).await?;
//! println!("API on {}", node.api_addr);
//! node.shutdown().await;
//! # Ok(()) }
//! ```

mod announcements;
pub mod community;
pub mod config;
pub mod control;
mod error;
pub mod home;
pub mod invite;
pub mod node;
pub mod process;
pub mod supervisor;
pub mod trees;

pub use config::NodeConfig;
pub use error::NodeError;
pub use home::{Home, InitOptions};
pub use node::Node;
