//! `export_definitions FILE|-` and `import_definitions [FILE|-]` over `GET`/`POST
//! /api/definitions`: the whole node's users, vhosts, permissions, queues, exchanges, bindings,
//! policies and parameters, in RabbitMQ's JSON format, so a file moves between our broker and
//! RabbitMQ unchanged. The document is passed through as the API sends it, not re-serialised.

use std::fs;
use std::io::{self, Read};
use std::path::Path;

use serde_json::Value;

use crate::commands::Context;
use crate::error::CtlError;
use crate::format::print_bytes;

/// Where a definitions document goes or comes from: `-` is stdout/stdin.
fn is_stdio(target: &str) -> bool {
    target == "-"
}

pub fn export_definitions(ctx: &Context, target: &str) -> Result<(), CtlError> {
    if !is_stdio(target) {
        let parent = Path::new(target)
            .parent()
            .filter(|p| !p.as_os_str().is_empty());
        if let Some(dir) = parent
            && !dir.is_dir()
        {
            return Err(CtlError::DataErr(format!(
                "Bad argument: Directory {} does not exist; create it or write elsewhere",
                dir.display()
            )));
        }
        ctx.out.banner(&format!(
            "Exporting definitions in JSON to a file at \"{target}\" ..."
        ))?;
    }
    let body = ctx.api.get("/api/definitions")?.into_body()?;
    // Refuse to save something that is not a definitions document (a proxy's HTML page).
    match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(_)) => {}
        _ => {
            return Err(CtlError::Software(
                "GET /api/definitions did not answer a JSON object; is --url the management API?"
                    .to_owned(),
            ));
        }
    }
    if is_stdio(target) {
        // As rabbitmqctl: the document only, no banner and no trailing newline.
        return print_bytes(&body);
    }
    fs::write(target, &body)
        .map_err(|e| CtlError::DataErr(format!("cannot write {target}: {e}")))?;
    ctx.done()
}

/// `import_definitions [FILE|-]`; no argument reads stdin, as rabbitmqctl does.
pub fn import_definitions(ctx: &Context, source: Option<&str>) -> Result<(), CtlError> {
    let source = source.unwrap_or("-");
    let body = if is_stdio(source) {
        let mut body = Vec::new();
        io::stdin()
            .lock()
            .read_to_end(&mut body)
            .map_err(|e| CtlError::DataErr(format!("cannot read standard input: {e}")))?;
        body
    } else {
        if !Path::new(source).is_file() {
            return Err(CtlError::DataErr(format!(
                "Bad argument: File {source} does not exist"
            )));
        }
        fs::read(source).map_err(|e| CtlError::DataErr(format!("cannot read {source}: {e}")))?
    };
    if is_stdio(source) {
        ctx.out
            .banner("Importing definitions in JSON from standard input ...")?;
    } else {
        ctx.out.banner(&format!(
            "Importing definitions in JSON from a file at \"{source}\" ..."
        ))?;
    }
    if let Err(e) = serde_json::from_slice::<Value>(&body) {
        return Err(CtlError::DataErr(format!(
            "Failed to deserialise input (format: JSON) (error: {e})"
        )));
    }
    let reply = ctx.api.post_raw("/api/definitions", body)?;
    if reply.status() == 400 {
        return Err(CtlError::DataErr(format!(
            "the node refused the definitions: {}",
            reply.reason()
        )));
    }
    reply.ok()?;
    ctx.out.info(
        "Successfully started definition import. \
         This process is asynchronous and can take some time.",
    )?;
    ctx.done()
}
