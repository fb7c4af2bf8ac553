//! Live channels and video on demand for cloudy-p2p. Depends only on
//! `cloudy-overlay` and reaches the network through `overlay::Handle`.
//!
//! Pure and tested without sockets: [`ts`] (just enough MPEG-TS),
//! [`cutter`] (a live stream into chunks that start where a player can),
//! [`chunk`] (signed chunks of a channel), [`playout`] (chunks back in
//! order for a player, skipping what is late), [`window`] (buffer maps and
//! what to ask which neighbour), `live::state` (the mesh logic of one
//! channel) and `vod::manifest`. I/O: `live::{session, task, publish}`,
//! [`service`] (live channels) and `vod::service` (video on demand).
//! DESIGN/streaming.md holds the design.

pub mod chunk;
pub mod cutter;
pub mod live;
pub mod playout;
pub mod protocol;
pub mod service;
pub mod ts;
pub mod vod;
pub mod window;
