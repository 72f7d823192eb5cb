//! Model-based test of one durable queue holding persistent messages: sequences of publish,
//! `basic.get`, consume, ack, nack, reject (requeue or not), purge, reconnect and graceful
//! restart, run with lapin against a broker and checked after every step against [`Model`],
//! which says what a client must see.
//!
//! - `random_sequences_ours`: proptest sequences against our broker (a child process on a fresh
//!   data folder per case, restarted with SIGTERM), shrunk to a minimal failing sequence.
//! - `random_sequences_rabbitmq_without_restarts`: the same kind of sequences with every
//!   restart replaced by a reconnect, against the shared RabbitMQ: checks the model itself
//!   (requeue positions, redelivered flags, counts, prefetch) without restarting RabbitMQ.
//! - `fixed_sequence::{ours, rabbitmq}`: one hand-written sequence with two restarts (one with
//!   the client still connected, one after it closed) on both brokers.
//!
//! The model: ready messages in publish order, each with its redelivered flag (set once it was
//! delivered); unacked deliveries in delivery order. A requeued message (nack, reject, closed
//! channel, restart) goes back to its publish-order position among the ready ones with
//! redelivered set; nack / reject without requeue drop it (no dead-letter exchange); purge
//! removes ready messages only. After a restart every unacked message is ready again.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_lite::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions,
    BasicPublishOptions, BasicQosOptions, BasicRejectOptions, ConfirmSelectOptions,
    QueueDeclareOptions, QueueDeleteOptions, QueuePurgeOptions,
};
use lapin::types::{DeliveryTag, FieldTable};
use lapin::{Channel, Confirmation, Connection};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};
use tests::{Target, unique};

use crate::parity_support::WAIT;
use crate::support::{RestartableBroker, persistent, run_on_rabbitmq, serial};

/// Cases of `random_sequences_ours` unless `PROPTEST_CASES` says otherwise.
const CASES: u32 = 20;
/// Cases of `random_sequences_rabbitmq_without_restarts` unless `PROPTEST_CASES` says otherwise.
const RABBITMQ_CASES: u32 = 8;
/// Longest generated sequence.
const MAX_OPS: usize = 40;
/// Shrinking runs whole cases (restarts included), so it is bounded unless
/// `PROPTEST_MAX_SHRINK_ITERS` says otherwise.
const MAX_SHRINK_ITERS: u32 = 200;
/// One case (broker start, every step, final drain) must finish within this.
const CASE_LIMIT: Duration = Duration::from_secs(120);

/// Steps and restarts run by this process, for the summary line of each test.
static STEPS: AtomicUsize = AtomicUsize::new(0);
static RESTARTS: AtomicUsize = AtomicUsize::new(0);

/// One step of a sequence. `pick` chooses among the unacked deliveries (`pick % count`, in
/// delivery order); a settle step with nothing unacked does nothing.
#[derive(Clone, Copy, Debug)]
enum Op {
    /// Publishes this many persistent messages, confirms all outstanding at once.
    Publish(u8),
    /// One `basic.get`.
    Get {
        no_ack: bool,
    },
    /// `basic.qos(prefetch)`, `basic.consume` (manual ack), waits for `min(prefetch, ready)`
    /// deliveries, `basic.cancel`, and checks that nothing more arrived.
    Consume {
        prefetch: u8,
    },
    /// `basic.consume` with no-ack: takes every ready message, then `basic.cancel`.
    ConsumeNoAck,
    Ack {
        pick: u8,
        multiple: bool,
    },
    Nack {
        pick: u8,
        multiple: bool,
        requeue: bool,
    },
    Reject {
        pick: u8,
        requeue: bool,
    },
    Purge,
    /// Closes the client's connection (its unacked messages go back) and opens a new one.
    Reconnect,
    /// Graceful broker restart, optionally after closing the client's connection; then the
    /// whole queue is checked with `basic.get` and requeued.
    Restart {
        close_first: bool,
    },
}

/// A message of the model; its body is `m<id>`, ids count publishes from 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Msg {
    id: u32,
    redelivered: bool,
}

impl Msg {
    fn body(&self) -> String {
        format!("m{}", self.id)
    }
}

/// What the queue holds, as a client must see it.
#[derive(Debug, Default)]
struct Model {
    published: u32,
    /// Ready messages in publish order.
    ready: Vec<Msg>,
    /// Unacked deliveries on the client's channel, in delivery order (so by tag).
    unacked: Vec<(DeliveryTag, Msg)>,
}

impl Model {
    fn publish(&mut self) -> Msg {
        self.published += 1;
        let msg = Msg {
            id: self.published,
            redelivered: false,
        };
        self.ready.push(msg);
        msg
    }

    /// The head as it is delivered now; from then on it counts as delivered.
    fn take_head(&mut self) -> Option<Msg> {
        (!self.ready.is_empty()).then(|| self.ready.remove(0))
    }

    /// Back to its publish-order position, redelivered.
    fn requeue(&mut self, msg: Msg) {
        let at = self.ready.partition_point(|m| m.id < msg.id);
        self.ready.insert(
            at,
            Msg {
                redelivered: true,
                ..msg
            },
        );
    }

    /// The tag `pick` designates, if anything is unacked.
    fn pick(&self, pick: u8) -> Option<DeliveryTag> {
        let n = self.unacked.len();
        (n > 0).then(|| self.unacked[usize::from(pick) % n].0)
    }

    /// Removes and returns what an ack / nack / reject of `tag` settles.
    fn settle(&mut self, tag: DeliveryTag, multiple: bool) -> Vec<Msg> {
        let (settled, kept) = self
            .unacked
            .drain(..)
            .partition(|(t, _)| *t == tag || (multiple && *t < tag));
        self.unacked = kept;
        settled.into_iter().map(|(_, m)| m).collect()
    }

    /// The channel is gone (closed or the broker restarted): everything unacked is ready.
    fn requeue_unacked(&mut self) {
        for (_, msg) in std::mem::take(&mut self.unacked) {
            self.requeue(msg);
        }
    }
}

/// The client: one connection, one channel in confirm mode for everything.
struct Client {
    conn: Connection,
    ch: Channel,
}

impl Client {
    async fn open(b: &RestartableBroker) -> Result<Self, String> {
        let conn = b.connect().await;
        let ch = conn.create_channel().await.map_err(fail("channel.open"))?;
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(fail("confirm.select"))?;
        Ok(Self { conn, ch })
    }

    async fn close(self) -> Result<(), String> {
        self.conn
            .close(200, "model step".into())
            .await
            .map_err(fail("connection.close"))
    }
}

/// A sequence running against one broker.
struct Run<'a> {
    b: &'a mut RestartableBroker,
    queue: String,
    model: Model,
    /// `None` only between closing a connection and opening the next.
    client: Option<Client>,
}

/// Runs `ops` on a fresh durable queue, checking after every step, then drains the queue and
/// deletes it. The error names the step, the model before it, and what differed.
async fn run_ops(b: &mut RestartableBroker, ops: &[Op]) -> Result<(), String> {
    let client = Client::open(b).await?;
    let queue = unique("model-q");
    client
        .ch
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(fail("queue.declare"))?;
    let mut run = Run {
        b,
        queue,
        model: Model::default(),
        client: Some(client),
    };
    for (i, op) in ops.iter().enumerate() {
        let before = format!("{:?}", run.model);
        STEPS.fetch_add(1, Ordering::Relaxed);
        if let Op::Restart { .. } = op {
            RESTARTS.fetch_add(1, Ordering::Relaxed);
        }
        let step = async {
            run.apply(*op).await?;
            run.check_counts().await
        };
        step.await
            .map_err(|e| format!("step {i} {op:?} failed: {e}\nmodel before the step: {before}"))?;
    }
    run.finish()
        .await
        .map_err(|e| format!("final drain failed: {e}\nmodel: {:?}", run.model))
}

impl Run<'_> {
    fn ch(&self) -> &Channel {
        &self.client.as_ref().expect("the client is connected").ch
    }

    async fn apply(&mut self, op: Op) -> Result<(), String> {
        match op {
            Op::Publish(n) => self.publish(n).await,
            Op::Get { no_ack } => self.get(no_ack).await,
            Op::Consume { prefetch } => self.consume(Some(prefetch)).await,
            Op::ConsumeNoAck => self.consume(None).await,
            Op::Ack { pick, multiple } => {
                let Some(tag) = self.model.pick(pick) else {
                    return Ok(());
                };
                self.ch()
                    .basic_ack(tag, BasicAckOptions { multiple })
                    .await
                    .map_err(fail("basic.ack"))?;
                self.model.settle(tag, multiple);
                Ok(())
            }
            Op::Nack {
                pick,
                multiple,
                requeue,
            } => {
                let Some(tag) = self.model.pick(pick) else {
                    return Ok(());
                };
                self.ch()
                    .basic_nack(tag, BasicNackOptions { multiple, requeue })
                    .await
                    .map_err(fail("basic.nack"))?;
                self.settle_rejected(tag, multiple, requeue);
                Ok(())
            }
            Op::Reject { pick, requeue } => {
                let Some(tag) = self.model.pick(pick) else {
                    return Ok(());
                };
                self.ch()
                    .basic_reject(tag, BasicRejectOptions { requeue })
                    .await
                    .map_err(fail("basic.reject"))?;
                self.settle_rejected(tag, false, requeue);
                Ok(())
            }
            Op::Purge => {
                let purged = self
                    .ch()
                    .queue_purge(self.queue.as_str().into(), QueuePurgeOptions::default())
                    .await
                    .map_err(fail("queue.purge"))?;
                let want = self.model.ready.len();
                self.model.ready.clear();
                expect(
                    purged as usize == want,
                    format!("purge-ok message_count {purged}, model says {want} ready"),
                )
            }
            Op::Reconnect => {
                self.reconnect(true).await?;
                Ok(())
            }
            Op::Restart { close_first } => {
                if close_first {
                    self.reconnect(false).await?;
                }
                self.b.restart().await;
                // Whatever was still unacked on the old connection comes back.
                self.model.requeue_unacked();
                self.client = Some(Client::open(self.b).await?);
                self.check_counts().await?;
                self.check_all().await
            }
        }
    }

    fn settle_rejected(&mut self, tag: DeliveryTag, multiple: bool, requeue: bool) {
        for msg in self.model.settle(tag, multiple) {
            if requeue {
                self.model.requeue(msg);
            }
        }
    }

    /// Closes the client's connection (its unacked messages go back) and, if `reopen`, opens
    /// a new one.
    async fn reconnect(&mut self, reopen: bool) -> Result<(), String> {
        if let Some(old) = self.client.take() {
            old.close().await?;
        }
        self.model.requeue_unacked();
        if reopen {
            self.client = Some(Client::open(self.b).await?);
        }
        Ok(())
    }

    async fn publish(&mut self, n: u8) -> Result<(), String> {
        let mut confirms = Vec::new();
        for _ in 0..n {
            let msg = self.model.publish();
            confirms.push(
                self.ch()
                    .basic_publish(
                        "".into(),
                        self.queue.as_str().into(),
                        BasicPublishOptions::default(),
                        msg.body().as_bytes(),
                        persistent(),
                    )
                    .await
                    .map_err(fail("basic.publish"))?,
            );
        }
        for confirm in confirms {
            let c = tokio::time::timeout(WAIT, confirm)
                .await
                .map_err(|_| format!("no publisher confirm within {WAIT:?}"))?
                .map_err(fail("publisher confirm"))?;
            expect(
                matches!(c, Confirmation::Ack(None)),
                format!("expected a plain ack, got {c:?}"),
            )?;
        }
        Ok(())
    }

    async fn get(&mut self, no_ack: bool) -> Result<(), String> {
        let got = self
            .ch()
            .basic_get(self.queue.as_str().into(), BasicGetOptions { no_ack })
            .await
            .map_err(fail("basic.get"))?;
        let want = self.model.take_head();
        match (got, want) {
            (None, None) => Ok(()),
            (Some(got), None) => Err(format!(
                "basic.get returned {}, the model says the queue is empty",
                seen(&got.delivery)
            )),
            (None, Some(want)) => Err(format!("basic.get-empty, the model says {want:?}")),
            (Some(got), Some(want)) => {
                same(&got.delivery, want, "basic.get")?;
                let left = self.model.ready.len();
                expect(
                    got.message_count as usize == left,
                    format!(
                        "get-ok message_count {}, model says {left} left",
                        got.message_count
                    ),
                )?;
                if !no_ack {
                    self.model.unacked.push((got.delivery.delivery_tag, want));
                }
                Ok(())
            }
        }
    }

    /// With a prefetch: a manual-ack consumer under that prefetch; without: a no-ack consumer.
    async fn consume(&mut self, prefetch: Option<u8>) -> Result<(), String> {
        let ch = self.ch().clone();
        if let Some(prefetch) = prefetch {
            ch.basic_qos(prefetch.into(), BasicQosOptions::default())
                .await
                .map_err(fail("basic.qos"))?;
        }
        let mut consumer = ch
            .basic_consume(
                self.queue.as_str().into(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: prefetch.is_none(),
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(fail("basic.consume"))?;
        let ready = self.model.ready.len();
        let expected = prefetch.map_or(ready, |p| ready.min(p.into()));
        for _ in 0..expected {
            let got = tokio::time::timeout(WAIT, consumer.next())
                .await
                .map_err(|_| {
                    format!(
                        "no delivery within {WAIT:?}, model says {:?}",
                        self.model.ready.first()
                    )
                })?
                .ok_or("the consumer stream ended")?
                .map_err(fail("delivery"))?;
            // `expected` is at most the number of ready messages.
            let want = self.model.take_head().expect("a ready message");
            same(&got, want, "basic.deliver")?;
            if prefetch.is_some() {
                self.model.unacked.push((got.delivery_tag, want));
            }
        }
        ch.basic_cancel(
            consumer.tag().as_str().into(),
            BasicCancelOptions::default(),
        )
        .await
        .map_err(fail("basic.cancel"))?;
        // After cancel-ok nothing more arrives: whatever is in the stream now came beyond the
        // prefetch (or beyond what was ready).
        let mut extra = Vec::new();
        tokio::time::timeout(WAIT, async {
            while let Some(d) = consumer.next().await {
                extra.push(d.map(|d| seen(&d)).unwrap_or_else(|e| format!("error {e}")));
            }
        })
        .await
        .map_err(|_| "the cancelled consumer's stream did not end".to_owned())?;
        expect(
            extra.is_empty(),
            format!(
                "{expected} deliveries expected (prefetch {prefetch:?}, {ready} ready), then \
                 these more: {extra:?}"
            ),
        )
    }

    /// Passive declare: the ready count, and no consumer left.
    ///
    /// On RabbitMQ the count is polled until it matches (bounded by [`WAIT`]): a classic queue
    /// process serves `stat` (what a passive declare asks) before casts already in its mailbox
    /// (`prioritise_call` gives `stat` 7, a requeue cast 0), so right after a nack or reject
    /// with requeue the count may not include the requeued message yet. Our broker handles the
    /// nack before the declare, so there the first answer must be right.
    async fn check_counts(&self) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let ok = self
                .ch()
                .queue_declare(
                    self.queue.as_str().into(),
                    QueueDeclareOptions {
                        passive: true,
                        ..QueueDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await
                .map_err(fail("passive queue.declare"))?;
            let want = self.model.ready.len();
            if ok.message_count() as usize == want && ok.consumer_count() == 0 {
                return Ok(());
            }
            if self.b.broker.target != Target::RabbitMq || tokio::time::Instant::now() > deadline {
                return Err(format!(
                    "declare-ok message_count {} consumer_count {}, model says {want} ready and \
                     no consumer",
                    ok.message_count(),
                    ok.consumer_count()
                ));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Takes every message with `basic.get` (manual ack) and checks them all, then requeues
    /// them with one `basic.nack(multiple, requeue)`: the queue is as before, all redelivered.
    async fn check_all(&mut self) -> Result<(), String> {
        assert!(
            self.model.unacked.is_empty(),
            "check_all needs a fresh channel"
        );
        let got = self.get_all(false).await?;
        self.compare_all(&got)?;
        if let Some((tag, _)) = got.last() {
            self.ch()
                .basic_nack(
                    *tag,
                    BasicNackOptions {
                        multiple: true,
                        requeue: true,
                    },
                )
                .await
                .map_err(fail("basic.nack"))?;
        }
        for msg in &mut self.model.ready {
            msg.redelivered = true;
        }
        self.check_counts().await
    }

    /// Everything unacked goes back (reconnect), then the queue is drained (no-ack) and
    /// checked, and deleted.
    async fn finish(&mut self) -> Result<(), String> {
        self.reconnect(true).await?;
        self.check_counts().await?;
        let got = self.get_all(true).await?;
        self.compare_all(&got)?;
        self.model.ready.clear();
        self.check_counts().await?;
        let left = self
            .ch()
            .queue_delete(self.queue.as_str().into(), QueueDeleteOptions::default())
            .await
            .map_err(fail("queue.delete"))?;
        expect(left == 0, format!("delete-ok message_count {left}, want 0"))?;
        match self.client.take() {
            Some(client) => client.close().await,
            None => Ok(()),
        }
    }

    /// `basic.get` until empty: (tag, body, redelivered, message_count) of each.
    async fn get_all(&self, no_ack: bool) -> Result<Vec<(DeliveryTag, Seen)>, String> {
        let mut got = Vec::new();
        while let Some(m) = self
            .ch()
            .basic_get(self.queue.as_str().into(), BasicGetOptions { no_ack })
            .await
            .map_err(fail("basic.get"))?
        {
            got.push((
                m.delivery.delivery_tag,
                Seen {
                    body: String::from_utf8_lossy(&m.delivery.data).into_owned(),
                    redelivered: m.delivery.redelivered,
                    message_count: m.message_count,
                },
            ));
            if got.len() > self.model.ready.len() + 100 {
                break;
            }
        }
        Ok(got)
    }

    /// `got` (from [`Self::get_all`]) is exactly the model's ready list.
    fn compare_all(&self, got: &[(DeliveryTag, Seen)]) -> Result<(), String> {
        let n = self.model.ready.len();
        let want: Vec<Seen> = (self.model.ready.iter().enumerate())
            .map(|(i, m)| Seen {
                body: m.body(),
                redelivered: m.redelivered,
                message_count: (n - 1 - i) as u32,
            })
            .collect();
        let got: Vec<Seen> = got.iter().map(|(_, s)| s.clone()).collect();
        expect(
            got == want,
            format!("the queue holds\n  {got:?}\nthe model says\n  {want:?}"),
        )
    }
}

/// One message as `basic.get` showed it.
#[derive(Clone, PartialEq, Eq)]
struct Seen {
    body: String,
    redelivered: bool,
    message_count: u32,
}

impl std::fmt::Debug for Seen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = if self.redelivered { " redelivered" } else { "" };
        write!(f, "{}{r} (count {})", self.body, self.message_count)
    }
}

fn seen(d: &Delivery) -> String {
    let r = if d.redelivered { " redelivered" } else { "" };
    format!("{}{r}", String::from_utf8_lossy(&d.data))
}

/// `got` is `want`: body and redelivered flag.
fn same(got: &Delivery, want: Msg, what: &str) -> Result<(), String> {
    expect(
        got.data == want.body().as_bytes() && got.redelivered == want.redelivered,
        format!("{what} gave {}, the model says {want:?}", seen(got)),
    )
}

fn expect(ok: bool, otherwise: String) -> Result<(), String> {
    if ok { Ok(()) } else { Err(otherwise) }
}

fn fail(what: &'static str) -> impl Fn(lapin::Error) -> String {
    move |e| format!("{what}: {e}")
}

fn op(restarts: bool) -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1u8..=3).prop_map(Op::Publish),
        4 => any::<bool>().prop_map(|no_ack| Op::Get { no_ack }),
        2 => (1u8..=4).prop_map(|prefetch| Op::Consume { prefetch }),
        1 => Just(Op::ConsumeNoAck),
        3 => (any::<u8>(), any::<bool>()).prop_map(|(pick, multiple)| Op::Ack { pick, multiple }),
        3 => (any::<u8>(), any::<bool>(), any::<bool>())
            .prop_map(|(pick, multiple, requeue)| Op::Nack { pick, multiple, requeue }),
        2 => (any::<u8>(), any::<bool>()).prop_map(|(pick, requeue)| Op::Reject { pick, requeue }),
        1 => Just(Op::Purge),
        1 => Just(Op::Reconnect),
        2 => any::<bool>().prop_map(move |close_first| if restarts {
            Op::Restart { close_first }
        } else {
            Op::Reconnect
        }),
    ]
}

fn config(cases: u32) -> Config {
    let mut config = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = cases;
    }
    if std::env::var_os("PROPTEST_MAX_SHRINK_ITERS").is_none() {
        config.max_shrink_iters = MAX_SHRINK_ITERS;
    }
    // No source file to persist failures next to: the minimal sequence is printed instead.
    config.failure_persistence = None;
    config
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("test runtime")
}

/// Runs proptest sequences, each with `case`; panics with the minimal failing sequence.
fn run_cases<F, Fut>(cases: u32, restarts: bool, case: F)
where
    F: Fn(Vec<Op>) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let rt = runtime();
    let _serial = rt.block_on(serial());
    let t0 = std::time::Instant::now();
    let (steps0, restarts0) = (
        STEPS.load(Ordering::Relaxed),
        RESTARTS.load(Ordering::Relaxed),
    );
    let config = config(cases);
    let cases = config.cases;
    let mut runner = TestRunner::new(config);
    let strategy = proptest::collection::vec(op(restarts), 1..=MAX_OPS);
    let result = runner.run(&strategy, |ops| {
        rt.block_on(async {
            tokio::time::timeout(CASE_LIMIT, case(ops))
                .await
                .unwrap_or_else(|_| Err(format!("the case took more than {CASE_LIMIT:?}")))
        })
        .map_err(TestCaseError::fail)
    });
    eprintln!(
        "model: {cases} cases, {} steps, {} restarts in {:?}",
        STEPS.load(Ordering::Relaxed) - steps0,
        RESTARTS.load(Ordering::Relaxed) - restarts0,
        t0.elapsed()
    );
    match result {
        Ok(()) => {}
        Err(TestError::Fail(why, ops)) => {
            panic!(
                "minimal failing sequence ({} ops):\n{ops:?}\n{why}",
                ops.len()
            )
        }
        Err(e) => panic!("{e}"),
    }
}

/// Random sequences against our broker, a fresh one (child process, own data folder) per case,
/// with 4 KiB log segments so that sequences roll segments over and delete acked ones.
#[test]
fn random_sequences_ours() {
    run_cases(CASES, true, |ops| async move {
        let mut b = RestartableBroker::ours_with("model", &["--segment-size", "4096"]).await;
        match run_ops(&mut b, &ops).await {
            Ok(()) => {
                b.finish().await;
                Ok(())
            }
            Err(e) => Err(format!("{e}\nbroker log:\n{}", b.log().unwrap_or_default())),
        }
    });
}

/// Random sequences against the shared RabbitMQ, restarts replaced by reconnects: the model
/// holds for the reference broker.
#[test]
fn random_sequences_rabbitmq_without_restarts() {
    let Some(broker) = tests::rabbitmq() else {
        eprintln!("model: RabbitMQ half skipped (AMQP_PARITY is off or RabbitMQ unreachable)");
        return;
    };
    run_cases(RABBITMQ_CASES, false, |ops| {
        let broker = broker.clone();
        async move {
            // Never used: `op(false)` makes no restart step (one would wait forever here).
            let group = crate::support::RestartGroup::new(&broker.url, 0);
            let mut b = RestartableBroker::rabbitmq(broker, group);
            run_ops(&mut b, &ops).await
        }
    });
}

/// Covers every step kind, two restarts (the first with the client still connected and
/// messages unacked, the second after it closed), a purge between them. `*` marks a message
/// that comes back redelivered.
const FIXED: &[Op] = &[
    // m1 m2 m3 m4
    Op::Publish(3),
    Op::Publish(1),
    // m1 unacked
    Op::Get { no_ack: false },
    // m2 m3 unacked
    Op::Consume { prefetch: 2 },
    // m4 gone; then m5 m6 m7
    Op::Get { no_ack: true },
    Op::Publish(3),
    // m2 back before m5: m2* m5 m6 m7
    Op::Nack {
        pick: 1,
        multiple: false,
        requeue: true,
    },
    // m1 dropped
    Op::Reject {
        pick: 0,
        requeue: false,
    },
    // m2* (requeued, ready) m3* (unacked) m5 m6 m7; then all redelivered: the check after
    // a restart delivers them
    Op::Restart { close_first: false },
    // m2* and m3* acked with one multiple ack
    Op::Get { no_ack: false },
    Op::Get { no_ack: false },
    Op::Ack {
        pick: 1,
        multiple: true,
    },
    // m8 m9; the consumer gets m5* m6* m7* m8
    Op::Publish(2),
    Op::Consume { prefetch: 4 },
    // m5 acked; m6 m7 m8 dropped with one multiple nack
    Op::Ack {
        pick: 0,
        multiple: false,
    },
    Op::Nack {
        pick: 2,
        multiple: true,
        requeue: false,
    },
    // m9 purged
    Op::Purge,
    // m10 m11 m12; m10 and m11 unacked, back as m10* m11* m12 after the reconnect
    Op::Publish(3),
    Op::Get { no_ack: false },
    Op::Consume { prefetch: 1 },
    Op::Reconnect,
    // m10* rejected back, taken again with m11*; m11 acked, m10 unacked; m13
    Op::Get { no_ack: false },
    Op::Reject {
        pick: 0,
        requeue: true,
    },
    Op::Get { no_ack: false },
    Op::Get { no_ack: false },
    Op::Ack {
        pick: 1,
        multiple: false,
    },
    Op::Publish(1),
    // m10* m12 m13
    Op::Restart { close_first: true },
    // m10* taken without ack, then m12* m13* by a no-ack consumer
    Op::Get { no_ack: true },
    Op::ConsumeNoAck,
    // Nothing unacked: does nothing
    Op::Nack {
        pick: 0,
        multiple: false,
        requeue: true,
    },
    // m14 m15, drained at the end
    Op::Publish(2),
];

mod fixed_sequence {
    use super::*;

    async fn fixed(b: &mut RestartableBroker) {
        if let Err(e) = run_ops(b, FIXED).await {
            panic!("{e}");
        }
    }

    fn boxed<'a>(b: &'a mut RestartableBroker) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(fixed(b))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ours() {
        let _serial = serial().await;
        let mut b = RestartableBroker::ours("model-fixed").await;
        fixed(&mut b).await;
        b.finish().await;
    }

    /// Restarts the shared RabbitMQ twice.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rabbitmq() {
        let _serial = serial().await;
        run_on_rabbitmq(vec![("model_fixed_sequence", boxed)]).await;
    }
}
