//! Automatic retries: reject → `<queue>.retry` (TTL) → back, counted from `x-death`, then parked
//! in `<queue>.dead` with the reason; poison messages parked at once.

use std::time::{Duration, Instant};

use lapin::types::{AMQPValue, FieldTable};
use tests::Broker;

use crate::against_brokers;
use crate::support::{World, closed_port};

against_brokers!(poison_message_is_parked_at_once);
against_brokers!(failing_email_is_retried_then_parked);

fn header<'a>(headers: &'a FieldTable, key: &str) -> Option<&'a AMQPValue> {
    headers.inner().get(key)
}

fn text(v: Option<&AMQPValue>) -> String {
    clients::retry::text(v).unwrap_or_default().to_string()
}

async fn failing_email_is_retried_then_parked(b: &Broker) {
    let w = World::new(b, "retry");
    // A real failure: nothing listens on the SMTP port.
    let smtp = format!("smtp://127.0.0.1:{}", closed_port().await);
    let email = w
        .start_email(
            "email",
            &[
                "--max-attempts",
                "3",
                "--retry-delay",
                "700ms",
                "--smtp-timeout",
                "5s",
            ],
            &[("SMTP_URL", smtp.as_str())],
        )
        .await;
    let sale_id = format!("F-{}", tests::unique("retry"));
    let started = Instant::now();
    let out = w.produce(&["--sale-id", &sale_id]).await;
    assert_eq!(out.code(), Some(0), "{out:?}");

    let dead = format!("{}.dead", w.email_queue);
    let parked = w.take(&dead, Duration::from_secs(30)).await;
    let elapsed = started.elapsed();
    // Three attempts separated by two retry delays.
    assert!(
        elapsed >= Duration::from_millis(1400),
        "parked after only {elapsed:?}"
    );

    let log = email.log();
    assert_eq!(
        log.matches("processing failed; will retry").count(),
        2,
        "{log}"
    );
    assert!(log.contains("attempt=1 max_attempts=3"), "{log}");
    assert!(log.contains("attempt=2 max_attempts=3"), "{log}");
    assert!(log.contains("parking sale"), "{log}");

    let props = &parked.delivery.properties;
    assert_eq!(
        props.message_id().as_ref().map(|m| m.as_str()),
        Some(sale_id.as_str())
    );
    assert_eq!(*props.delivery_mode(), Some(2));
    let sale =
        clients::SaleCompleted::from_json(&parked.delivery.data).expect("original body kept");
    assert_eq!(sale.sale_id(), sale_id);
    let headers = props.headers().clone().expect("headers");
    let reason = text(header(&headers, "parked-reason"));
    assert!(
        reason.starts_with("gave up after 3 attempts: smtp delivery failed"),
        "{reason}"
    );
    assert_eq!(text(header(&headers, "parked-from")), w.email_queue);
    assert_eq!(
        header(&headers, "attempts"),
        Some(&AMQPValue::LongLongInt(3))
    );
    // The broker's own history: rejected twice from the work queue, expired twice from the
    // retry queue.
    let h = Some(&headers);
    assert_eq!(
        clients::retry::death_count(h, &w.email_queue, "rejected"),
        2
    );
    let retry = format!("{}.retry", w.email_queue);
    assert_eq!(clients::retry::death_count(h, &retry, "expired"), 2);
    assert_eq!(clients::retry::x_death(h).count(), 2, "{headers:?}");

    assert_eq!(w.queue_len(&w.email_queue).await, 0);
    assert_eq!(w.queue_len(&retry).await, 0);
    assert_eq!(email.terminate().await.code(), Some(0));
    w.cleanup().await;
}

async fn poison_message_is_parked_at_once(b: &Broker) {
    let w = World::new(b, "poison");
    let loyalty = w
        .start_loyalty(
            "loyalty",
            &["--max-attempts", "5", "--retry-delay", "10s"],
            &[],
        )
        .await;
    w.publish_raw(b"{\"event_type\": \"sale_completed\", oops")
        .await;
    let dead = format!("{}.dead", w.loyalty_queue);
    let parked = w.take(&dead, Duration::from_secs(20)).await;
    assert_eq!(
        parked.delivery.data,
        b"{\"event_type\": \"sale_completed\", oops"
    );
    let headers = parked
        .delivery
        .properties
        .headers()
        .clone()
        .expect("headers");
    let reason = text(header(&headers, "parked-reason"));
    assert!(
        reason.starts_with("poison message: not a sale_completed event"),
        "{reason}"
    );
    assert_eq!(
        header(&headers, "attempts"),
        Some(&AMQPValue::LongLongInt(1))
    );
    assert!(
        loyalty
            .log()
            .contains("not a valid sale; parking it without retry")
    );

    // Valid JSON that breaks a rule is poison too, and names the field.
    w.publish_raw(
        br#"{"event_type":"sale_completed","sale_id":"P-1","product_id":1,"product_name":"x",
            "quantity":0,"total":1.0,"customer_email":"a@example.com","timestamp":"2024-12-04T10:30:00"}"#,
    )
    .await;
    let parked = w.take(&dead, Duration::from_secs(20)).await;
    let headers = parked
        .delivery
        .properties
        .headers()
        .clone()
        .expect("headers");
    assert!(
        text(header(&headers, "parked-reason")).contains("invalid quantity: must be at least 1")
    );
    assert_eq!(w.credited("P-1"), None);
    assert_eq!(loyalty.terminate().await.code(), Some(0));
    w.cleanup().await;
}
