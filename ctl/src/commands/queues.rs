//! `purge_queue` and `delete_queue`, with rabbitmqctl 3.10's messages and exit codes: a missing
//! queue is 69 (`not_found`) for `purge_queue` but 64 (`Queue not found`) for `delete_queue`,
//! which also answers 64 when `--if-empty` or `--if-unused` stops it.

use serde_json::Value;

use crate::api::segment;
use crate::commands::Context;
use crate::error::CtlError;

/// `delete_queue`'s conditions.
#[derive(Clone, Copy, Debug, Default)]
pub struct DeleteConditions {
    pub if_empty: bool,
    pub if_unused: bool,
}

pub fn purge_queue(ctx: &Context, queue: &str) -> Result<(), CtlError> {
    ctx.out.banner(&format!(
        "Purging queue '{queue}' in vhost '{}' ...",
        ctx.vhost
    ))?;
    let reply = ctx.api.delete(&format!(
        "/api/queues/{}/{}/contents",
        segment(&ctx.vhost),
        segment(queue)
    ))?;
    if reply.status() == 404 {
        return Err(CtlError::Unavailable(format!(
            "not_found: there is no queue '{queue}' in vhost '{}'; see `brokerctl list_queues -p {}`",
            ctx.vhost, ctx.vhost
        )));
    }
    reply.ok()?;
    ctx.done()
}

pub fn delete_queue(ctx: &Context, queue: &str, when: DeleteConditions) -> Result<(), CtlError> {
    let condition = match (when.if_empty, when.if_unused) {
        (false, false) => "",
        (true, false) => " if queue is empty",
        (false, true) => " if queue is unused",
        (true, true) => " if queue is empty and if queue is unused",
    };
    ctx.out.banner(&format!(
        "Deleting queue '{queue}' on vhost '{}'{condition} ...",
        ctx.vhost
    ))?;
    let path = format!("/api/queues/{}/{}", segment(&ctx.vhost), segment(queue));
    let not_found = || {
        CtlError::Usage(format!(
            "Queue not found: there is no queue '{queue}' in vhost '{}'",
            ctx.vhost
        ))
    };
    // The API's DELETE does not say how many messages went with the queue; rabbitmqctl does,
    // so read the count first (RabbitMQ's statistics may lag a few seconds behind).
    let reply = ctx.api.get(&path)?;
    if reply.status() == 404 {
        return Err(not_found());
    }
    let ready = reply
        .json()?
        .get("messages_ready")
        .and_then(Value::as_u64)
        .unwrap_or(0);

    let mut query = Vec::new();
    if when.if_empty {
        query.push("if-empty=true");
    }
    if when.if_unused {
        query.push("if-unused=true");
    }
    let path = if query.is_empty() {
        path
    } else {
        format!("{path}?{}", query.join("&"))
    };
    let reply = ctx.api.delete(&path)?;
    match reply.status() {
        404 => return Err(not_found()),
        400 if when.if_empty || when.if_unused => {
            let reason = reply.reason();
            let message = if when.if_empty && (!when.if_unused || reason.contains("empty")) {
                "Queue is not empty"
            } else {
                "Queue is in use"
            };
            return Err(CtlError::Usage(format!("{message} ({reason})")));
        }
        _ => reply.ok()?,
    }
    ctx.out.message(&format!(
        "Queue was successfully deleted with {ready} ready messages"
    ))
}
