//! Live channels and video on demand for cloudy-p2p (issue 5, in
//! progress). Depends only on `cloudy-overlay` and reaches the network
//! through `overlay::Handle`.
//!
//! Built so far, pure and tested without sockets: [`ts`] (just enough
//! MPEG-TS), [`cutter`] (a live stream into chunks that start where a
//! player can), [`chunk`] (signed chunks of a channel), [`playout`] (chunks
//! back in order for a player, skipping what is late), [`window`] (buffer
//! maps and what to ask which neighbour). DESIGN/streaming.md
//! holds the design and what is still planned.

pub mod chunk;
pub mod cutter;
pub mod live;
pub mod playout;
pub mod protocol;
pub mod service;
pub mod ts;
pub mod vod;
pub mod window;
