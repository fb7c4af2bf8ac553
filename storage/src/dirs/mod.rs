//! Directories on the grid (see `DESIGN/filesystem.md`): each writer of a
//! directory appends operations to its own log, kept in its own slot of
//! the directory's storage index; readers merge all the logs
//! ([`merge::merge`]), so writers never overwrite each other.

pub mod deep;
pub mod grid;
pub mod merge;
pub mod ops;
pub mod paths;
mod update;

pub use deep::{DeepReport, Problem};
pub use grid::{Change, Child, DirError, Dirs, Listing};
pub use merge::{merge, Listed};
pub use ops::{valid_name, Action, Entry, Kind, Log, Op, OpId};
pub use paths::{split, NewEntry};
