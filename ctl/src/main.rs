//! `brokerctl`: rabbitmqctl-style administration of our broker, or of any RabbitMQ with the
//! management plugin, over the management HTTP API only (no Erlang distribution), so it works
//! the same against both. This file owns the command line, named and ordered as rabbitmqctl's
//! (`list_queues name messages -p /`, `set_permissions -p vhost user conf write read`), and
//! the dispatch to `commands`; it holds no command logic.
//!
//! Invoked as `rabbitmq-diagnostics` (a symlink to this binary), it accepts only the diagnostics
//! commands and RabbitMQ's `-q`/`-n`/`-t`/`-l` options, so health checks written for RabbitMQ
//! (`rabbitmq-diagnostics -q ping`) run unchanged against our broker.

mod api;
mod commands;
mod error;
mod format;

use std::ffi::OsString;
use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::api::Client;
use crate::commands::access::{Permissions, VhostMetadata};
use crate::commands::list::Entity;
use crate::commands::queues::DeleteConditions;
use crate::commands::{Context, access, connections, definitions, diagnostics, list, queues};
use crate::error::CtlError;
use crate::format::{Formatter, Output};

/// The management API of a local node, RabbitMQ's default.
const DEFAULT_URL: &str = "http://localhost:15672";

/// The management API's port, for a URL derived from `-n name@host`.
const DEFAULT_MANAGEMENT_PORT: u16 = 15672;

/// The program name under which the binary behaves as rabbitmq-diagnostics.
const DIAGNOSTICS_NAME: &str = "rabbitmq-diagnostics";

/// Administers a RabbitMQ-compatible broker over its management HTTP API, as rabbitmqctl does.
#[derive(Debug, Parser)]
#[command(name = "brokerctl", version, max_term_width = 100)]
struct Cli {
    #[command(flatten)]
    global: GlobalOpts,
    #[command(subcommand)]
    command: Command,
}

/// Health checks and node reports over the management HTTP API (brokerctl's rabbitmq-diagnostics).
#[derive(Debug, Parser)]
#[command(name = DIAGNOSTICS_NAME, version, max_term_width = 100)]
struct DiagnosticsCli {
    #[command(flatten)]
    global: GlobalOpts,
    #[command(subcommand)]
    command: DiagnosticsCommand,
}

/// Options every command takes, before or after the command name.
#[derive(Debug, Args)]
struct GlobalOpts {
    /// Base URL of the management HTTP API [default: http://localhost:15672, or
    /// http://HOST:15672 with -n NAME@HOST]
    #[arg(long, env = "BROKER_MGMT_URL", global = true, value_name = "URL")]
    url: Option<String>,

    /// User for the management API
    #[arg(
        short = 'u',
        long,
        env = "RABBITMQ_DEFAULT_USER",
        default_value = "guest",
        global = true
    )]
    username: String,

    /// Password for the management API
    #[arg(
        long,
        env = "RABBITMQ_DEFAULT_PASS",
        default_value = "guest",
        hide_env_values = true,
        hide_default_value = true,
        global = true
    )]
    password: String,

    /// Virtual host of vhost-scoped commands
    #[arg(short = 'p', long, default_value = "/", global = true)]
    vhost: String,

    /// Suppress informational messages (banners)
    #[arg(short = 'q', long, global = true)]
    quiet: bool,

    /// Suppress informational messages and table headers
    #[arg(short = 's', long, global = true)]
    silent: bool,

    /// Output format
    #[arg(long, value_enum, default_value_t = Formatter::Table, global = true)]
    formatter: Formatter,

    /// Seconds to wait for each answer of the API
    #[arg(
        short = 't',
        long,
        default_value_t = 60,
        value_parser = clap::value_parser!(u64).range(1..),
        global = true,
        value_name = "SECONDS"
    )]
    timeout: u64,

    /// Do not print the header line of tables
    #[arg(long, global = true)]
    no_table_headers: bool,

    /// RabbitMQ node name (NAME@HOST): shown in messages, and its host is the API's when
    /// --url is not given
    #[arg(short = 'n', long, global = true, value_name = "NODE")]
    node: Option<String>,

    /// Accepted for compatibility with RabbitMQ's tools; no effect
    #[arg(short = 'l', long, global = true, hide = true)]
    longnames: bool,
}

#[derive(Debug, PartialEq, Eq, Subcommand)]
#[command(rename_all = "snake_case")]
enum Command {
    /// List queues (default columns: name messages)
    ListQueues {
        /// Columns to show, e.g. name messages_ready messages_unacknowledged consumers
        #[arg(value_name = "COLUMN")]
        columns: Vec<String>,
    },
    /// List exchanges (default columns: name type)
    ListExchanges {
        /// Columns: arguments auto_delete durable internal name policy type
        #[arg(value_name = "COLUMN")]
        columns: Vec<String>,
    },
    /// List bindings (default: source_name source_kind destination_name destination_kind
    /// routing_key arguments)
    ListBindings {
        /// Columns to show
        #[arg(value_name = "COLUMN")]
        columns: Vec<String>,
    },
    /// List connections of all vhosts (default columns: user peer_host peer_port state)
    ListConnections {
        /// Columns to show, e.g. name user vhost channels client_properties
        #[arg(value_name = "COLUMN")]
        columns: Vec<String>,
    },
    /// List consumers (default: queue_name channel_pid consumer_tag ack_required
    /// prefetch_count active arguments)
    ListConsumers {
        /// Columns to show; channel_pid is the channel's name
        #[arg(value_name = "COLUMN")]
        columns: Vec<String>,
    },
    /// List users and their tags
    ListUsers,
    /// List virtual hosts (default column: name)
    ListVhosts {
        /// Columns: cluster_state default_queue_type description name tags tracing
        #[arg(value_name = "COLUMN")]
        columns: Vec<String>,
    },
    /// List the permissions of the users of a virtual host (-p)
    ListPermissions,
    /// Remove every ready message of a queue
    PurgeQueue {
        #[arg(value_name = "QUEUE")]
        queue: String,
    },
    /// Delete a queue
    DeleteQueue {
        #[arg(value_name = "QUEUE")]
        queue: String,
        /// Only if it has no messages
        #[arg(short = 'e', long = "if-empty")]
        if_empty: bool,
        /// Only if it has no consumers
        #[arg(long = "if-unused")]
        if_unused: bool,
    },
    /// Create a user (without PASSWORD, one line is read from stdin)
    AddUser {
        #[arg(value_name = "USERNAME")]
        user: String,
        #[arg(value_name = "PASSWORD")]
        new_password: Option<String>,
    },
    /// Delete a user
    DeleteUser {
        #[arg(value_name = "USERNAME")]
        user: String,
    },
    /// Change a user's password (without PASSWORD, one line is read from stdin)
    ChangePassword {
        #[arg(value_name = "USERNAME")]
        user: String,
        #[arg(value_name = "PASSWORD")]
        new_password: Option<String>,
    },
    /// Replace a user's tags (none clears them)
    SetUserTags {
        #[arg(value_name = "USERNAME")]
        user: String,
        #[arg(value_name = "TAG")]
        user_tags: Vec<String>,
    },
    /// Create a virtual host
    AddVhost {
        #[arg(value_name = "VHOST")]
        name: String,
        /// Description of the virtual host
        #[arg(long)]
        description: Option<String>,
        /// Comma-separated tags of the virtual host
        #[arg(long, value_name = "TAGS")]
        tags: Option<String>,
        /// Queue type of queues declared without x-queue-type
        #[arg(long = "default-queue-type", value_name = "TYPE")]
        default_queue_type: Option<String>,
    },
    /// Delete a virtual host and everything in it
    DeleteVhost {
        #[arg(value_name = "VHOST")]
        name: String,
    },
    /// Set a user's permissions in a virtual host (-p)
    SetPermissions {
        #[arg(value_name = "USERNAME")]
        user: String,
        /// Regular expression of the resources the user may configure
        #[arg(value_name = "CONF")]
        configure: String,
        /// Regular expression of the resources the user may write to
        #[arg(value_name = "WRITE")]
        write: String,
        /// Regular expression of the resources the user may read from
        #[arg(value_name = "READ")]
        read: String,
    },
    /// Remove a user's permissions in a virtual host (-p)
    ClearPermissions {
        #[arg(value_name = "USERNAME")]
        user: String,
    },
    /// Save the node's definitions as JSON to FILE, or to stdout with -
    ExportDefinitions {
        #[arg(value_name = "FILE|-")]
        file: String,
    },
    /// Load definitions from FILE, or from stdin with - or no argument
    ImportDefinitions {
        #[arg(value_name = "FILE|-")]
        file: Option<String>,
    },
    /// Close a connection, named as `list_connections name` prints it
    CloseConnection {
        #[arg(value_name = "CONNECTION")]
        connection: String,
        #[arg(value_name = "REASON")]
        reason: String,
    },
    #[command(flatten)]
    Diagnostics(DiagnosticsCommand),
}

#[derive(Debug, PartialEq, Eq, Subcommand)]
#[command(rename_all = "snake_case")]
enum DiagnosticsCommand {
    /// Check that the management API answers (liveness)
    Ping,
    /// Check that the node has booted and serves clients
    CheckRunning,
    /// Fail if the node reports a resource alarm
    CheckLocalAlarms,
    /// Fail if any node of the cluster reports a resource alarm
    CheckAlarms,
    /// Open a TCP connection to every listener of the node
    CheckPortConnectivity,
    /// List resource alarms
    Alarms,
    /// List the node's protocol listeners
    Listeners,
    /// Report the node's status
    Status,
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let (global, command) = match parse(&args) {
        Ok(parsed) => parsed,
        Err(e) => {
            // Help and version go to stdout and succeed; usage errors are 64, as rabbitmqctl's.
            let code = if e.use_stderr() { 64 } else { 0 };
            // Nothing useful is left to do if the terminal is gone.
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match run(global, command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if e.is_reportable() {
                // Nothing useful is left to do if stderr is gone.
                let _ = writeln!(io::stderr(), "Error:\n{e}");
            }
            ExitCode::from(e.exit_code())
        }
    }
}

/// The command line, read as brokerctl's or, under the name rabbitmq-diagnostics, as that tool's.
fn parse(args: &[OsString]) -> Result<(GlobalOpts, Command), clap::Error> {
    let invoked_as = args
        .first()
        .and_then(|arg0| Path::new(arg0).file_stem())
        .map(|name| name.to_string_lossy().into_owned());
    if invoked_as.as_deref() == Some(DIAGNOSTICS_NAME) {
        let cli = DiagnosticsCli::try_parse_from(args)?;
        Ok((cli.global, Command::Diagnostics(cli.command)))
    } else {
        let cli = Cli::try_parse_from(args)?;
        Ok((cli.global, cli.command))
    }
}

/// The API's URL: `--url` (or `BROKER_MGMT_URL`), else the host of `-n name@host`, else local.
fn management_url(url: Option<&str>, node: Option<&str>) -> String {
    if let Some(url) = url {
        return url.to_owned();
    }
    match node.and_then(|n| n.split_once('@')).map(|(_, host)| host) {
        Some(host) if !host.is_empty() => format!("http://{host}:{DEFAULT_MANAGEMENT_PORT}"),
        _ => DEFAULT_URL.to_owned(),
    }
}

fn run(global: GlobalOpts, command: Command) -> Result<(), CtlError> {
    let url = management_url(global.url.as_deref(), global.node.as_deref());
    let api = Client::new(
        &url,
        &global.username,
        &global.password,
        Duration::from_secs(global.timeout),
    )?;
    let out = Output {
        formatter: global.formatter,
        quiet: global.quiet || global.silent,
        table_headers: !(global.no_table_headers || global.silent),
    };
    let ctx = Context::new(api, out, global.vhost, global.node);
    dispatch(&ctx, command)
}

fn dispatch(ctx: &Context, command: Command) -> Result<(), CtlError> {
    match command {
        Command::ListQueues { columns } => list::run(ctx, Entity::Queues, &columns),
        Command::ListExchanges { columns } => list::run(ctx, Entity::Exchanges, &columns),
        Command::ListBindings { columns } => list::run(ctx, Entity::Bindings, &columns),
        Command::ListConnections { columns } => list::run(ctx, Entity::Connections, &columns),
        Command::ListConsumers { columns } => list::run(ctx, Entity::Consumers, &columns),
        Command::ListUsers => list::run(ctx, Entity::Users, &[]),
        Command::ListVhosts { columns } => list::run(ctx, Entity::Vhosts, &columns),
        Command::ListPermissions => list::run(ctx, Entity::Permissions, &[]),
        Command::PurgeQueue { queue } => queues::purge_queue(ctx, &queue),
        Command::DeleteQueue {
            queue,
            if_empty,
            if_unused,
        } => queues::delete_queue(
            ctx,
            &queue,
            DeleteConditions {
                if_empty,
                if_unused,
            },
        ),
        Command::AddUser { user, new_password } => {
            access::add_user(ctx, &user, new_password.as_deref())
        }
        Command::DeleteUser { user } => access::delete_user(ctx, &user),
        Command::ChangePassword { user, new_password } => {
            access::change_password(ctx, &user, new_password.as_deref())
        }
        Command::SetUserTags { user, user_tags } => access::set_user_tags(ctx, &user, &user_tags),
        Command::AddVhost {
            name,
            description,
            tags,
            default_queue_type,
        } => access::add_vhost(
            ctx,
            &name,
            &VhostMetadata {
                description,
                tags,
                default_queue_type,
            },
        ),
        Command::DeleteVhost { name } => access::delete_vhost(ctx, &name),
        Command::SetPermissions {
            user,
            configure,
            write,
            read,
        } => access::set_permissions(
            ctx,
            &user,
            &Permissions {
                configure,
                write,
                read,
            },
        ),
        Command::ClearPermissions { user } => access::clear_permissions(ctx, &user),
        Command::ExportDefinitions { file } => definitions::export_definitions(ctx, &file),
        Command::ImportDefinitions { file } => {
            definitions::import_definitions(ctx, file.as_deref())
        }
        Command::CloseConnection { connection, reason } => {
            connections::close_connection(ctx, &connection, &reason)
        }
        Command::Diagnostics(command) => match command {
            DiagnosticsCommand::Ping => diagnostics::ping(ctx),
            DiagnosticsCommand::CheckRunning => diagnostics::check_running(ctx),
            DiagnosticsCommand::CheckLocalAlarms => diagnostics::check_local_alarms(ctx),
            DiagnosticsCommand::CheckAlarms => diagnostics::check_alarms(ctx),
            DiagnosticsCommand::CheckPortConnectivity => diagnostics::check_port_connectivity(ctx),
            DiagnosticsCommand::Alarms => diagnostics::alarms(ctx),
            DiagnosticsCommand::Listeners => diagnostics::listeners(ctx),
            DiagnosticsCommand::Status => diagnostics::status(ctx),
        },
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn parse_ok(args: &[&str]) -> (GlobalOpts, Command) {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        match parse(&args) {
            Ok(parsed) => parsed,
            Err(e) => panic!("{args:?} did not parse: {e}"),
        }
    }

    fn parse_err(args: &[&str]) -> clap::Error {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        match parse(&args) {
            Ok(parsed) => panic!("{args:?} parsed as {:?}", parsed.1),
            Err(e) => e,
        }
    }

    #[test]
    fn both_command_lines_are_well_formed() {
        Cli::command().debug_assert();
        DiagnosticsCli::command().debug_assert();
    }

    #[test]
    fn list_columns_and_global_options_anywhere() {
        let (global, command) = parse_ok(&[
            "brokerctl",
            "list_queues",
            "name",
            "messages",
            "-p",
            "orders",
            "-q",
            "--formatter",
            "json",
        ]);
        assert_eq!(
            command,
            Command::ListQueues {
                columns: vec!["name".into(), "messages".into()]
            }
        );
        assert_eq!(global.vhost, "orders");
        assert!(global.quiet);
        assert_eq!(global.formatter, Formatter::Json);
        assert_eq!(global.timeout, 60);

        let (global, _) = parse_ok(&["brokerctl", "-p", "v", "--no-table-headers", "list_vhosts"]);
        assert_eq!(global.vhost, "v");
        assert!(global.no_table_headers);
    }

    #[test]
    fn set_permissions_takes_rabbitmqctls_argument_order() {
        let (global, command) = parse_ok(&[
            "brokerctl",
            "set_permissions",
            "-p",
            "vh",
            "alice",
            ".*",
            "",
            "^r",
        ]);
        assert_eq!(global.vhost, "vh");
        assert_eq!(
            command,
            Command::SetPermissions {
                user: "alice".into(),
                configure: ".*".into(),
                write: String::new(),
                read: "^r".into(),
            }
        );
    }

    #[test]
    fn delete_queue_conditions() {
        let (_, command) = parse_ok(&[
            "brokerctl",
            "delete_queue",
            "q",
            "--if-empty",
            "--if-unused",
        ]);
        assert_eq!(
            command,
            Command::DeleteQueue {
                queue: "q".into(),
                if_empty: true,
                if_unused: true
            }
        );
        let (_, command) = parse_ok(&["brokerctl", "delete_queue", "-e", "q"]);
        assert!(matches!(
            command,
            Command::DeleteQueue {
                if_empty: true,
                if_unused: false,
                ..
            }
        ));
    }

    #[test]
    fn user_commands() {
        let (_, command) = parse_ok(&[
            "brokerctl",
            "set_user_tags",
            "bob",
            "administrator",
            "monitoring",
        ]);
        assert_eq!(
            command,
            Command::SetUserTags {
                user: "bob".into(),
                user_tags: vec!["administrator".into(), "monitoring".into()]
            }
        );
        let (_, command) = parse_ok(&["brokerctl", "add_user", "bob"]);
        assert_eq!(
            command,
            Command::AddUser {
                user: "bob".into(),
                new_password: None
            }
        );
        let (global, _) = parse_ok(&["brokerctl", "-u", "admin", "--password", "pw", "list_users"]);
        assert_eq!(global.username, "admin");
        assert_eq!(global.password, "pw");
    }

    #[test]
    fn usage_errors_go_to_stderr() {
        for args in [
            &["brokerctl", "purge_queue"][..],
            &["brokerctl", "list_users", "name"],
            &["brokerctl", "nosuch_command"],
            &["brokerctl", "list_queues", "--formatter", "csv"],
            &["brokerctl", "ping", "--timeout", "0"],
            &["brokerctl", "set_permissions", "u", "a", "b"],
        ] {
            assert!(parse_err(args).use_stderr(), "{args:?}");
        }
        assert!(!parse_err(&["brokerctl", "--help"]).use_stderr());
    }

    #[test]
    fn the_diagnostics_shim_takes_rabbitmq_diagnostics_options() {
        let (global, command) = parse_ok(&["/usr/local/bin/rabbitmq-diagnostics", "-q", "ping"]);
        assert_eq!(command, Command::Diagnostics(DiagnosticsCommand::Ping));
        assert!(global.quiet);

        let (global, command) = parse_ok(&[
            "rabbitmq-diagnostics",
            "check_port_connectivity",
            "-n",
            "rabbit@broker",
            "-t",
            "10",
            "-l",
        ]);
        assert_eq!(
            command,
            Command::Diagnostics(DiagnosticsCommand::CheckPortConnectivity)
        );
        assert_eq!(global.node.as_deref(), Some("rabbit@broker"));
        assert_eq!(global.timeout, 10);

        // Only diagnostics commands under that name.
        assert!(parse_err(&["rabbitmq-diagnostics", "list_queues"]).use_stderr());
        // brokerctl has them too.
        let (_, command) = parse_ok(&["brokerctl", "check_local_alarms"]);
        assert_eq!(
            command,
            Command::Diagnostics(DiagnosticsCommand::CheckLocalAlarms)
        );
    }

    #[test]
    fn the_url_comes_from_url_then_node_then_default() {
        assert_eq!(
            management_url(Some("http://h:1"), Some("rabbit@x")),
            "http://h:1"
        );
        assert_eq!(
            management_url(None, Some("rabbit@broker")),
            "http://broker:15672"
        );
        assert_eq!(management_url(None, Some("rabbit")), DEFAULT_URL);
        assert_eq!(management_url(None, None), DEFAULT_URL);
    }
}
