//! One broker per data folder: a second broker started on the same folder exits 1 with a clear
//! error, and the first one keeps serving (its lock is untouched).

use std::time::Duration;

use lapin::types::FieldTable;

use crate::parity_support::{
    assert_broker_alive, confirm_channel, message_count, publish_confirmed,
};
use crate::support::{
    ChildBroker, describe, durable_queue, free_port, persistent, read_log, serial, spawn_broker,
};

/// Starts another broker on `first`'s data folder (on another port) and checks that it exits 1
/// within 20 s, saying on stderr that the folder is used by another broker, and naming it.
async fn second_broker_is_refused(first: &ChildBroker, label: &str) {
    let log = first.scratch(label);
    let mut second = spawn_broker(&first.data_dir, free_port(), &log);
    let status = match tokio::time::timeout(Duration::from_secs(20), second.wait()).await {
        Ok(status) => status.expect("wait for the second broker"),
        Err(_) => {
            let _ = second.kill().await;
            panic!(
                "a second broker on the same data folder kept running (20 s):\n{}",
                read_log(&log)
            );
        }
    };
    let output = read_log(&log);
    assert_eq!(
        status.code(),
        Some(1),
        "a second broker on the same data folder must exit 1, got {}:\n{output}",
        describe(&status)
    );
    let stderr = std::fs::read_to_string(log.with_extension("err")).unwrap_or_default();
    assert!(
        stderr.contains("used by another broker"),
        "stderr must say the data folder is used by another broker:\n{output}"
    );
    let dir = first.data_dir.display().to_string();
    assert!(
        stderr.contains(&dir),
        "the error names the data folder {dir}:\n{output}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_broker_on_the_same_data_dir_fails_and_the_first_keeps_serving() {
    let _serial = serial().await;
    let mut first = ChildBroker::start("lock").await;
    let dir = first.data_dir.display().to_string();
    assert!(
        first.log().contains(&dir),
        "the broker prints its data folder {dir} at start:\n{}",
        first.log()
    );
    let url = first.broker().url;
    let conn = tests::connect(&url).await;
    let ch = confirm_channel(&conn).await;
    let q = tests::unique("lock-q");
    durable_queue(&ch, &q, FieldTable::default()).await;
    publish_confirmed(&ch, "", &q, b"before", persistent()).await;

    second_broker_is_refused(&first, "second").await;

    // The first broker serves on, on the connection it had and on new ones.
    publish_confirmed(&ch, "", &q, b"after", persistent()).await;
    assert_eq!(message_count(&ch, &q).await, 2);
    assert_broker_alive(&url).await;
    // The failed broker left the lock alone: a third one is refused too.
    second_broker_is_refused(&first, "third").await;
    conn.close(200, "bye".into()).await.expect("close");

    // Once the first has stopped, the folder is free again and holds both messages.
    first.restart().await;
    let conn = tests::connect(&url).await;
    let ch = conn.create_channel().await.expect("channel");
    assert_eq!(
        message_count(&ch, &q).await,
        2,
        "nothing lost to the refused brokers"
    );
    conn.close(200, "done".into()).await.expect("close");
    first.shutdown().await;
}
