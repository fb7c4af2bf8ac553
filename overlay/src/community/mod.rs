//! Private communities: the community as the trust boundary.
//!
//! - [`cert`]: membership certificates and the chains that prove them;
//! - [`invites`]: the one-time invites an admin hands out;
//! - [`gate`]: the admission handshake on every connection;
//! - [`join`]: obtaining a certificate with an invite;
//! - [`store`]: the community files in a node's home.
//!
//! A node with no community files is in an open community: no handshake,
//! anyone who reaches a member may join (the behaviour before private
//! communities). See DESIGN/security.md.

pub mod cert;
pub mod gate;
pub mod invites;
pub mod join;
pub mod revoke;
pub mod store;

pub use cert::{Cert, CertError, Chain, Role};
pub use gate::{Gate, GateStatus};
pub use store::Store;
