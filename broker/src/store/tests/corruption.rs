//! Torn tails and bit flips: recovery keeps exactly the valid records and never returns a
//! corrupt body.

use std::collections::BTreeMap;
use std::path::Path;

use super::{body_for, message, queue_dir, segment_files};
use crate::store::{Store, StoreOptions, StoreStats, record};

/// The ops written to a single-segment log, with the offset where each record ends.
struct Written {
    ops: Vec<(Op, u64)>,
    bodies: BTreeMap<u64, Vec<u8>>,
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Append(u64),
    Ack(u64),
    Delivered(u64),
}

/// Writes a small log of messages, delivered marks and acks into one segment.
fn write_single_segment(data: &Path) -> Written {
    let store = Store::open(data, StoreOptions::default()).expect("open");
    let (mut log, _) = store.open_queue("/", "q").expect("open queue");
    let mut ops = Vec::new();
    let mut bodies = BTreeMap::new();
    let mut locations = BTreeMap::new();
    let mark_len = u64::from(record::RECORD_HEADER_LEN + record::MARK_PAYLOAD_LEN);
    let mut end = u64::from(record::SEGMENT_HEADER_LEN);
    for seq in 0..8u64 {
        let body = body_for(seq, 20 + seq as usize);
        let location = log.append(seq, message(&body)).expect("append");
        let payload = record::message_payload_len(&message(&body)).expect("framed");
        assert_eq!(
            u64::from(location.offset()),
            end,
            "records are back to back"
        );
        end += u64::from(record::RECORD_HEADER_LEN + payload);
        ops.push((Op::Append(seq), end));
        bodies.insert(seq, body);
        locations.insert(seq, location);
        if seq % 3 == 1 {
            log.delivered(seq, location).expect("delivered");
            end += mark_len;
            ops.push((Op::Delivered(seq), end));
        }
        if seq == 4 {
            log.ack(2, locations[&2]).expect("ack");
            end += mark_len;
            ops.push((Op::Ack(2), end));
        }
    }
    log.delivered(7, locations[&7]).expect("delivered");
    end += mark_len;
    ops.push((Op::Delivered(7), end));
    store.close().expect("close");
    Written { ops, bodies }
}

/// What recovery must return after `ops`: (seq, delivered) in seq order.
fn model(ops: impl Iterator<Item = Op>) -> Vec<(u64, bool)> {
    let mut live = BTreeMap::new();
    for op in ops {
        match op {
            Op::Append(seq) => {
                live.insert(seq, false);
            }
            Op::Ack(seq) => {
                live.remove(&seq);
            }
            Op::Delivered(seq) => {
                if let Some(delivered) = live.get_mut(&seq) {
                    *delivered = true;
                }
            }
        }
    }
    live.into_iter().collect()
}

/// Opens the store, checks every recovered body against the original, returns what came back.
fn recover_checked(data: &Path, written: &Written) -> (Vec<(u64, bool)>, StoreStats) {
    let store = Store::open(data, StoreOptions::default()).expect("open");
    let (log, recovered) = store.open_queue("/", "q").expect("open queue");
    for r in &recovered {
        let stored = log
            .read(r.location)
            .expect("a recovered message reads back");
        assert_eq!(stored.body, written.bodies[&r.seq], "seq {}", r.seq);
    }
    let stats = store.stats();
    (
        recovered.iter().map(|r| (r.seq, r.delivered)).collect(),
        stats,
    )
}

#[test]
fn a_torn_tail_is_truncated_at_every_offset_of_the_last_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let written = write_single_segment(dir.path());
    let segment = segment_files(dir.path()).remove(0);
    let original = std::fs::read(&segment).expect("read segment");
    let n = written.ops.len();
    assert_eq!(written.ops[n - 1].1, original.len() as u64);
    let from = written.ops[n - 4].1;
    for cut in from..=original.len() as u64 {
        std::fs::write(&segment, &original[..cut as usize]).expect("write");
        let complete = written.ops.iter().filter(|(_, end)| *end <= cut);
        let valid_end = complete.clone().map(|(_, end)| *end).max().unwrap_or(16);
        let expected = model(complete.map(|(op, _)| *op));
        let (got, stats) = recover_checked(dir.path(), &written);
        assert_eq!(got, expected, "cut at {cut}");
        assert_eq!(stats.corrupt_records, 0, "cut at {cut}");
        assert_eq!(
            stats.truncated_tails,
            u64::from(cut != valid_end),
            "cut at {cut}"
        );
        assert_eq!(
            std::fs::metadata(&segment).expect("meta").len(),
            valid_end,
            "cut at {cut}"
        );
    }
    // Appending after a truncated tail works and survives a reopen.
    std::fs::write(&segment, &original[..original.len() - 5]).expect("write");
    {
        let store = Store::open(dir.path(), StoreOptions::default()).expect("open");
        let (mut log, _) = store.open_queue("/", "q").expect("open queue");
        log.append(100, message(b"after the tear")).expect("append");
    }
    let store = Store::open(dir.path(), StoreOptions::default()).expect("open");
    let (log, recovered) = store.open_queue("/", "q").expect("open queue");
    let last = recovered.last().expect("messages");
    assert_eq!(last.seq, 100);
    assert_eq!(
        &log.read(last.location).expect("read").body[..],
        b"after the tear"
    );
    assert_eq!(store.stats().truncated_tails, 0);
}

#[test]
fn bit_flips_lose_only_the_flipped_record_and_never_return_a_corrupt_body() {
    let dir = tempfile::tempdir().expect("tempdir");
    let written = write_single_segment(dir.path());
    let segment = segment_files(dir.path()).remove(0);
    let original = std::fs::read(&segment).expect("read segment");
    let mut start = u64::from(record::SEGMENT_HEADER_LEN);
    for (k, (_, end)) in written.ops.iter().enumerate() {
        let last = k == written.ops.len() - 1;
        // Every byte of every record, one flip at a time (bit chosen by position).
        for at in start..*end {
            let mut damaged = original.clone();
            damaged[at as usize] ^= 1 << (at % 8);
            std::fs::write(&segment, &damaged).expect("write");
            let expected = model(
                written
                    .ops
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != k)
                    .map(|(_, (op, _))| *op),
            );
            let (got, stats) = recover_checked(dir.path(), &written);
            assert_eq!(got, expected, "record {k} byte {at}");
            assert_eq!(
                (stats.corrupt_records, stats.truncated_tails),
                if last { (0, 1) } else { (1, 0) },
                "record {k} byte {at}"
            );
        }
        start = *end;
    }
}

#[test]
fn a_damaged_segment_header_sets_the_segment_aside() {
    let dir = tempfile::tempdir().expect("tempdir");
    let written = write_single_segment(dir.path());
    let segment = segment_files(dir.path()).remove(0);
    let mut damaged = std::fs::read(&segment).expect("read");
    damaged[9] ^= 0xff;
    std::fs::write(&segment, &damaged).expect("write");
    let (got, stats) = recover_checked(dir.path(), &written);
    assert!(got.is_empty());
    assert_eq!(stats.corrupt_records, 1);
    assert!(queue_dir(dir.path()).join("0000000000.corrupt").exists());
}
