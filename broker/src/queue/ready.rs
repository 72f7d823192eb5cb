//! The ready messages of a queue: one FIFO per priority level (one level for ordinary queues),
//! each ordered by sequence number so requeued messages return to their original place.

use std::collections::VecDeque;

use super::Entry;

/// Ready messages, highest priority first, FIFO within a priority.
#[derive(Debug)]
pub struct Ready {
    levels: Vec<VecDeque<Entry>>,
    len: usize,
    bytes: u64,
}

impl Ready {
    /// A list with priorities `0..=max_priority` (0 for an ordinary queue).
    pub fn new(max_priority: u8) -> Self {
        Self {
            levels: (0..=max_priority).map(|_| VecDeque::new()).collect(),
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

    fn level(&self, entry: &Entry) -> usize {
        let p = entry.priority as usize;
        p.min(self.levels.len() - 1)
    }

    /// Appends a newly published message.
    pub fn push_back(&mut self, entry: Entry) {
        let l = self.level(&entry);
        self.account_in(&entry);
        self.levels[l].push_back(entry);
    }

    /// Puts a message back at its place by sequence number.
    pub fn insert(&mut self, entry: Entry) {
        let l = self.level(&entry);
        self.account_in(&entry);
        let q = &mut self.levels[l];
        let at = q.partition_point(|x| x.seq < entry.seq);
        q.insert(at, entry);
    }

    /// The next message to deliver.
    pub fn front(&self) -> Option<&Entry> {
        self.levels.iter().rev().find_map(|q| q.front())
    }

    /// Takes the next message to deliver.
    pub fn pop_front(&mut self) -> Option<Entry> {
        let e = self.levels.iter_mut().rev().find_map(|q| q.pop_front())?;
        self.account_out(&e);
        Some(e)
    }

    /// Takes the head of every level whose head satisfies `expired` (per-message TTL expires
    /// only at the head, as in RabbitMQ).
    pub fn pop_expired(&mut self, mut expired: impl FnMut(&Entry) -> bool, out: &mut Vec<Entry>) {
        for l in 0..self.levels.len() {
            while self.levels[l].front().is_some_and(&mut expired) {
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
            .filter_map(|q| q.front())
            .map(|e| e.expires_at)
            .filter(|t| *t != 0)
            .min()
            .unwrap_or(0)
    }

    /// Removes everything.
    pub fn clear(&mut self) -> Vec<Entry> {
        self.len = 0;
        self.bytes = 0;
        self.levels.iter_mut().flat_map(|q| q.drain(..)).collect()
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
