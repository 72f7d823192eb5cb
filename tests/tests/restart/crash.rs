//! Crash tests, our broker only (the real binary as a child process, killed with SIGKILL):
//! confirmed persistent messages are never lost (also while a consumer dead-letters them),
//! delivered-but-unacked messages come back redelivered, and durable definitions are on disk
//! once their `-ok` is sent.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use futures_lite::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions,
    BasicPublishOptions, BasicQosOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Confirmation, ExchangeKind};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::parity_support::{
    confirm_channel, exchange_exists, field_table, header, long_str, message_count, next_delivery,
    publish_confirmed, queue_exists,
};
use crate::support::{
    ChildBroker, bind, bind_exchange, bodies, durable_queue, exchange, get_all, persistent,
    publish_all, serial,
};

/// Most crash rounds; fewer when the time budget runs out (but at least [`MIN_ROUNDS`]).
const MAX_ROUNDS: u64 = 20;
const MIN_ROUNDS: u64 = 10;
/// No new round starts after this much time (keeps the test under about a minute).
const BUDGET: Duration = Duration::from_secs(40);
/// Unconfirmed publishes the publisher allows at once.
const IN_FLIGHT: usize = 1000;
/// Message ids are `round * ROUND_IDS + n`.
const ROUND_IDS: u64 = 1_000_000_000;

/// xorshift64*, seeded from the clock (or `CRASH_SEED`), printed so a run can be replayed.
struct Rng(u64);

impl Rng {
    fn seeded() -> Self {
        let seed = std::env::var("CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(0x9e37_79b9)
            })
            | 1;
        eprintln!("crash: seed {seed} (set CRASH_SEED={seed} to replay the kill times)");
        Self(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform-ish in `lo..=hi`.
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// The body of message `id`: the id (8 bytes, little endian), then a filler derived from it, of
/// a length that varies with it (72 to 1864 bytes), so a torn or mixed-up body is detected.
fn body_of(id: u64) -> Vec<u8> {
    let len = 64 + (id % 29) as usize * 64;
    let mut body = id.to_le_bytes().to_vec();
    body.extend((0..len).map(|j| (id as u8).wrapping_mul(31).wrapping_add(j as u8)));
    body
}

/// The id in `body`, if the body is exactly what [`body_of`] makes for it.
fn id_of(body: &[u8]) -> Option<u64> {
    let id = u64::from_le_bytes(body.get(..8)?.try_into().ok()?);
    (body == body_of(id).as_slice()).then_some(id)
}

/// One round's publisher: persistent messages to `queue` on a confirm channel, at most
/// [`IN_FLIGHT`] unconfirmed, until the broker dies.
struct Publisher {
    task: tokio::task::JoinHandle<()>,
    confirmed: Arc<StdMutex<Vec<u64>>>,
    nacked: Arc<AtomicU64>,
    next_id: Arc<AtomicU64>,
}

impl Publisher {
    /// Connects (and enables confirms) before returning, so the kill timer starts while
    /// messages are flowing.
    async fn start(url: &str, queue: &str, first_id: u64) -> Self {
        let conn = tests::connect(url).await;
        let ch = confirm_channel(&conn).await;
        let confirmed = Arc::new(StdMutex::new(Vec::new()));
        let nacked = Arc::new(AtomicU64::new(0));
        let next_id = Arc::new(AtomicU64::new(first_id));
        let queue = queue.to_owned();
        let task = tokio::spawn({
            let (confirmed, nacked, next_id) = (confirmed.clone(), nacked.clone(), next_id.clone());
            async move {
                let _conn = conn;
                let permits = Arc::new(Semaphore::new(IN_FLIGHT));
                let mut confirms = tokio::task::JoinSet::new();
                loop {
                    let Ok(permit) = permits.clone().acquire_owned().await else {
                        break;
                    };
                    let id = next_id.load(Ordering::SeqCst);
                    let publish = ch
                        .basic_publish(
                            "".into(),
                            queue.as_str().into(),
                            BasicPublishOptions::default(),
                            &body_of(id),
                            persistent(),
                        )
                        .await;
                    // Counted as (maybe) published from here on: ids stay unique per round.
                    next_id.store(id + 1, Ordering::SeqCst);
                    let Ok(confirm) = publish else { break };
                    let (confirmed, nacked) = (confirmed.clone(), nacked.clone());
                    confirms.spawn(async move {
                        let _permit = permit;
                        match confirm.await {
                            Ok(Confirmation::Ack(_)) => {
                                confirmed.lock().expect("confirmed ids").push(id);
                            }
                            Ok(Confirmation::Nack(_)) => {
                                nacked.fetch_add(1, Ordering::Relaxed);
                            }
                            // Not confirmed: the connection died first.
                            _ => {}
                        }
                    });
                    while confirms.try_join_next().is_some() {}
                }
                // Confirms read off the socket before it closed still count.
                let _ = tokio::time::timeout(Duration::from_secs(5), async {
                    while confirms.join_next().await.is_some() {}
                })
                .await;
            }
        });
        Self {
            task,
            confirmed,
            nacked,
            next_id,
        }
    }

    /// After the kill: waits (bounded) for the publisher to notice, then returns the confirmed
    /// ids, the number of nacks and the first id not used.
    async fn finish(mut self) -> (Vec<u64>, u64, u64) {
        if tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .is_err()
        {
            self.task.abort();
        }
        let confirmed = std::mem::take(&mut *self.confirmed.lock().expect("confirmed ids"));
        (
            confirmed,
            self.nacked.load(Ordering::SeqCst),
            self.next_id.load(Ordering::SeqCst),
        )
    }
}

/// One message taken off the queue by [`drain`].
struct Drained {
    id: u64,
    redelivered: bool,
    /// `queue` and `reason` of the first (most recent) `x-death` entry, if there is one.
    death: Option<(String, String)>,
}

impl Drained {
    fn of(d: &lapin::message::Delivery) -> Self {
        let id = id_of(&d.data).unwrap_or_else(|| {
            panic!(
                "corrupt body delivered after a crash ({} bytes): {:?}",
                d.data.len(),
                &d.data[..d.data.len().min(32)]
            )
        });
        Self {
            id,
            redelivered: d.redelivered,
            death: first_death(&d.properties),
        }
    }
}

/// `queue` and `reason` of the first entry of the `x-death` header.
fn first_death(props: &lapin::BasicProperties) -> Option<(String, String)> {
    let Some(AMQPValue::FieldArray(deaths)) = header(props, "x-death") else {
        return None;
    };
    let Some(AMQPValue::FieldTable(entry)) = deaths.as_slice().first() else {
        return Some((String::new(), String::new()));
    };
    let text = |key: &str| match entry.inner().get(key) {
        Some(AMQPValue::LongString(s)) => s.to_string(),
        other => format!("{other:?}"),
    };
    Some((text("queue"), text("reason")))
}

/// Consumes everything in `queue` with manual acks (prefetch 1000, acks every 100 and when
/// idle) until the queue is empty, checking every body.
async fn drain(broker: &ChildBroker, queue: &str) -> Vec<Drained> {
    let conn = tests::connect(&broker.broker().url).await;
    let ch = conn.create_channel().await.expect("channel");
    ch.basic_qos(1000, BasicQosOptions::default())
        .await
        .expect("basic.qos");
    let mut consumer = ch
        .basic_consume(
            queue.into(),
            "drain".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("basic.consume");
    let mut out = Vec::new();
    let mut last_tag = None;
    let mut pending = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(
            Instant::now() < deadline,
            "draining {queue} took more than 60 s ({} so far)",
            out.len()
        );
        match tokio::time::timeout(Duration::from_millis(250), consumer.next()).await {
            Ok(Some(Ok(d))) => {
                out.push(Drained::of(&d));
                last_tag = Some(d.delivery_tag);
                pending += 1;
                if pending >= 100 {
                    ch.basic_ack(d.delivery_tag, BasicAckOptions { multiple: true })
                        .await
                        .expect("basic.ack");
                    pending = 0;
                }
            }
            Ok(Some(Err(e))) => panic!("consumer error while draining: {e}"),
            Ok(None) => panic!("the consumer was cancelled while draining"),
            Err(_idle) => {
                if pending > 0
                    && let Some(tag) = last_tag
                {
                    ch.basic_ack(tag, BasicAckOptions { multiple: true })
                        .await
                        .expect("basic.ack");
                    pending = 0;
                }
                if message_count(&ch, queue).await == 0 {
                    break;
                }
            }
        }
    }
    ch.basic_cancel("drain".into(), BasicCancelOptions::default())
        .await
        .expect("basic.cancel");
    // Nothing may be left behind unacked: a cancelled consumer's stream ends.
    while let Ok(Some(Ok(d))) =
        tokio::time::timeout(Duration::from_millis(500), consumer.next()).await
    {
        out.push(Drained::of(&d));
        ch.basic_ack(d.delivery_tag, BasicAckOptions::default())
            .await
            .expect("basic.ack");
    }
    assert_eq!(message_count(&ch, queue).await, 0, "{queue} drained");
    conn.close(200, "drained".into()).await.expect("close");
    out
}

/// A publisher with confirms (up to 1000 in flight, persistent messages, durable queue) while
/// the broker is SIGKILLed 50 to 500 ms into each round; after each restart a consumer drains
/// the queue. Every confirmed id must come back; duplicates (messages delivered and acked
/// before a kill whose ack was not on disk yet) are counted and reported, not failed.
/// Segments of 64 KiB make every round roll over and delete many of them, so kills land
/// between those steps too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirmed_messages_survive_sigkill() {
    let _serial = serial().await;
    let mut broker = ChildBroker::start_with(
        "crash",
        vec!["--segment-size".into(), "65536".into()],
        ("guest".into(), "guest".into()),
    )
    .await;
    let url = broker.broker().url;
    let queue = tests::unique("crash-q");
    {
        let conn = tests::connect(&url).await;
        let ch = conn.create_channel().await.expect("channel");
        durable_queue(&ch, &queue, FieldTable::default()).await;
        conn.close(200, "declared".into()).await.expect("close");
    }
    let mut rng = Rng::seeded();
    let t0 = Instant::now();
    let mut seen: HashSet<u64> = HashSet::new();
    let (mut published, mut confirmed_total, mut nacked_total) = (0u64, 0u64, 0u64);
    let (mut duplicates, mut dup_not_flagged, mut fresh_flagged, mut unconfirmed_kept) =
        (0u64, 0u64, 0u64, 0u64);
    let mut round = 0;
    while round < MAX_ROUNDS && (round < MIN_ROUNDS || t0.elapsed() < BUDGET) {
        round += 1;
        let first_id = round * ROUND_IDS;
        let kill_after = Duration::from_millis(rng.between(50, 500));
        let publisher = Publisher::start(&url, &queue, first_id).await;
        tokio::time::sleep(kill_after).await;
        broker.kill().await;
        let (confirmed, nacked, next_id) = publisher.finish().await;
        published += next_id - first_id;
        confirmed_total += confirmed.len() as u64;
        nacked_total += nacked;

        broker.start_again().await;
        let drained = drain(&broker, &queue).await;
        let confirmed_set: HashSet<u64> = confirmed.iter().copied().collect();
        let mut last_fresh = None;
        let mut round_dups = 0;
        for d in &drained {
            assert!(
                d.id / ROUND_IDS >= 1
                    && d.id / ROUND_IDS <= round
                    && (d.id / ROUND_IDS < round || d.id < next_id),
                "round {round}: delivered id {} was never published",
                d.id
            );
            if !seen.insert(d.id) {
                round_dups += 1;
                if !d.redelivered {
                    dup_not_flagged += 1;
                }
                continue;
            }
            assert!(
                d.id / ROUND_IDS == round,
                "round {round}: id {} of an earlier round shows up for the first time",
                d.id
            );
            if let Some(prev) = last_fresh {
                assert!(
                    d.id > prev,
                    "round {round}: order lost, {} delivered after {prev}",
                    d.id
                );
            }
            last_fresh = Some(d.id);
            if d.redelivered {
                fresh_flagged += 1;
            }
            if !confirmed_set.contains(&d.id) {
                unconfirmed_kept += 1;
            }
        }
        duplicates += round_dups;
        let mut lost: Vec<u64> = confirmed
            .iter()
            .copied()
            .filter(|id| !seen.contains(id))
            .collect();
        lost.sort_unstable();
        assert!(
            lost.is_empty(),
            "round {round}: {} confirmed message(s) LOST after SIGKILL {kill_after:?} into the \
             round, first ids {:?} (published {}, confirmed {}); broker log:\n{}",
            lost.len(),
            &lost[..lost.len().min(10)],
            next_id - first_id,
            confirmed.len(),
            broker.log()
        );
        eprintln!(
            "crash: round {round:2}: killed after {:3} ms, published {:6}, confirmed {:6}, \
             nacked {nacked}, drained {:6} ({round_dups} duplicates)",
            kill_after.as_millis(),
            next_id - first_id,
            confirmed.len(),
            drained.len()
        );
    }
    eprintln!(
        "crash: {round} rounds in {:.1?}: published {published}, confirmed {confirmed_total}, \
         nacked {nacked_total}, lost 0; unconfirmed but recovered {unconfirmed_kept}; \
         duplicates (redeliveries) {duplicates} ({dup_not_flagged} of them without the \
         redelivered flag); first deliveries flagged redelivered {fresh_flagged}",
        t0.elapsed()
    );
    assert!(
        confirmed_total >= 1000,
        "only {confirmed_total} messages were confirmed in {round} rounds: the test proves little"
    );
    broker.shutdown().await;
}

/// Dead-letter crash rounds: at least this many, at most [`DLX_MAX_ROUNDS`], no new round
/// after [`DLX_BUDGET`].
const DLX_MIN_ROUNDS: u64 = 10;
const DLX_MAX_ROUNDS: u64 = 15;
const DLX_BUDGET: Duration = Duration::from_secs(30);
/// Prefetch of the consumer that rejects everything it gets.
const REJECT_PREFETCH: u16 = 200;

/// One round's consumer on the work queue: `basic.nack` (requeue=false) of every delivery, so
/// each is dead-lettered, until the broker dies. Remembers the ids it rejected.
struct Rejecter {
    task: tokio::task::JoinHandle<()>,
    rejected: Arc<StdMutex<Vec<u64>>>,
    corrupt: Arc<AtomicU64>,
}

impl Rejecter {
    /// Consumes (manual acks) before returning, so it takes messages from the first publish.
    async fn start(url: &str, queue: &str) -> Self {
        let conn = tests::connect(url).await;
        let ch = conn.create_channel().await.expect("channel");
        ch.basic_qos(REJECT_PREFETCH, BasicQosOptions::default())
            .await
            .expect("basic.qos");
        let mut consumer = ch
            .basic_consume(
                queue.into(),
                "rejecter".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("basic.consume");
        let rejected = Arc::new(StdMutex::new(Vec::new()));
        let corrupt = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn({
            let (rejected, corrupt) = (rejected.clone(), corrupt.clone());
            async move {
                let _conn = conn;
                while let Some(Ok(d)) = consumer.next().await {
                    let id = id_of(&d.data);
                    if id.is_none() {
                        corrupt.fetch_add(1, Ordering::Relaxed);
                    }
                    let nack = ch
                        .basic_nack(
                            d.delivery_tag,
                            BasicNackOptions {
                                multiple: false,
                                requeue: false,
                            },
                        )
                        .await;
                    if nack.is_err() {
                        break;
                    }
                    if let Some(id) = id {
                        rejected.lock().expect("rejected ids").push(id);
                    }
                }
            }
        });
        Self {
            task,
            rejected,
            corrupt,
        }
    }

    /// After the kill: waits (bounded) for the consumer to notice, then returns the ids it
    /// rejected (nack sent) and how many corrupt bodies it saw.
    async fn finish(mut self) -> (Vec<u64>, u64) {
        if tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .is_err()
        {
            self.task.abort();
        }
        let rejected = std::mem::take(&mut *self.rejected.lock().expect("rejected ids"));
        (rejected, self.corrupt.load(Ordering::SeqCst))
    }
}

/// Durable `work` dead-letters (default exchange) into durable `dlq`. Each round a publisher
/// with confirms sends persistent messages to `work` while a consumer on `work` nacks
/// (requeue=false) every delivery, and the broker is SIGKILLed 50 to 400 ms into the round;
/// after the restart both queues are drained. Every confirmed id must be in `work` or `dlq`
/// (a message in neither was lost between the two queues); duplicates (in both queues, or
/// back from an earlier round whose drain acks were not on disk yet) are counted, not failed.
/// What comes out of `dlq` must carry `x-death` (queue `work`, reason `rejected`), what comes
/// out of `work` must not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_lettered_messages_survive_sigkill() {
    let _serial = serial().await;
    let mut broker = ChildBroker::start("crash-dlx").await;
    let url = broker.broker().url;
    let work = tests::unique("crash-dlx-work");
    let dlq = tests::unique("crash-dlx-dlq");
    {
        let conn = tests::connect(&url).await;
        let ch = conn.create_channel().await.expect("channel");
        durable_queue(&ch, &dlq, FieldTable::default()).await;
        durable_queue(
            &ch,
            &work,
            field_table(&[
                ("x-dead-letter-exchange", long_str("")),
                ("x-dead-letter-routing-key", long_str(&dlq)),
            ]),
        )
        .await;
        conn.close(200, "declared".into()).await.expect("close");
    }
    let mut rng = Rng::seeded();
    let t0 = Instant::now();
    let mut seen: HashSet<u64> = HashSet::new();
    let (mut published, mut confirmed_total, mut nacked_total, mut rejected_total) =
        (0u64, 0u64, 0u64, 0u64);
    let (mut in_work_total, mut in_dlq_total, mut duplicates, mut in_both_total) =
        (0u64, 0u64, 0u64, 0u64);
    let (mut unconfirmed_kept, mut corrupt_live) = (0u64, 0u64);
    let mut bad_headers: Vec<String> = Vec::new();
    let mut round = 0;
    while round < DLX_MAX_ROUNDS && (round < DLX_MIN_ROUNDS || t0.elapsed() < DLX_BUDGET) {
        round += 1;
        let first_id = round * ROUND_IDS;
        let kill_after = Duration::from_millis(rng.between(50, 400));
        let rejecter = Rejecter::start(&url, &work).await;
        let publisher = Publisher::start(&url, &work, first_id).await;
        tokio::time::sleep(kill_after).await;
        broker.kill().await;
        let (confirmed, nacked, next_id) = publisher.finish().await;
        let (rejected, corrupt) = rejecter.finish().await;
        published += next_id - first_id;
        confirmed_total += confirmed.len() as u64;
        nacked_total += nacked;
        rejected_total += rejected.len() as u64;
        corrupt_live += corrupt;

        broker.start_again().await;
        let from_work = drain(&broker, &work).await;
        let from_dlq = drain(&broker, &dlq).await;
        in_work_total += from_work.len() as u64;
        in_dlq_total += from_dlq.len() as u64;
        let confirmed_set: HashSet<u64> = confirmed.iter().copied().collect();
        // Where each id of this drain was found: (in work, in dlq).
        let mut found: HashMap<u64, (bool, bool)> = HashMap::new();
        let mut round_dups = 0;
        for (d, in_dlq) in from_work
            .iter()
            .map(|d| (d, false))
            .chain(from_dlq.iter().map(|d| (d, true)))
        {
            assert!(
                d.id / ROUND_IDS >= 1
                    && d.id / ROUND_IDS <= round
                    && (d.id / ROUND_IDS < round || d.id < next_id),
                "round {round}: id {} found in {} was never published",
                d.id,
                if in_dlq { "dlq" } else { "work" }
            );
            let expected_death = in_dlq.then(|| (work.clone(), "rejected".to_owned()));
            if d.death != expected_death && bad_headers.len() < 20 {
                bad_headers.push(format!(
                    "round {round}: id {} in {}: first x-death {:?}, expected {:?}",
                    d.id,
                    if in_dlq { "dlq" } else { "work" },
                    d.death,
                    expected_death
                ));
            }
            let place = found.entry(d.id).or_default();
            if in_dlq {
                place.1 = true;
            } else {
                place.0 = true;
            }
            if !seen.insert(d.id) {
                round_dups += 1;
                continue;
            }
            assert!(
                d.id / ROUND_IDS == round,
                "round {round}: id {} of an earlier round shows up for the first time (in {})",
                d.id,
                if in_dlq { "dlq" } else { "work" }
            );
            if !confirmed_set.contains(&d.id) {
                unconfirmed_kept += 1;
            }
        }
        let round_both = found.values().filter(|(w, q)| *w && *q).count() as u64;
        duplicates += round_dups;
        in_both_total += round_both;
        let mut lost: Vec<u64> = confirmed
            .iter()
            .copied()
            .filter(|id| !seen.contains(id))
            .collect();
        lost.sort_unstable();
        if !lost.is_empty() {
            let rejected_set: HashSet<u64> = rejected.iter().copied().collect();
            let lost_rejected = lost.iter().filter(|id| rejected_set.contains(id)).count();
            panic!(
                "round {round}: {} confirmed message(s) LOST (in neither {work} nor {dlq}) \
                 after SIGKILL {kill_after:?} into the round; {lost_rejected} of them had been \
                 nacked (requeue=false) by the consumer; first ids {:?}, last id {:?} \
                 (published {}, confirmed {}, rejected {}, found in work {}, in dlq {}); \
                 broker log after the restart:\n{}",
                lost.len(),
                &lost[..lost.len().min(20)],
                lost.last(),
                next_id - first_id,
                confirmed.len(),
                rejected.len(),
                from_work.len(),
                from_dlq.len(),
                broker.log()
            );
        }
        eprintln!(
            "crash-dlx: round {round:2}: killed after {:3} ms, published {:6}, confirmed {:6}, \
             nacked {nacked}, rejected {:6}; found in work {:6}, in dlq {:6} ({round_dups} \
             duplicates, {round_both} in both)",
            kill_after.as_millis(),
            next_id - first_id,
            confirmed.len(),
            rejected.len(),
            from_work.len(),
            from_dlq.len()
        );
    }
    eprintln!(
        "crash-dlx: {round} rounds in {:.1?}: published {published}, confirmed \
         {confirmed_total}, publisher nacks {nacked_total}, rejected by the consumer \
         {rejected_total}; found after restarts: in work {in_work_total}, dead-lettered in dlq \
         {in_dlq_total}; lost 0; duplicates {duplicates} ({in_both_total} ids in both queues); \
         unconfirmed but recovered {unconfirmed_kept}",
        t0.elapsed()
    );
    assert_eq!(
        corrupt_live, 0,
        "the consumer on work got corrupt bodies before the kills"
    );
    assert!(
        bad_headers.is_empty(),
        "messages with a wrong x-death after restarts:\n{}",
        bad_headers.join("\n")
    );
    assert!(
        confirmed_total >= 1000,
        "only {confirmed_total} messages were confirmed in {round} rounds: the test proves little"
    );
    assert!(
        in_dlq_total >= 100,
        "only {in_dlq_total} dead-lettered messages were found in {round} rounds: the test \
         proves little"
    );
    broker.shutdown().await;
}

/// Delivered-but-unacked persistent messages come back `redelivered=true` after a SIGKILL (the
/// delivered marks reached the log: the kill comes 1 s after the deliveries, well past the
/// store's lazy sync interval), acked ones stay gone, never-delivered ones are not flagged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacked_messages_come_back_redelivered_after_sigkill() {
    let _serial = serial().await;
    let mut broker = ChildBroker::start("crash-unacked").await;
    let url = broker.broker().url;
    let q = tests::unique("crash-unacked-q");
    let conn = tests::connect(&url).await;
    let ch = confirm_channel(&conn).await;
    durable_queue(&ch, &q, FieldTable::default()).await;
    publish_all(
        &ch,
        "",
        &q,
        (0..10).map(|i| format!("m{i}").into_bytes()),
        persistent(),
    )
    .await;
    ch.basic_qos(6, BasicQosOptions::default())
        .await
        .expect("basic.qos");
    let mut consumer = ch
        .basic_consume(
            q.as_str().into(),
            "c".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("basic.consume");
    let mut delivered = Vec::new();
    for _ in 0..6 {
        delivered.push(next_delivery(&mut consumer).await);
    }
    ch.basic_cancel("c".into(), BasicCancelOptions::default())
        .await
        .expect("basic.cancel");
    for i in [0, 2] {
        ch.basic_ack(delivered[i].delivery_tag, BasicAckOptions::default())
            .await
            .expect("basic.ack");
    }
    assert_eq!(message_count(&ch, &q).await, 4);
    tokio::time::sleep(Duration::from_secs(1)).await;
    broker.kill().await;
    drop(consumer);
    drop(conn);

    broker.start_again().await;
    let conn = tests::connect(&url).await;
    let ch = conn.create_channel().await.expect("channel");
    let got = get_all(&ch, &q).await;
    assert_eq!(
        bodies(&got),
        ["m1", "m3", "m4", "m5", "m6", "m7", "m8", "m9"],
        "acked m0 and m2 stay gone, the rest comes back in order"
    );
    let flags: Vec<bool> = got.iter().map(|d| d.redelivered).collect();
    assert_eq!(
        flags,
        [true, true, true, true, false, false, false, false],
        "delivered-but-unacked m1, m3, m4, m5 are flagged redelivered, m6..m9 are not"
    );
    conn.close(200, "done".into()).await.expect("close");
    broker.shutdown().await;
}

/// Durable definitions are on disk once their `-ok` is sent: declared (with arguments),
/// bound, unbound and deleted, then SIGKILL at once; after the restart everything is as it was
/// and routes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_definitions_survive_sigkill_right_after_ok() {
    let _serial = serial().await;
    let mut broker = ChildBroker::start("crash-definitions").await;
    let url = broker.broker().url;
    let x = tests::unique("crash-def-x");
    let ae = tests::unique("crash-def-ae");
    let src = tests::unique("crash-def-src");
    let q = tests::unique("crash-def-q");
    let qae = tests::unique("crash-def-qae");
    let gone = tests::unique("crash-def-gone");
    let conn = tests::connect(&url).await;
    let ch = confirm_channel(&conn).await;
    exchange(&ch, &ae, ExchangeKind::Fanout, true, FieldTable::default()).await;
    exchange(
        &ch,
        &x,
        ExchangeKind::Topic,
        true,
        field_table(&[("alternate-exchange", long_str(&ae))]),
    )
    .await;
    exchange(&ch, &src, ExchangeKind::Fanout, true, FieldTable::default()).await;
    durable_queue(
        &ch,
        &q,
        field_table(&[("x-max-length", AMQPValue::LongInt(5))]),
    )
    .await;
    durable_queue(&ch, &qae, FieldTable::default()).await;
    durable_queue(&ch, &gone, FieldTable::default()).await;
    bind(&ch, &qae, &ae, "", FieldTable::default()).await;
    bind(&ch, &q, &x, "a.#", FieldTable::default()).await;
    bind(&ch, &q, &x, "b.#", FieldTable::default()).await;
    bind_exchange(&ch, &x, &src, "").await;
    ch.queue_unbind(
        q.as_str().into(),
        x.as_str().into(),
        "b.#".into(),
        FieldTable::default(),
    )
    .await
    .expect("queue.unbind");
    ch.queue_delete(gone.as_str().into(), Default::default())
        .await
        .expect("queue.delete");
    broker.kill().await;
    drop(ch);
    drop(conn);

    broker.start_again().await;
    let conn = tests::connect(&url).await;
    let ch = confirm_channel(&conn).await;
    for name in [&x, &ae, &src] {
        assert!(
            exchange_exists(&conn, name).await,
            "exchange {name} survives"
        );
    }
    assert!(queue_exists(&conn, &q).await, "queue {q} survives");
    assert!(queue_exists(&conn, &qae).await, "queue {qae} survives");
    assert!(
        !queue_exists(&conn, &gone).await,
        "the deleted queue stays deleted"
    );
    publish_confirmed(&ch, &src, "a.1", b"via-src", persistent()).await;
    publish_confirmed(&ch, &x, "b.1", b"unbound", persistent()).await;
    for i in 0..6 {
        publish_confirmed(&ch, &x, "a.2", format!("a{i}").as_bytes(), persistent()).await;
    }
    assert_eq!(
        bodies(&get_all(&ch, &q).await),
        ["a1", "a2", "a3", "a4", "a5"],
        "bindings route and x-max-length 5 applies"
    );
    assert_eq!(bodies(&get_all(&ch, &qae).await), ["unbound"]);
    conn.close(200, "done".into()).await.expect("close");
    broker.shutdown().await;
}

/// Persistent messages of a transaction are on disk once `tx.commit-ok` is sent: commits of
/// growing batches to a durable queue, SIGKILL right after the last commit-ok; after the
/// restart every committed message is there, in order, and nothing of an uncommitted tail.
/// Three rounds, a fresh queue each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_tx_messages_survive_sigkill_right_after_commit_ok() {
    let _serial = serial().await;
    let mut broker = ChildBroker::start("crash-tx").await;
    let url = broker.broker().url;
    for round in 0..3 {
        let q = tests::unique("crash-tx-q");
        let conn = tests::connect(&url).await;
        let ch = conn.create_channel().await.expect("channel");
        durable_queue(&ch, &q, FieldTable::default()).await;
        ch.tx_select().await.expect("tx.select");
        let mut committed = Vec::new();
        for batch in 0..20 {
            for j in 0..=batch {
                let body = format!("r{round}-b{batch}-{j}");
                ch.basic_publish(
                    "".into(),
                    q.as_str().into(),
                    BasicPublishOptions::default(),
                    body.as_bytes(),
                    persistent(),
                )
                .await
                .expect("basic.publish");
                committed.push(body);
            }
            ch.tx_commit().await.expect("tx.commit");
        }
        for j in 0..5 {
            ch.basic_publish(
                "".into(),
                q.as_str().into(),
                BasicPublishOptions::default(),
                format!("r{round}-uncommitted-{j}").as_bytes(),
                persistent(),
            )
            .await
            .expect("basic.publish");
        }
        broker.kill().await;
        drop(ch);
        drop(conn);

        broker.start_again().await;
        let conn = tests::connect(&url).await;
        let ch = conn.create_channel().await.expect("channel");
        assert_eq!(
            bodies(&get_all(&ch, &q).await),
            committed,
            "round {round}: every committed message survives, nothing uncommitted appears"
        );
        conn.close(200, "done".into()).await.expect("close");
    }
    broker.shutdown().await;
}
