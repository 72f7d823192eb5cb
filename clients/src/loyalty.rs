//! Loyalty points: the rule that turns a sale into points, and the SQLite ledger that credits
//! them exactly once per sale.
//!
//! # The points rule
//!
//! * 1 point per whole euro of `total` (cents are dropped): 75.99 € earns 75 points.
//! * Tier bonus on the whole sale: from 100 € the points are multiplied by 1.25 (silver), from
//!   500 € by 1.5 (gold), rounded down. 120.50 € earns 150 points; 500 € earns 750.
//!
//! # The ledger
//!
//! One row per credited sale, keyed by `sale_id`: crediting a sale that is already there does
//! nothing, so a redelivered sale (after a consumer crash, or a duplicate publish) is never
//! credited twice. A customer's balance is the sum of their rows. Emails are compared
//! case-insensitively.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use crate::event::{SaleCompleted, Timestamp};

/// Points earned by a sale of `total_cents` cents, per the rule in the module documentation.
pub fn points_for(total_cents: u64) -> u64 {
    let base = total_cents / 100;
    if total_cents >= 50_000 {
        base * 3 / 2
    } else if total_cents >= 10_000 {
        base * 5 / 4
    } else {
        base
    }
}

/// The result of crediting a sale.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Credit {
    /// Newly credited with this many points.
    Applied(u64),
    /// This sale was credited before (with this many points); nothing changed.
    AlreadyCredited(u64),
}

/// A customer's standing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Balance {
    /// Sum of the points of all credited sales.
    pub points: u64,
    /// How many sales were credited.
    pub sales: u64,
}

/// A ledger operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// Opening or migrating the database failed.
    #[error(
        "cannot open loyalty ledger {path}: {source}; check --ledger and its folder's permissions"
    )]
    Open {
        /// The database file.
        path: String,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// A query failed (locked, disk full, corrupt file...).
    #[error("loyalty ledger error: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// The SQLite ledger. Not `Sync`: one per consumer, used from one task at a time.
#[derive(Debug)]
pub struct Ledger {
    conn: Connection,
}

impl Ledger {
    /// Opens (creating if needed) the ledger at `path`.
    pub fn open(path: &Path) -> Result<Self, LedgerError> {
        let open_err = |source| LedgerError::Open {
            path: path.display().to_string(),
            source,
        };
        let conn = Connection::open(path).map_err(open_err)?;
        Self::init(conn).map_err(open_err)
    }

    /// An in-memory ledger, for tests.
    pub fn in_memory() -> Result<Self, LedgerError> {
        Ok(Self::init(Connection::open_in_memory()?)?)
    }

    fn init(conn: Connection) -> Result<Self, rusqlite::Error> {
        // WAL lets `loyalty_consumer balance` read while the consumer writes; FULL sync makes a
        // credit durable before the delivery is acknowledged.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS credits (
                 sale_id        TEXT PRIMARY KEY,
                 customer_email TEXT NOT NULL,
                 points         INTEGER NOT NULL CHECK (points >= 0),
                 total_cents    INTEGER NOT NULL,
                 sale_time      TEXT NOT NULL,
                 credited_at    TEXT NOT NULL
             );
             CREATE INDEX IF NOT EXISTS credits_by_customer ON credits (customer_email);",
        )?;
        Ok(Self { conn })
    }

    /// Credits `sale` once: the first call stores it, later calls for the same `sale_id` return
    /// [`Credit::AlreadyCredited`] and change nothing.
    pub fn credit(&mut self, sale: &SaleCompleted) -> Result<Credit, LedgerError> {
        let points = points_for(sale.total_cents());
        let tx = self.conn.transaction()?;
        let inserted = tx.execute(
            "INSERT INTO credits (sale_id, customer_email, points, total_cents, sale_time, credited_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (sale_id) DO NOTHING",
            params![
                sale.sale_id(),
                normalize(sale.customer_email()),
                to_i64(points),
                to_i64(sale.total_cents()),
                sale.timestamp().as_str(),
                Timestamp::now_utc().as_str(),
            ],
        )?;
        let credit = if inserted == 1 {
            Credit::Applied(points)
        } else {
            let before: i64 = tx.query_row(
                "SELECT points FROM credits WHERE sale_id = ?1",
                params![sale.sale_id()],
                |row| row.get(0),
            )?;
            Credit::AlreadyCredited(u64::try_from(before).unwrap_or(0))
        };
        tx.commit()?;
        Ok(credit)
    }

    /// The balance of `email` (zero for an unknown customer).
    pub fn balance(&self, email: &str) -> Result<Balance, LedgerError> {
        let (points, sales): (i64, i64) = self.conn.query_row(
            "SELECT COALESCE(SUM(points), 0), COUNT(*) FROM credits WHERE customer_email = ?1",
            params![normalize(email)],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;
        Ok(Balance {
            points: u64::try_from(points).unwrap_or(0),
            sales: u64::try_from(sales).unwrap_or(0),
        })
    }

    /// Points credited for `sale_id`, if it was credited.
    pub fn credited(&self, sale_id: &str) -> Result<Option<u64>, LedgerError> {
        let points: Option<i64> = self
            .conn
            .query_row(
                "SELECT points FROM credits WHERE sale_id = ?1",
                params![sale_id],
                |row| row.get(0),
            )
            .optional()?;
        Ok(points.map(|p| u64::try_from(p).unwrap_or(0)))
    }
}

fn normalize(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Points and cents are bounded by the event's MAX_TOTAL, far below i64::MAX.
fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sale(id: &str, email: &str, total: f64) -> SaleCompleted {
        let json = serde_json::json!({
            "event_type": "sale_completed", "sale_id": id, "product_id": 1,
            "product_name": "Café de Colombia", "quantity": 1, "total": total,
            "customer_email": email, "timestamp": "2024-12-04T10:30:00"
        });
        SaleCompleted::from_json(json.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn rule() {
        assert_eq!(points_for(7500), 75);
        assert_eq!(points_for(7599), 75);
        assert_eq!(points_for(99), 0);
        assert_eq!(points_for(9999), 99);
        assert_eq!(points_for(10_000), 125);
        assert_eq!(points_for(12_050), 150);
        assert_eq!(points_for(50_000), 750);
    }

    #[test]
    fn credits_each_sale_once() {
        let mut ledger = Ledger::in_memory().unwrap();
        let s = sale("A-1", "Cliente@Example.com", 75.0);
        assert_eq!(ledger.credit(&s).unwrap(), Credit::Applied(75));
        assert_eq!(ledger.credit(&s).unwrap(), Credit::AlreadyCredited(75));
        ledger
            .credit(&sale("A-2", "cliente@example.com", 120.5))
            .unwrap();
        let b = ledger.balance("CLIENTE@example.com").unwrap();
        assert_eq!(
            b,
            Balance {
                points: 225,
                sales: 2
            }
        );
        assert_eq!(ledger.balance("otro@example.com").unwrap().points, 0);
        assert_eq!(ledger.credited("A-1").unwrap(), Some(75));
        assert_eq!(ledger.credited("nope").unwrap(), None);
    }

    #[test]
    fn survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("loyalty.db");
        Ledger::open(&path)
            .unwrap()
            .credit(&sale("B-1", "a@example.com", 10.0))
            .unwrap();
        let mut again = Ledger::open(&path).unwrap();
        assert_eq!(
            again.credit(&sale("B-1", "a@example.com", 10.0)).unwrap(),
            Credit::AlreadyCredited(10)
        );
        assert_eq!(again.balance("a@example.com").unwrap().points, 10);
    }
}
