//! Mutable files and the slots they are made of (pure logic; the network
//! side is in [`crate::client`]).
//!
//! A mutable file is a signed, versioned *slot* on `n` servers whose sealed
//! payload names the current contents: a literal or an immutable (CHK)
//! file, encrypted and erasure-coded as every file is. Changing the file
//! uploads the new contents and signs the slot's next version. See
//! `DESIGN/filesystem.md`.

pub mod keys;
pub mod slot;

pub use keys::{OpenError, ReadKey, VerifyKey, WriteKey};
pub use slot::{Slot, SlotError, FILE_WRITER};
