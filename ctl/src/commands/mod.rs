//! The commands, grouped by what they act on. Each asks the management API (`api.rs`), decides
//! what the answer means the way the rabbitmqctl command it mirrors would, exit code included,
//! and hands its result to `format.rs`. Argument parsing lives in `main.rs`.

pub mod access;
pub mod connections;
pub mod definitions;
pub mod diagnostics;
pub mod list;
pub mod queues;

use std::cell::OnceCell;

use serde_json::{Value, json};

use crate::api::Client;
use crate::error::CtlError;
use crate::format::{Formatter, Output};

/// What every command needs: the API, the output options and the global flags they read.
#[derive(Debug)]
pub struct Context {
    pub api: Client,
    pub out: Output,
    /// `-p`: the virtual host of vhost-scoped commands.
    pub vhost: String,
    /// `-n`: the node name to show instead of the one the API reports.
    node: Option<String>,
    /// `/api/overview`, fetched at most once: several diagnostics need the node name and the
    /// listeners from it.
    overview: OnceCell<Value>,
}

impl Context {
    pub fn new(api: Client, out: Output, vhost: String, node: Option<String>) -> Self {
        Context {
            api,
            out,
            vhost,
            node,
            overview: OnceCell::new(),
        }
    }

    /// `GET /api/overview`. Failing to get it is failing to reach the node (69), whatever the
    /// status, because every management API answers it.
    pub fn overview(&self) -> Result<&Value, CtlError> {
        if let Some(overview) = self.overview.get() {
            return Ok(overview);
        }
        let reply = self.api.get("/api/overview")?;
        if !reply.is_success() {
            return Err(CtlError::Unavailable(format!(
                "the management API at {} answered GET /api/overview with HTTP {}: {}",
                self.api.base_url(),
                reply.status(),
                reply.reason()
            )));
        }
        let overview = reply.body_json()?;
        Ok(self.overview.get_or_init(|| overview))
    }

    /// The node name the API reports (`overview.node`), or the URL if it reports none.
    pub fn api_node(&self) -> Result<String, CtlError> {
        let overview = self.overview()?;
        Ok(overview
            .get("node")
            .and_then(Value::as_str)
            .map_or_else(|| self.api.base_url().to_owned(), str::to_owned))
    }

    /// The node name shown in messages: `-n` if given, else the one the API reports.
    pub fn node_name(&self) -> Result<String, CtlError> {
        match &self.node {
            Some(node) => Ok(node.clone()),
            None => self.api_node(),
        }
    }

    /// The target named before anything is asked (`ping`'s banner): `-n`, else the URL.
    pub fn target(&self) -> String {
        self.node
            .clone()
            .unwrap_or_else(|| self.api.base_url().to_owned())
    }

    /// The end of a command that prints nothing on success: rabbitmqctl's JSON formatter
    /// still prints `{"node":…,"result":"ok"}`.
    pub fn done(&self) -> Result<(), CtlError> {
        if self.out.formatter == Formatter::Json {
            let node = self.node_name()?;
            self.out.json(&json!({ "node": node, "result": "ok" }))?;
        }
        Ok(())
    }
}
