//! RabbitMQ's list query parameters, shared by every list endpoint: `name` + `use_regex`
//! filters by name, `sort` (a field path such as `message_stats.publish`) and `sort_reverse`
//! order, `page` + `page_size` paginate (the answer is then `{items, page, page_count, …}`),
//! and `columns=a,b.c` keeps only those fields.
//!
//! Lists are sorted and paged by name before the items are rendered whenever the sort key is
//! the name, so a page of 100 out of 10,000 queues renders 100 objects, not 10,000.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::error::ApiError;

/// RabbitMQ's largest page.
const MAX_PAGE_SIZE: usize = 500;

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
    page: Option<(usize, usize)>,
    filter: Option<NameFilter>,
    sort: Option<Vec<String>>,
    reverse: bool,
    columns: Option<Vec<Vec<String>>>,
}

#[derive(Debug)]
enum NameFilter {
    Substring(String),
    Regex(regex::Regex),
}

impl NameFilter {
    fn matches(&self, name: &str) -> bool {
        match self {
            Self::Substring(s) => name.contains(s.as_str()),
            Self::Regex(r) => r.is_match(name),
        }
    }
}

fn is_true(v: &Option<String>) -> bool {
    v.as_deref() == Some("true")
}

impl ListQuery {
    fn plan(&self) -> Result<Plan, ApiError> {
        let page = match &self.page {
            None => None,
            Some(p) => {
                let page: usize = p
                    .parse()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| ApiError::bad_request("page must be a positive integer"))?;
                let size: usize = match &self.page_size {
                    None => 100,
                    Some(s) => s
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_PAGE_SIZE).contains(n))
                        .ok_or_else(|| {
                            ApiError::bad_request(format!(
                                "page_size must be between 1 and {MAX_PAGE_SIZE}"
                            ))
                        })?,
                };
                Some((page, size))
            }
        };
        let filter = match self.name.as_deref().filter(|n| !n.is_empty()) {
            None => None,
            Some(n) if is_true(&self.use_regex) => Some(NameFilter::Regex(
                regex::RegexBuilder::new(n)
                    .size_limit(1 << 20)
                    .build()
                    .map_err(|e| ApiError::bad_request(format!("invalid regex: {e}")))?,
            )),
            Some(n) => Some(NameFilter::Substring(n.to_owned())),
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

    /// Filters, sorts, pages and renders `items`. `name` gives an item's name (what `name`
    /// filters on and the default order), `render` its JSON.
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
        let by_name = plan
            .sort
            .as_ref()
            .is_none_or(|s| s.len() == 1 && s[0] == "name");
        let mut rendered: Vec<Value> = if by_name {
            // Cheap path: order by (vhost, name), page, then render only the page.
            items.sort_by(|a, b| name(a).cmp(&name(b)));
            if plan.reverse {
                items.reverse();
            }
            page_of(items, plan.page).iter().map(&render).collect()
        } else {
            let mut all: Vec<Value> = items.iter().map(&render).collect();
            let key = plan.sort.clone().unwrap_or_default();
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
            Some((page, size)) => {
                let page_count = filtered.div_ceil(size).max(1);
                if page > page_count && filtered > 0 {
                    return Err(ApiError::bad_request(format!(
                        "page out of range: page {page} of {page_count}"
                    )));
                }
                json!({
                    "filtered_count": filtered,
                    "item_count": rendered.len(),
                    "items": rendered,
                    "page": page,
                    "page_count": page_count,
                    "page_size": size,
                    "total_count": total,
                })
            }
        })
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

/// RabbitMQ sorts missing values first, numbers by value, strings lexically.
fn compare(a: Option<&Value>, b: Option<&Value>) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(Value::Number(x)), Some(Value::Number(y))) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => x.cmp(y),
        (Some(x), Some(y)) => x.to_string().cmp(&y.to_string()),
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
        let v =
            q("name=^q0001[0-2]$&use_regex=true&sort=name&sort_reverse=true&columns=name,nested.y")
                .apply(names(20), |s| ("/", s.as_str()), render)
                .expect("ok");
        assert_eq!(
            v,
            json!([{"name":"q00012","nested":{"y":2}},{"name":"q00011","nested":{"y":2}},{"name":"q00010","nested":{"y":2}}])
        );
    }

    #[test]
    fn bad_parameters_are_400() {
        for bad in [
            "page=0",
            "page=x",
            "page=1&page_size=501",
            "name=(&use_regex=true",
        ] {
            let e = q(bad)
                .apply(names(2), |s| ("/", s.as_str()), render)
                .expect_err(bad);
            assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST, "{bad}");
        }
    }
}
