//! HTTP Basic authentication against the broker's users, with RabbitMQ's management tags:
//! `administrator` may do everything; `monitoring` sees every vhost; `policymaker` and
//! `management` see the vhosts they have permissions on. A user with none of these tags gets
//! `401 Not management user`, as in RabbitMQ.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use base64::Engine as _;

use super::Api;
use super::error::ApiError;
use crate::node::User;

/// The authenticated user of a request.
#[derive(Debug)]
pub struct Auth(pub User);

impl Auth {
    fn has(&self, tag: &str) -> bool {
        self.0.tags.iter().any(|t| t == tag)
    }

    /// Tagged `administrator`.
    pub fn is_admin(&self) -> bool {
        self.has("administrator")
    }

    /// May see every vhost (`administrator` or `monitoring`).
    pub fn sees_all(&self) -> bool {
        self.is_admin() || self.has("monitoring")
    }

    /// May see objects of `vhost`.
    pub fn sees(&self, vhost: &str) -> bool {
        self.sees_all() || self.0.permissions.contains_key(vhost)
    }

    /// `401 Not administrator user` unless tagged `administrator`.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::unauthorized("Not administrator user"))
        }
    }

    /// `401 Not monitor user` unless it may see the whole node.
    pub fn require_monitor(&self) -> Result<(), ApiError> {
        if self.sees_all() {
            Ok(())
        } else {
            Err(ApiError::unauthorized("Not monitor user"))
        }
    }

    /// 401 unless it may act on `vhost` (permissions there, or administrator).
    pub fn require_vhost(&self, vhost: &str) -> Result<(), ApiError> {
        if self.is_admin() || self.0.permissions.contains_key(vhost) {
            Ok(())
        } else {
            Err(vhost_refused())
        }
    }
}

impl FromRequestParts<Api> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, api: &Api) -> Result<Self, Self::Rejection> {
        let Some(header) = parts.headers.get(header::AUTHORIZATION) else {
            return Err(ApiError::credentials_required());
        };
        let (user, pass) = header
            .to_str()
            .ok()
            .and_then(basic_credentials)
            .ok_or_else(ApiError::login_failed)?;
        let user = api
            .node
            .authenticate(&user, &pass)
            .ok_or_else(ApiError::login_failed)?;
        let auth = Auth(user);
        const MANAGEMENT: [&str; 4] = ["administrator", "monitoring", "policymaker", "management"];
        if !MANAGEMENT.iter().any(|t| auth.has(t)) {
            return Err(ApiError::unauthorized("Not management user"));
        }
        Ok(auth)
    }
}

/// RabbitMQ's refusal of a vhost the user has no permissions in (the text names no vhost).
pub fn vhost_refused() -> ApiError {
    ApiError::unauthorized("User not authorised to access virtual host")
}

/// `Basic base64(user:pass)` → (user, pass).
fn basic_credentials(value: &str) -> Option<(String, String)> {
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, pass) = text.split_once(':')?;
    Some((user.to_owned(), pass.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_decode() {
        assert_eq!(
            basic_credentials("Basic Z3Vlc3Q6Z3Vlc3Q="),
            Some(("guest".into(), "guest".into()))
        );
        assert_eq!(
            basic_credentials("Basic dTpwOmFzcw=="),
            Some(("u".into(), "p:ass".into()))
        );
        assert_eq!(basic_credentials("Bearer x"), None);
        assert_eq!(basic_credentials("Basic !!!"), None);
    }
}
