//! Errors as RabbitMQ's management plugin answers them: a status code and a JSON body
//! `{"error": ..., "reason": ...}` (`rabbit_mgmt_util.erl`). Also the JSON body extractor that
//! turns unparsable input into `400 {"error":"bad_request","reason":"not_json"}`, and the
//! lenient field readers RabbitMQ's body decoding implies (`"true"` is a boolean, `[]` is an
//! empty argument table, missing keys are listed as `[{key_missing,k}]`).

use axum::Json;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

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

    /// RabbitMQ's `401 not_authorised` for a user who logged in but may not do this (`Not
    /// administrator user`, `Not management user`…). No `www-authenticate`: logging in again
    /// would not help.
    pub fn unauthorized(reason: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            error: "not_authorised",
            reason: reason.into(),
        }
    }

    /// RabbitMQ's `401 not_authorized` `Login failed` for wrong credentials, with a
    /// `www-authenticate` challenge.
    pub fn login_failed() -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            error: NOT_AUTHENTICATED,
            reason: "Login failed".into(),
        }
    }

    /// A request without credentials: RabbitMQ answers a bare 401 challenge, no body.
    pub fn credentials_required() -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            error: NO_BODY,
            reason: String::new(),
        }
    }

    /// `400 bad_request` carrying an AMQP error's detail, as RabbitMQ answers a declare that
    /// fails (`inequivalent arg 'durable' …`: the text without its `PRECONDITION_FAILED - `).
    pub fn from_amqp(e: impl Into<AmqpException>) -> Self {
        let e = e.into();
        let (code, text) = match &e {
            AmqpException::Channel(c) => (c.code, c.text.as_str()),
            AmqpException::Connection(c) => (c.code, c.text.as_str()),
        };
        match code {
            404 => Self::not_found(),
            // RabbitMQ hides the reason of an `access_refused`.
            403 => Self::unauthorized("Access refused."),
            _ => Self::bad_request(text.split_once(" - ").map_or(text, |(_, detail)| detail)),
        }
    }

    /// `400` naming the keys a body lacks, in RabbitMQ's words and order:
    /// `[{key_missing,ackmode},{key_missing,count}]`. `keys` pairs each required key with
    /// whether the body has it.
    pub fn require_keys(keys: &[(&str, bool)]) -> Result<(), Self> {
        let missing: Vec<String> = keys
            .iter()
            .filter(|(_, present)| !present)
            .map(|(k, _)| format!("{{key_missing,{k}}}"))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(Self::bad_request(format!("[{}]", missing.join(","))))
        }
    }
}

/// The `error` of a failed login, which comes with a `www-authenticate` challenge.
const NOT_AUTHENTICATED: &str = "not_authorized";

/// An `error` that means: answer the status alone, with no body.
const NO_BODY: &str = "";

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = if self.error == NO_BODY {
            self.status.into_response()
        } else {
            (
                self.status,
                Json(json!({"error": self.error, "reason": self.reason})),
            )
                .into_response()
        };
        if self.status == StatusCode::UNAUTHORIZED
            && (self.error == NOT_AUTHENTICATED || self.error == NO_BODY)
        {
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

/// RabbitMQ's `parse_bool` for the flags of a declare (`durable`, `auto_delete`,
/// `internal`): a JSON boolean or the strings `"true"`/`"false"`, which rabbitmqadmin v1
/// sends. Use with `#[serde(default, deserialize_with = "flag")]` on an `Option<bool>`.
pub fn flag<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(b)),
        Some(Value::String(s)) if s == "true" => Ok(Some(true)),
        Some(Value::String(s)) if s == "false" => Ok(Some(false)),
        Some(other) => Err(serde::de::Error::custom(format!("not_boolean: {other}"))),
    }
}

/// A declare's or binding's `arguments`: an object, or `[]`/`null` for none (RabbitMQ reads
/// an empty JSON list as an empty Erlang proplist). Use with
/// `#[serde(default, deserialize_with = "arguments")]`.
pub fn arguments<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Map<String, Value>, D::Error> {
    match Value::deserialize(d)? {
        Value::Object(m) => Ok(m),
        Value::Null => Ok(Map::new()),
        Value::Array(a) if a.is_empty() => Ok(Map::new()),
        other => Err(serde::de::Error::custom(format!(
            "arguments must be an object, got {other}"
        ))),
    }
}
