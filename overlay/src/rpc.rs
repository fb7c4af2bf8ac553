//! Small service requests over [`crate::protocols::RPC`], routed by service
//! name to the inbox the service registered in [`Routes`].
//!
//! For control messages only (request-response with CBOR caps requests at
//! 1 MiB and responses at 10 MiB); bulk data goes over streams
//! ([`crate::Handle::stream_control`]).

use libp2p::PeerId;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use tokio::sync::{mpsc, oneshot};

/// A request on the wire.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RpcRequest {
    /// Name of the service it is for.
    pub service: String,
    /// Service-defined payload.
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
}

/// A response on the wire.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum RpcResponse {
    /// The service answered.
    Ok(#[serde(with = "serde_bytes")] Vec<u8>),
    /// No such service on that node.
    NoSuchService(String),
    /// The service's inbox is full; try later or elsewhere.
    Busy,
    /// The service dropped the request without answering.
    Dropped,
}

/// An inbound request handed to a service.
#[derive(Debug)]
pub struct InboundRequest {
    /// Who asked.
    pub peer: PeerId,
    /// The payload.
    pub body: Vec<u8>,
    /// Where the answer goes; dropping it answers [`RpcResponse::Dropped`].
    pub reply: oneshot::Sender<Vec<u8>>,
}

/// Service name → inbox; given to the overlay before it starts.
#[derive(Debug, Default)]
pub struct Routes(pub(crate) HashMap<String, mpsc::Sender<InboundRequest>>);

impl Routes {
    /// Routes requests for `service` to a new bounded inbox of `capacity`.
    pub fn add(&mut self, service: &str, capacity: usize) -> mpsc::Receiver<InboundRequest> {
        let (tx, rx) = mpsc::channel(capacity);
        self.0.insert(service.to_string(), tx);
        rx
    }
}
