//! The Prometheus text exposition format 0.0.4, written by hand (no client library: the
//! names, label order and help texts must be RabbitMQ's byte for byte, and every scrape is a
//! fresh snapshot, so a registry of long-lived metric objects would only get in the way).
//!
//! A family is opened once with its `# TYPE` and `# HELP` lines (RabbitMQ's order), then gets
//! its samples; the next family closes it. Nothing here knows what a queue is.

use std::fmt::Write as _;

/// The `Content-Type` of a scrape.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A family's `# TYPE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Untyped,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Untyped => "untyped",
        }
    }
}

/// A sample's value: counts stay integers, ratios and seconds are floats.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value {
    Int(u64),
    Float(f64),
}

impl Value {
    /// The sum of two values (an aggregated sample); NaN (RabbitMQ's "undefined") is skipped.
    pub fn plus(self, other: Value) -> Value {
        match (self, other) {
            (Self::Int(a), Self::Int(b)) => Self::Int(a.saturating_add(b)),
            (a, b) if a.is_nan() => b,
            (a, b) if b.is_nan() => a,
            (a, b) => Self::Float(a.as_f64() + b.as_f64()),
        }
    }

    fn as_f64(self) -> f64 {
        match self {
            Self::Int(v) => v as f64,
            Self::Float(v) => v,
        }
    }

    fn is_nan(self) -> bool {
        matches!(self, Self::Float(v) if v.is_nan())
    }
}

/// A label: name and value (escaped when written).
pub type Label = (&'static str, String);

/// Writes one scrape.
#[derive(Debug, Default)]
pub struct Encoder {
    out: String,
    /// The open family's name; samples are written under it.
    family: String,
    /// Families opened so far, to catch a family written twice (HELP/TYPE must appear once).
    #[cfg(debug_assertions)]
    opened: std::collections::HashSet<String>,
}

impl Encoder {
    /// Opens family `name`: its `# TYPE` and `# HELP` lines.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        #[cfg(debug_assertions)]
        assert!(
            self.opened.insert(name.to_owned()),
            "metric family {name} written twice"
        );
        self.family.clear();
        self.family.push_str(name);
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
        let _ = write!(self.out, "# HELP {name} ");
        escape_into(&mut self.out, help, false);
        self.out.push('\n');
    }

    /// Adds a sample to the open family.
    pub fn sample(&mut self, labels: &[Label], value: Value) {
        self.out.push_str(&self.family);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (name, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(name);
                self.out.push_str("=\"");
                escape_into(&mut self.out, v, true);
                self.out.push('"');
            }
            self.out.push('}');
        }
        self.out.push(' ');
        match value {
            Value::Int(v) => {
                let _ = write!(self.out, "{v}");
            }
            Value::Float(v) if v.is_nan() => self.out.push_str("NaN"),
            Value::Float(v) if v.is_infinite() => {
                self.out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
            }
            // Debug keeps the `.0` of whole numbers, as RabbitMQ writes them ("1.0").
            Value::Float(v) => {
                let _ = write!(self.out, "{v:?}");
            }
        }
        self.out.push('\n');
    }

    /// The text so far.
    pub fn finish(self) -> String {
        self.out
    }
}

/// Appends `s` escaped: `\` and newline always, `"` in label values only (0.0.4 rules).
fn escape_into(out: &mut String, s: &str, label_value: bool) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if label_value => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn family_then_samples() {
        let mut e = Encoder::default();
        e.family("rabbitmq_queues", Kind::Gauge, "Queues available");
        e.sample(&[], Value::Int(3));
        e.family("rabbitmq_x_total", Kind::Counter, "X");
        e.sample(
            &[("vhost", "/".into()), ("queue", "q".into())],
            Value::Int(1),
        );
        e.sample(&[("vhost", "/".into())], Value::Float(1.0));
        assert_eq!(
            e.finish(),
            "# TYPE rabbitmq_queues gauge\n\
             # HELP rabbitmq_queues Queues available\n\
             rabbitmq_queues 3\n\
             # TYPE rabbitmq_x_total counter\n\
             # HELP rabbitmq_x_total X\n\
             rabbitmq_x_total{vhost=\"/\",queue=\"q\"} 1\n\
             rabbitmq_x_total{vhost=\"/\"} 1.0\n"
        );
    }

    #[test]
    fn label_values_and_help_are_escaped() {
        let mut e = Encoder::default();
        e.family("m", Kind::Untyped, "a \\ b\nc \"d\"");
        e.sample(&[("queue", "a\\b\"c\nd".into())], Value::Int(0));
        assert_eq!(
            e.finish(),
            "# TYPE m untyped\n\
             # HELP m a \\\\ b\\nc \"d\"\n\
             m{queue=\"a\\\\b\\\"c\\nd\"} 0\n"
        );
    }

    #[test]
    fn floats_as_prometheus_reads_them() {
        let mut e = Encoder::default();
        e.family("m", Kind::Gauge, "h");
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 891.137, 0.0] {
            e.sample(&[], Value::Float(v));
        }
        let text = e.finish();
        let values: Vec<&str> = text
            .lines()
            .skip(2)
            .filter_map(|l| l.split(' ').nth(1))
            .collect();
        assert_eq!(values, ["NaN", "+Inf", "-Inf", "891.137", "0.0"]);
    }

    #[test]
    fn sums_skip_nan() {
        let nan = Value::Float(f64::NAN);
        assert_eq!(Value::Int(2).plus(Value::Int(3)), Value::Int(5));
        assert_eq!(nan.plus(Value::Float(1.5)), Value::Float(1.5));
        assert_eq!(Value::Int(1).plus(nan), Value::Int(1));
        assert_eq!(Value::Int(1).plus(Value::Float(0.5)), Value::Float(1.5));
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "written twice")]
    fn a_family_is_written_once() {
        let mut e = Encoder::default();
        e.family("m", Kind::Gauge, "h");
        e.family("m", Kind::Gauge, "h");
    }
}
