//! The one list of endpoints: the router mounts exactly these, and
//! `/openapi.json` describes exactly these, so the two cannot drift apart.

use axum::extract::State;
use axum::routing::{get, post};
use axum::Json;
use serde_json::Value;

pub use super::endpoint::{Access, Endpoint};
use super::state::AppState;
use super::{classify, compat, health, models, openapi, page, reviews, stats};

pub static ENDPOINTS: &[Endpoint] = &[
    Endpoint {
        method: "post",
        path: "/v1/classify",
        summary: "Classify texts now: `{\"texts\": [...]}` or `{\"text\": \"...\"}`; they go before the stream's backlog",
        access: Access::Api,
        request: Some("ClassifyRequest"),
        responses: &[(200, "ClassifyResponse")],
        handler: || post(classify::classify_handler),
    },
    Endpoint {
        method: "get",
        path: "/v1/reviews/{id}",
        summary: "The stored result of one review (404 if none)",
        access: Access::Api,
        request: None,
        responses: &[(200, "StoredReview"), (404, "Error")],
        handler: || get(reviews::get_review),
    },
    Endpoint {
        method: "get",
        path: "/v1/reviews",
        summary: "Stored results, newest first; `label`, `below` (top score under it: the review queue), `limit` (1-500, default 50), `before` (the `next` cursor of the previous page)",
        access: Access::Api,
        request: None,
        responses: &[(200, "ReviewPage")],
        handler: || get(reviews::list_reviews),
    },
    Endpoint {
        method: "get",
        path: "/v1/stats",
        summary: "Counts by label, results in the last minute, consumer lag",
        access: Access::Api,
        request: None,
        responses: &[(200, "Stats")],
        handler: || get(stats::stats_handler),
    },
    Endpoint {
        method: "get",
        path: "/v1/models",
        summary: "The loaded models (primary, shadow), what each scored since loaded, and the rolling agreement and label shares",
        access: Access::Api,
        request: None,
        responses: &[(200, "Models")],
        handler: || get(models::list_models),
    },
    Endpoint {
        method: "get",
        path: "/v1/models/compare",
        summary: "Two models over the reviews both scored: `a`, `b`, `since`; agreement, confusion matrix, label shares",
        access: Access::Api,
        request: None,
        responses: &[(200, "Comparison"), (404, "Error")],
        handler: || get(models::compare),
    },
    Endpoint {
        method: "post",
        path: "/v1/admin/models/primary",
        summary: "Hot swap: load `{\"dir\": ...}` beside the primary, check it, and make it the primary",
        access: Access::Admin,
        request: Some("SwapRequest"),
        responses: &[(200, "ModelChange"), (422, "Error")],
        handler: || post(models::swap_primary),
    },
    Endpoint {
        method: "post",
        path: "/v1/admin/models/promote",
        summary: "Make the shadow the primary and the primary the shadow (call again to roll back)",
        access: Access::Admin,
        request: None,
        responses: &[(200, "ModelChange"), (409, "Error")],
        handler: || post(models::promote),
    },
    Endpoint {
        method: "post",
        path: "/encode",
        summary: "bert-base serving API (CLASS mode): `{\"id\", \"texts\", \"is_tokenized\"}`",
        access: Access::Api,
        request: Some("EncodeRequest"),
        responses: &[(200, "EncodeResponse")],
        handler: || post(compat::encode_handler),
    },
    Endpoint {
        method: "post",
        path: "/api/v0.1/query",
        summary: "The original demo API: form field (or JSON) `text`, one sentence per line",
        access: Access::Api,
        request: Some("QueryRequest"),
        responses: &[(200, "QueryResponse")],
        handler: || post(compat::query_handler),
    },
    Endpoint {
        method: "get",
        path: "/",
        summary: "The web page",
        access: Access::Public,
        request: None,
        responses: &[(200, "text/html")],
        handler: || get(page::index),
    },
    Endpoint {
        method: "get",
        path: "/static/{file}",
        summary: "The web page's script and style sheet",
        access: Access::Public,
        request: None,
        responses: &[(200, "text/plain"), (404, "Error")],
        handler: || get(page::asset),
    },
    Endpoint {
        method: "get",
        path: "/healthz",
        summary: "Liveness: the process answers",
        access: Access::Public,
        request: None,
        responses: &[(200, "text/plain")],
        handler: || get(health::healthz),
    },
    Endpoint {
        method: "get",
        path: "/readyz",
        summary: "Readiness: model loaded, Kafka and Postgres reachable (503 if not)",
        access: Access::Public,
        request: None,
        responses: &[(200, "Ready"), (503, "Ready")],
        handler: || get(health::readyz),
    },
    Endpoint {
        method: "get",
        path: "/metrics",
        summary: "Prometheus metrics",
        access: Access::Public,
        request: None,
        responses: &[(200, "text/plain")],
        handler: || get(health::metrics),
    },
    Endpoint {
        method: "get",
        path: "/openapi.json",
        summary: "This description",
        access: Access::Public,
        request: None,
        responses: &[(200, "application/json")],
        handler: || get(openapi_handler),
    },
];

async fn openapi_handler(State(state): State<AppState>) -> Json<Value> {
    Json(openapi::document(ENDPOINTS, state.models.primary().id()))
}
