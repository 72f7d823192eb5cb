//! The `sale_completed` event, the one message this system exchanges.
//!
//! Owns the JSON shape (exactly the course document's fields and types) and its validation.
//! Every way into a [`SaleCompleted`] validates, so code holding one never re-checks it.
//! Does no I/O.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// The value of `event_type` for this event.
pub const EVENT_TYPE: &str = "sale_completed";

/// Longest accepted `sale_id`, in bytes. It becomes the AMQP `message_id` (a short string of at
/// most 255 bytes) and a file name in the outbox, so it is kept well under both limits.
pub const MAX_SALE_ID_LEN: usize = 128;

/// A completed sale, as published on the `sales_events` exchange:
///
/// ```json
/// {"event_type": "sale_completed", "sale_id": "12345", "product_id": 1,
///  "product_name": "Manzana Orgánica", "quantity": 5, "total": 75.00,
///  "customer_email": "cliente@example.com", "timestamp": "2024-12-04T10:30:00"}
/// ```
///
/// Unknown fields are ignored on input, so newer producers can add fields without breaking
/// older consumers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "SaleDraft")]
pub struct SaleCompleted {
    event_type: EventType,
    sale_id: String,
    product_id: u64,
    product_name: String,
    quantity: u32,
    total: f64,
    customer_email: String,
    timestamp: Timestamp,
}

/// The fields of a sale before validation: what `--flags`, generators and JSON input fill in.
#[derive(Clone, Debug, Deserialize)]
pub struct SaleDraft {
    /// Must be `"sale_completed"`.
    pub event_type: String,
    /// Unique per sale; the idempotency key of every consumer.
    pub sale_id: String,
    /// Catalogue id of the product, a positive integer.
    pub product_id: u64,
    /// Human-readable product name (any Unicode, e.g. "Manzana Orgánica").
    pub product_name: String,
    /// Units sold, at least 1.
    pub quantity: u32,
    /// Amount paid, in currency units (euros), non-negative.
    pub total: f64,
    /// Where the confirmation email goes and whose loyalty account is credited.
    pub customer_email: String,
    /// When the sale happened, ISO 8601 (`2024-12-04T10:30:00`, optionally with a fraction and
    /// a `Z` or `±HH:MM` offset).
    pub timestamp: String,
}

/// Why bytes or a draft are not a valid [`SaleCompleted`].
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// Not JSON, or JSON without the expected fields and types.
    #[error("not a sale_completed event: {0}")]
    Malformed(#[source] serde_json::Error),
    /// Well-formed JSON with a field value that breaks a rule.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The JSON field at fault.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

impl SaleCompleted {
    /// Parses and validates one event from a message body.
    pub fn from_json(bytes: &[u8]) -> Result<Self, EventError> {
        let draft: SaleDraft = serde_json::from_slice(bytes).map_err(EventError::Malformed)?;
        Self::try_from(draft)
    }

    /// The JSON body published on the wire.
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing a struct of strings and finite numbers into a Vec cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Unique sale identifier; used as AMQP `message_id` and as idempotency key.
    pub fn sale_id(&self) -> &str {
        &self.sale_id
    }

    /// Catalogue id of the product.
    pub fn product_id(&self) -> u64 {
        self.product_id
    }

    /// Product name as sold.
    pub fn product_name(&self) -> &str {
        &self.product_name
    }

    /// Units sold (at least 1).
    pub fn quantity(&self) -> u32 {
        self.quantity
    }

    /// Amount paid in currency units.
    pub fn total(&self) -> f64 {
        self.total
    }

    /// Amount paid in cents, rounded to the nearest cent.
    pub fn total_cents(&self) -> u64 {
        // `total` is validated finite, non-negative and at most MAX_TOTAL, so this fits.
        (self.total * 100.0).round() as u64
    }

    /// Customer's email address as sent.
    pub fn customer_email(&self) -> &str {
        &self.customer_email
    }

    /// When the sale happened.
    pub fn timestamp(&self) -> &Timestamp {
        &self.timestamp
    }
}

/// Largest accepted `total`: anything above is a unit mistake (cents sent as euros), not a sale.
const MAX_TOTAL: f64 = 10_000_000.0;

impl TryFrom<SaleDraft> for SaleCompleted {
    type Error = EventError;

    fn try_from(d: SaleDraft) -> Result<Self, EventError> {
        if d.event_type != EVENT_TYPE {
            return Err(invalid(
                "event_type",
                format!("expected \"{EVENT_TYPE}\", got {:?}", d.event_type),
            ));
        }
        let sale_id = d.sale_id.trim().to_string();
        if sale_id.is_empty() {
            return Err(invalid("sale_id", "must not be empty".into()));
        }
        if sale_id.len() > MAX_SALE_ID_LEN {
            return Err(invalid(
                "sale_id",
                format!(
                    "{} bytes long, at most {MAX_SALE_ID_LEN} allowed",
                    sale_id.len()
                ),
            ));
        }
        if sale_id.chars().any(char::is_control) {
            return Err(invalid(
                "sale_id",
                "must not contain control characters".into(),
            ));
        }
        if d.product_id == 0 {
            return Err(invalid("product_id", "must be a positive integer".into()));
        }
        let product_name = d.product_name.trim().to_string();
        if product_name.is_empty() {
            return Err(invalid("product_name", "must not be empty".into()));
        }
        if product_name.chars().count() > 200 {
            return Err(invalid("product_name", "longer than 200 characters".into()));
        }
        if product_name.chars().any(char::is_control) {
            return Err(invalid(
                "product_name",
                "must not contain control characters".into(),
            ));
        }
        if d.quantity == 0 {
            return Err(invalid("quantity", "must be at least 1".into()));
        }
        if !d.total.is_finite() || d.total < 0.0 {
            return Err(invalid(
                "total",
                format!("must be a non-negative amount, got {}", d.total),
            ));
        }
        if d.total > MAX_TOTAL {
            return Err(invalid(
                "total",
                format!("{} is above the limit of {MAX_TOTAL}", d.total),
            ));
        }
        let customer_email = d.customer_email.trim().to_string();
        check_email(&customer_email).map_err(|reason| invalid("customer_email", reason))?;
        let timestamp =
            Timestamp::parse(d.timestamp.trim()).map_err(|reason| invalid("timestamp", reason))?;
        Ok(Self {
            event_type: EventType::SaleCompleted,
            sale_id,
            product_id: d.product_id,
            product_name,
            quantity: d.quantity,
            total: d.total,
            customer_email,
            timestamp,
        })
    }
}

impl fmt::Display for SaleCompleted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sale {}: {} x {} (product {}) = {:.2} for {} at {}",
            self.sale_id,
            self.quantity,
            self.product_name,
            self.product_id,
            self.total,
            self.customer_email,
            self.timestamp
        )
    }
}

fn invalid(field: &'static str, reason: String) -> EventError {
    EventError::Invalid { field, reason }
}

/// A deliberately small check: one `@`, a non-empty local part, a dotted domain, no spaces.
/// Full RFC 5322 parsing is the mailer's job; this only keeps obvious garbage out.
fn check_email(email: &str) -> Result<(), String> {
    if email.is_empty() {
        return Err("must not be empty".into());
    }
    if email.len() > 254 {
        return Err("longer than 254 bytes".into());
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{email:?} contains whitespace"));
    }
    let Some((local, domain)) = email.split_once('@') else {
        return Err(format!("{email:?} has no '@'"));
    };
    if local.is_empty() || domain.is_empty() || domain.contains('@') {
        return Err(format!("{email:?} is not of the form name@domain"));
    }
    if !domain.contains('.') || domain.starts_with('.') || domain.ends_with('.') {
        return Err(format!("{email:?} has no valid domain"));
    }
    Ok(())
}

/// The constant `event_type` tag; serde rejects any other value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum EventType {
    #[serde(rename = "sale_completed")]
    SaleCompleted,
}

/// An ISO 8601 date-time as the course document writes it (`2024-12-04T10:30:00`), checked
/// field by field and kept verbatim so that a consumer re-serializes exactly what it received.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Timestamp {
    text: String,
    #[serde(skip)]
    parts: DateTime,
}

/// The calendar fields of a [`Timestamp`], used for display.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DateTime {
    /// Four-digit year.
    pub year: u16,
    /// 1..=12.
    pub month: u8,
    /// 1..=31, valid for the month.
    pub day: u8,
    /// 0..=23.
    pub hour: u8,
    /// 0..=59.
    pub minute: u8,
    /// 0..=59.
    pub second: u8,
}

impl Timestamp {
    /// Parses `YYYY-MM-DDTHH:MM:SS`, optionally followed by `.fraction` and by `Z` or `±HH:MM`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?} is not an ISO 8601 date-time like 2024-12-04T10:30:00");
        let b = text.as_bytes();
        if b.len() < 19 || !text.is_ascii() {
            return Err(bad());
        }
        let at = |i: usize| b.get(i).copied();
        let sep_ok = at(4) == Some(b'-')
            && at(7) == Some(b'-')
            && at(10) == Some(b'T')
            && at(13) == Some(b':')
            && at(16) == Some(b':');
        if !sep_ok {
            return Err(bad());
        }
        let num = |from: usize, to: usize| -> Result<u16, String> {
            text.get(from..to)
                .filter(|s| s.bytes().all(|c| c.is_ascii_digit()))
                .and_then(|s| s.parse().ok())
                .ok_or_else(bad)
        };
        let year = num(0, 4)?;
        let month = num(5, 7)?;
        let day = num(8, 10)?;
        let hour = num(11, 13)?;
        let minute = num(14, 16)?;
        let second = num(17, 19)?;
        if !(1..=12).contains(&month) {
            return Err(format!("{text:?}: month {month} out of range"));
        }
        if day == 0 || day > days_in_month(year, month) {
            return Err(format!(
                "{text:?}: day {day} does not exist in {year}-{month:02}"
            ));
        }
        if hour > 23 || minute > 59 || second > 59 {
            return Err(format!("{text:?}: time of day out of range"));
        }
        let mut rest = text.get(19..).unwrap_or_default();
        if let Some(frac) = rest.strip_prefix('.') {
            let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 || digits > 9 {
                return Err(bad());
            }
            rest = frac.get(digits..).unwrap_or_default();
        }
        let zone_ok = match rest.as_bytes() {
            [] | [b'Z'] => true,
            [sign, h1, h2, b':', m1, m2] if *sign == b'+' || *sign == b'-' => {
                let digits = [*h1, *h2, *m1, *m2];
                digits.iter().all(u8::is_ascii_digit)
                    && (h1 - b'0') * 10 + (h2 - b'0') <= 23
                    && (m1 - b'0') * 10 + (m2 - b'0') <= 59
            }
            _ => false,
        };
        if !zone_ok {
            return Err(bad());
        }
        // Every number above has at most 4 digits and was range-checked, so the casts are exact.
        let parts = DateTime {
            year,
            month: month as u8,
            day: day as u8,
            hour: hour as u8,
            minute: minute as u8,
            second: second as u8,
        };
        Ok(Self {
            text: text.to_string(),
            parts,
        })
    }

    /// The current time in UTC, written as the course document does (no offset, seconds).
    pub fn now_utc() -> Self {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Self::from_unix(secs)
    }

    /// The UTC date-time `secs` seconds after 1970-01-01T00:00:00.
    pub fn from_unix(secs: u64) -> Self {
        let days = secs / 86_400;
        let rem = secs % 86_400;
        let (year, month, day) = civil_from_days(days);
        let parts = DateTime {
            year,
            month,
            day,
            hour: (rem / 3600) as u8,
            minute: (rem % 3600 / 60) as u8,
            second: (rem % 60) as u8,
        };
        let text = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            parts.year, parts.month, parts.day, parts.hour, parts.minute, parts.second
        );
        Self { text, parts }
    }

    /// The text exactly as received or generated.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Calendar fields (the offset, if any, is not applied).
    pub fn parts(&self) -> DateTime {
        self.parts
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn is_leap(year: u16) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

fn days_in_month(year: u16, month: u16) -> u16 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's `civil_from_days`.
fn civil_from_days(days: u64) -> (u16, u8, u8) {
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year.clamp(0, 9999) as u16, month as u8, day as u8)
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Timestamp::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = r#"{
        "event_type": "sale_completed",
        "sale_id": "12345",
        "product_id": 1,
        "product_name": "Manzana Orgánica",
        "quantity": 5,
        "total": 75.00,
        "customer_email": "cliente@example.com",
        "timestamp": "2024-12-04T10:30:00"
    }"#;

    fn with(field: &str, value: serde_json::Value) -> Vec<u8> {
        let mut v: serde_json::Value = serde_json::from_str(SEED).unwrap();
        v[field] = value;
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn parses_the_seed_example() {
        let sale = SaleCompleted::from_json(SEED.as_bytes()).unwrap();
        assert_eq!(sale.sale_id(), "12345");
        assert_eq!(sale.product_id(), 1);
        assert_eq!(sale.product_name(), "Manzana Orgánica");
        assert_eq!(sale.quantity(), 5);
        assert_eq!(sale.total_cents(), 7500);
        assert_eq!(sale.customer_email(), "cliente@example.com");
        assert_eq!(sale.timestamp().as_str(), "2024-12-04T10:30:00");
    }

    #[test]
    fn round_trips_with_exactly_the_seed_fields() {
        let sale = SaleCompleted::from_json(SEED.as_bytes()).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&sale.to_json()).unwrap();
        let mut keys: Vec<_> = json.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "customer_email",
                "event_type",
                "product_id",
                "product_name",
                "quantity",
                "sale_id",
                "timestamp",
                "total"
            ]
        );
        assert_eq!(json["event_type"], "sale_completed");
        assert_eq!(json["product_id"], 1);
        assert_eq!(json["total"], 75.0);
        assert_eq!(SaleCompleted::from_json(&sale.to_json()).unwrap(), sale);
    }

    #[test]
    fn tolerates_unknown_fields() {
        let sale = SaleCompleted::from_json(&with("store", "Madrid Centro".into())).unwrap();
        assert_eq!(sale.sale_id(), "12345");
    }

    #[test]
    fn serde_deserialize_validates_too() {
        let err = serde_json::from_slice::<SaleCompleted>(&with("quantity", 0.into())).unwrap_err();
        assert!(err.to_string().contains("quantity"), "{err}");
    }

    #[test]
    fn rejects_with_a_message_naming_the_field() {
        let cases: Vec<(&str, serde_json::Value, &str)> = vec![
            ("event_type", "sale_cancelled".into(), "invalid event_type"),
            ("sale_id", "  ".into(), "invalid sale_id"),
            ("sale_id", "x".repeat(200).into(), "invalid sale_id"),
            ("product_id", 0.into(), "invalid product_id"),
            ("product_name", "".into(), "invalid product_name"),
            ("quantity", 0.into(), "invalid quantity"),
            ("total", (-1.0).into(), "invalid total"),
            ("customer_email", "nobody".into(), "invalid customer_email"),
            ("customer_email", "a@b".into(), "invalid customer_email"),
            ("timestamp", "04/12/2024".into(), "invalid timestamp"),
            (
                "timestamp",
                "2024-02-30T10:00:00".into(),
                "invalid timestamp",
            ),
        ];
        for (field, value, expected) in cases {
            let err = SaleCompleted::from_json(&with(field, value.clone())).unwrap_err();
            assert!(
                err.to_string().starts_with(expected),
                "{field}={value}: got {err}"
            );
        }
    }

    #[test]
    fn wrong_types_and_missing_fields_are_malformed() {
        for bytes in [
            with("product_id", "1".into()),
            with("quantity", 2.5.into()),
            with("total", "75.00".into()),
            b"{\"event_type\":\"sale_completed\"}".to_vec(),
            b"not json".to_vec(),
            Vec::new(),
        ] {
            let err = SaleCompleted::from_json(&bytes).unwrap_err();
            assert!(matches!(err, EventError::Malformed(_)), "{err}");
            assert!(err.to_string().starts_with("not a sale_completed event"));
        }
    }

    #[test]
    fn timestamps() {
        for ok in [
            "2024-12-04T10:30:00",
            "2024-02-29T23:59:59.123",
            "2024-12-04T10:30:00Z",
            "2024-12-04T10:30:00+01:00",
        ] {
            assert!(Timestamp::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "2023-02-29T10:00:00",
            "2024-13-01T10:00:00",
            "2024-12-04 10:30:00",
            "2024-12-04T24:00:00",
            "2024-12-04T10:30:00+1",
            "2024-12-04T10:30:00.",
            "2024-12-04T10:30",
        ] {
            assert!(Timestamp::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Timestamp::from_unix(0).as_str(), "1970-01-01T00:00:00");
        assert_eq!(
            Timestamp::from_unix(1_733_308_200).as_str(),
            "2024-12-04T10:30:00"
        );
        assert_eq!(
            Timestamp::from_unix(951_782_400).as_str(),
            "2000-02-29T00:00:00"
        );
    }
}
