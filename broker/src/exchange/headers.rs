//! Headers-exchange matching (`x-match` = `all`, `any`, `all-with-x`, `any-with-x`), as
//! RabbitMQ implements it: binding arguments whose names start with `x-` take part only in the
//! `-with-x` modes; a binding value of type void matches on presence alone.

use crate::protocol::{AMQPValue, FieldTable};

/// Whether a message with `headers` matches a binding with `args`.
pub fn matches(args: &FieldTable, headers: Option<&FieldTable>) -> bool {
    let mode = match args.inner().get("x-match") {
        Some(AMQPValue::LongString(s)) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        Some(AMQPValue::ShortString(s)) => s.as_str().to_owned(),
        _ => "all".to_owned(),
    };
    let (any, with_x) = match mode.as_str() {
        "any" => (true, false),
        "any-with-x" => (true, true),
        "all-with-x" => (false, true),
        _ => (false, false),
    };
    let empty = FieldTable::default();
    let headers = headers.unwrap_or(&empty).inner();
    let mut considered = args
        .inner()
        .iter()
        .filter(|(k, _)| k.as_str() != "x-match" && (with_x || !k.as_str().starts_with("x-")));
    let one = |(k, v): (&crate::protocol::ShortString, &AMQPValue)| match headers.get(k) {
        None => false,
        Some(_) if matches!(v, AMQPValue::Void) => true,
        Some(h) => values_equal(h, v),
    };
    if any {
        considered.any(one)
    } else {
        considered.all(one)
    }
}

/// RabbitMQ compares header values by type and value; string types compare by content.
fn values_equal(a: &AMQPValue, b: &AMQPValue) -> bool {
    match (a, b) {
        (AMQPValue::LongString(x), AMQPValue::ShortString(y))
        | (AMQPValue::ShortString(y), AMQPValue::LongString(x)) => {
            x.as_bytes() == y.as_str().as_bytes()
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(entries: &[(&str, AMQPValue)]) -> FieldTable {
        let mut t = FieldTable::default();
        for (k, v) in entries {
            t.insert((*k).into(), v.clone());
        }
        t
    }

    fn s(v: &str) -> AMQPValue {
        AMQPValue::LongString(v.into())
    }

    #[test]
    fn all_and_any() {
        let msg = table(&[("a", s("1")), ("b", s("2"))]);
        assert!(matches(&table(&[("a", s("1")), ("b", s("2"))]), Some(&msg)));
        assert!(!matches(
            &table(&[("a", s("1")), ("c", s("3"))]),
            Some(&msg)
        ));
        assert!(matches(
            &table(&[("x-match", s("any")), ("a", s("1")), ("c", s("3"))]),
            Some(&msg)
        ));
        assert!(!matches(
            &table(&[("x-match", s("any")), ("c", s("3"))]),
            Some(&msg)
        ));
    }

    #[test]
    fn x_headers_only_count_with_x() {
        let msg = table(&[("x-a", s("1"))]);
        let all_plain = table(&[("x-match", s("all")), ("x-a", s("2"))]);
        assert!(matches(&all_plain, Some(&msg)), "x- args ignored in all");
        let all_x = table(&[("x-match", s("all-with-x")), ("x-a", s("2"))]);
        assert!(!matches(&all_x, Some(&msg)));
        let any_x = table(&[("x-match", s("any-with-x")), ("x-a", s("1"))]);
        assert!(matches(&any_x, Some(&msg)));
    }

    #[test]
    fn void_matches_presence() {
        let msg = table(&[("a", s("whatever"))]);
        assert!(matches(&table(&[("a", AMQPValue::Void)]), Some(&msg)));
        assert!(!matches(&table(&[("b", AMQPValue::Void)]), Some(&msg)));
    }

    #[test]
    fn no_headers() {
        assert!(
            matches(&FieldTable::default(), None),
            "empty all matches everything"
        );
        assert!(!matches(&table(&[("a", s("1"))]), None));
    }
}
