//! Simulations of the project's own logic at community scale (issue 21):
//! durability of stored files under Guifi-like churn.

pub mod durability;
pub mod plot;
