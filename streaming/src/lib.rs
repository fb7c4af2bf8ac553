//! The streaming service of cloudy-p2p. Empty until its issue lands; it will depend
//! only on `cloudy-overlay` and reach the network through `overlay::Handle`.
