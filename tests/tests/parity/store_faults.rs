//! A store that cannot fsync must not pretend to have stored anything: the broker stops
//! confirming persistent messages (publishers get `basic.nack`, transactions `406 partial tx
//! completion`) and keeps serving the rest. Ours only: the failure is injected into our store
//! (`Config::fail_fsync_after`).

use lapin::BasicProperties;
use lapin::Confirmation;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::FieldTable;

/// Fsyncs that succeed before the injected failures start: the definitions saved at first
/// start (temp file and directory), the queue directory and the first batches.
const GOOD_FSYNCS: u64 = 6;

#[tokio::test]
async fn fsync_failure_turns_confirms_into_nacks() {
    let b = tests::start_broker(broker::Config {
        data_dir: tests::fresh_data_dir("fsync-fault"),
        // The first fsyncs succeed, then every one fails.
        fail_fsync_after: Some(GOOD_FSYNCS),
        ..broker::Config::default()
    });
    let conn = b.connect().await;
    let ch = conn.create_channel().await.expect("channel");
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm mode");
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    ch.queue_declare("durable-q".into(), durable, FieldTable::default())
        .await
        .expect("declare");
    ch.queue_declare(
        "transient-q".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("declare");
    let persistent = BasicProperties::default().with_delivery_mode(2);
    let mut outcomes = Vec::new();
    for i in 0..20 {
        let confirm = ch
            .basic_publish(
                "".into(),
                "durable-q".into(),
                BasicPublishOptions::default(),
                format!("m{i}").as_bytes(),
                persistent.clone(),
            )
            .await
            .expect("publish")
            .await
            .expect("confirm");
        outcomes.push(matches!(confirm, Confirmation::Ack(_)));
    }
    let first_nack = outcomes
        .iter()
        .position(|ack| !ack)
        .expect("the failing fsync must show as a nack");
    assert!(
        outcomes[first_nack..].iter().all(|ack| !ack),
        "once the store failed, no persistent message is confirmed: {outcomes:?}"
    );
    // Transient messages do not touch the disk and are still confirmed.
    let confirm = ch
        .basic_publish(
            "".into(),
            "transient-q".into(),
            BasicPublishOptions::default(),
            b"t",
            BasicProperties::default(),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    assert!(
        matches!(confirm, Confirmation::Ack(_)),
        "transient publish still acked: {confirm:?}"
    );
}

#[tokio::test]
async fn fsync_failure_fails_tx_commits() {
    let b = tests::start_broker(broker::Config {
        data_dir: tests::fresh_data_dir("fsync-fault-tx"),
        fail_fsync_after: Some(GOOD_FSYNCS),
        ..broker::Config::default()
    });
    let conn = b.connect().await;
    let setup = conn.create_channel().await.expect("channel");
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    setup
        .queue_declare("durable-tx-q".into(), durable, FieldTable::default())
        .await
        .expect("declare");
    let persistent = BasicProperties::default().with_delivery_mode(2);
    let mut outcomes = Vec::new();
    let mut ch = conn.create_channel().await.expect("channel");
    ch.tx_select().await.expect("tx.select");
    for i in 0..20 {
        ch.basic_publish(
            "".into(),
            "durable-tx-q".into(),
            BasicPublishOptions::default(),
            format!("m{i}").as_bytes(),
            persistent.clone(),
        )
        .await
        .expect("publish");
        match ch.tx_commit().await {
            Ok(()) => outcomes.push(true),
            Err(e) => {
                assert_eq!(
                    crate::support::amqp_error(&e),
                    (
                        406,
                        "PRECONDITION_FAILED - partial tx completion".to_owned()
                    )
                );
                outcomes.push(false);
                // The channel is closed; the connection lives.
                ch = conn.create_channel().await.expect("channel");
                ch.tx_select().await.expect("tx.select");
            }
        }
    }
    let first_failure = outcomes
        .iter()
        .position(|ok| !ok)
        .expect("the failing fsync must fail the commit");
    assert!(
        outcomes[first_failure..].iter().all(|ok| !ok),
        "once the store failed, no commit of persistent messages succeeds: {outcomes:?}"
    );
    // A transaction of transient messages does not touch the disk and still commits.
    ch.basic_publish(
        "".into(),
        "durable-tx-q".into(),
        BasicPublishOptions::default(),
        b"t",
        BasicProperties::default(),
    )
    .await
    .expect("publish");
    ch.tx_commit().await.expect("transient tx.commit");
}
