//! The management HTTP API client: one blocking `ureq` agent with HTTP Basic auth and the
//! global `--timeout`, paths built from percent-encoded segments (`/` in a vhost is `%2F`), and
//! the mapping of transport failures, 401 and 403 to `CtlError`. It knows HTTP, not commands:
//! every other status comes back as a `Reply` for the command to interpret, because the same
//! 404 means a different rabbitmqctl error (and exit code) to each command.

use std::io::ErrorKind;
use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

use crate::error::CtlError;

/// Bytes left as they are in a path segment: RFC 3986's unreserved characters. Everything else,
/// `/` above all, is percent-encoded so that a vhost `/` becomes `%2F`.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Largest response body read. A full `/api/queues` of 100 000 queues is well under this; the
/// limit only stops a misdirected `--url` from filling memory.
const MAX_BODY: u64 = 1 << 30;

/// `s` as one percent-encoded URL path segment.
pub fn segment(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// A connection to one management API.
#[derive(Debug)]
pub struct Client {
    agent: ureq::Agent,
    /// `http://host:port`, no trailing slash; paths start with `/api/...`.
    base: String,
    /// `Basic base64(user:password)`, computed once.
    authorization: String,
    /// For error messages.
    username: String,
    /// For error messages ("timeout value used").
    timeout: Duration,
}

/// What the API answered: any HTTP status except 401/403, which `Client` turns into errors.
#[derive(Debug)]
pub struct Reply {
    status: u16,
    body: Vec<u8>,
    /// `GET /api/queues/%2F/q`, for error messages.
    request: String,
}

#[derive(Clone, Copy, Debug)]
enum Method {
    Get,
    Put,
    Post,
    Delete,
}

impl Client {
    /// A client for the API at `url` (`http://host:port`, an optional path prefix allowed).
    pub fn new(
        url: &str,
        username: &str,
        password: &str,
        timeout: Duration,
    ) -> Result<Self, CtlError> {
        let base = url.trim_end_matches('/');
        if base.starts_with("https://") {
            return Err(CtlError::Usage(format!(
                "--url {url}: this build of brokerctl speaks plain HTTP only; \
                 use an http:// URL (for example through a local TLS-terminating proxy)"
            )));
        }
        if !base.starts_with("http://") || base.len() == "http://".len() {
            return Err(CtlError::Usage(format!(
                "--url {url} is not an http:// URL; pass the management API's base URL, \
                 for example --url http://localhost:15672"
            )));
        }
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .build();
        Ok(Client {
            agent: config.into(),
            base: base.to_owned(),
            authorization: format!(
                "Basic {}",
                base64(format!("{username}:{password}").as_bytes())
            ),
            username: username.to_owned(),
            timeout,
        })
    }

    /// The API's base URL, as given.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The host part of the base URL, for TCP checks of the node's other listeners.
    pub fn host(&self) -> Option<String> {
        url_host(&self.base)
    }

    /// The request timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub fn get(&self, path: &str) -> Result<Reply, CtlError> {
        self.send(Method::Get, path, None, None)
    }

    pub fn put(&self, path: &str, body: &Value) -> Result<Reply, CtlError> {
        self.send(Method::Put, path, Some(body.to_string().into_bytes()), None)
    }

    /// POSTs a body that is already JSON text (a definitions file is sent as read).
    pub fn post_raw(&self, path: &str, body: Vec<u8>) -> Result<Reply, CtlError> {
        self.send(Method::Post, path, Some(body), None)
    }

    pub fn delete(&self, path: &str) -> Result<Reply, CtlError> {
        self.send(Method::Delete, path, None, None)
    }

    /// DELETE with RabbitMQ's `X-Reason` header (closing a connection).
    pub fn delete_with_reason(&self, path: &str, reason: &str) -> Result<Reply, CtlError> {
        self.send(Method::Delete, path, None, Some(reason))
    }

    fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        reason: Option<&str>,
    ) -> Result<Reply, CtlError> {
        let url = format!("{}{path}", self.base);
        let request = format!("{} {path}", method.name());
        let auth = self.authorization.as_str();
        let result = match method {
            Method::Get => self.agent.get(&url).header("authorization", auth).call(),
            Method::Delete => {
                let builder = self.agent.delete(&url).header("authorization", auth);
                match reason {
                    Some(reason) => builder.header("x-reason", reason).call(),
                    None => builder.call(),
                }
            }
            Method::Put | Method::Post => {
                let builder = match method {
                    Method::Put => self.agent.put(&url),
                    _ => self.agent.post(&url),
                };
                builder
                    .header("authorization", auth)
                    .content_type("application/json")
                    .send(body.unwrap_or_default())
            }
        };
        let mut response = result.map_err(|e| self.transport_error(e, &request))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_vec()
            .map_err(|e| self.transport_error(e, &request))?;
        let reply = Reply {
            status,
            body,
            request,
        };
        match status {
            401 => Err(CtlError::Unavailable(format!(
                "the management API at {} refused the credentials of user '{}' ({}); \
                 pass --username and --password, or set RABBITMQ_DEFAULT_USER and \
                 RABBITMQ_DEFAULT_PASS",
                self.base,
                self.username,
                reply.reason()
            ))),
            403 => Err(CtlError::Unavailable(format!(
                "user '{}' may not {} ({}); use a user with the administrator tag",
                self.username,
                reply.request,
                reply.reason()
            ))),
            _ => Ok(reply),
        }
    }

    fn transport_error(&self, error: ureq::Error, request: &str) -> CtlError {
        let unreachable = |cause: String| {
            CtlError::Unavailable(format!(
                "unable to reach the management API at {}: {cause}\n\
                 Check that the broker is running with its management API there, or pass \
                 --url (or set BROKER_MGMT_URL) to point elsewhere",
                self.base
            ))
        };
        match error {
            ureq::Error::Timeout(_) => self.timed_out(request),
            ureq::Error::Io(e) if e.kind() == ErrorKind::TimedOut => self.timed_out(request),
            ureq::Error::Io(e) => unreachable(e.to_string()),
            ureq::Error::HostNotFound => unreachable("host not found".to_owned()),
            ureq::Error::ConnectionFailed => unreachable("connection failed".to_owned()),
            ureq::Error::BadUri(uri) => CtlError::Usage(format!(
                "{uri} is not a valid URL; check --url and the names given"
            )),
            ureq::Error::Http(e) => CtlError::Usage(format!(
                "cannot build the request {request}: {e}; names and reasons must be \
                 printable text"
            )),
            other => CtlError::Unavailable(format!(
                "{request} to the management API at {} failed: {other}",
                self.base
            )),
        }
    }

    fn timed_out(&self, request: &str) -> CtlError {
        CtlError::Timeout(format!(
            "{request} on {} timed out. Timeout value used: {} s; pass --timeout to wait longer",
            self.base,
            self.timeout.as_secs()
        ))
    }
}

impl Reply {
    pub fn status(&self) -> u16 {
        self.status
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// RabbitMQ's error text: `reason` of `{"error":…,"reason":…}` (or of a failed health
    /// check's `{"status":"failed","reason":…}`), else the body itself.
    pub fn reason(&self) -> String {
        let body = String::from_utf8_lossy(&self.body);
        match serde_json::from_slice::<Value>(&self.body) {
            Ok(Value::Object(map)) => match map.get("reason").or_else(|| map.get("error")) {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => body.trim().to_owned(),
            },
            _ => body.trim().to_owned(),
        }
    }

    /// The body as JSON, whatever the status (health checks put their findings in a 503).
    pub fn body_json(&self) -> Result<Value, CtlError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            CtlError::Software(format!(
                "the answer to {} is not JSON ({e}); is --url the management API?",
                self.request
            ))
        })
    }

    /// The body as JSON when the status is 2xx; any other status is `unexpected`.
    pub fn json(self) -> Result<Value, CtlError> {
        if self.is_success() {
            self.body_json()
        } else {
            Err(self.unexpected())
        }
    }

    /// The raw body when the status is 2xx; any other status is `unexpected`.
    pub fn into_body(self) -> Result<Vec<u8>, CtlError> {
        if self.is_success() {
            Ok(self.body)
        } else {
            Err(self.unexpected())
        }
    }

    /// `Ok` when the status is 2xx; any other status is `unexpected`.
    pub fn ok(self) -> Result<(), CtlError> {
        self.into_body().map(drop)
    }

    /// The error for a status the command has no rabbitmqctl equivalent for.
    pub fn unexpected(&self) -> CtlError {
        CtlError::Software(format!(
            "{} answered HTTP {}: {}",
            self.request,
            self.status,
            self.reason()
        ))
    }
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Put => "PUT",
            Method::Post => "POST",
            Method::Delete => "DELETE",
        }
    }
}

/// The host of `http://[user@]host[:port][/path]`, IPv6 brackets removed.
pub fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        host_port.split(':').next()?
    };
    (!host.is_empty()).then(|| host.to_owned())
}

/// Standard base64 with padding (RFC 4648), enough for a Basic auth header.
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                // The index is six bits, so it is always inside the 64-byte alphabet.
                out.push(char::from(ALPHABET[((n >> shift) & 0x3f) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_encode_slash_and_space() {
        assert_eq!(segment("/"), "%2F");
        assert_eq!(segment("a b/c"), "a%20b%2Fc");
        assert_eq!(segment("ctl-test_1.x~"), "ctl-test_1.x~");
        assert_eq!(segment("rabbit@host"), "rabbit%40host");
        assert_eq!(segment("é"), "%C3%A9");
    }

    #[test]
    fn base64_matches_rfc_4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(b"guest:guest"), "Z3Vlc3Q6Z3Vlc3Q=");
    }

    #[test]
    fn url_host_handles_ports_users_and_ipv6() {
        assert_eq!(
            url_host("http://localhost:15672").as_deref(),
            Some("localhost")
        );
        assert_eq!(url_host("http://u:p@broker/api").as_deref(), Some("broker"));
        assert_eq!(url_host("http://[::1]:15672").as_deref(), Some("::1"));
        assert_eq!(url_host("http://").as_deref(), None);
    }

    #[test]
    fn only_http_urls_are_accepted() {
        let t = Duration::from_secs(1);
        assert!(Client::new("http://localhost:15672/", "guest", "guest", t).is_ok());
        let https = Client::new("https://localhost:15671", "guest", "guest", t);
        assert!(matches!(https, Err(CtlError::Usage(_))));
        let bare = Client::new("localhost:15672", "guest", "guest", t);
        assert!(matches!(bare, Err(CtlError::Usage(_))));
    }

    #[test]
    fn reply_reason_reads_rabbitmq_error_bodies() {
        let reply = |status, body: &str| Reply {
            status,
            body: body.as_bytes().to_vec(),
            request: "GET /api/x".to_owned(),
        };
        let not_found = reply(404, r#"{"error":"Object Not Found","reason":"Not Found"}"#);
        assert_eq!(not_found.reason(), "Not Found");
        assert!(!not_found.is_success());
        assert!(matches!(not_found.unexpected(), CtlError::Software(_)));
        assert_eq!(reply(500, "boom\n").reason(), "boom");
        assert_eq!(
            reply(400, r#"{"error":"bad_request"}"#).reason(),
            "bad_request"
        );
        assert!(reply(204, "").ok().is_ok());
        assert!(matches!(
            reply(200, "<html>").json(),
            Err(CtlError::Software(_))
        ));
    }
}
