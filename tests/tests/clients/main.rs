//! The sales-event programs (`clients/`) run as a user runs them: the real `producer`,
//! `email_consumer`, `loyalty_consumer` and `consumer` binaries as child processes, each test with
//! its own exchange and queue names and working folder.
//!
//! Every scenario is an `async fn(&Broker)` and runs against both brokers through
//! [`against_brokers!`]: the real RabbitMQ (skipped unless reachable, see `tests::rabbitmq`) and
//! our broker (`tests::ours`). The compose-file checks need no broker.

mod compose;
mod flow;
mod producer;
mod retries;
mod smtp;
mod support;

/// `against_brokers!(name, ...)` expects `async fn name(b: &tests::Broker)` in scope and makes
/// the tests `name::rabbitmq` and `name::ours`. `against_brokers!(ours_ignored = "why"; name)`
/// marks the `ours` half ignored, for a broker feature not built yet; the reason says which.
#[macro_export]
macro_rules! against_brokers {
    (ours_ignored = $why:literal; $($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn rabbitmq() {
                if let Some(b) = tests::rabbitmq() {
                    super::$name(&b).await;
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = $why]
            async fn ours() {
                super::$name(&tests::ours()).await;
            }
        }
    )+};
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn rabbitmq() {
                if let Some(b) = tests::rabbitmq() {
                    super::$name(&b).await;
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn ours() {
                super::$name(&tests::ours()).await;
            }
        }
    )+};
}
