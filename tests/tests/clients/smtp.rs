//! With `SMTP_URL` set, the confirmation goes out over SMTP (to an in-test SMTP sink) instead of
//! into the outbox.

use std::time::Duration;

use tests::Broker;

use crate::against_brokers;
use crate::support::{SmtpSink, World, decode_quoted_printable};

against_brokers!(email_goes_out_over_smtp);

async fn email_goes_out_over_smtp(b: &Broker) {
    let w = World::new(b, "smtp");
    let mut sink = SmtpSink::start().await;
    let email = w
        .start_email("email", &[], &[("SMTP_URL", sink.url().as_str())])
        .await;
    let sale_id = format!("M-{}", tests::unique("smtp"));
    let out = w
        .produce(&[
            "--sale-id",
            &sale_id,
            "--product-id",
            "9",
            "--quantity",
            "2",
            "--email",
            "lucia.fernandez@example.org",
        ])
        .await;
    assert_eq!(out.code(), Some(0), "{out:?}");

    let mail = sink.next(Duration::from_secs(20)).await;
    assert_eq!(mail.from, "ventas@example.com");
    assert_eq!(mail.to, vec!["lucia.fernandez@example.org".to_string()]);
    let (headers, body) = mail.data.split_once("\r\n\r\n").expect("headers and body");
    assert!(
        headers.contains("To: lucia.fernandez@example.org"),
        "{headers}"
    );
    assert!(
        headers.contains(&format!("Message-ID: <sale-{sale_id}@")),
        "{headers}"
    );
    let body = decode_quoted_printable(body);
    assert!(body.contains("Té Verde Matcha (ref. 9)"), "{body}");
    assert!(body.contains("25,98 €"), "{body}");
    assert!(body.contains("Thank you for your purchase!"), "{body}");

    email
        .wait_log("purchase confirmation sent", Duration::from_secs(10))
        .await;
    assert!(email.log().contains("via=smtp"), "{}", email.log());
    assert!(
        !w.path("outbox").exists(),
        "the outbox is not used with SMTP_URL"
    );
    assert_eq!(email.terminate().await.code(), Some(0));
    assert_eq!(w.queue_len(&w.email_queue).await, 0);
    w.cleanup().await;
}
