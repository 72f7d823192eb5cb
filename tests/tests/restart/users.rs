//! Users are durable definitions: the default user is created from the flags on the first
//! start only (a new data folder), saved at once as a salted hash, and kept with its password
//! across crashes and restarts, whatever the default-user flags say later (RabbitMQ creates
//! its default user only when its database is new). Ours only: the shared RabbitMQ's database
//! is not new.

use lapin::{Connection, ConnectionProperties};

use crate::support::{ChildBroker, serial};

fn flags(user: &str, pass: &str) -> Vec<String> {
    ["--default-user", user, "--default-pass", pass]
        .map(str::to_owned)
        .to_vec()
}

/// Whether `user` / `pass` may open vhost `/` on `broker`.
async fn logs_in(broker: &ChildBroker, user: &str, pass: &str) -> bool {
    let url = format!("amqp://{user}:{pass}@127.0.0.1:{}/%2f", broker.port);
    match Connection::connect(&url, ConnectionProperties::default()).await {
        Ok(conn) => {
            let _ = conn.close(200, "bye".into()).await;
            true
        }
        Err(_) => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_user_survives_restarts_and_keeps_its_password() {
    let _serial = serial().await;
    let mut broker = ChildBroker::start_with(
        "users",
        flags("alice", "first-pass"),
        ("alice".into(), "first-pass".into()),
    )
    .await;
    assert!(logs_in(&broker, "alice", "first-pass").await);
    assert!(
        !logs_in(&broker, "guest", "guest").await,
        "guest is not created when another default user is configured"
    );

    // Saved at first start, in RabbitMQ's format, as a hash.
    let saved = std::fs::read_to_string(broker.data_dir.join("definitions.json"))
        .expect("definitions saved at first start");
    assert!(
        !saved.contains("first-pass"),
        "no plain password on disk:\n{saved}"
    );
    let defs: serde_json::Value = serde_json::from_str(&saved).expect("definitions JSON");
    assert_eq!(defs["users"][0]["name"], "alice", "{saved}");
    assert_eq!(
        defs["users"][0]["hashing_algorithm"],
        "rabbit_password_hashing_sha256"
    );
    assert_eq!(
        defs["users"][0]["tags"],
        serde_json::json!(["administrator"])
    );
    assert_eq!(
        defs["permissions"],
        serde_json::json!([{"user": "alice", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"}])
    );

    // SIGKILL, then a start with another default password: the saved one still holds (the
    // restart itself waits until alice / first-pass opens a connection).
    broker.kill().await;
    broker.args = flags("alice", "second-pass");
    broker.start_again().await;
    assert!(logs_in(&broker, "alice", "first-pass").await);
    assert!(
        !logs_in(&broker, "alice", "second-pass").await,
        "a changed --default-pass on a later start does not replace the stored password"
    );

    // A graceful restart with another default user: no new user either.
    broker.args = flags("bob", "bob-pass");
    broker.restart().await;
    assert!(logs_in(&broker, "alice", "first-pass").await);
    assert!(!logs_in(&broker, "bob", "bob-pass").await);
    assert!(!logs_in(&broker, "guest", "guest").await);
    broker.shutdown().await;
}
