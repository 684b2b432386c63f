//! The HTTP side of the worker: synchronous classification (joining the
//! batcher's HTTP lane), the results table, stats, the old APIs, the web page,
//! health, readiness, metrics and the OpenAPI description.
//!
//! - [`routes`]: the one list of endpoints (router and OpenAPI both read it);
//!   [`server`] mounts and serves it;
//! - [`guard`]: tokens, rate limits, concurrency bound, timeout; [`client`]: who a client is;
//! - [`extract`] and [`error`]: bodies in, refusals out (always JSON, one table of them);
//! - [`classify`], [`reviews`], [`stats`], [`models`], [`compat`], [`page`],
//!   [`health`], [`openapi`]: the endpoints; [`state`]: what they share; [`readiness`]:
//!   the background probe `/readyz` reads.
//!
//! Dependencies point one way: `server` → `routes` → handlers → `state`,
//! `extract`, `error`; no handler imports this file.

pub mod classify;
pub mod client;
pub mod compat;
pub mod endpoint;
pub mod error;
pub mod extract;
pub mod guard;
pub mod health;
pub mod models;
pub mod openapi;
pub mod page;
pub mod readiness;
pub mod reviews;
pub mod routes;
pub mod server;
pub mod state;
pub mod stats;

pub use server::{router, serve};
pub use state::AppState;
