//! The web UI: static files from `broker/ui/`, embedded in the binary at compile time
//! (`rust-embed`; a debug build reads them from disk so they can be edited live) and served
//! at `/`. The UI is a client of the same API as every other tool.

use axum::Router;
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::Api;

#[derive(rust_embed::RustEmbed)]
#[folder = "ui/"]
struct Assets;

pub fn routes() -> Router<Api> {
    Router::new().route("/", get(index))
}

async fn index() -> Response {
    serve("index.html")
}

/// Any path the API does not route: a UI file for a GET, else RabbitMQ's 404.
pub async fn fallback(method: Method, uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    if method == Method::GET && !path.starts_with("api/") {
        return serve(path);
    }
    super::error::not_found().await.into_response()
}

fn serve(path: &str) -> Response {
    match Assets::get(path) {
        Some(file) => {
            let mime = match path.rsplit('.').next() {
                Some("html") => "text/html; charset=utf-8",
                Some("js") => "text/javascript; charset=utf-8",
                Some("css") => "text/css; charset=utf-8",
                Some("svg") => "image/svg+xml",
                Some("png") => "image/png",
                Some("ico") => "image/x-icon",
                Some("json") => "application/json",
                _ => "application/octet-stream",
            };
            (
                [
                    (header::CONTENT_TYPE, mime),
                    (header::CACHE_CONTROL, "no-cache"),
                ],
                file.data,
            )
                .into_response()
        }
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(serde_json::json!({"error": "Object Not Found", "reason": "Not Found"})),
        )
            .into_response(),
    }
}
