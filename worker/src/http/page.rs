//! The web page, compiled into the binary (no build step, no files to ship).

use axum::extract::Path;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};

use super::error::ApiError;

const INDEX: &str = include_str!("../../static/index.html");
const ASSETS: &[(&str, &str, &str)] = &[
    ("app.js", "text/javascript; charset=utf-8", include_str!("../../static/app.js")),
    ("style.css", "text/css; charset=utf-8", include_str!("../../static/style.css")),
];

pub async fn index() -> Html<&'static str> {
    Html(INDEX)
}

pub async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, body)) => {
            ([(header::CONTENT_TYPE, *content_type), (header::CACHE_CONTROL, "no-cache")], *body).into_response()
        }
        None => ApiError::NotFound(format!("no asset {file:?}")).into_response(),
    }
}
