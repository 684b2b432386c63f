//! What describes an endpoint: the router mounts it and `/openapi.json`
//! describes it from the same [`Endpoint`] (the list is in `routes`).

use axum::routing::MethodRouter;

use super::state::AppState;

/// Who may call an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Bearer token (when configured), rate limit, concurrency bound, timeout.
    Api,
    /// As `Api`, but only admin tokens open it (and none configured: 403).
    Admin,
    /// Always open: the page, its assets, health checks, metrics, the API description.
    Public,
}

pub struct Endpoint {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    pub access: Access,
    /// Schema name of the JSON body (see `openapi`), if any.
    pub request: Option<&'static str>,
    /// Status and schema name (or a media type for non-JSON answers). The
    /// refusals any API endpoint may give come from `error::ERRORS`.
    pub responses: &'static [(u16, &'static str)],
    pub handler: fn() -> MethodRouter<AppState>,
}
