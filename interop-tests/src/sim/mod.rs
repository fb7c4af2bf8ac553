//! Simulations of the project's own logic at community scale (issue 21):
//! durability of stored files under Guifi-like churn, and membership and
//! failure detection from 100 to 10,000 nodes.

pub mod durability;
pub mod membership;
pub mod plot;
pub mod wire;
