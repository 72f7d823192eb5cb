//! Model-based property test: random appends, acks, deliveries, purges, syncs and reopens
//! against a map of what should be live.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::{body_for, message, segment_files, sync};
use crate::store::{Location, Store, StoreOptions};

#[derive(Clone, Debug)]
enum ModelOp {
    Append(usize),
    Ack(usize),
    Deliver(usize),
    AckAll,
    Sync,
    /// Drop the log and open it again: `true` also restarts the store.
    Reopen(bool),
}

fn model_op() -> impl Strategy<Value = ModelOp> {
    prop_oneof![
        6 => (0usize..300).prop_map(ModelOp::Append),
        4 => any::<usize>().prop_map(ModelOp::Ack),
        3 => any::<usize>().prop_map(ModelOp::Deliver),
        1 => Just(ModelOp::AckAll),
        1 => Just(ModelOp::Sync),
        2 => any::<bool>().prop_map(ModelOp::Reopen),
    ]
}

/// A live message as the queue would index it.
struct Entry {
    location: Location,
    body_len: usize,
    delivered: bool,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn recovery_matches_a_model(ops in prop::collection::vec(model_op(), 1..120)) {
        let dir = tempfile::tempdir().expect("tempdir");
        let options = StoreOptions { segment_size: 700, ..StoreOptions::default() };
        let mut store = Store::open(dir.path(), options.clone()).expect("open");
        let (mut log, _) = store.open_queue("/", "q").expect("open queue");
        let mut live: BTreeMap<u64, Entry> = BTreeMap::new();
        let mut next_seq = 0u64;
        let pick = |live: &BTreeMap<u64, Entry>, i: usize| live.keys().nth(i % live.len()).copied();
        for op in ops {
            match op {
                ModelOp::Append(len) => {
                    let location = log.append(next_seq, message(&body_for(next_seq, len))).expect("append");
                    live.insert(next_seq, Entry { location, body_len: len, delivered: false });
                    next_seq += 1;
                }
                ModelOp::Ack(i) if !live.is_empty() => {
                    let seq = pick(&live, i).expect("non-empty");
                    let entry = live.remove(&seq).expect("picked");
                    log.ack(seq, entry.location).expect("ack");
                }
                ModelOp::Deliver(i) if !live.is_empty() => {
                    let seq = pick(&live, i).expect("non-empty");
                    let entry = live.get_mut(&seq).expect("picked");
                    log.delivered(seq, entry.location).expect("delivered");
                    entry.delivered = true;
                }
                ModelOp::AckAll => {
                    for (seq, entry) in std::mem::take(&mut live) {
                        log.ack(seq, entry.location).expect("ack");
                    }
                }
                ModelOp::Sync => sync(&store).expect("sync"),
                ModelOp::Reopen(restart) => {
                    drop(log);
                    if restart {
                        drop(store);
                        store = Store::open(dir.path(), options.clone()).expect("reopen");
                    }
                    let (reopened, recovered) = store.open_queue("/", "q").expect("open queue");
                    log = reopened;
                    let got: Vec<(u64, bool)> = recovered.iter().map(|r| (r.seq, r.delivered)).collect();
                    let want: Vec<(u64, bool)> = live.iter().map(|(seq, e)| (*seq, e.delivered)).collect();
                    prop_assert_eq!(got, want);
                    for r in &recovered {
                        prop_assert_eq!(Some(r.location), live.get(&r.seq).map(|e| e.location));
                    }
                    prop_assert!(log.next_seq() <= next_seq);
                    prop_assert_eq!(store.stats().corrupt_records + store.stats().truncated_tails, 0);
                }
                ModelOp::Ack(_) | ModelOp::Deliver(_) => {}
            }
            for (seq, entry) in live.iter().take(3) {
                let stored = log.read(entry.location).expect("read");
                prop_assert_eq!(&stored.body[..], &body_for(*seq, entry.body_len)[..]);
            }
            if live.is_empty() {
                // What the owner does once the queue has been idle.
                // (Written since the first emptying: one more idle period.)
                if log.wants_idle_check() && log.delete_idle_segment() {
                    prop_assert!(!log.delete_idle_segment());
                }
                prop_assert_eq!(log.segment_count(), 0);
                prop_assert!(segment_files(dir.path()).is_empty());
            }
        }
    }
}
