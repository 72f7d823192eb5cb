//! A store that cannot fsync must not pretend to have stored anything: the broker stops
//! confirming persistent messages (publishers get `basic.nack`) and keeps serving the rest.
//! Ours only: the failure is injected into our store (`Config::fail_fsync_after`).

use lapin::BasicProperties;
use lapin::Confirmation;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::FieldTable;

#[tokio::test]
async fn fsync_failure_turns_confirms_into_nacks() {
    let b = tests::start_broker(broker::Config {
        data_dir: tests::fresh_data_dir("fsync-fault"),
        // The first fsyncs (directory creation, first batches) succeed, then every one fails.
        fail_fsync_after: Some(4),
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
