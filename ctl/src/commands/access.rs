//! Users, virtual hosts and permissions: `add_user`, `delete_user`, `change_password`,
//! `set_user_tags`, `add_vhost`, `delete_vhost`, `set_permissions`, `clear_permissions`.
//!
//! The API's `PUT /api/users/{name}` replaces the whole user (a PUT without a password clears
//! it, one without tags clears them), so commands that change one attribute read the user
//! first and send the others back. `PUT` also creates, so `add_user` checks that the user is
//! new and the others that it exists: rabbitmqctl's exit codes depend on which is missing.

use std::io::{self, BufRead};

use serde_json::{Value, json};

use crate::api::segment;
use crate::commands::Context;
use crate::commands::list::vhost_exists;
use crate::error::CtlError;
use crate::format::{Formatter, print_text};

/// `add_user NAME [PASSWORD]`; without a password, one line is read from stdin.
pub fn add_user(ctx: &Context, user: &str, password: Option<&str>) -> Result<(), CtlError> {
    ctx.out.banner(&format!("Adding user \"{user}\" ..."))?;
    let password = password_or_stdin(ctx, password)?;
    let path = user_path(user);
    let existing = ctx.api.get(&path)?;
    if existing.is_success() {
        return Err(CtlError::Software(format!(
            "User \"{user}\" already exists; use change_password to give it a new password"
        )));
    }
    if existing.status() != 404 {
        return Err(existing.unexpected());
    }
    ctx.api
        .put(&path, &json!({ "password": password, "tags": "" }))?
        .ok()?;
    let done = "Done. Don't forget to grant the user permissions to some virtual hosts! \
                See 'brokerctl help set_permissions' to learn more.";
    match ctx.out.formatter {
        Formatter::Table => ctx.out.info(done),
        Formatter::Json => {
            let node = ctx.node_name()?;
            ctx.out
                .json(&json!({ "message": done, "node": node, "status": "ok" }))
        }
    }
}

pub fn delete_user(ctx: &Context, user: &str) -> Result<(), CtlError> {
    ctx.out.banner(&format!("Deleting user \"{user}\" ..."))?;
    let reply = ctx.api.delete(&user_path(user))?;
    if reply.status() == 404 {
        return Err(no_such_user(user));
    }
    reply.ok()?;
    ctx.done()
}

/// `change_password NAME [PASSWORD]`; the user's tags are kept.
pub fn change_password(ctx: &Context, user: &str, password: Option<&str>) -> Result<(), CtlError> {
    ctx.out
        .banner(&format!("Changing password for user \"{user}\" ..."))?;
    let password = password_or_stdin(ctx, password)?;
    let current = existing_user(ctx, user)?;
    let tags = tags_text(current.get("tags"));
    ctx.api
        .put(
            &user_path(user),
            &json!({ "password": password, "tags": tags }),
        )?
        .ok()?;
    ctx.done()
}

/// `set_user_tags NAME [TAG…]`; the user's password is kept.
pub fn set_user_tags(ctx: &Context, user: &str, tags: &[String]) -> Result<(), CtlError> {
    ctx.out.banner(&format!(
        "Setting tags for user \"{user}\" to [{}] ...",
        tags.join(", ")
    ))?;
    let current = existing_user(ctx, user)?;
    let mut body = serde_json::Map::new();
    body.insert("tags".to_owned(), json!(tags.join(",")));
    // A user without a password has an empty hash; sending none keeps it that way.
    if let Some(hash) = current.get("password_hash").and_then(Value::as_str)
        && !hash.is_empty()
    {
        body.insert("password_hash".to_owned(), json!(hash));
        if let Some(algorithm) = current.get("hashing_algorithm") {
            body.insert("hashing_algorithm".to_owned(), algorithm.clone());
        }
    }
    let body = Value::Object(body);
    ctx.api.put(&user_path(user), &body)?.ok()?;
    ctx.done()
}

/// `add_vhost NAME`, with rabbitmqctl's optional metadata.
pub fn add_vhost(ctx: &Context, vhost: &str, metadata: &VhostMetadata) -> Result<(), CtlError> {
    ctx.out.banner(&format!("Adding vhost \"{vhost}\" ..."))?;
    let mut body = serde_json::Map::new();
    if let Some(description) = &metadata.description {
        body.insert("description".to_owned(), json!(description));
    }
    if let Some(tags) = &metadata.tags {
        body.insert("tags".to_owned(), json!(tags));
    }
    if let Some(queue_type) = &metadata.default_queue_type {
        body.insert("default_queue_type".to_owned(), json!(queue_type));
    }
    ctx.api
        .put(&vhost_path(vhost), &Value::Object(body))?
        .ok()?;
    ctx.done()
}

/// `add_vhost`'s options.
#[derive(Clone, Debug, Default)]
pub struct VhostMetadata {
    pub description: Option<String>,
    /// Comma-separated, as rabbitmqctl takes them.
    pub tags: Option<String>,
    pub default_queue_type: Option<String>,
}

pub fn delete_vhost(ctx: &Context, vhost: &str) -> Result<(), CtlError> {
    ctx.out.banner(&format!("Deleting vhost \"{vhost}\" ..."))?;
    let reply = ctx.api.delete(&vhost_path(vhost))?;
    if reply.status() == 404 {
        return Err(CtlError::DataErr(format!(
            "Virtual host '{vhost}' does not exist"
        )));
    }
    reply.ok()?;
    ctx.done()
}

/// The three permission patterns of `set_permissions`.
#[derive(Clone, Debug)]
pub struct Permissions {
    pub configure: String,
    pub write: String,
    pub read: String,
}

/// `set_permissions [-p VHOST] USER CONF WRITE READ`. The user is checked before the vhost,
/// as rabbitmqctl does (67 before 69).
pub fn set_permissions(
    ctx: &Context,
    user: &str,
    permissions: &Permissions,
) -> Result<(), CtlError> {
    ctx.out.banner(&format!(
        "Setting permissions for user \"{user}\" in vhost \"{}\" ...",
        ctx.vhost
    ))?;
    check_user_and_vhost(ctx, user)?;
    let body = json!({
        "configure": permissions.configure,
        "write": permissions.write,
        "read": permissions.read,
    });
    let reply = ctx.api.put(&permission_path(ctx, user), &body)?;
    if reply.status() == 400 {
        // Deleted since we looked, or a pattern the node refuses.
        return Err(CtlError::Unavailable(reply.reason()));
    }
    reply.ok()?;
    ctx.done()
}

/// `clear_permissions [-p VHOST] USER`: succeeds when the user had none there.
pub fn clear_permissions(ctx: &Context, user: &str) -> Result<(), CtlError> {
    ctx.out.banner(&format!(
        "Clearing permissions for user \"{user}\" in vhost \"{}\" ...",
        ctx.vhost
    ))?;
    check_user_and_vhost(ctx, user)?;
    let reply = ctx.api.delete(&permission_path(ctx, user))?;
    if reply.status() != 404 {
        reply.ok()?;
    }
    ctx.done()
}

fn user_path(user: &str) -> String {
    format!("/api/users/{}", segment(user))
}

fn vhost_path(vhost: &str) -> String {
    format!("/api/vhosts/{}", segment(vhost))
}

fn permission_path(ctx: &Context, user: &str) -> String {
    format!("/api/permissions/{}/{}", segment(&ctx.vhost), segment(user))
}

fn no_such_user(user: &str) -> CtlError {
    CtlError::NoUser(format!(
        "User \"{user}\" does not exist; see `brokerctl list_users`"
    ))
}

/// The user as the API shows it, or 67 when there is none.
fn existing_user(ctx: &Context, user: &str) -> Result<Value, CtlError> {
    let reply = ctx.api.get(&user_path(user))?;
    if reply.status() == 404 {
        return Err(no_such_user(user));
    }
    reply.json()
}

fn check_user_and_vhost(ctx: &Context, user: &str) -> Result<(), CtlError> {
    existing_user(ctx, user)?;
    if !vhost_exists(ctx)? {
        return Err(CtlError::Unavailable(format!(
            "Virtual host {} does not exist; create it with `brokerctl add_vhost`",
            ctx.vhost
        )));
    }
    Ok(())
}

/// Tags as the API's PUT takes them: one comma-separated string.
fn tags_text(tags: Option<&Value>) -> String {
    match tags {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(","),
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    }
}

/// The password given, else one line of stdin (rabbitmqctl prompts `Password: `).
fn password_or_stdin(ctx: &Context, password: Option<&str>) -> Result<String, CtlError> {
    if let Some(password) = password {
        return Ok(password.to_owned());
    }
    if !ctx.out.quiet && ctx.out.formatter == Formatter::Table {
        print_text("Password: ")?;
    }
    let mut line = String::new();
    let read = io::stdin().lock().read_line(&mut line);
    let password = line.trim_end_matches(['\n', '\r']);
    match read {
        Ok(_) if !password.is_empty() => Ok(password.to_owned()),
        _ => Err(CtlError::DataErr(
            "Password is not provided via argument or stdin".to_owned(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_go_back_as_one_string() {
        assert_eq!(
            tags_text(Some(&json!(["administrator", "monitoring"]))),
            "administrator,monitoring"
        );
        assert_eq!(tags_text(Some(&json!("a,b"))), "a,b");
        assert_eq!(tags_text(Some(&json!([]))), "");
        assert_eq!(tags_text(None), "");
    }

    #[test]
    fn paths_percent_encode_names() {
        assert_eq!(user_path("a/b"), "/api/users/a%2Fb");
        assert_eq!(vhost_path("/"), "/api/vhosts/%2F");
    }
}
