//! Output as rabbitmqctl 3.10 writes it: banners (suppressed by `-q` and by `--formatter
//! json`), tab-separated tables under a header line (`--no-table-headers`, `-s`; no header at
//! all when there are no rows), JSON arrays written one object per line with exactly the
//! requested keys in the requested order, and values spelled as the Erlang terms rabbitmqctl
//! prints (`[{"x-max-length",10}]`, `[administrator, monitoring]`, `{0,9,1}`).
//!
//! It turns JSON the API already returned into text; it never talks to the API.

use std::io::{self, Write};
use std::net::{Ipv4Addr, Ipv6Addr};

use serde_json::{Map, Value};

use crate::error::CtlError;

/// `--formatter`: how results are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Formatter {
    /// Tab-separated columns under a header line, after an informational banner.
    Table,
    /// JSON: an array of objects for listings, an object for other results; no banner.
    Json,
}

/// How a column's JSON value is written. The management API returns JSON where rabbitmqctl
/// prints Erlang terms, so each column says which term it stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A string, number or boolean, printed as is; missing or `null` prints as empty.
    Plain,
    /// An AMQP field table (`arguments`, `client_properties`): `[{"k",v},…]`; in JSON a list
    /// of `[key, type, value]` triples, the types inferred from the JSON value.
    FieldTable,
    /// A list of atoms (user tags, queue members): `[a, b]`.
    AtomList,
    /// A map of atoms (a vhost's `cluster_state`): `[{rabbit@host, running}]`.
    AtomPairs,
    /// An IP address: as text in tables; a list of integers (the Erlang tuple) in JSON.
    IpAddress,
    /// A protocol such as `AMQP 0-9-1`: `{0,9,1}`; `[0,9,1]` in JSON.
    Protocol,
}

/// One value of one row, in both spellings.
#[derive(Clone, Debug, PartialEq)]
pub struct Cell {
    /// What the table formatter prints.
    pub text: String,
    /// What the JSON formatter prints.
    pub json: Value,
}

/// The printing options every command shares.
#[derive(Clone, Copy, Debug)]
pub struct Output {
    pub formatter: Formatter,
    /// `-q`: no banners and no informational lines.
    pub quiet: bool,
    /// Off with `--no-table-headers` or `-s`.
    pub table_headers: bool,
}

impl Cell {
    fn empty() -> Self {
        Cell {
            text: String::new(),
            json: Value::String(String::new()),
        }
    }
}

/// The cell for `value` (missing when the API omitted the field) written as `kind`.
pub fn cell(kind: Kind, value: Option<&Value>) -> Cell {
    let value = match value {
        None | Some(Value::Null) => {
            return match kind {
                Kind::FieldTable | Kind::AtomList => Cell {
                    text: "[]".to_owned(),
                    json: Value::Array(Vec::new()),
                },
                Kind::AtomPairs => Cell {
                    text: "[]".to_owned(),
                    json: Value::Object(Map::new()),
                },
                Kind::Plain | Kind::IpAddress | Kind::Protocol => Cell::empty(),
            };
        }
        Some(value) => value,
    };
    match kind {
        Kind::Plain => plain(value),
        Kind::FieldTable => Cell {
            text: erlang_term(value),
            json: typed_table(value),
        },
        Kind::AtomList => atom_list(value),
        Kind::AtomPairs => Cell {
            text: match value {
                Value::Object(map) => {
                    let pairs: Vec<String> = map
                        .iter()
                        .map(|(k, v)| format!("{{{k}, {}}}", atom(v)))
                        .collect();
                    format!("[{}]", pairs.join(", "))
                }
                other => atom(other),
            },
            json: value.clone(),
        },
        Kind::IpAddress => ip_address(value),
        Kind::Protocol => protocol(value),
    }
}

/// A tab-separated table: the header line (unless `headers` is off or there are no rows),
/// then one line per row.
pub fn table(columns: &[&str], rows: &[Vec<Cell>], headers: bool) -> String {
    let mut out = String::new();
    if headers && !rows.is_empty() {
        out.push_str(&columns.join("\t"));
        out.push('\n');
    }
    for row in rows {
        let texts: Vec<&str> = row.iter().map(|c| c.text.as_str()).collect();
        out.push_str(&texts.join("\t"));
        out.push('\n');
    }
    out
}

/// rabbitmqctl's JSON listing: `[`, one object per line (`,` leading every line but the
/// first), `]`; keys exactly `columns`, in that order.
pub fn json_rows(columns: &[&str], rows: &[Vec<Cell>]) -> String {
    let mut out = String::from("[\n");
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('{');
        for (j, (column, cell)) in columns.iter().zip(row).enumerate() {
            if j > 0 {
                out.push(',');
            }
            out.push_str(&Value::String((*column).to_owned()).to_string());
            out.push(':');
            out.push_str(&cell.json.to_string());
        }
        out.push_str("}\n");
    }
    out.push_str("]\n");
    out
}

/// Bytes as rabbitmqctl's `status` shows them: gigabytes (10^9) to four decimals, trailing
/// zeros dropped as Erlang prints floats (`0.05`, `81.4738`, `0.0`).
pub fn gigabytes(bytes: f64) -> String {
    let text = format!("{:.4}", bytes / 1e9);
    let trimmed = text.trim_end_matches('0');
    if trimmed.ends_with('.') {
        format!("{trimmed}0")
    } else {
        trimmed.to_owned()
    }
}

impl Output {
    /// The informational line printed before a command's result (`Listing queues for vhost /
    /// ...`), unless `-q` or a JSON formatter.
    pub fn banner(&self, line: &str) -> Result<(), CtlError> {
        if self.quiet || self.formatter == Formatter::Json {
            return Ok(());
        }
        print_text(&format!("{line}\n"))
    }

    /// A listing in the chosen format.
    pub fn rows(&self, columns: &[&str], rows: &[Vec<Cell>]) -> Result<(), CtlError> {
        match self.formatter {
            Formatter::Table => print_text(&table(columns, rows, self.table_headers)),
            Formatter::Json => print_text(&json_rows(columns, rows)),
        }
    }

    /// A result message (`Ping succeeded`): a line in a table, `{"message":…}` in JSON.
    /// Printed even with `-q`, as rabbitmqctl does: it is the command's result.
    pub fn message(&self, message: &str) -> Result<(), CtlError> {
        match self.formatter {
            Formatter::Table => print_text(&format!("{message}\n")),
            Formatter::Json => self.json(&serde_json::json!({ "message": message })),
        }
    }

    /// Lines printed with the table formatter only, like a banner (`Done. Don't forget…`).
    pub fn info(&self, text: &str) -> Result<(), CtlError> {
        self.banner(text)
    }

    /// A JSON document on one line.
    pub fn json(&self, value: &Value) -> Result<(), CtlError> {
        print_text(&format!("{value}\n"))
    }
}

/// Writes `text` to stdout as is.
pub fn print_text(text: &str) -> Result<(), CtlError> {
    print_bytes(text.as_bytes())
}

/// Writes `bytes` to stdout as they are (an exported definitions document).
pub fn print_bytes(bytes: &[u8]) -> Result<(), CtlError> {
    let mut stdout = io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .map_err(CtlError::Output)
}

fn plain(value: &Value) -> Cell {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => String::new(),
        Value::Array(_) | Value::Object(_) => erlang_term(value),
    };
    Cell {
        text,
        json: value.clone(),
    }
}

/// A JSON value written as the Erlang term rabbitmqctl prints for it. Strings are quoted
/// binaries, except the empty one, which Erlang prints as `[]`.
fn erlang_term(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let pairs: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{{{},{}}}", quote(k), erlang_term(v)))
                .collect();
            format!("[{}]", pairs.join(","))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(erlang_term).collect();
            format!("[{}]", items.join(","))
        }
        Value::String(s) if s.is_empty() => "[]".to_owned(),
        Value::String(s) => quote(s),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "undefined".to_owned(),
    }
}

fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// An AMQP field table as rabbitmqctl's JSON formatter writes it: `[[key, type, value], …]`.
fn typed_table(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Array(
            map.iter()
                .map(|(k, v)| {
                    Value::Array(vec![
                        Value::String(k.clone()),
                        Value::String(amqp_type(v).to_owned()),
                        typed_value(v),
                    ])
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A field value inside `typed_table`. Arrays come out as rabbitmqctl 3.10 writes them, as an
/// object from each element's type to its value (lossy when two elements share a type).
fn typed_value(value: &Value) -> Value {
    match value {
        Value::Object(_) => typed_table(value),
        Value::Array(items) => Value::Object(
            items
                .iter()
                .map(|v| (amqp_type(v).to_owned(), typed_value(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The AMQP field type RabbitMQ gives a JSON value it decodes (`rabbit_mgmt_format`): the API
/// does not say which type a client used, so integers are `long`, as for HTTP-declared ones.
fn amqp_type(value: &Value) -> &'static str {
    match value {
        Value::String(_) => "longstr",
        Value::Number(n) if n.is_f64() => "double",
        Value::Number(_) => "long",
        Value::Bool(_) => "bool",
        Value::Object(_) => "table",
        Value::Array(_) => "array",
        Value::Null => "void",
    }
}

/// An atom: strings unquoted.
fn atom(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => erlang_term(other),
    }
}

fn atom_list(value: &Value) -> Cell {
    let items: Vec<Value> = match value {
        Value::Array(items) => items.clone(),
        // Some APIs give tags as one comma-separated string.
        Value::String(s) => s
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| Value::String(t.to_owned()))
            .collect(),
        other => vec![other.clone()],
    };
    let texts: Vec<String> = items.iter().map(atom).collect();
    Cell {
        text: format!("[{}]", texts.join(", ")),
        json: Value::Array(items),
    }
}

fn ip_address(value: &Value) -> Cell {
    let Value::String(s) = value else {
        return plain(value);
    };
    let json = if let Ok(v4) = s.parse::<Ipv4Addr>() {
        v4.octets().iter().map(|&o| Value::from(o)).collect()
    } else if let Ok(v6) = s.parse::<Ipv6Addr>() {
        v6.segments().iter().map(|&g| Value::from(g)).collect()
    } else {
        Value::String(s.clone())
    };
    Cell {
        text: s.clone(),
        json,
    }
}

fn protocol(value: &Value) -> Cell {
    let version: Option<Vec<u64>> = value
        .as_str()
        .and_then(|s| s.strip_prefix("AMQP "))
        .and_then(|v| v.split(['-', '.']).map(|n| n.parse().ok()).collect());
    match version {
        Some(parts) if parts.len() == 3 => {
            let texts: Vec<String> = parts.iter().map(u64::to_string).collect();
            Cell {
                text: format!("{{{}}}", texts.join(",")),
                json: parts.into_iter().map(Value::from).collect(),
            }
        }
        _ => plain(value),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn text(kind: Kind, value: Value) -> String {
        cell(kind, Some(&value)).text
    }

    fn js(kind: Kind, value: Value) -> Value {
        cell(kind, Some(&value)).json
    }

    #[test]
    fn plain_values_print_as_rabbitmqctl_prints_them() {
        assert_eq!(text(Kind::Plain, json!("q1")), "q1");
        assert_eq!(text(Kind::Plain, json!(1)), "1");
        assert_eq!(text(Kind::Plain, json!(true)), "true");
        assert_eq!(text(Kind::Plain, json!(false)), "false");
        assert_eq!(text(Kind::Plain, json!(1.5)), "1.5");
        assert_eq!(text(Kind::Plain, json!(null)), "");
        assert_eq!(cell(Kind::Plain, None), Cell::empty());
        assert_eq!(js(Kind::Plain, json!(7)), json!(7));
        assert_eq!(js(Kind::Plain, json!(false)), json!(false));
    }

    #[test]
    fn field_tables_print_as_erlang_proplists() {
        // What rabbitmqctl 3.10 printed for a queue declared with these arguments.
        let args = json!({
            "x-arr": [1, "a", true, [2]],
            "x-b": true,
            "x-e": "",
            "x-f": 1.5,
            "x-i": 5,
            "x-quote": "a\"b\\c\td",
            "x-tab": {"k": "v", "n": {"m": 1}},
            "x-u": "é"
        });
        assert_eq!(
            text(Kind::FieldTable, args.clone()),
            r#"[{"x-arr",[1,"a",true,[2]]},{"x-b",true},{"x-e",[]},{"x-f",1.5},{"x-i",5},{"x-quote","a\"b\\c\td"},{"x-tab",[{"k","v"},{"n",[{"m",1}]}]},{"x-u","é"}]"#
        );
        assert_eq!(
            js(Kind::FieldTable, args),
            json!([
                ["x-arr", "array", {"long": 1, "longstr": "a", "bool": true, "array": {"long": 2}}],
                ["x-b", "bool", true],
                ["x-e", "longstr", ""],
                ["x-f", "double", 1.5],
                ["x-i", "long", 5],
                ["x-quote", "longstr", "a\"b\\c\td"],
                ["x-tab", "table", [["k", "longstr", "v"], ["n", "table", [["m", "long", 1]]]]],
                ["x-u", "longstr", "é"]
            ])
        );
        assert_eq!(text(Kind::FieldTable, json!({})), "[]");
        assert_eq!(cell(Kind::FieldTable, None).text, "[]");
        assert_eq!(js(Kind::FieldTable, json!({})), json!([]));
    }

    #[test]
    fn atoms_print_unquoted() {
        assert_eq!(
            text(Kind::AtomList, json!(["administrator", "monitoring"])),
            "[administrator, monitoring]"
        );
        assert_eq!(text(Kind::AtomList, json!([])), "[]");
        assert_eq!(text(Kind::AtomList, json!("a,b")), "[a, b]");
        assert_eq!(js(Kind::AtomList, json!("a,b")), json!(["a", "b"]));
        assert_eq!(
            text(Kind::AtomPairs, json!({"rabbit@localhost": "running"})),
            "[{rabbit@localhost, running}]"
        );
        assert_eq!(
            js(Kind::AtomPairs, json!({"rabbit@localhost": "running"})),
            json!({"rabbit@localhost": "running"})
        );
    }

    #[test]
    fn addresses_and_protocols_are_erlang_tuples_in_json() {
        assert_eq!(text(Kind::IpAddress, json!("127.0.0.1")), "127.0.0.1");
        assert_eq!(
            js(Kind::IpAddress, json!("127.0.0.1")),
            json!([127, 0, 0, 1])
        );
        assert_eq!(
            js(Kind::IpAddress, json!("::1")),
            json!([0, 0, 0, 0, 0, 0, 0, 1])
        );
        assert_eq!(
            js(Kind::IpAddress, json!("host.example")),
            json!("host.example")
        );
        assert_eq!(text(Kind::Protocol, json!("AMQP 0-9-1")), "{0,9,1}");
        assert_eq!(js(Kind::Protocol, json!("AMQP 0-9-1")), json!([0, 9, 1]));
        assert_eq!(text(Kind::Protocol, json!("MQTT")), "MQTT");
    }

    fn row(values: &[Value]) -> Vec<Cell> {
        values.iter().map(|v| cell(Kind::Plain, Some(v))).collect()
    }

    #[test]
    fn tables_are_tab_separated_under_a_header() {
        let rows = vec![row(&[json!("q1"), json!(1)]), row(&[json!("q2"), json!(0)])];
        assert_eq!(
            table(&["name", "messages"], &rows, true),
            "name\tmessages\nq1\t1\nq2\t0\n"
        );
        assert_eq!(table(&["name", "messages"], &rows, false), "q1\t1\nq2\t0\n");
        // rabbitmqctl prints no header line for an empty listing.
        assert_eq!(table(&["name", "messages"], &[], true), "");
    }

    #[test]
    fn json_rows_keep_the_requested_keys_in_order() {
        let rows = vec![row(&[json!("q1"), json!(1)]), row(&[json!("q2"), json!(0)])];
        let out = json_rows(&["name", "messages"], &rows);
        assert_eq!(
            out,
            "[\n{\"name\":\"q1\",\"messages\":1}\n,{\"name\":\"q2\",\"messages\":0}\n]\n"
        );
        let parsed: Value = serde_json::from_str(&out).expect("valid JSON");
        assert_eq!(
            parsed,
            json!([{"name": "q1", "messages": 1}, {"name": "q2", "messages": 0}])
        );
        assert_eq!(json_rows(&["name"], &[]), "[\n]\n");
        // Keys in the order asked for, not sorted.
        let out = json_rows(&["messages", "name"], &[row(&[json!(3), json!("q")])]);
        assert_eq!(out, "[\n{\"messages\":3,\"name\":\"q\"}\n]\n");
    }

    #[test]
    fn gigabytes_are_written_as_erlang_floats() {
        assert_eq!(gigabytes(50_000_000.0), "0.05");
        assert_eq!(gigabytes(81_473_818_624.0), "81.4738");
        assert_eq!(gigabytes(10_110_428_774.0), "10.1104");
        assert_eq!(gigabytes(0.0), "0.0");
        assert_eq!(gigabytes(2e9), "2.0");
    }
}
