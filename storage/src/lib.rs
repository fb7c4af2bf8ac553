//! Storage for cloudy-p2p: a Tahoe-like grid of encrypted, erasure-coded
//! immutable files, reached through capabilities.
//!
//! # Layout
//! - Pure data path (no I/O), done: [`crypt`] (chacha20poly1305 per segment,
//!   convergent keys, storage index), [`erasure`] (codec interface, Reed-
//!   Solomon without SIMD), [`root`] (root record, block-hash lists),
//!   [`coding`] (streaming [`coding::Encoder`] / [`coding::Decoder`]),
//!   [`capability`] (read, verify and literal capabilities),
//!   [`placement`] (permuted ring + locality scores + zones, happiness).
//! - Share storage: [`store`] — the `ShareStore` trait, `MemStore` twin and
//!   `FsStore` (atomic writes, SQLite index, capacity).
//! - Wire protocol: [`protocol`] (`/cloudy/storage/1.0.0` frames) and its
//!   server side [`server::serve`], which runs a session on any byte stream.
//! - Network: [`service::start`] serves a store on overlay streams and
//!   announces it; [`client::Client`] uploads (placement, fallback to spare
//!   servers, happiness) and downloads (holders asked in parallel, blocks
//!   verified, switching share when a holder fails or serves corruption).
//! - Upkeep: [`upkeep`] keeps a list of maintained files (verify
//!   capabilities) and checks and repairs them on its own.
//!
//! Depends only on `cloudy-overlay`.
//!
//! ```
//! use cloudy_storage::coding::{Encoder, Decoder, Params};
//! use cloudy_storage::capability::ReadCap;
//! let p = Params { k: 2, n: 3, segment_size: 4 };
//! let mut enc = Encoder::new([7; 32], p, 5).unwrap();
//! let seg0 = enc.push(b"hell").unwrap();
//! let seg1 = enc.push(b"o").unwrap();
//! let (record, hashes) = enc.finish().unwrap();
//! let cap = ReadCap { key: [7; 32], root: record.hash(), k: 2, n: 3, size: 5 };
//! let mut dec = Decoder::for_read(&cap, &record.encode()).unwrap();
//! for s in [0, 2] { dec.accept_hashes(s, hashes[s].clone()).unwrap(); }
//! let a = dec.plaintext(0, vec![(0, seg0[0].clone()), (2, seg0[2].clone())]).unwrap();
//! let b = dec.plaintext(1, vec![(0, seg1[0].clone()), (2, seg1[2].clone())]).unwrap();
//! assert_eq!([a, b].concat(), b"hello");
//! ```

pub mod capability;
pub mod client;
pub mod coding;
pub mod crypt;
pub mod dirs;
pub mod erasure;
mod error;
pub mod mutable;
pub mod placement;
pub mod protocol;
pub mod root;
pub mod server;
pub mod service;
pub mod store;
pub mod upkeep;

pub use error::CodingError;
