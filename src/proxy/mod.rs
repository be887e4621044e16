//! Everything between the gateway and an upstream: the pooled clients, each route's endpoints
//! with balancing, retries and health checks, header hygiene and the streaming bodies.

mod body;
mod client;
mod connector;
mod dispatch;
pub mod headers;
mod health;
pub mod identity;
mod pool;
pub mod upgrade;

pub use body::{BodyTooLarge, RequestBody, ResponseBody};
pub use client::{UpstreamClient, UpstreamError};
pub use identity::IdentityHeaders;
pub use pool::UpstreamPool;
