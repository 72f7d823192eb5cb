//! Durable storage: one append-only segmented log per durable queue, a group-commit syncer
//! thread, and the definitions file. Synchronous: no tokio in here; the syncer is a std thread.
//!
//! Write path: a publisher's connection task calls [`QueueLog::append`] under the queue's lock
//! (the record goes to the log's write buffer, written with one `pwrite` when the buffer fills
//! or before the next fsync; no fsync), then [`Store::request_sync`] with a completion
//! callback. The syncer thread collects every request that arrived while the previous fsync
//! ran, writes every dirty log's buffer, `fdatasync`s every written segment once, then runs
//! the callbacks (group commit). An idle store syncs at once. A failed write or fsync poisons
//! the store: every later append and sync fails with [`StoreError::Poisoned`].
//!
//! Records: `len: u32 | crc32: u32 | payload` where payload starts with a kind byte
//! (message, ack, delivered) and the message's queue sequence number (format in `record.rs`).
//! Acks are records in the same log; a segment file is deleted once every message in it is
//! acked (also the current segment of a quiet queue, and after purge/delete).
//!
//! Recovery replays a queue's segments in order, drops acked messages, marks delivered ones
//! `redelivered`, truncates a torn or corrupt tail (warning with file and offset), and skips
//! (and counts) a corrupt record in the middle of a segment.
//!
//! Memory: nothing per message is kept here. The owner keeps a [`Location`] (12 bytes) and
//! the seq per message; the store keeps per-segment counters and one write buffer (at most
//! 64 KiB, released at each sync) per log with unsynced records.
//!
//! Using it (the queue is the owner of its [`QueueLog`]; all calls are synchronous and short,
//! except [`Store::open_queue`], [`Store::save_definitions`] and [`Store::close`], which do
//! real I/O and belong on a blocking thread or in startup/shutdown):
//! - publish (persistent message, durable queue): `append` under the queue's lock, keep the
//!   `Location`; once per batch of publishes, `request_sync` with a callback that sends the
//!   confirms. It runs on the syncer thread after the fsync, with no store lock held, so it
//!   may take the caller's locks; keep it short, the next batch waits for it.
//! - first delivery: `delivered` (recovery then flags it redelivered); ack, reject without
//!   requeue, TTL expiry, overflow drop, purge: `ack` for each message; queue.delete:
//!   [`QueueLog::delete`]; shutdown: drop the queues, then [`Store::close`].
//! - startup: [`Store::open`], `load_definitions`, then `open_queue` for each durable queue
//!   (it returns the live messages in seq order; start the queue's seq counter at
//!   [`QueueLog::next_seq`]); logs in [`Store::queue_logs`] whose queue is not in the
//!   definitions can go with [`Store::delete_queue`].
//!
//! Changes to the first API sketch:
//! - [`QueueLog::append`] takes a borrowed [`MessageRef`] (no `String`s per publish);
//!   [`StoredMessage`] remains what [`QueueLog::read`] returns.
//! - [`QueueLog::next_seq`]: the queue's seq counter must start at or above it after recovery
//!   (an ack record of a drained message must not match a new message with the same seq).
//! - [`QueueLog::reader`] returns a cloneable [`LogReader`] to read bodies outside the queue's
//!   lock; [`QueueLog::segment_count`] for metrics and tests.
//! - [`Store::delete_queue`] deletes a log without replaying it (orphans from
//!   [`Store::queue_logs`]); [`Store::stats`] for fsync counts, batches and corrupt records.
//! - [`StoreError`] gained `TooLarge`, `AlreadyOpen` and `Closed`; [`StoreOptions`] gained
//!   `lazy_sync_interval` and a `Default`; [`StoreStats`] and [`SyncCallback`] are new.
//! - A log has one owner at a time (`AlreadyOpen`); dropping a [`QueueLog`] writes its buffer
//!   out so the next `open_queue` sees everything.

mod definitions;
mod layout;
mod log;
mod record;
mod recovery;
mod syncer;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;

pub use log::{IDLE_SEGMENT_MS, LogReader, QueueLog};

use layout::{LOCK_FILE, QUEUES_DIR, QueueDir};
use syncer::Core;

/// Where a message record lives. Eight bytes, and so is `Option<Location>` (a record never
/// starts at offset 0, where the segment header is): queues keep one per queued message. The
/// record's length is in its header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    pub segment: u32,
    offset: NonZeroU32,
}

const _: () = assert!(std::mem::size_of::<Option<Location>>() == 8);

impl Location {
    /// `None` for offset 0 (the segment header).
    pub(crate) fn new(segment: u32, offset: u32) -> Option<Self> {
        Some(Self {
            segment,
            offset: NonZeroU32::new(offset)?,
        })
    }

    /// Offset of the record in the segment file.
    pub fn offset(&self) -> u32 {
        self.offset.get()
    }
}

/// A message to append, borrowed from the caller's message.
#[derive(Clone, Copy, Debug)]
pub struct MessageRef<'a> {
    /// AMQP priority (queues restore it at recovery).
    pub priority: u8,
    /// When the message expires, in milliseconds since the Unix epoch (0 = never): a deadline
    /// that means the same after a restart.
    pub expires_unix_ms: u64,
    pub exchange: &'a str,
    pub routing_key: &'a str,
    /// Property flags and fields exactly as received.
    pub raw_properties: &'a [u8],
    pub body: &'a [u8],
}

/// What a message record holds (everything needed to deliver it again).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredMessage {
    pub priority: u8,
    pub expires_unix_ms: u64,
    pub exchange: String,
    pub routing_key: String,
    /// Property flags and fields exactly as received.
    pub raw_properties: Bytes,
    pub body: Bytes,
}

/// A message found at recovery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recovered {
    pub seq: u64,
    pub location: Location,
    /// Length of the message's body.
    pub body_len: u32,
    pub priority: u8,
    /// See [`MessageRef::expires_unix_ms`].
    pub expires_unix_ms: u64,
    /// A `delivered` record was seen for it (it comes back `redelivered=true`).
    pub delivered: bool,
}

/// Storage errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "data directory {0} is used by another broker (lock file held); stop it or pass another --data-dir"
    )]
    Locked(PathBuf),
    #[error("i/o error on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the message store failed earlier and accepts no more writes: {0}")]
    Poisoned(String),
    #[error("corrupt record in {path} at offset {offset}")]
    Corrupt { path: PathBuf, offset: u64 },
    #[error("a message of {0} bytes does not fit a log record")]
    TooLarge(u64),
    #[error("the log of queue '{queue}' in vhost '{vhost}' is already open")]
    AlreadyOpen { vhost: String, queue: String },
    #[error("the message store is closed")]
    Closed,
}

/// Runs on the syncer thread once the records appended before the request are durable (or
/// with the error that poisoned the store). Keep it short: send a message, wake a task.
pub type SyncCallback = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// Knobs, mostly for tests.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Segments roll over past this size (a single larger record gets a segment of its own).
    pub segment_size: u32,
    /// How long acks and delivered marks may wait in memory when nobody requests a sync.
    pub lazy_sync_interval: Duration,
    /// Fault injection: fail the Nth fsync (and all after it). Tests only.
    pub fail_fsync_after: Option<u64>,
    /// Fault injection: fail the Nth write (and all after it). Tests only.
    pub fail_write_after: Option<u64>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            segment_size: 16 * 1024 * 1024,
            lazy_sync_interval: Duration::from_millis(200),
            fail_fsync_after: None,
            fail_write_after: None,
        }
    }
}

/// Counters since the store was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Message records appended (one per message per durable queue).
    pub message_records: u64,
    /// Files and directories fsynced.
    pub fsyncs: u64,
    /// Syncer turns (each fsyncs every dirty file once).
    pub sync_batches: u64,
    /// `request_sync` calls served.
    pub sync_requests: u64,
    /// Corrupt records skipped in the middle of a segment (and damaged segment headers).
    pub corrupt_records: u64,
    /// Torn tails truncated at recovery.
    pub truncated_tails: u64,
}

/// The store of one node (one data directory, locked).
pub struct Store {
    dir: PathBuf,
    queues: PathBuf,
    core: Arc<Core>,
    /// Holds the data directory's lock for as long as the store lives.
    _lock: File,
    syncer: Mutex<Option<JoinHandle<()>>>,
    /// (vhost, queue) of every open log: two owners of one log would corrupt it.
    open_queues: Mutex<HashSet<(String, String)>>,
}

impl Store {
    /// Opens (creating) the data directory and takes its lock.
    pub fn open(dir: &Path, options: StoreOptions) -> Result<Arc<Self>, StoreError> {
        std::fs::create_dir_all(dir).map_err(layout::io(dir))?;
        let lock = lock_data_dir(dir)?;
        let queues = dir.join(QUEUES_DIR);
        std::fs::create_dir_all(&queues).map_err(layout::io(&queues))?;
        // The directories may be new: their entries must be durable before anything in them.
        for path in [dir.parent(), Some(dir), Some(queues.as_path())]
            .into_iter()
            .flatten()
        {
            layout::fsync_dir(path)?;
        }
        layout::clean_leftovers(&queues)?;
        definitions::clean_leftovers(dir)?;
        let core = Arc::new(Core::new(options));
        let syncer_core = Arc::clone(&core);
        let syncer = std::thread::Builder::new()
            .name("store-syncer".into())
            .spawn(move || syncer::run(syncer_core))
            .map_err(layout::io(dir))?;
        Ok(Arc::new(Self {
            dir: dir.to_path_buf(),
            queues,
            core,
            _lock: lock,
            syncer: Mutex::new(Some(syncer)),
            open_queues: Mutex::new(HashSet::new()),
        }))
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The saved definitions (JSON), if any.
    pub fn load_definitions(&self) -> Result<Option<Vec<u8>>, StoreError> {
        definitions::load(&self.dir)
    }

    /// Saves definitions atomically (temp file, fsync, rename, fsync dir). Blocks for a few
    /// fsyncs: call it off the async runtime's workers (`spawn_blocking`) or accept the stall.
    pub fn save_definitions(&self, json: &[u8]) -> Result<(), StoreError> {
        definitions::save(&self.core, &self.dir, json)
    }

    /// Opens the log of a durable queue (creating it) and replays it; returns the live
    /// messages in seq order. A log has one owner: a second open fails with `AlreadyOpen`
    /// until the first [`QueueLog`] is dropped.
    pub fn open_queue(
        self: &Arc<Self>,
        vhost: &str,
        queue: &str,
    ) -> Result<(QueueLog, Vec<Recovered>), StoreError> {
        self.core.check_writable()?;
        let names = (vhost.to_owned(), queue.to_owned());
        if !self.open_queues.lock().insert(names.clone()) {
            return Err(StoreError::AlreadyOpen {
                vhost: names.0,
                queue: names.1,
            });
        }
        let opened = self.replay_queue(vhost, queue);
        match opened {
            Ok((dir, replayed)) => {
                let log = QueueLog::new(
                    Arc::clone(self),
                    names,
                    dir,
                    replayed.segments,
                    replayed.current,
                    replayed.next_seq,
                );
                Ok((log, replayed.messages))
            }
            Err(e) => {
                self.open_queues.lock().remove(&names);
                Err(e)
            }
        }
    }

    /// The (vhost, queue) names of every queue log on disk.
    pub fn queue_logs(&self) -> Result<Vec<(String, String)>, StoreError> {
        Ok(layout::list_queue_dirs(&self.queues)?
            .into_iter()
            .map(|(_, vhost, queue)| (vhost, queue))
            .collect())
    }

    /// Deletes a queue's log without replaying it (a log whose queue is not in the
    /// definitions). Fails with `AlreadyOpen` while a [`QueueLog`] owns it: use
    /// [`QueueLog::delete`] then.
    pub fn delete_queue(&self, vhost: &str, queue: &str) -> Result<(), StoreError> {
        let names = (vhost.to_owned(), queue.to_owned());
        let open = self.open_queues.lock();
        if open.contains(&names) {
            return Err(StoreError::AlreadyOpen {
                vhost: names.0,
                queue: names.1,
            });
        }
        match layout::find_queue_dir(&self.queues, vhost, queue)? {
            QueueDir::Existing(path) => layout::remove_queue_dir(&self.core, &self.queues, &path),
            QueueDir::Free(_) => Ok(()),
        }
    }

    /// Asks for an fsync of everything appended so far; `done` runs on the syncer thread after
    /// it (with the error if the store is poisoned). After [`close`](Self::close) it runs at
    /// once, on the calling thread, with `Closed`.
    pub fn request_sync(&self, done: SyncCallback) {
        self.core.request_sync(done);
    }

    /// Syncs everything and stops the syncer (graceful shutdown). Call it once every queue
    /// has stopped appending; later appends fail with `Closed`. Idempotent.
    pub fn close(&self) -> Result<(), StoreError> {
        self.core.begin_shutdown();
        let handle = self.syncer.lock().take();
        if handle.is_some_and(|handle| handle.join().is_err()) {
            self.core.poison("the syncer thread panicked".into());
        }
        if self.core.is_poisoned() {
            return Err(self.core.poisoned_error());
        }
        Ok(())
    }

    /// Whether a write or fsync failed.
    pub fn is_poisoned(&self) -> bool {
        self.core.is_poisoned()
    }

    /// Counters since open: fsyncs, sync batches and requests, corrupt records, torn tails.
    pub fn stats(&self) -> StoreStats {
        self.core.stats()
    }

    pub(crate) fn core(&self) -> &Arc<Core> {
        &self.core
    }

    pub(crate) fn remove_queue_dir(&self, dir: &Path) -> Result<(), StoreError> {
        layout::remove_queue_dir(&self.core, &self.queues, dir)
    }

    pub(crate) fn release_queue(&self, names: &(String, String)) {
        self.open_queues.lock().remove(names);
    }

    fn replay_queue(
        &self,
        vhost: &str,
        queue: &str,
    ) -> Result<(PathBuf, recovery::Replayed), StoreError> {
        let dir = match layout::find_queue_dir(&self.queues, vhost, queue)? {
            QueueDir::Existing(dir) => dir,
            QueueDir::Free(dir) => {
                layout::create_queue_dir(&self.core, &self.queues, &dir, vhost, queue)?;
                dir
            }
        };
        let replayed = recovery::replay(&self.core, &dir)?;
        Ok((dir, replayed))
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("dir", &self.dir()).finish()
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        let running = self.syncer.lock().is_some();
        if let Some(Err(e)) = running.then(|| self.close()) {
            tracing::error!("message store closed with an error: {e}");
        }
    }
}

impl<'a> From<&'a StoredMessage> for MessageRef<'a> {
    fn from(message: &'a StoredMessage) -> Self {
        Self {
            priority: message.priority,
            expires_unix_ms: message.expires_unix_ms,
            exchange: &message.exchange,
            routing_key: &message.routing_key,
            raw_properties: &message.raw_properties,
            body: &message.body,
        }
    }
}

/// Takes the data directory's lock (an `flock`, released by the OS if the broker dies) and
/// writes our pid into it for whoever finds it held.
fn lock_data_dir(dir: &Path) -> Result<File, StoreError> {
    let path = dir.join(LOCK_FILE);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(layout::io(&path))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => return Err(StoreError::Locked(dir.to_path_buf())),
        Err(TryLockError::Error(e)) => return Err(layout::io(&path)(e)),
    }
    file.set_len(0)
        .and_then(|()| writeln!(file, "{}", std::process::id()))
        .map_err(layout::io(&path))?;
    Ok(file)
}
