//! The store's shared core and its group-commit syncer thread.
//!
//! [`Core`] is shared by the [`Store`](super::Store), every queue log and the syncer. Every
//! write and fsync of the store goes through it, which is where faults are injected and where a
//! failure poisons the store. The syncer is a std thread: it sleeps until a sync is requested,
//! takes every request and every dirty log that arrived meanwhile, writes the logs' buffered
//! records, `fdatasync`s each written file once, then runs the callbacks. While one batch
//! syncs the next one gathers, so publishes arriving together share one fsync; an idle store
//! syncs at once. Logs that only buffered acks or delivered marks (nobody waits on them) are
//! synced at most [`StoreOptions::lazy_sync_interval`](super::StoreOptions) later.
//!
//! Must not: hold the sync-state lock while taking a log's lock (lock order is log, then sync
//! state), or run a callback while holding any lock.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use super::log::LogShared;
use super::{StoreError, StoreOptions, StoreStats, SyncCallback};

/// What the store's parts share.
pub(crate) struct Core {
    pub options: StoreOptions,
    /// Set once a write or fsync failed; never cleared.
    poisoned: AtomicBool,
    /// Why it was poisoned, repeated in every later error.
    poison_reason: Mutex<String>,
    /// Set by `close`: no more appends or syncs.
    closed: AtomicBool,
    /// Counters for fault injection.
    writes: AtomicU64,
    fsyncs_attempted: AtomicU64,
    stats: Stats,
    sync: Mutex<SyncState>,
    wake: Condvar,
}

#[derive(Default)]
struct Stats {
    message_records: AtomicU64,
    fsyncs: AtomicU64,
    batches: AtomicU64,
    requests: AtomicU64,
    corrupt_records: AtomicU64,
    truncated_tails: AtomicU64,
}

/// What the syncer has to do next, guarded by `Core::sync`.
#[derive(Default)]
struct SyncState {
    requests: Vec<SyncCallback>,
    dirty: Vec<Arc<LogShared>>,
    /// When `dirty` last went from empty to non-empty (for the lazy sync).
    dirty_since: Option<Instant>,
    shutdown: bool,
}

/// One turn of the syncer.
struct Batch {
    requests: Vec<SyncCallback>,
    dirty: Vec<Arc<LogShared>>,
    last: bool,
}

/// A segment file with its path (for error messages).
pub(crate) struct SegmentFile {
    pub file: File,
    pub path: PathBuf,
}

impl Core {
    pub fn new(options: StoreOptions) -> Self {
        Self {
            options,
            poisoned: AtomicBool::new(false),
            poison_reason: Mutex::new(String::new()),
            closed: AtomicBool::new(false),
            writes: AtomicU64::new(0),
            fsyncs_attempted: AtomicU64::new(0),
            stats: Stats::default(),
            sync: Mutex::new(SyncState::default()),
            wake: Condvar::new(),
        }
    }

    /// `Err` if the store may not take writes any more.
    pub fn check_writable(&self) -> Result<(), StoreError> {
        if self.poisoned.load(Ordering::Acquire) {
            return Err(self.poisoned_error());
        }
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        Ok(())
    }

    pub fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }

    pub fn poisoned_error(&self) -> StoreError {
        StoreError::Poisoned(self.poison_reason.lock().clone())
    }

    /// Poisons the store (first failure wins) and says so loudly.
    pub fn poison(&self, reason: String) {
        let mut current = self.poison_reason.lock();
        if !self.poisoned.load(Ordering::Acquire) {
            tracing::error!(
                "message store poisoned: {reason}; persistent messages will no longer be \
                 confirmed or stored until the broker is restarted"
            );
            *current = reason;
            self.poisoned.store(true, Ordering::Release);
        }
    }

    /// `pwrite`s all of `buf` at `offset`; a failure poisons the store.
    pub fn write_at(
        &self,
        file: &File,
        buf: &[u8],
        offset: u64,
        path: &Path,
    ) -> Result<(), StoreError> {
        self.check_not_poisoned()?;
        let n = self.writes.fetch_add(1, Ordering::Relaxed) + 1;
        let result = if self.options.fail_write_after.is_some_and(|k| n >= k) {
            Err(std::io::Error::other("injected write failure"))
        } else {
            file.write_all_at(buf, offset)
        };
        result.map_err(|source| self.fail("write", path, source))
    }

    /// `fdatasync`s a file; a failure poisons the store.
    pub fn sync_file(&self, file: &File, path: &Path) -> Result<(), StoreError> {
        self.check_not_poisoned()?;
        self.injected_fsync_fault()
            .map_or_else(|| file.sync_data(), Err)
            .map_err(|source| self.fail("fsync", path, source))?;
        self.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// `fsync`s a directory (so a created or renamed entry survives a crash).
    /// A directory that is gone (its queue was deleted after the log asked for this sync) has
    /// nothing left to make durable.
    pub fn sync_dir(&self, dir: &Path) -> Result<(), StoreError> {
        self.check_not_poisoned()?;
        let synced = match self.injected_fsync_fault() {
            Some(fault) => Err(fault),
            None => match File::open(dir) {
                Ok(d) => d.sync_all(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    tracing::debug!(dir = %dir.display(), "directory deleted before its fsync");
                    return Ok(());
                }
                Err(e) => Err(e),
            },
        };
        synced.map_err(|source| self.fail("fsync", dir, source))?;
        self.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    pub fn count_corrupt_record(&self) {
        self.stats.corrupt_records.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count_truncated_tail(&self) {
        self.stats.truncated_tails.fetch_add(1, Ordering::Relaxed);
    }

    pub fn stats(&self) -> StoreStats {
        StoreStats {
            message_records: self.stats.message_records.load(Ordering::Relaxed),
            fsyncs: self.stats.fsyncs.load(Ordering::Relaxed),
            sync_batches: self.stats.batches.load(Ordering::Relaxed),
            sync_requests: self.stats.requests.load(Ordering::Relaxed),
            corrupt_records: self.stats.corrupt_records.load(Ordering::Relaxed),
            truncated_tails: self.stats.truncated_tails.load(Ordering::Relaxed),
        }
    }

    /// Counts a message record appended (for [`StoreStats`]).
    pub fn count_message_record(&self) {
        self.stats.message_records.fetch_add(1, Ordering::Relaxed);
    }

    /// Puts a log on the syncer's list. The caller holds the log's lock and has checked that
    /// the log is not listed yet.
    pub fn register_dirty(&self, log: Arc<LogShared>) {
        let mut state = self.sync.lock();
        if state.dirty.is_empty() {
            state.dirty_since = Some(Instant::now());
            self.wake.notify_one();
        }
        state.dirty.push(log);
    }

    /// Queues a sync request; after `close` the callback runs at once with `Closed`.
    pub fn request_sync(&self, done: SyncCallback) {
        let mut state = self.sync.lock();
        if state.shutdown {
            drop(state);
            run_callback(done, Err(StoreError::Closed));
            return;
        }
        state.requests.push(done);
        self.wake.notify_one();
    }

    /// Refuses further appends and tells the syncer to do a last batch and stop.
    pub fn begin_shutdown(&self) {
        self.closed.store(true, Ordering::Release);
        self.sync.lock().shutdown = true;
        self.wake.notify_one();
    }

    fn check_not_poisoned(&self) -> Result<(), StoreError> {
        if self.is_poisoned() {
            return Err(self.poisoned_error());
        }
        Ok(())
    }

    fn injected_fsync_fault(&self) -> Option<std::io::Error> {
        let n = self.fsyncs_attempted.fetch_add(1, Ordering::Relaxed) + 1;
        self.options
            .fail_fsync_after
            .is_some_and(|k| n >= k)
            .then(|| std::io::Error::other("injected fsync failure"))
    }

    pub fn fail(&self, op: &str, path: &Path, source: std::io::Error) -> StoreError {
        self.poison(format!("{op} failed on {}: {source}", path.display()));
        StoreError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// Blocks until there is work: a sync request, shutdown, or dirty logs whose lazy interval
    /// ran out.
    fn next_batch(&self) -> Batch {
        let mut state = self.sync.lock();
        loop {
            if !state.requests.is_empty() || state.shutdown {
                break;
            }
            match state.dirty_since {
                None => self.wake.wait(&mut state),
                Some(since) => {
                    let deadline = since + self.options.lazy_sync_interval;
                    if Instant::now() >= deadline {
                        break;
                    }
                    self.wake.wait_until(&mut state, deadline);
                }
            }
        }
        state.dirty_since = None;
        Batch {
            requests: std::mem::take(&mut state.requests),
            dirty: std::mem::take(&mut state.dirty),
            last: state.shutdown,
        }
    }

    /// Writes and fsyncs every log of a batch.
    fn sync_logs(&self, dirty: &[Arc<LogShared>]) -> Result<(), StoreError> {
        self.check_not_poisoned()?;
        let mut files = Vec::new();
        let mut dirs = Vec::new();
        for log in dirty {
            log.flush_for_sync(&mut files, &mut dirs)?;
        }
        for file in &files {
            self.sync_file(&file.file, &file.path)?;
        }
        for dir in &dirs {
            self.sync_dir(dir)?;
        }
        Ok(())
    }
}

/// The syncer thread's body; returns after the batch that follows `begin_shutdown`.
pub(crate) fn run(core: Arc<Core>) {
    loop {
        let batch = core.next_batch();
        let result = core.sync_logs(&batch.dirty);
        drop(batch.dirty);
        core.stats.batches.fetch_add(1, Ordering::Relaxed);
        core.stats
            .requests
            .fetch_add(batch.requests.len() as u64, Ordering::Relaxed);
        for done in batch.requests {
            let outcome = match &result {
                Ok(()) => Ok(()),
                Err(_) => Err(core.poisoned_error()),
            };
            run_callback(done, outcome);
        }
        if batch.last {
            return;
        }
    }
}

/// Runs a callback; a panicking callback must not kill the syncer (every later confirm would
/// hang).
fn run_callback(done: SyncCallback, outcome: Result<(), StoreError>) {
    if catch_unwind(AssertUnwindSafe(move || done(outcome))).is_err() {
        tracing::error!("a message store sync callback panicked");
    }
}
