//! The ready messages of a queue: one FIFO per priority level (one level for ordinary queues),
//! each ordered by sequence number so requeued messages return to their original place.
//!
//! Memory: a queue may hold millions of ready messages, most of them paged out (only their
//! log location in memory), so each is kept as a 32-byte [`Slot`]. Deadlines (TTL), which most
//! messages lack, are kept beside the slots of their level, ordered by seq the same way; an
//! [`Entry`] (a slot with its deadline) is built when a message leaves.

use std::collections::VecDeque;
use std::sync::Arc;

use super::Entry;
use crate::message::Message;
use crate::store::Location;

/// A ready message: an [`Entry`] without its deadline.
#[derive(Debug)]
struct Slot {
    seq: u64,
    message: Option<Arc<Message>>,
    location: Option<Location>,
    size: u32,
    deliveries: u16,
    priority: u8,
    redelivered: bool,
}

// The per-message cost of a deep queue; see the module docs.
const _: () = assert!(std::mem::size_of::<Slot>() == 32);

/// One priority level.
#[derive(Debug, Default)]
struct Level {
    slots: VecDeque<Slot>,
    /// `(seq, deadline)` of the slots that have a deadline, in seq order.
    deadlines: VecDeque<(u64, u64)>,
}

impl Level {
    /// Deadline of the first slot (0 = none).
    fn front_deadline(&self) -> u64 {
        match (self.slots.front(), self.deadlines.front()) {
            (Some(slot), Some(&(seq, at))) if seq == slot.seq => at,
            _ => 0,
        }
    }

    fn pop_front(&mut self) -> Option<Entry> {
        let expires_at = self.front_deadline();
        if expires_at != 0 {
            self.deadlines.pop_front();
        }
        let slot = self.slots.pop_front()?;
        Some(entry(slot, expires_at))
    }
}

/// Ready messages, highest priority first, FIFO within a priority.
#[derive(Debug)]
pub struct Ready {
    levels: Vec<Level>,
    len: usize,
    bytes: u64,
}

impl Ready {
    /// A list with priorities `0..=max_priority` (0 for an ordinary queue).
    pub fn new(max_priority: u8) -> Self {
        Self {
            levels: (0..=max_priority).map(|_| Level::default()).collect(),
            len: 0,
            bytes: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Body bytes of the ready messages.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    fn level(&self, priority: u8) -> usize {
        usize::from(priority).min(self.levels.len() - 1)
    }

    /// Appends a newly published message (its seq is the highest so far).
    pub fn push_back(&mut self, entry: Entry) {
        self.account_in(&entry);
        let l = self.level(entry.priority);
        let level = &mut self.levels[l];
        if entry.expires_at != 0 {
            level.deadlines.push_back((entry.seq, entry.expires_at));
        }
        level.slots.push_back(slot(entry));
    }

    /// Puts a message back at its place by sequence number.
    pub fn insert(&mut self, entry: Entry) {
        self.account_in(&entry);
        let l = self.level(entry.priority);
        let level = &mut self.levels[l];
        if entry.expires_at != 0 {
            let at = level.deadlines.partition_point(|&(seq, _)| seq < entry.seq);
            level.deadlines.insert(at, (entry.seq, entry.expires_at));
        }
        let at = level.slots.partition_point(|x| x.seq < entry.seq);
        level.slots.insert(at, slot(entry));
    }

    /// Deadline of the next message to deliver (0 = none or empty).
    pub fn front_deadline(&self) -> u64 {
        self.levels
            .iter()
            .rev()
            .find(|level| !level.slots.is_empty())
            .map_or(0, Level::front_deadline)
    }

    /// Takes the next message to deliver.
    pub fn pop_front(&mut self) -> Option<Entry> {
        let e = self.levels.iter_mut().rev().find_map(Level::pop_front)?;
        self.account_out(&e);
        Some(e)
    }

    /// Takes the head of every level while its deadline is at or before `now` (per-message TTL
    /// expires only at the head, as in RabbitMQ).
    pub fn pop_expired(&mut self, now: u64, out: &mut Vec<Entry>) {
        for l in 0..self.levels.len() {
            while (1..=now).contains(&self.levels[l].front_deadline()) {
                if let Some(e) = self.levels[l].pop_front() {
                    self.account_out(&e);
                    out.push(e);
                }
            }
        }
    }

    /// Earliest expiry among the heads (0 = none).
    pub fn next_expiry(&self) -> u64 {
        self.levels
            .iter()
            .map(Level::front_deadline)
            .filter(|t| *t != 0)
            .min()
            .unwrap_or(0)
    }

    /// Removes everything.
    pub fn clear(&mut self) -> Vec<Entry> {
        self.len = 0;
        self.bytes = 0;
        let mut all = Vec::new();
        for level in &mut self.levels {
            while let Some(e) = level.pop_front() {
                all.push(e);
            }
        }
        all
    }

    /// Ready messages whose body is in memory.
    #[cfg(test)]
    pub fn in_memory(&self) -> usize {
        self.levels
            .iter()
            .flat_map(|level| &level.slots)
            .filter(|slot| slot.message.is_some())
            .count()
    }

    fn account_in(&mut self, e: &Entry) {
        self.len += 1;
        self.bytes += u64::from(e.size);
    }

    fn account_out(&mut self, e: &Entry) {
        self.len -= 1;
        self.bytes -= u64::from(e.size);
    }
}

fn slot(e: Entry) -> Slot {
    Slot {
        seq: e.seq,
        message: e.message,
        location: e.location,
        size: e.size,
        deliveries: e.deliveries,
        priority: e.priority,
        redelivered: e.redelivered,
    }
}

fn entry(s: Slot, expires_at: u64) -> Entry {
    Entry {
        seq: s.seq,
        message: s.message,
        location: s.location,
        expires_at,
        size: s.size,
        deliveries: s.deliveries,
        priority: s.priority,
        redelivered: s.redelivered,
    }
}
