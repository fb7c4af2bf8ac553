//! Scenarios across real `cloudy-p2p` processes: on 127.0.0.1 (membership,
//! storage, sync, streaming) and on a testbed of network namespaces with
//! slow, lossy links (`lossy`). One test binary, so one link.
#![allow(clippy::unwrap_used)] // test and benchmark code: a failed unwrap is a failed run

mod community;
mod dashboard;
mod demo;
mod filesystem;
mod hostile;
mod js;
mod lossy;
mod membership;
mod player;
mod storage;
mod stream;
mod sync;
