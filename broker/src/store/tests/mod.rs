//! Store tests across its parts: round trips, segment deletion, poisoning, locking, names,
//! group commit; torn tails and bit flips in `corruption.rs`, the model-based property test
//! in `model.rs`.

mod corruption;
mod model;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;

use super::*;

#[test]
fn handles_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Store>();
    send_sync::<QueueLog>();
    send_sync::<LogReader>();
}

fn small_segments() -> StoreOptions {
    StoreOptions {
        segment_size: 512,
        ..StoreOptions::default()
    }
}

fn message(body: &[u8]) -> MessageRef<'_> {
    MessageRef {
        priority: 0,
        expires_unix_ms: 0,
        exchange: "amq.direct",
        routing_key: "rk",
        raw_properties: &[0x10, 0x00, 0x02],
        body,
    }
}

fn body_for(seq: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| (seq as usize * 31 + i) as u8).collect()
}

/// Requests a sync and waits for its callback.
fn sync(store: &Store) -> Result<(), StoreError> {
    let (tx, rx) = mpsc::channel();
    store.request_sync(Box::new(move |result| {
        let _ = tx.send(result);
    }));
    rx.recv().expect("the syncer runs every callback")
}

fn queue_dir(data: &Path) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(data.join("queues"))
        .expect("queues dir")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs.remove(0)
}

fn segment_files(data: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in std::fs::read_dir(data.join("queues")).expect("queues dir") {
        for file in std::fs::read_dir(dir.expect("entry").path()).expect("queue dir") {
            let path = file.expect("entry").path();
            if path.extension().is_some_and(|e| e == "seg") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn disk_usage(data: &Path) -> u64 {
    segment_files(data)
        .iter()
        .map(|p| std::fs::metadata(p).expect("metadata").len())
        .sum()
}

#[test]
fn append_read_and_reopen_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut locations = Vec::new();
    {
        let store = Store::open(dir.path(), StoreOptions::default()).expect("open");
        let (mut log, recovered) = store.open_queue("/", "orders").expect("open queue");
        assert!(recovered.is_empty());
        assert_eq!(log.next_seq(), 0);
        for seq in 1..=20u64 {
            let body = body_for(seq, seq as usize * 10);
            let location = log.append(seq, message(&body)).expect("append");
            // Read back while still in the write buffer.
            assert_eq!(&log.read(location).expect("read").body[..], &body[..]);
            locations.push(location);
        }
        sync(&store).expect("sync");
        let stored = log.read(locations[4]).expect("read after sync");
        assert_eq!(stored.exchange, "amq.direct");
        assert_eq!(stored.routing_key, "rk");
        assert_eq!(&stored.raw_properties[..], &[0x10, 0x00, 0x02]);
        assert_eq!(&stored.body[..], &body_for(5, 50)[..]);
        let reader = log.reader();
        assert_eq!(
            reader.read(locations[0]).expect("reader").body,
            body_for(1, 10)
        );
    }
    let store = Store::open(dir.path(), StoreOptions::default()).expect("reopen");
    let (log, recovered) = store.open_queue("/", "orders").expect("open queue");
    assert_eq!(recovered.len(), 20);
    for (i, r) in recovered.iter().enumerate() {
        assert_eq!(r.seq, i as u64 + 1);
        assert_eq!(r.location, locations[i]);
        assert!(!r.delivered);
        assert_eq!(
            log.read(r.location).expect("read").body,
            body_for(r.seq, r.seq as usize * 10)
        );
    }
    assert_eq!(log.next_seq(), 21);
}

#[test]
fn acked_messages_stay_gone_and_delivered_come_back_flagged() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = Store::open(dir.path(), StoreOptions::default()).expect("open");
        let (mut log, _) = store.open_queue("/", "q").expect("open queue");
        let locations: Vec<Location> = (0..6u64)
            .map(|seq| log.append(seq, message(b"x")).expect("append"))
            .collect();
        log.delivered(1, locations[1]).expect("delivered");
        log.delivered(2, locations[2]).expect("delivered");
        log.ack(2, locations[2]).expect("ack");
        log.ack(4, locations[4]).expect("ack");
        // No sync requested: close must flush the marks.
        store.close().expect("close");
    }
    let store = Store::open(dir.path(), StoreOptions::default()).expect("reopen");
    let (log, recovered) = store.open_queue("/", "q").expect("open queue");
    let seen: Vec<(u64, bool)> = recovered.iter().map(|r| (r.seq, r.delivered)).collect();
    assert_eq!(seen, vec![(0, false), (1, true), (3, false), (5, false)]);
    assert_eq!(log.next_seq(), 6);
}

#[test]
fn reopening_a_dropped_log_in_the_same_store_sees_its_buffered_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), StoreOptions::default()).expect("open");
    let (mut log, _) = store.open_queue("/", "q").expect("open queue");
    let first = log.append(1, message(b"one")).expect("append");
    log.delivered(1, first).expect("delivered");
    drop(log);
    let (mut log, recovered) = store.open_queue("/", "q").expect("reopen queue");
    assert_eq!(recovered.len(), 1);
    assert!(recovered[0].delivered);
    log.append(2, message(b"two")).expect("append");
    drop(log);
    drop(store);
    let store = Store::open(dir.path(), StoreOptions::default()).expect("reopen");
    let (log, recovered) = store.open_queue("/", "q").expect("open queue");
    let bodies: Vec<_> = recovered
        .iter()
        .map(|r| log.read(r.location).expect("read").body)
        .collect();
    assert_eq!(bodies, vec![&b"one"[..], &b"two"[..]]);
}

#[test]
fn next_seq_covers_acked_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = Store::open(dir.path(), StoreOptions::default()).expect("open");
        let (mut log, _) = store.open_queue("/", "q").expect("open queue");
        let a = log.append(7, message(b"a")).expect("append");
        log.append(8, message(b"b")).expect("append");
        log.ack(7, a).expect("ack");
    }
    let store = Store::open(dir.path(), StoreOptions::default()).expect("reopen");
    let (log, recovered) = store.open_queue("/", "q").expect("open queue");
    assert_eq!(recovered.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![8]);
    assert_eq!(log.next_seq(), 9);
}

#[test]
fn disk_returns_to_zero_when_everything_is_acked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), small_segments()).expect("open");
    let (mut log, _) = store.open_queue("/", "q").expect("open queue");
    let mut locations = Vec::new();
    for seq in 0..200u64 {
        locations.push((
            seq,
            log.append(seq, message(&body_for(seq, 40)))
                .expect("append"),
        ));
    }
    sync(&store).expect("sync");
    assert!(log.segment_count() > 10, "{} segments", log.segment_count());
    assert!(disk_usage(dir.path()) > 10_000);
    // Ack out of order: every other message first, then the rest backwards.
    let evens = locations.iter().filter(|(seq, _)| seq % 2 == 0);
    let odds: Vec<&(u64, Location)> = locations.iter().filter(|(seq, _)| seq % 2 == 1).collect();
    for &(seq, location) in evens.chain(odds.into_iter().rev()) {
        log.ack(seq, location).expect("ack");
    }
    // The emptied current segment stays until the owner's idle check.
    assert_eq!(log.segment_count(), 1);
    assert!(log.wants_idle_check());
    assert!(!log.delete_idle_segment());
    assert_eq!(log.segment_count(), 0);
    assert_eq!(segment_files(dir.path()), Vec::<PathBuf>::new());
    // And the log keeps working.
    let location = log.append(1000, message(b"again")).expect("append");
    assert_eq!(&log.read(location).expect("read").body[..], b"again");
}

#[test]
fn a_quiet_queues_current_segment_is_deleted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), StoreOptions::default()).expect("open");
    let (mut log, _) = store.open_queue("/", "q").expect("open queue");
    let location = log.append(1, message(b"only one")).expect("append");
    sync(&store).expect("sync");
    assert_eq!(segment_files(dir.path()).len(), 1);
    log.delivered(1, location).expect("delivered");
    log.ack(1, location).expect("ack");
    // A busy queue keeps its emptied current segment for the next messages...
    assert_eq!(segment_files(dir.path()).len(), 1);
    assert!(log.wants_idle_check());
    assert!(!log.wants_idle_check(), "asked once per emptying");
    // ...and if it was written since the emptying, the check waits for another idle period.
    let again = log.append(2, message(b"another")).expect("append");
    log.ack(2, again).expect("ack");
    assert!(
        log.delete_idle_segment(),
        "emptied again since: check later"
    );
    assert_eq!(segment_files(dir.path()).len(), 1);
    // Idle since the last check: deleted.
    assert!(!log.delete_idle_segment());
    assert_eq!(segment_files(dir.path()), Vec::<PathBuf>::new());
    drop(log);
    let (_, recovered) = store.open_queue("/", "q").expect("reopen queue");
    assert!(recovered.is_empty());
}

#[test]
fn a_segment_holding_acks_outlives_the_segment_they_point_to() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = Store::open(dir.path(), small_segments()).expect("open");
        let (mut log, _) = store.open_queue("/", "q").expect("open queue");
        let old_a = log.append(0, message(&[1; 150])).expect("append");
        let old_b = log.append(1, message(&[2; 150])).expect("append");
        // Roll over: the new segment holds the ack for seq 0 (in segment 0).
        let new = log.append(2, message(&[3; 300])).expect("append");
        assert_ne!(old_a.segment, new.segment);
        log.ack(0, old_a).expect("ack");
        // Everything in the new segment is acked, but it holds the ack of seq 0 while seq 1
        // keeps segment 0 alive: deleting it would resurrect seq 0.
        log.ack(2, new).expect("ack");
        assert!(log.segments().contains_key(&new.segment));
        let _ = old_b;
    }
    let store = Store::open(dir.path(), small_segments()).expect("reopen");
    let (mut log, recovered) = store.open_queue("/", "q").expect("open queue");
    assert_eq!(recovered.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![1]);
    log.ack(1, recovered[0].location).expect("ack");
    if log.wants_idle_check() {
        log.delete_idle_segment();
    }
    assert_eq!(log.segment_count(), 0);
    assert_eq!(segment_files(dir.path()), Vec::<PathBuf>::new());
}

#[test]
fn large_messages_round_trip_and_get_their_own_segment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let big = body_for(3, 200_000);
    let location;
    {
        let store = Store::open(dir.path(), small_segments()).expect("open");
        let (mut log, _) = store.open_queue("/", "q").expect("open queue");
        log.append(1, message(b"small")).expect("append");
        location = log.append(2, message(&big)).expect("append big");
        assert_eq!(log.read(location).expect("read").body, big);
        log.append(3, message(b"after")).expect("append");
    }
    let store = Store::open(dir.path(), small_segments()).expect("reopen");
    let (log, recovered) = store.open_queue("/", "q").expect("open queue");
    assert_eq!(recovered.len(), 3);
    assert_eq!(recovered[1].location, location);
    assert_eq!(log.read(location).expect("read").body, big);
}

#[test]
fn a_second_store_on_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), StoreOptions::default()).expect("open");
    let err = Store::open(dir.path(), StoreOptions::default()).expect_err("locked");
    assert!(matches!(err, StoreError::Locked(_)), "{err}");
    assert!(err.to_string().contains("used by another broker"), "{err}");
    drop(store);
    Store::open(dir.path(), StoreOptions::default()).expect("open after the first closed");
}

#[test]
fn queue_names_may_be_any_string() {
    let dir = tempfile::tempdir().expect("tempdir");
    let long = "q".repeat(255);
    let names = [
        ("/", "orders"),
        ("/", "a/b"),
        ("a/b", "orders"),
        ("/", ".."),
        ("\0", "nul\0inside"),
        ("/", ""),
        (long.as_str(), long.as_str()),
        ("vhost é", "cola ñ 🚀"),
    ];
    {
        let store = Store::open(dir.path(), StoreOptions::default()).expect("open");
        for (i, (vhost, queue)) in names.iter().enumerate() {
            let (mut log, _) = store.open_queue(vhost, queue).expect("open queue");
            log.append(i as u64, message(queue.as_bytes()))
                .expect("append");
        }
    }
    let store = Store::open(dir.path(), StoreOptions::default()).expect("reopen");
    let mut found = store.queue_logs().expect("list");
    found.sort();
    let mut expected: Vec<(String, String)> = names
        .iter()
        .map(|(v, q)| ((*v).to_owned(), (*q).to_owned()))
        .collect();
    expected.sort();
    assert_eq!(found, expected);
    for (i, (vhost, queue)) in names.iter().enumerate() {
        let (log, recovered) = store.open_queue(vhost, queue).expect("open queue");
        assert_eq!(recovered.len(), 1);
        assert_eq!(recovered[0].seq, i as u64);
        assert_eq!(
            &log.read(recovered[0].location).expect("read").body[..],
            queue.as_bytes()
        );
    }
}

#[test]
fn a_log_has_one_owner_and_can_be_deleted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), StoreOptions::default()).expect("open");
    let (mut log, _) = store.open_queue("/", "q").expect("open queue");
    log.append(1, message(b"x")).expect("append");
    assert!(matches!(
        store.open_queue("/", "q"),
        Err(StoreError::AlreadyOpen { .. })
    ));
    assert!(matches!(
        store.delete_queue("/", "q"),
        Err(StoreError::AlreadyOpen { .. })
    ));
    log.delete().expect("delete");
    assert_eq!(store.queue_logs().expect("list"), vec![]);
    assert_eq!(
        std::fs::read_dir(dir.path().join("queues"))
            .expect("dir")
            .count(),
        0
    );

    let (mut log, recovered) = store.open_queue("/", "q").expect("open again");
    assert!(recovered.is_empty());
    log.append(1, message(b"y")).expect("append");
    drop(log);
    store.delete_queue("/", "q").expect("delete unopened");
    assert_eq!(store.queue_logs().expect("list"), vec![]);
    store
        .delete_queue("/", "never existed")
        .expect("nothing to delete");
}

#[test]
fn an_fsync_failure_poisons_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = Store::open(dir.path(), StoreOptions::default()).expect("open");
        store.open_queue("/", "q").expect("create queue");
    }
    let options = StoreOptions {
        // Batch 1 fsyncs the new segment and the directory; batch 2 fails.
        fail_fsync_after: Some(3),
        ..StoreOptions::default()
    };
    {
        let store = Store::open(dir.path(), options).expect("open");
        let (mut log, _) = store.open_queue("/", "q").expect("open queue");
        log.append(1, message(b"confirmed")).expect("append");
        sync(&store).expect("first sync works");
        log.append(2, message(b"never confirmed")).expect("append");
        let err = sync(&store).expect_err("second sync fails");
        assert!(matches!(err, StoreError::Poisoned(_)), "{err}");
        assert!(err.to_string().contains("injected fsync failure"), "{err}");
        assert!(store.is_poisoned());
        assert!(matches!(
            log.append(3, message(b"no")),
            Err(StoreError::Poisoned(_))
        ));
        assert!(matches!(
            log.ack(1, Location::new(0, 16).expect("non-zero offset")),
            Err(StoreError::Poisoned(_))
        ));
        assert!(matches!(sync(&store), Err(StoreError::Poisoned(_))));
        assert!(store.close().is_err());
    }
    let store = Store::open(dir.path(), StoreOptions::default()).expect("reopen");
    let (_, recovered) = store.open_queue("/", "q").expect("open queue");
    assert_eq!(recovered.first().map(|r| r.seq), Some(1));
}

#[test]
fn a_write_failure_poisons_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = Store::open(dir.path(), StoreOptions::default()).expect("open");
        store.open_queue("/", "q").expect("create queue");
    }
    let options = StoreOptions {
        fail_write_after: Some(1),
        ..StoreOptions::default()
    };
    let store = Store::open(dir.path(), options.clone()).expect("open");
    let (mut log, _) = store.open_queue("/", "q").expect("open queue");
    log.append(1, message(b"buffered"))
        .expect("append is buffered");
    assert!(matches!(sync(&store), Err(StoreError::Poisoned(_))));
    assert!(matches!(
        log.append(2, message(b"x")),
        Err(StoreError::Poisoned(_))
    ));
    drop(log);
    drop(store);

    // A large message is written by append itself, which then reports the failure.
    let store = Store::open(dir.path(), options).expect("open");
    let (mut log, _) = store.open_queue("/", "q").expect("open queue");
    assert!(matches!(
        log.append(3, message(&[0; 100_000])),
        Err(StoreError::Io { .. })
    ));
    assert!(store.is_poisoned());
}

#[test]
fn concurrent_publishers_share_fsyncs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), StoreOptions::default()).expect("open");
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                let (mut log, _) = store.open_queue("/", &format!("q{t}")).expect("open queue");
                for seq in 0..100u64 {
                    log.append(seq, message(&[t as u8; 100])).expect("append");
                    sync(&store).expect("sync");
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("publisher");
    }
    let stats = store.stats();
    assert_eq!(stats.sync_requests, 800);
    assert!(stats.sync_batches <= 800);
    eprintln!("{stats:?}");
}

/// Recovery speed: `cargo test --release -p broker --lib store::tests::recover_1m -- --ignored
/// --nocapture`.
#[test]
#[ignore = "benchmark: writes 1 GiB"]
fn recover_1m() {
    const N: u64 = 1_000_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let body = vec![0xabu8; 1024];
    let started = std::time::Instant::now();
    {
        let store = Store::open(dir.path(), StoreOptions::default()).expect("open");
        let (mut log, _) = store.open_queue("/", "bench").expect("open queue");
        for seq in 0..N {
            log.append(seq, message(&body)).expect("append");
        }
        sync(&store).expect("sync");
        store.close().expect("close");
    }
    let written = started.elapsed();
    eprintln!(
        "appended {N} x 1 KiB in {written:?} ({:.0} msg/s), {} MiB on disk",
        N as f64 / written.as_secs_f64(),
        disk_usage(dir.path()) >> 20
    );
    for round in 0..4 {
        // The last round starts cold: the segments are dropped from the page cache.
        let cold = round == 3;
        if cold {
            for file in segment_files(dir.path()) {
                let evicted = std::process::Command::new("dd")
                    .arg(format!("if={}", file.display()))
                    .args(["iflag=nocache", "count=0", "status=none"])
                    .status();
                assert!(evicted.is_ok_and(|s| s.success()), "dd iflag=nocache");
            }
        }
        let started = std::time::Instant::now();
        let store = Store::open(dir.path(), StoreOptions::default()).expect("open");
        let (log, recovered) = store.open_queue("/", "bench").expect("open queue");
        let first = log.read(recovered[0].location).expect("read");
        let elapsed = started.elapsed();
        assert_eq!(recovered.len() as u64, N);
        assert_eq!(first.body.len(), 1024);
        eprintln!(
            "recovered {} messages and read the first in {elapsed:?} ({})",
            recovered.len(),
            if cold {
                "cold page cache"
            } else {
                "warm page cache"
            }
        );
    }
}

#[test]
fn reads_in_any_order_see_every_record_across_chunks_segments_and_the_write_buffer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = StoreOptions {
        segment_size: 1 << 20,
        ..StoreOptions::default()
    };
    let store = Store::open(dir.path(), options).expect("open");
    let (mut log, _) = store.open_queue("/", "q").expect("open queue");
    // Sizes around the readahead chunk and the write buffer, so records straddle chunk ends,
    // fill several segments, and the last ones are still only in the write buffer.
    let sizes = [0, 1, 700, 4096, 60_000, 130_000, 300_000];
    let mut written = Vec::new();
    for seq in 0..400u64 {
        let len = sizes[seq as usize % sizes.len()];
        let location = log
            .append(seq, message(&body_for(seq, len)))
            .expect("append");
        written.push((seq, len, location));
        if seq == 300 {
            sync(&store).expect("sync");
        }
    }
    assert!(log.segment_count() > 3, "{} segments", log.segment_count());
    let check = |&(seq, len, location): &(u64, usize, Location)| {
        let stored = log.read(location).expect("read");
        assert_eq!(stored.body.len(), len, "seq {seq}");
        assert_eq!(&stored.body[..], &body_for(seq, len)[..], "seq {seq}");
    };
    written.iter().for_each(check);
    written.iter().rev().for_each(check);
    written.iter().step_by(7).for_each(check);
}

#[test]
fn a_queue_directory_deleted_before_its_fsync_does_not_poison_the_store() {
    // The syncer takes a new queue directory to fsync, then the queue is deleted before the
    // fsync runs: nothing is left to make durable, and the store must go on.
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), StoreOptions::default()).expect("open");
    store
        .core()
        .sync_dir(&dir.path().join("queues").join("deleted meanwhile"))
        .expect("a vanished directory is not an fsync failure");
    assert!(!store.is_poisoned());
    let (mut log, _) = store.open_queue("/", "q").expect("open queue");
    log.append(1, message(b"still stored")).expect("append");
    sync(&store).expect("sync");
}
