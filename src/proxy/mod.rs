//! Everything between the gateway and an upstream: the pooled client, header hygiene and the
//! streaming bodies.

mod body;
mod client;
mod connector;
pub mod headers;
pub mod identity;
pub mod upgrade;

pub use body::{BodyTooLarge, RequestBody, ResponseBody};
pub use client::{UpstreamClient, UpstreamError};
pub use identity::IdentityHeaders;
