//! `/api/vhosts`, `/api/users`, `/api/permissions`: to be written.

use axum::Router;

use super::Api;

pub fn routes() -> Router<Api> {
    Router::new()
}
