//! The purchase-confirmation email: rendering, and delivery over SMTP or into an outbox folder.
//!
//! The email is written in Spanish, the shop's language, with an English version below it as a
//! fallback for customers who do not read Spanish. Delivery is idempotent per sale where it can
//! be: the outbox file is named after the sale, and the `Message-ID` is derived from the sale id
//! so that mail systems can drop a duplicate sent after a crash (SMTP itself is at-least-once).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lettre::message::header::{ContentTransferEncoding, ContentType, HeaderName, HeaderValue};
use lettre::message::{Body, Mailbox, SinglePart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::event::SaleCompleted;
use crate::retry::HandlerError;

/// A rendered confirmation, before it becomes a MIME message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Confirmation {
    /// Subject line (Spanish, with the English in brackets).
    pub subject: String,
    /// Plain-text body: Spanish first, then the English fallback.
    pub body: String,
}

/// Renders the confirmation for `sale`.
pub fn render(sale: &SaleCompleted) -> Confirmation {
    let t = sale.timestamp().parts();
    let subject = format!(
        "Confirmación de tu compra {} (Purchase confirmation)",
        sale.sale_id()
    );
    let es = format!(
        "Hola,\n\
         \n\
         ¡Gracias por tu compra! Hemos recibido tu pedido {id}.\n\
         \n\
         \x20 Producto:  {name} (ref. {pid})\n\
         \x20 Cantidad:  {qty}\n\
         \x20 Total:     {total_es}\n\
         \x20 Fecha:     {d:02}/{m:02}/{y} {hh:02}:{mm:02}\n\
         \n\
         Esta compra suma puntos a tu programa de fidelidad.\n\
         \n\
         Un saludo,\n\
         El equipo de la tienda\n",
        id = sale.sale_id(),
        name = sale.product_name(),
        pid = sale.product_id(),
        qty = sale.quantity(),
        total_es = euros_es(sale.total_cents()),
        d = t.day,
        m = t.month,
        y = t.year,
        hh = t.hour,
        mm = t.minute,
    );
    let en = format!(
        "Hello,\n\
         \n\
         Thank you for your purchase! We have received your order {id}.\n\
         \n\
         \x20 Product:   {name} (ref. {pid})\n\
         \x20 Quantity:  {qty}\n\
         \x20 Total:     {total_en}\n\
         \x20 Date:      {y}-{m:02}-{d:02} {hh:02}:{mm:02}\n\
         \n\
         This purchase earns you loyalty points.\n\
         \n\
         Best regards,\n\
         The shop team\n",
        id = sale.sale_id(),
        name = sale.product_name(),
        pid = sale.product_id(),
        qty = sale.quantity(),
        total_en = euros_en(sale.total_cents()),
        d = t.day,
        m = t.month,
        y = t.year,
        hh = t.hour,
        mm = t.minute,
    );
    Confirmation {
        subject,
        body: format!("{es}\n-- English version --\n\n{en}"),
    }
}

/// `1234567` cents as Spanish writes euros: `12.345,67 €`.
pub fn euros_es(cents: u64) -> String {
    format!("{},{:02} €", group(cents / 100, '.'), cents % 100)
}

/// `1234567` cents as English writes euros: `€12,345.67`.
pub fn euros_en(cents: u64) -> String {
    format!("€{}.{:02}", group(cents / 100, ','), cents % 100)
}

fn group(mut n: u64, sep: char) -> String {
    let mut groups = Vec::new();
    loop {
        if n < 1000 {
            groups.push(n.to_string());
            break;
        }
        groups.push(format!("{:03}", n % 1000));
        n /= 1000;
    }
    groups.reverse();
    groups.join(&sep.to_string())
}

/// Where confirmations go.
pub enum Mailer {
    /// One `.eml` file per sale in this folder (the default when `SMTP_URL` is not set).
    Outbox(PathBuf),
    /// An SMTP server.
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mailer::Outbox(dir) => f.debug_tuple("Outbox").field(dir).finish(),
            Mailer::Smtp(_) => f.write_str("Smtp"),
        }
    }
}

/// The mailer cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum MailerError {
    /// `SMTP_URL` does not parse.
    #[error(
        "invalid SMTP_URL: {0} (expected smtp://host:port, smtp://user:pass@host:587?tls=required \
         or smtps://host:465)"
    )]
    SmtpUrl(#[source] lettre::transport::smtp::Error),
    /// The outbox folder cannot be created.
    #[error("cannot create outbox folder {path}: {source}; pass --outbox-dir or fix permissions")]
    Outbox {
        /// The folder.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// `--from` is not an address.
    #[error("invalid sender address {0:?}: expected \"Name <user@domain>\" or user@domain")]
    From(String),
}

impl Mailer {
    /// An SMTP mailer for `url` (lettre's URL syntax; TLS via rustls when asked for).
    pub fn smtp(url: &str, timeout: Duration) -> Result<Self, MailerError> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(MailerError::SmtpUrl)?
            .timeout(Some(timeout))
            .build();
        Ok(Mailer::Smtp(transport))
    }

    /// An outbox mailer writing into `dir`, created if missing.
    pub fn outbox(dir: &Path) -> Result<Self, MailerError> {
        fs::create_dir_all(dir).map_err(|source| MailerError::Outbox {
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(Mailer::Outbox(dir.to_path_buf()))
    }

    /// Builds and delivers the confirmation for `sale`, from `from`. Returns where it went.
    pub async fn deliver(
        &self,
        sale: &SaleCompleted,
        from: &Mailbox,
    ) -> Result<String, HandlerError> {
        let message = build_message(sale, from)?;
        match self {
            Mailer::Outbox(dir) => {
                let path = dir.join(outbox_file_name(sale.sale_id()));
                let bytes = message.formatted();
                let target = path.clone();
                tokio::task::spawn_blocking(move || write_atomically(&target, &bytes))
                    .await
                    .map_err(|e| HandlerError::Transient(format!("outbox writer panicked: {e}")))?
                    .map_err(|e| {
                        HandlerError::Transient(format!("cannot write {}: {e}", path.display()))
                    })?;
                Ok(path.display().to_string())
            }
            Mailer::Smtp(transport) => match transport.send(message).await {
                Ok(response) => Ok(format!(
                    "smtp ({})",
                    response.message().collect::<Vec<_>>().join(" ")
                )),
                Err(e) if e.is_permanent() => Err(HandlerError::Permanent(format!(
                    "smtp server refused the email: {e}"
                ))),
                Err(e) => Err(HandlerError::Transient(format!(
                    "smtp delivery failed: {e}"
                ))),
            },
        }
    }
}

/// Parses the `--from` address.
pub fn parse_from(text: &str) -> Result<Mailbox, MailerError> {
    text.parse()
        .map_err(|_| MailerError::From(text.to_string()))
}

/// The MIME message for `sale`.
pub fn build_message(sale: &SaleCompleted, from: &Mailbox) -> Result<Message, HandlerError> {
    let to: Mailbox = sale.customer_email().parse().map_err(|e| {
        HandlerError::Permanent(format!(
            "customer_email {:?} is not a deliverable address: {e}",
            sale.customer_email()
        ))
    })?;
    let Confirmation { subject, body } = render(sale);
    let body = Body::new_with_encoding(body, ContentTransferEncoding::QuotedPrintable)
        .map_err(|_| HandlerError::Permanent("email body cannot be encoded".into()))?;
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(subject)
        .message_id(Some(format!(
            "<sale-{}@sales-events.invalid>",
            outbox_stem(sale.sale_id())
        )))
        .date_now()
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("Content-Language"),
            "es, en".into(),
        ))
        .singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_PLAIN)
                .body(body),
        )
        .map_err(|e| HandlerError::Permanent(format!("cannot build the email: {e}")))
}

/// `<sale id>.eml`, with every byte outside `[A-Za-z0-9_-]` percent-encoded so that any sale id
/// maps to one safe file name and different ids never share one.
pub fn outbox_file_name(sale_id: &str) -> String {
    format!("{}.eml", outbox_stem(sale_id))
}

fn outbox_stem(sale_id: &str) -> String {
    let mut out = String::with_capacity(sale_id.len());
    for b in sale_id.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Writes `bytes` to `path` so that readers see the old file or the new one, never half of it,
/// and the data is on disk before the delivery is acknowledged.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("eml.tmp");
    let mut file = fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        // Persist the rename itself; not all platforms can open a directory, so best effort.
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sale() -> SaleCompleted {
        SaleCompleted::from_json(
            r#"{"event_type":"sale_completed","sale_id":"12345","product_id":1,
                "product_name":"Manzana Orgánica","quantity":5,"total":1075.5,
                "customer_email":"cliente@example.com","timestamp":"2024-12-04T10:30:00"}"#
                .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn renders_spanish_then_english() {
        let c = render(&sale());
        assert!(c.subject.starts_with("Confirmación de tu compra 12345"));
        let es = c.body.find("¡Gracias por tu compra!").unwrap();
        let en = c.body.find("Thank you for your purchase!").unwrap();
        assert!(es < en);
        assert!(c.body.contains("Manzana Orgánica (ref. 1)"));
        assert!(c.body.contains("1.075,50 €"));
        assert!(c.body.contains("€1,075.50"));
        assert!(c.body.contains("04/12/2024 10:30"));
        assert!(c.body.contains("2024-12-04 10:30"));
    }

    #[test]
    fn money() {
        assert_eq!(euros_es(7500), "75,00 €");
        assert_eq!(euros_es(123_456_789), "1.234.567,89 €");
        assert_eq!(euros_en(5), "€0.05");
    }

    #[test]
    fn file_names_are_safe_and_distinct() {
        assert_eq!(outbox_file_name("12345"), "12345.eml");
        assert_eq!(outbox_file_name("a/b"), "a%2Fb.eml");
        assert_ne!(outbox_file_name("a/b"), outbox_file_name("a_b"));
        assert_eq!(outbox_file_name(".."), "%2E%2E.eml");
    }

    #[test]
    fn message_has_headers_and_encoded_body() {
        let from = parse_from("Tienda <ventas@example.com>").unwrap();
        let text = String::from_utf8(build_message(&sale(), &from).unwrap().formatted()).unwrap();
        assert!(text.contains("To: cliente@example.com"), "{text}");
        assert!(
            text.contains("Message-ID: <sale-12345@sales-events.invalid>"),
            "{text}"
        );
        assert!(
            text.contains("Content-Transfer-Encoding: quoted-printable"),
            "{text}"
        );
        assert!(text.contains("Content-Language: es, en"), "{text}");
        assert!(text.contains("Org=C3=A1nica"), "{text}");
    }

    #[tokio::test]
    async fn outbox_writes_one_file_per_sale_idempotently() {
        let dir = tempfile::tempdir().unwrap();
        let mailer = Mailer::outbox(dir.path()).unwrap();
        let from = parse_from("ventas@example.com").unwrap();
        mailer.deliver(&sale(), &from).await.unwrap();
        mailer.deliver(&sale(), &from).await.unwrap();
        let files: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(files.len(), 1);
        assert!(dir.path().join("12345.eml").exists());
    }
}
