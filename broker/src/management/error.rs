//! Errors as RabbitMQ's management plugin answers them: a status code and a JSON body
//! `{"error": ..., "reason": ...}` (`rabbit_mgmt_util.erl`). Also the JSON body extractor that
//! turns unparsable input into `400 {"error":"bad_request","reason":"not_json"}`.

use axum::Json;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::error::AmqpException;

/// A failed API call.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub error: &'static str,
    pub reason: String,
}

/// What handlers return.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// `400 bad_request`.
    pub fn bad_request(reason: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error: "bad_request",
            reason: reason.into(),
        }
    }

    /// RabbitMQ's 404 for a missing object: `{"error":"Object Not Found","reason":"Not Found"}`.
    pub fn not_found() -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            error: "Object Not Found",
            reason: "Not Found".into(),
        }
    }

    /// `401 not_authorized` with RabbitMQ's reason (`Login failed`, `Not management user`…).
    pub fn unauthorized(reason: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            error: "not_authorized",
            reason: reason.into(),
        }
    }

    /// `400 bad_request` carrying an AMQP error's text, as RabbitMQ answers a declare that
    /// fails (e.g. `inequivalent arg 'durable' …`).
    pub fn from_amqp(e: impl Into<AmqpException>) -> Self {
        let e = e.into();
        let (code, text) = match &e {
            AmqpException::Channel(c) => (c.code, c.text.clone()),
            AmqpException::Connection(c) => (c.code, c.text.clone()),
        };
        match code {
            404 => Self::not_found(),
            _ => Self::bad_request(text),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (
            self.status,
            Json(json!({"error": self.error, "reason": self.reason})),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"RabbitMQ Management\""),
            );
        }
        resp
    }
}

/// The fallback for paths the API does not have.
pub async fn not_found() -> ApiError {
    ApiError::not_found()
}

/// A JSON request body; anything that does not parse is RabbitMQ's `400 not_json`, and a
/// body that parses but has the wrong shape is `400` with serde's explanation.
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<S, T> FromRequest<S> for Body<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::bad_request(e.body_text()))?;
        let text = if bytes.iter().all(u8::is_ascii_whitespace) {
            // RabbitMQ treats an empty body as an empty object (`PUT /api/vhosts/x`).
            &b"{}"[..]
        } else {
            &bytes[..]
        };
        let value: serde_json::Value =
            serde_json::from_slice(text).map_err(|_| ApiError::bad_request("not_json"))?;
        serde_json::from_value(value)
            .map(Body)
            .map_err(|e| ApiError::bad_request(e.to_string()))
    }
}
