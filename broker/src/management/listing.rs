//! RabbitMQ's list query parameters, shared by every list endpoint: `page` + `page_size`
//! paginate (the answer is then `{items, page, page_count, …}`) and only then does `name` +
//! `use_regex` filter by name (case-insensitively, as `rabbit_mgmt_util` does); `sort` (a
//! field path such as `message_stats.publish`) and `sort_reverse` order, with the vhost and
//! name breaking ties; and `columns=a,b.c` keeps only those fields. Bad parameters get
//! RabbitMQ's errors (`invalid_pagination_parameters`, `page_out_of_range`).
//!
//! Lists are sorted and paged by name before the items are rendered whenever the sort key is
//! the name, so a page of 100 out of 10,000 queues renders 100 objects, not 10,000.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::error::ApiError;

/// RabbitMQ's largest page.
const MAX_PAGE_SIZE: i64 = 500;

/// RabbitMQ's page size when `page` comes without `page_size`.
const DEFAULT_PAGE_SIZE: usize = 100;

/// The query string of a list endpoint.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    pub page: Option<String>,
    pub page_size: Option<String>,
    pub name: Option<String>,
    pub use_regex: Option<String>,
    pub sort: Option<String>,
    pub sort_reverse: Option<String>,
    pub columns: Option<String>,
    /// `msg_rates_age` and friends, for the overview.
    #[serde(flatten)]
    pub rest: std::collections::HashMap<String, String>,
}

/// How to filter, sort and page a list.
#[derive(Debug)]
struct Plan {
    /// `(page, page_size)`, both checked.
    page: Option<(usize, usize)>,
    /// Only with `page`: RabbitMQ ignores `name` on lists that are not paginated.
    filter: Option<NameFilter>,
    sort: Option<Vec<String>>,
    reverse: bool,
    columns: Option<Vec<Vec<String>>>,
}

#[derive(Debug)]
enum NameFilter {
    /// Lowercased.
    Substring(String),
    Regex(regex::Regex),
}

impl NameFilter {
    fn matches(&self, name: &str) -> bool {
        match self {
            Self::Substring(s) => name.to_lowercase().contains(s.as_str()),
            Self::Regex(r) => r.is_match(name),
        }
    }
}

fn is_true(v: &Option<String>) -> bool {
    v.as_deref() == Some("true")
}

/// RabbitMQ's answer to parameters that are not integers, or a regex that does not compile.
fn invalid_parameters() -> ApiError {
    ApiError::bad_request("Pagination parameters are invalid")
}

/// An integer query parameter, as Erlang's `list_to_integer` reads it.
fn integer_param(v: &Option<String>) -> Result<Option<i64>, ApiError> {
    v.as_deref()
        .map(|s| s.parse::<i64>().map_err(|_| invalid_parameters()))
        .transpose()
}

impl ListQuery {
    fn plan(&self) -> Result<Plan, ApiError> {
        let page_number = integer_param(&self.page)?;
        let page_size = integer_param(&self.page_size)?;
        let page = match (page_number, page_size) {
            (None, _) => None,
            (Some(p), None) if p > 0 => Some((p, DEFAULT_PAGE_SIZE as i64)),
            (Some(p), Some(s)) if p > 0 && (1..=MAX_PAGE_SIZE).contains(&s) => Some((p, s)),
            (Some(p), s) => {
                let s = s.map_or_else(|| "undefined".to_owned(), |s| s.to_string());
                return Err(ApiError {
                    status: axum::http::StatusCode::BAD_REQUEST,
                    error: "invalid_pagination_parameters",
                    reason: format!(
                        "Invalid pagination parameters: page number {p}, page size {s}"
                    ),
                });
            }
        }
        .map(|(p, s)| (usize::try_from(p).unwrap_or(usize::MAX), s as usize));
        let filter = match self
            .name
            .as_deref()
            .filter(|n| !n.is_empty() && page.is_some())
        {
            None => None,
            Some(n) if is_true(&self.use_regex) => Some(NameFilter::Regex(
                regex::RegexBuilder::new(n)
                    .case_insensitive(true)
                    .size_limit(1 << 20)
                    .build()
                    .map_err(|_| invalid_parameters())?,
            )),
            Some(n) => Some(NameFilter::Substring(n.to_lowercase())),
        };
        let sort = self
            .sort
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| s.split('.').map(str::to_owned).collect());
        let columns = self.columns.as_deref().filter(|c| !c.is_empty()).map(|c| {
            c.split(',')
                .map(|col| col.split('.').map(str::to_owned).collect())
                .collect()
        });
        Ok(Plan {
            page,
            filter,
            sort,
            reverse: is_true(&self.sort_reverse),
            columns,
        })
    }

    /// Filters, sorts, pages and renders `items`. `name` gives an item's `(vhost, name)`: the
    /// default order, the tie-breaker of every other order, and what `name` filters on.
    pub fn apply<T>(
        &self,
        mut items: Vec<T>,
        name: impl Fn(&T) -> (&str, &str),
        render: impl Fn(&T) -> Value,
    ) -> Result<Value, ApiError> {
        let plan = self.plan()?;
        let total = items.len();
        if let Some(f) = &plan.filter {
            items.retain(|i| f.matches(name(i).1));
        }
        let filtered = items.len();
        if let Some((page, size)) = plan.page
            && (page - 1).saturating_mul(size) > filtered
        {
            return Err(ApiError {
                status: axum::http::StatusCode::BAD_REQUEST,
                error: "page_out_of_range",
                reason: format!(
                    "Page out of range, page: {page} page size: {size}, len: {filtered}"
                ),
            });
        }
        items.sort_by(|a, b| name(a).cmp(&name(b)));
        let by_name = plan
            .sort
            .as_ref()
            .is_none_or(|s| s.len() == 1 && s[0] == "name");
        let mut rendered: Vec<Value> = if by_name {
            // Cheap path: order by (vhost, name), page, then render only the page.
            if plan.reverse {
                items.reverse();
            }
            page_of(items, plan.page).iter().map(&render).collect()
        } else {
            let mut all: Vec<Value> = items.iter().map(&render).collect();
            let key = plan.sort.clone().unwrap_or_default();
            // Stable: ties keep the (vhost, name) order.
            all.sort_by(|a, b| compare(lookup(a, &key), lookup(b, &key)));
            if plan.reverse {
                all.reverse();
            }
            page_of(all, plan.page)
        };
        if let Some(cols) = &plan.columns {
            rendered = rendered
                .into_iter()
                .map(|v| keep_columns(&v, cols))
                .collect();
        }
        Ok(match plan.page {
            None => Value::Array(rendered),
            Some((page, size)) => json!({
                "filtered_count": filtered,
                "item_count": rendered.len(),
                "items": rendered,
                "page": page,
                "page_count": filtered.div_ceil(size),
                "page_size": size,
                "total_count": total,
            }),
        })
    }

    /// Sorts (by `sort`, keeping the given order for ties) and selects `columns` of a list
    /// RabbitMQ never paginates, such as bindings: `page` and `name` are ignored there.
    pub fn apply_unpaged(&self, mut items: Vec<Value>) -> Result<Value, ApiError> {
        let sort = self
            .sort
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| s.split('.').map(str::to_owned).collect::<Vec<_>>());
        if let Some(key) = &sort {
            items.sort_by(|a, b| compare(lookup(a, key), lookup(b, key)));
        }
        if is_true(&self.sort_reverse) {
            items.reverse();
        }
        let columns = self.columns.as_deref().filter(|c| !c.is_empty()).map(|c| {
            c.split(',')
                .map(|col| col.split('.').map(str::to_owned).collect::<Vec<_>>())
                .collect::<Vec<_>>()
        });
        if let Some(cols) = &columns {
            items = items.iter().map(|v| keep_columns(v, cols)).collect();
        }
        Ok(Value::Array(items))
    }

    /// Only the `columns` of one object (detail endpoints honour `columns` too).
    pub fn select(&self, v: Value) -> Result<Value, ApiError> {
        Ok(match self.plan()?.columns {
            Some(cols) => keep_columns(&v, &cols),
            None => v,
        })
    }
}

fn page_of<T>(items: Vec<T>, page: Option<(usize, usize)>) -> Vec<T> {
    match page {
        None => items,
        Some((page, size)) => items
            .into_iter()
            .skip((page - 1).saturating_mul(size))
            .take(size)
            .collect(),
    }
}

fn lookup<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(k))
}

/// Erlang's term order, which RabbitMQ sorts by: a missing value counts as 0, numbers come
/// before atoms (`false`, `null`, `true`), atoms before lists and objects, and those before
/// strings.
fn compare(a: Option<&Value>, b: Option<&Value>) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Number(_) => 0,
            Value::Bool(_) | Value::Null => 1,
            Value::Object(_) | Value::Array(_) => 2,
            Value::String(_) => 3,
        }
    }
    fn atom(v: &Value) -> &'static str {
        match v {
            Value::Bool(true) => "true",
            Value::Bool(false) => "false",
            _ => "null",
        }
    }
    let zero = Value::from(0);
    let (a, b) = (a.unwrap_or(&zero), b.unwrap_or(&zero));
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        _ if rank(a) != rank(b) => rank(a).cmp(&rank(b)),
        _ if rank(a) == 1 => atom(a).cmp(atom(b)),
        _ => a.to_string().cmp(&b.to_string()),
    }
}

/// Keeps the given field paths (`a`, `b.c`) of an object.
fn keep_columns(v: &Value, cols: &[Vec<String>]) -> Value {
    let mut out = Map::new();
    for path in cols {
        let Some(found) = lookup(v, path) else {
            continue;
        };
        let mut cur = &mut out;
        for (i, k) in path.iter().enumerate() {
            if i + 1 == path.len() {
                cur.insert(k.clone(), found.clone());
            } else {
                let next = cur
                    .entry(k.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !next.is_object() {
                    *next = Value::Object(Map::new());
                }
                let Value::Object(m) = next else { break };
                cur = m;
            }
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> ListQuery {
        serde_urlencoded_like(s)
    }

    /// Parses `a=b&c=d` into a `ListQuery` the way axum's `Query` does.
    fn serde_urlencoded_like(s: &str) -> ListQuery {
        let map: std::collections::HashMap<String, String> = s
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        serde_json::from_value(serde_json::to_value(map).expect("map")).expect("query")
    }

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("q{i:05}")).collect()
    }

    fn render(s: &String) -> Value {
        json!({"name": s, "len": s.len(), "nested": {"x": 1, "y": 2}})
    }

    #[test]
    fn pages_by_name_without_rendering_everything() {
        let v = q("page=2&page_size=3&name=q0000")
            .apply(names(20), |s| ("/", s.as_str()), render)
            .expect("ok");
        assert_eq!(v["total_count"], 20);
        assert_eq!(v["filtered_count"], 10);
        assert_eq!(v["page_count"], 4);
        assert_eq!(v["items"][0]["name"], "q00003");
        assert_eq!(v["item_count"], 3);
    }

    #[test]
    fn regex_sort_reverse_and_columns() {
        let v = q(
            "page=1&name=^Q0001[0-2]$&use_regex=true&sort=name&sort_reverse=true&columns=name,nested.y",
        )
        .apply(names(20), |s| ("/", s.as_str()), render)
        .expect("ok");
        assert_eq!(
            v["items"],
            json!([{"name":"q00012","nested":{"y":2}},{"name":"q00011","nested":{"y":2}},{"name":"q00010","nested":{"y":2}}])
        );
    }

    #[test]
    fn name_filters_only_paginated_lists_and_ignores_case() {
        let all = q("name=q00001").apply(names(3), |s| ("/", s.as_str()), render);
        assert_eq!(all.expect("ok").as_array().map(Vec::len), Some(3));
        let v = q("page=1&name=Q00001")
            .apply(names(3), |s| ("/", s.as_str()), render)
            .expect("ok");
        assert_eq!(
            (v["filtered_count"].clone(), v["page_size"].clone()),
            (json!(1), json!(100))
        );
    }

    #[test]
    fn pages_past_the_end() {
        let none = q("page=1&name=zzz")
            .apply(names(3), |s| ("/", s.as_str()), render)
            .expect("an empty first page");
        assert_eq!(
            (none["page_count"].clone(), none["items"].clone()),
            (json!(0), json!([]))
        );
        // Just past the last item is an empty page; further is out of range.
        let empty = q("page=4&page_size=1")
            .apply(names(3), |s| ("/", s.as_str()), render)
            .expect("an empty page");
        assert_eq!(empty["items"], json!([]));
        let e = q("page=3&page_size=1&name=q0000")
            .apply(names(1), |s| ("/", s.as_str()), render)
            .expect_err("out of range");
        assert_eq!(
            (e.error, e.reason.as_str()),
            (
                "page_out_of_range",
                "Page out of range, page: 3 page size: 1, len: 1"
            )
        );
    }

    #[test]
    fn other_sorts_keep_name_order_for_ties() {
        let v = q("sort=len&sort_reverse=true&columns=name")
            .apply(
                vec!["b".to_owned(), "a".to_owned(), "cc".to_owned()],
                |s| ("/", s.as_str()),
                render,
            )
            .expect("ok");
        assert_eq!(v, json!([{"name": "cc"}, {"name": "b"}, {"name": "a"}]));
        // Missing values count as 0, numbers sort before strings.
        let items = vec![
            json!({"k": "x"}),
            json!({"k": 5}),
            json!({}),
            json!({"k": -1}),
        ];
        let v = q("sort=k").apply_unpaged(items).expect("ok");
        assert_eq!(v, json!([{"k": -1}, {}, {"k": 5}, {"k": "x"}]));
    }

    #[test]
    fn bad_parameters_are_rabbitmq_errors() {
        for (bad, error) in [
            ("page=0", "invalid_pagination_parameters"),
            ("page=1&page_size=501", "invalid_pagination_parameters"),
            ("page=x", "bad_request"),
            ("page_size=x", "bad_request"),
            ("page=1&name=(&use_regex=true", "bad_request"),
        ] {
            let e = q(bad)
                .apply(names(2), |s| ("/", s.as_str()), render)
                .expect_err(bad);
            assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST, "{bad}");
            assert_eq!(e.error, error, "{bad}");
        }
    }
}
