//! Video on demand: a file cut into pieces named by a blake3 root
//! ([`manifest`]), held in a cache ([`cache`]), fetched from and served to
//! other members over `/cloudy/vod/1.0.0` ([`protocol`], [`service`]).

pub mod cache;
pub mod manifest;
pub mod pick;
pub mod probe;
pub mod protocol;
pub mod service;
