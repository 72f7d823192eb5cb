//! Restart tests: durable definitions and persistent messages across broker restarts.
//!
//! - `scenarios`: parity scenarios written once as `async fn(&mut RestartableBroker)` and run
//!   against our broker (a child process on a fresh data folder, restarted with SIGTERM and
//!   started again on the same folder and port; one test per scenario) and against the shared
//!   RabbitMQ (`rabbitmqctl stop_app && rabbitmqctl start_app`; all scenarios run together in
//!   one test around ONE restart, so the shared RabbitMQ is restarted once per run).
//! - `crash`: our broker only, killed with SIGKILL while a publisher with confirms runs: no
//!   confirmed message may be lost.
//! - `lock`: a second broker on the same data folder fails clearly while the first serves.
//! - `users`: the default user is created on the first start only and keeps its password.
//! - `model`: random sequences of publish / get / consume / ack / nack / reject / purge /
//!   reconnect / restart on one durable queue, checked step by step against an in-memory model
//!   (proptest, our broker); one fixed sequence with two restarts on both brokers.
//!
//! Every test takes [`support::serial`] first: they restart brokers, so they run one at a time
//! within this binary whatever `--test-threads` says. RabbitMQ is only touched when
//! `tests::rabbitmq()` says its half runs (`AMQP_PARITY` not `off`, RabbitMQ reachable).

mod crash;
mod lock;
mod model;
#[path = "../parity/support.rs"]
mod parity_support;
mod scenarios;
mod support;
mod users;

/// `restart_parity!(name, ...)` expects `async fn name(b: &mut RestartableBroker)` in scope for
/// each name. It makes the tests `name::ours` (our broker, its own data folder) and one test
/// `rabbitmq_all_scenarios_one_restart` running every listed scenario against RabbitMQ at once.
#[macro_export]
macro_rules! restart_parity {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                pub(super) fn boxed<'a>(
                    b: &'a mut $crate::support::RestartableBroker,
                ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>> {
                    Box::pin(super::$name(b))
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn ours() {
                    let _serial = $crate::support::serial().await;
                    let mut b = $crate::support::RestartableBroker::ours(stringify!($name)).await;
                    super::$name(&mut b).await;
                    b.finish().await;
                }
            }
        )+

        /// The RabbitMQ half of every scenario above, run concurrently around one shared
        /// restart of the shared RabbitMQ.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn rabbitmq_all_scenarios_one_restart() {
            let _serial = $crate::support::serial().await;
            $crate::support::run_on_rabbitmq(vec![
                $((stringify!($name), $name::boxed as $crate::support::Scenario)),+
            ])
            .await;
        }
    };
}
