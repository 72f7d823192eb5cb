//! The `list_*` commands: the columns each offers (rabbitmqctl 3.10's info keys, same names),
//! where each column's value lives in the management API's JSON, the endpoint, and the banner.
//!
//! Columns with no HTTP equivalent are accepted and print empty: `pid`, `exclusive_consumer_pid`.
//! `list_consumers`' `channel_pid` is the channel's name (`127.0.0.1:5 -> 127.0.0.1:5672 (1)`),
//! and `list_queues`' `owner_pid` the owning connection's name, since the API names
//! processes that way. Rows come in the API's order (sorted by name).

use serde_json::Value;

use crate::api::segment;
use crate::commands::Context;
use crate::error::CtlError;
use crate::format::{Cell, Kind, cell};

/// What a `list_*` command lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entity {
    Queues,
    Exchanges,
    Bindings,
    Connections,
    Consumers,
    Users,
    Vhosts,
    Permissions,
}

/// Where a column's value is found in one object of the API's list.
#[derive(Clone, Copy, Debug)]
enum Source {
    /// The field named like the column.
    Same,
    /// A (nested) field of another name.
    Path(&'static [&'static str]),
    /// The same value for every row (`source_kind` is always `exchange`).
    Const(&'static str),
    /// Nothing in the API: prints empty.
    Absent,
}

#[derive(Clone, Copy, Debug)]
struct Column {
    name: &'static str,
    source: Source,
    kind: Kind,
}

const fn plain(name: &'static str) -> Column {
    Column {
        name,
        source: Source::Same,
        kind: Kind::Plain,
    }
}

const fn same(name: &'static str, kind: Kind) -> Column {
    Column {
        name,
        source: Source::Same,
        kind,
    }
}

const fn path(name: &'static str, path: &'static [&'static str]) -> Column {
    Column {
        name,
        source: Source::Path(path),
        kind: Kind::Plain,
    }
}

const fn absent(name: &'static str) -> Column {
    Column {
        name,
        source: Source::Absent,
        kind: Kind::Plain,
    }
}

const QUEUE_COLUMNS: &[Column] = &[
    same("arguments", Kind::FieldTable),
    plain("auto_delete"),
    plain("consumer_capacity"),
    plain("consumer_utilisation"),
    plain("consumers"),
    plain("disk_reads"),
    plain("disk_writes"),
    plain("durable"),
    plain("exclusive"),
    absent("exclusive_consumer_pid"),
    plain("exclusive_consumer_tag"),
    plain("head_message_timestamp"),
    plain("leader"),
    same("members", Kind::AtomList),
    plain("memory"),
    plain("message_bytes"),
    plain("message_bytes_persistent"),
    plain("message_bytes_ram"),
    plain("message_bytes_ready"),
    plain("message_bytes_unacknowledged"),
    plain("messages"),
    plain("messages_persistent"),
    plain("messages_ram"),
    plain("messages_ready"),
    plain("messages_ready_ram"),
    plain("messages_unacknowledged"),
    plain("messages_unacknowledged_ram"),
    plain("name"),
    same("online", Kind::AtomList),
    path("owner_pid", &["owner_pid_details", "name"]),
    absent("pid"),
    plain("policy"),
    same("slave_pids", Kind::AtomList),
    plain("state"),
    same("synchronised_slave_pids", Kind::AtomList),
    plain("type"),
];

const EXCHANGE_COLUMNS: &[Column] = &[
    same("arguments", Kind::FieldTable),
    plain("auto_delete"),
    plain("durable"),
    plain("internal"),
    plain("name"),
    plain("policy"),
    plain("type"),
];

const BINDING_COLUMNS: &[Column] = &[
    same("arguments", Kind::FieldTable),
    path("destination_kind", &["destination_type"]),
    path("destination_name", &["destination"]),
    plain("routing_key"),
    Column {
        name: "source_kind",
        source: Source::Const("exchange"),
        kind: Kind::Plain,
    },
    path("source_name", &["source"]),
];

const CONNECTION_COLUMNS: &[Column] = &[
    plain("auth_mechanism"),
    plain("channel_max"),
    plain("channels"),
    same("client_properties", Kind::FieldTable),
    plain("connected_at"),
    plain("frame_max"),
    same("host", Kind::IpAddress),
    plain("name"),
    plain("peer_cert_issuer"),
    plain("peer_cert_subject"),
    plain("peer_cert_validity"),
    same("peer_host", Kind::IpAddress),
    plain("peer_port"),
    absent("pid"),
    plain("port"),
    same("protocol", Kind::Protocol),
    plain("recv_cnt"),
    plain("recv_oct"),
    plain("send_cnt"),
    plain("send_oct"),
    plain("send_pend"),
    plain("ssl"),
    plain("ssl_cipher"),
    plain("ssl_hash"),
    plain("ssl_key_exchange"),
    plain("ssl_protocol"),
    plain("state"),
    plain("timeout"),
    plain("user"),
    plain("vhost"),
];

const CONSUMER_COLUMNS: &[Column] = &[
    plain("ack_required"),
    plain("active"),
    plain("activity_status"),
    same("arguments", Kind::FieldTable),
    path("channel_pid", &["channel_details", "name"]),
    plain("consumer_tag"),
    plain("prefetch_count"),
    path("queue_name", &["queue", "name"]),
];

const VHOST_COLUMNS: &[Column] = &[
    same("cluster_state", Kind::AtomPairs),
    plain("default_queue_type"),
    plain("description"),
    plain("name"),
    same("tags", Kind::AtomList),
    plain("tracing"),
];

const USER_COLUMNS: &[Column] = &[path("user", &["name"]), same("tags", Kind::AtomList)];

const PERMISSION_COLUMNS: &[Column] = &[
    plain("user"),
    plain("configure"),
    plain("write"),
    plain("read"),
];

impl Entity {
    fn columns(self) -> &'static [Column] {
        match self {
            Entity::Queues => QUEUE_COLUMNS,
            Entity::Exchanges => EXCHANGE_COLUMNS,
            Entity::Bindings => BINDING_COLUMNS,
            Entity::Connections => CONNECTION_COLUMNS,
            Entity::Consumers => CONSUMER_COLUMNS,
            Entity::Users => USER_COLUMNS,
            Entity::Vhosts => VHOST_COLUMNS,
            Entity::Permissions => PERMISSION_COLUMNS,
        }
    }

    /// rabbitmqctl's columns when none are given.
    fn default_columns(self) -> &'static [&'static str] {
        match self {
            Entity::Queues => &["name", "messages"],
            Entity::Exchanges => &["name", "type"],
            Entity::Bindings => &[
                "source_name",
                "source_kind",
                "destination_name",
                "destination_kind",
                "routing_key",
                "arguments",
            ],
            Entity::Connections => &["user", "peer_host", "peer_port", "state"],
            Entity::Consumers => &[
                "queue_name",
                "channel_pid",
                "consumer_tag",
                "ack_required",
                "prefetch_count",
                "active",
                "arguments",
            ],
            Entity::Users => &["user", "tags"],
            Entity::Vhosts => &["name"],
            Entity::Permissions => &["user", "configure", "write", "read"],
        }
    }

    /// Whether it lists the objects of one virtual host (`-p`).
    fn vhost_scoped(self) -> bool {
        matches!(
            self,
            Entity::Queues
                | Entity::Exchanges
                | Entity::Bindings
                | Entity::Consumers
                | Entity::Permissions
        )
    }

    fn path(self, vhost: &str) -> String {
        let vh = segment(vhost);
        match self {
            Entity::Queues => format!("/api/queues/{vh}"),
            Entity::Exchanges => format!("/api/exchanges/{vh}"),
            Entity::Bindings => format!("/api/bindings/{vh}"),
            Entity::Connections => "/api/connections".to_owned(),
            Entity::Consumers => format!("/api/consumers/{vh}"),
            Entity::Users => "/api/users".to_owned(),
            Entity::Vhosts => "/api/vhosts".to_owned(),
            Entity::Permissions => format!("/api/vhosts/{vh}/permissions"),
        }
    }

    /// The banner lines, exactly as rabbitmqctl 3.10 words them.
    fn banner(self, vhost: &str, timeout_secs: u64) -> Vec<String> {
        match self {
            Entity::Queues => vec![
                format!("Timeout: {timeout_secs}.0 seconds ..."),
                format!("Listing queues for vhost {vhost} ..."),
            ],
            Entity::Exchanges => vec![format!("Listing exchanges for vhost {vhost} ...")],
            Entity::Bindings => vec![format!("Listing bindings for vhost {vhost}...")],
            Entity::Connections => vec!["Listing connections ...".to_owned()],
            Entity::Consumers => vec![format!("Listing consumers in vhost {vhost} ...")],
            Entity::Users => vec!["Listing users ...".to_owned()],
            Entity::Vhosts => vec!["Listing vhosts ...".to_owned()],
            Entity::Permissions => vec![format!("Listing permissions for vhost \"{vhost}\" ...")],
        }
    }
}

/// The columns to print: those asked for (each argument may also be a comma-separated list),
/// else the defaults. An unknown name is a usage error (64), as in rabbitmqctl.
fn select(entity: Entity, requested: &[String]) -> Result<Vec<Column>, CtlError> {
    let names: Vec<&str> = requested
        .iter()
        .flat_map(|arg| arg.split(','))
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .collect();
    let names: Vec<&str> = if names.is_empty() {
        entity.default_columns().to_vec()
    } else {
        names
    };
    let available = entity.columns();
    let unknown: Vec<&str> = names
        .iter()
        .copied()
        .filter(|name| !available.iter().any(|c| c.name == *name))
        .collect();
    if !unknown.is_empty() {
        let mut supported: Vec<&str> = available.iter().map(|c| c.name).collect();
        supported.sort_unstable();
        return Err(CtlError::Usage(format!(
            "Info key(s) {} are not supported\nUse any of: {}",
            unknown.join(","),
            supported.join(", ")
        )));
    }
    Ok(names
        .iter()
        .filter_map(|name| available.iter().find(|c| c.name == *name).copied())
        .collect())
}

/// The `columns` query parameter: the top-level fields the columns read, so that RabbitMQ
/// sends only those (a listing of thousands of queues with all their statistics is large).
/// An API that ignores the parameter sends whole objects, which works as well.
fn fields_query(columns: &[Column]) -> String {
    let mut fields: Vec<&str> = Vec::new();
    for column in columns {
        let field = match column.source {
            Source::Same => Some(column.name),
            Source::Path(path) => path.first().copied(),
            Source::Const(_) | Source::Absent => None,
        };
        if let Some(field) = field
            && !fields.contains(&field)
        {
            fields.push(field);
        }
    }
    if fields.is_empty() {
        String::new()
    } else {
        format!("?columns={}", fields.join(","))
    }
}

fn row(columns: &[Column], object: &Value) -> Vec<Cell> {
    columns
        .iter()
        .map(|column| match column.source {
            Source::Same => cell(column.kind, object.get(column.name)),
            Source::Path(path) => {
                let value = path.iter().try_fold(object, |v, key| v.get(key));
                cell(column.kind, value)
            }
            Source::Const(value) => cell(column.kind, Some(&Value::String(value.to_owned()))),
            Source::Absent => cell(column.kind, None),
        })
        .collect()
}

/// `list_queues`, `list_exchanges`, …: prints the banner, then the rows.
pub fn run(ctx: &Context, entity: Entity, requested: &[String]) -> Result<(), CtlError> {
    let columns = select(entity, requested)?;
    for line in entity.banner(&ctx.vhost, ctx.api.timeout().as_secs()) {
        ctx.out.banner(&line)?;
    }
    let path = format!("{}{}", entity.path(&ctx.vhost), fields_query(&columns));
    let reply = ctx.api.get(&path)?;
    let objects = if reply.status() == 404 && entity.vhost_scoped() && !vhost_exists(ctx)? {
        // rabbitmqctl lists nothing for a missing vhost, except permissions (65).
        if entity == Entity::Permissions {
            return Err(CtlError::DataErr(format!(
                "Virtual host '{}' does not exist",
                ctx.vhost
            )));
        }
        Vec::new()
    } else {
        match reply.json()? {
            Value::Array(objects) => objects,
            other => {
                return Err(CtlError::Software(format!(
                    "GET {path} answered {} instead of a list",
                    kind_of(&other)
                )));
            }
        }
    };
    let rows: Vec<Vec<Cell>> = objects.iter().map(|o| row(&columns, o)).collect();
    let names: Vec<&str> = columns.iter().map(|c| c.name).collect();
    ctx.out.rows(&names, &rows)
}

/// Whether the `-p` vhost exists (`GET /api/vhosts/{vhost}`).
pub fn vhost_exists(ctx: &Context) -> Result<bool, CtlError> {
    let reply = ctx
        .api
        .get(&format!("/api/vhosts/{}", segment(&ctx.vhost)))?;
    match reply.status() {
        404 => Ok(false),
        _ if reply.is_success() => Ok(true),
        _ => Err(reply.unexpected()),
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Object(_) => "an object",
        Value::String(_) => "a string",
        Value::Number(_) => "a number",
        Value::Bool(_) => "a boolean",
        Value::Null => "null",
        Value::Array(_) => "a list",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn names(columns: &[Column]) -> Vec<&'static str> {
        columns.iter().map(|c| c.name).collect()
    }

    #[test]
    fn defaults_are_rabbitmqctls() {
        assert_eq!(
            names(&select(Entity::Queues, &[]).unwrap()),
            ["name", "messages"]
        );
        assert_eq!(
            names(&select(Entity::Exchanges, &[]).unwrap()),
            ["name", "type"]
        );
        assert_eq!(
            names(&select(Entity::Connections, &[]).unwrap()),
            ["user", "peer_host", "peer_port", "state"]
        );
        assert_eq!(names(&select(Entity::Consumers, &[]).unwrap()).len(), 7);
    }

    #[test]
    fn every_default_column_exists() {
        for entity in [
            Entity::Queues,
            Entity::Exchanges,
            Entity::Bindings,
            Entity::Connections,
            Entity::Consumers,
            Entity::Users,
            Entity::Vhosts,
            Entity::Permissions,
        ] {
            assert!(select(entity, &[]).is_ok(), "{entity:?}");
        }
    }

    #[test]
    fn columns_may_be_separate_or_comma_separated() {
        let args = ["name,messages_ready".to_owned(), "consumers".to_owned()];
        assert_eq!(
            names(&select(Entity::Queues, &args).unwrap()),
            ["name", "messages_ready", "consumers"]
        );
    }

    #[test]
    fn unknown_columns_are_usage_errors() {
        let err = select(Entity::Queues, &["name".to_owned(), "foo".to_owned()]).unwrap_err();
        assert_eq!(err.exit_code(), 64);
        assert!(
            err.to_string()
                .starts_with("Info key(s) foo are not supported")
        );
    }

    #[test]
    fn the_query_asks_only_for_the_fields_read() {
        let columns = select(Entity::Consumers, &[]).unwrap();
        assert_eq!(
            fields_query(&columns),
            "?columns=queue,channel_details,consumer_tag,ack_required,prefetch_count,active,arguments"
        );
        let columns = select(Entity::Bindings, &["source_kind".to_owned()]).unwrap();
        assert_eq!(fields_query(&columns), "");
    }

    #[test]
    fn rows_map_api_fields_to_rabbitmqctl_columns() {
        let binding = json!({
            "source": "ex", "vhost": "/", "destination": "q", "destination_type": "queue",
            "routing_key": "k", "arguments": {"x-a": 1}, "properties_key": "k~x"
        });
        let columns = select(Entity::Bindings, &[]).unwrap();
        let texts: Vec<String> = row(&columns, &binding)
            .into_iter()
            .map(|c| c.text)
            .collect();
        assert_eq!(
            texts,
            ["ex", "exchange", "q", "queue", "k", r#"[{"x-a",1}]"#]
        );

        let consumer = json!({
            "queue": {"name": "orders", "vhost": "/"},
            "channel_details": {"name": "127.0.0.1:5000 -> 127.0.0.1:5672 (1)"},
            "consumer_tag": "ctag1", "ack_required": true, "prefetch_count": 10,
            "active": true, "arguments": {}
        });
        let columns = select(Entity::Consumers, &[]).unwrap();
        let texts: Vec<String> = row(&columns, &consumer)
            .into_iter()
            .map(|c| c.text)
            .collect();
        assert_eq!(
            texts,
            [
                "orders",
                "127.0.0.1:5000 -> 127.0.0.1:5672 (1)",
                "ctag1",
                "true",
                "10",
                "true",
                "[]"
            ]
        );
    }

    #[test]
    fn missing_fields_print_empty() {
        // RabbitMQ omits message counts until its first statistics emission.
        let queue = json!({"name": "fresh"});
        let columns = select(
            Entity::Queues,
            &["name".to_owned(), "messages".to_owned(), "pid".to_owned()],
        )
        .unwrap();
        let cells = row(&columns, &queue);
        assert_eq!(cells[1].text, "");
        assert_eq!(cells[1].json, json!(""));
        assert_eq!(cells[2].text, "");
    }

    #[test]
    fn paths_percent_encode_the_vhost() {
        assert_eq!(Entity::Queues.path("/"), "/api/queues/%2F");
        assert_eq!(
            Entity::Permissions.path("a b"),
            "/api/vhosts/a%20b/permissions"
        );
        assert_eq!(Entity::Users.path("/"), "/api/users");
    }

    #[test]
    fn banners_are_rabbitmqctls() {
        assert_eq!(
            Entity::Queues.banner("/", 60),
            [
                "Timeout: 60.0 seconds ...",
                "Listing queues for vhost / ..."
            ]
        );
        assert_eq!(
            Entity::Bindings.banner("/", 60),
            ["Listing bindings for vhost /..."]
        );
        assert_eq!(
            Entity::Permissions.banner("v", 60),
            ["Listing permissions for vhost \"v\" ..."]
        );
    }
}
