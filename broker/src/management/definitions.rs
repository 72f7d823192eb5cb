//! `/api/definitions` and `/api/definitions/{vhost}`: export (`GET`) and import (`POST`) of
//! RabbitMQ's definitions document, for administrators. The document itself (its DTOs, the
//! export, and the checked all-or-nothing import) lives in `crate::definitions`; this module
//! is the HTTP shape around it, with RabbitMQ 3.10's status codes and error texts:
//!
//! - `GET` answers the document; `?download=NAME` adds `Content-Disposition: attachment`.
//!   A vhost's document has no users, vhosts or permissions and its objects no `vhost`; an
//!   unknown vhost there is `400 vhost_not_found` (RabbitMQ's answer, not a 404).
//! - `POST` takes `application/json`, or a `multipart/form-data` upload with the document
//!   in the `file` field (RabbitMQ's UI form; a `redirect` field makes the answer `303`
//!   to it). Anything else is `415`. A body that is not a JSON object is
//!   `400 failed_to_parse_json`; an invalid document `400 bad_request` with the reason, and
//!   nothing imported; success `204`. An unknown vhost is `404 vhost_not_found`.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Api;
use super::auth::Auth;
use super::error::{ApiError, ApiResult};
use crate::definitions::{Export, ImportError, ImportOptions, export_with, import_with};

pub fn routes() -> Router<Api> {
    Router::new()
        .route("/api/definitions", get(export_all).post(import_all))
        .route(
            "/api/definitions/{vhost}",
            get(export_vhost).post(import_vhost),
        )
}

/// `?download=NAME`.
#[derive(Debug, Default, Deserialize)]
struct ExportQuery {
    download: Option<String>,
}

async fn export_all(
    State(api): State<Api>,
    auth: Auth,
    Query(q): Query<ExportQuery>,
) -> ApiResult<Response> {
    auth.require_admin()?;
    let doc = serde_json::to_value(export_with(&api.node, Export::Api))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(document(doc, q.download.as_deref()))
}

async fn export_vhost(
    State(api): State<Api>,
    auth: Auth,
    Path(vhost): Path<String>,
    Query(q): Query<ExportQuery>,
) -> ApiResult<Response> {
    auth.require_admin()?;
    if api.node.vhost(&vhost).is_none() {
        return Err(ApiError::bad_request("vhost_not_found"));
    }
    let all = serde_json::to_value(export_with(&api.node, Export::Api))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let of_vhost = |key: &str| -> Value {
        let items = all[key].as_array().map(Vec::as_slice).unwrap_or_default();
        items
            .iter()
            .filter(|item| item["vhost"] == vhost.as_str())
            .map(|item| {
                let mut item = item.clone();
                if let Value::Object(m) = &mut item {
                    m.remove("vhost");
                }
                item
            })
            .collect()
    };
    let doc = json!({
        "rabbit_version": all["rabbit_version"],
        "parameters": [],
        "policies": [],
        "queues": of_vhost("queues"),
        "exchanges": of_vhost("exchanges"),
        "bindings": of_vhost("bindings"),
    });
    Ok(document(doc, q.download.as_deref()))
}

/// The JSON answer, as an attachment named `download` when asked.
fn document(doc: Value, download: Option<&str>) -> Response {
    let mut resp = axum::Json(doc).into_response();
    if let Some(name) = download
        && let Ok(v) = HeaderValue::from_str(&format!("attachment; filename={name}"))
    {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    resp
}

async fn import_all(
    State(api): State<Api>,
    auth: Auth,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    auth.require_admin()?;
    let upload = upload(&headers, &body)?;
    apply(&api, &auth, None, upload)
}

async fn import_vhost(
    State(api): State<Api>,
    auth: Auth,
    Path(vhost): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    auth.require_admin()?;
    let upload = upload(&headers, &body)?;
    if api.node.vhost(&vhost).is_none() {
        return Err(ApiError {
            status: StatusCode::NOT_FOUND,
            error: "not_found",
            reason: "vhost_not_found".into(),
        });
    }
    apply(&api, &auth, Some(vhost), upload)
}

/// The document of a `POST`, and where to redirect afterwards (a form's `redirect` field).
#[derive(Debug)]
struct Upload {
    doc: Value,
    redirect: Option<String>,
}

/// Reads the document from a JSON body or a form upload.
fn upload(headers: &HeaderMap, body: &[u8]) -> ApiResult<Upload> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let (json, redirect) = match essence.as_str() {
        "application/json" => (Some(body), None),
        "multipart/form-data" => {
            let boundary = parameter(content_type, "boundary")
                .ok_or_else(|| ApiError::bad_request("multipart body without a boundary"))?;
            let parts = multipart_fields(body, &boundary);
            let field = |name: &str| parts.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
            let redirect = field("redirect").map(|r| String::from_utf8_lossy(r).into_owned());
            (field("file"), redirect)
        }
        _ => {
            return Err(ApiError {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                error: "unsupported_media_type",
                reason: format!(
                    "definitions are imported as application/json or a multipart/form-data \
                     upload (field 'file'), not '{content_type}'"
                ),
            });
        }
    };
    let failed = || ApiError::bad_request("failed_to_parse_json");
    let json = json.ok_or_else(failed)?;
    let doc = if json.iter().all(u8::is_ascii_whitespace) {
        // RabbitMQ imports an empty body as an empty document.
        json!({})
    } else {
        match serde_json::from_slice(json) {
            Ok(v @ Value::Object(_)) => v,
            _ => return Err(failed()),
        }
    };
    Ok(Upload { doc, redirect })
}

fn apply(api: &Api, auth: &Auth, vhost: Option<String>, upload: Upload) -> ApiResult<Response> {
    let options = ImportOptions {
        vhost,
        acting_user: Some(auth.0.name.clone()),
    };
    match import_with(&api.node, &upload.doc, &options) {
        Ok(()) => {}
        Err(ImportError::Invalid(reason) | ImportError::Apply(reason)) => {
            tracing::warn!(%reason, user = %auth.0.name, "definitions import refused");
            return Err(ApiError::bad_request(reason));
        }
        Err(ImportError::Store(e)) => return Err(ApiError::bad_request(e.to_string())),
    }
    Ok(
        match upload.redirect.and_then(|r| HeaderValue::from_str(&r).ok()) {
            Some(to) => (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response(),
            None => StatusCode::NO_CONTENT.into_response(),
        },
    )
}

/// A parameter of a header value (`boundary` of `multipart/form-data; boundary=…`).
fn parameter(value: &str, name: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().trim_matches('"').to_owned())
    })
}

/// The named fields of a `multipart/form-data` body (RFC 7578): `(name, content)` per part.
/// Parts without a name, and a malformed tail, are skipped.
fn multipart_fields<'a>(body: &'a [u8], boundary: &str) -> Vec<(String, &'a [u8])> {
    let delimiter = format!("--{boundary}");
    let delimiter = delimiter.as_bytes();
    let mut fields = Vec::new();
    let mut rest = match find(body, delimiter) {
        Some(at) => &body[at + delimiter.len()..],
        None => return fields,
    };
    // Each part: CRLF, headers, CRLF CRLF, content, CRLF, delimiter.
    while let Some(after) = rest.strip_prefix(b"\r\n") {
        let Some(end) = find(after, delimiter) else {
            break;
        };
        let part = &after[..end];
        rest = &after[end + delimiter.len()..];
        let Some(split) = find(part, b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&part[..split]);
        let content = &part[split + 4..];
        let content = content.strip_suffix(b"\r\n").unwrap_or(content);
        let name = head
            .lines()
            .filter(|l| l.to_ascii_lowercase().starts_with("content-disposition:"))
            .find_map(|l| parameter(l, "name"));
        if let Some(name) = name {
            fields.push((name, content));
        }
    }
    fields
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_upload_fields() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"d.json\"\r\nContent-Type: application/json\r\n\r\n{\"vhosts\":[]}\r\n--XyZ\r\nContent-Disposition: form-data; name=\"redirect\"\r\n\r\n../#/\r\n--XyZ--\r\n";
        let fields = multipart_fields(body, "XyZ");
        assert_eq!(
            fields,
            vec![
                ("file".to_owned(), &b"{\"vhosts\":[]}"[..]),
                ("redirect".to_owned(), &b"../#/"[..])
            ]
        );
        assert_eq!(
            parameter("multipart/form-data; boundary=\"XyZ\"", "boundary"),
            Some("XyZ".into())
        );
        assert!(multipart_fields(b"garbage", "XyZ").is_empty());
        assert!(multipart_fields(b"--XyZ\r\nno end", "XyZ").is_empty());
    }

    #[test]
    fn uploads_by_content_type() {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert_eq!(
            upload(&h, b"{}").expect_err("415").status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        assert_eq!(upload(&h, b"").expect("empty").doc, json!({}));
        for bad in [&b"[]"[..], b"nope", b"\"x\""] {
            assert_eq!(
                upload(&h, bad).expect_err("not an object").reason,
                "failed_to_parse_json"
            );
        }
    }
}
