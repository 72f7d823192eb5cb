//! `close_connection NAME REASON`. rabbitmqctl takes the connection's Erlang pid; over HTTP a
//! connection is named as `list_connections name` prints it (`127.0.0.1:5000 -> 127.0.0.1:5672`),
//! and the API closes it with `320 CONNECTION_FORCED` and the reason from `X-Reason`.

use crate::api::segment;
use crate::commands::Context;
use crate::error::CtlError;

pub fn close_connection(ctx: &Context, name: &str, reason: &str) -> Result<(), CtlError> {
    ctx.out
        .banner(&format!("Closing connection {name}, reason: {reason}..."))?;
    let reply = ctx
        .api
        .delete_with_reason(&format!("/api/connections/{}", segment(name)), reason)?;
    if reply.status() == 404 {
        // rabbitmqctl exits 69 for a pid it cannot parse, the nearest case to a name that
        // names no connection.
        return Err(CtlError::Unavailable(format!(
            "there is no connection named '{name}'; `brokerctl list_connections name` lists them"
        )));
    }
    reply.ok()?;
    ctx.done()
}
