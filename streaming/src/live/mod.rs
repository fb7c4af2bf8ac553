//! Live channels: the mesh logic ([`state`], pure), what it measures
//! ([`stats`]), and the tasks that run it over QUIC streams.

pub mod publish;
pub mod session;
#[cfg(test)]
mod sim_tests;
pub mod state;
pub mod stats;
pub mod task;
