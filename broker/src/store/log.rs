//! One durable queue's log: appending records, reading messages back, and deleting segments
//! whose messages are all acked.
//!
//! [`QueueLog`] is owned by the queue (called under its lock); it keeps the per-segment
//! counters. [`LogShared`] is what the syncer also touches: the current segment, its write
//! buffer, and the files written since their last fsync. Records are buffered in memory up to
//! [`FLUSH_THRESHOLD`] and written with one `pwrite`, by the owner when the buffer fills or by
//! the syncer before it fsyncs; a large message is written directly, without a copy.
//!
//! Deleting segments: ack and delivered records go to the current (newest) segment, so a
//! segment that holds marks for messages of an older segment must outlive it, or recovery
//! would forget those acks (the message comes back) or delivered marks (it loses its
//! `redelivered` flag). A segment is deleted once it has no live message and every older
//! segment it holds marks for is gone. Marks only point to older segments, so one ascending
//! pass deletes everything deletable. The current segment is the exception: a busy queue
//! drains to empty again and again, and deleting and re-creating its file each time costs an
//! unlink, a create and a directory fsync (a journal commit) per drain. So an emptied current
//! segment is only deleted once it stayed empty and unwritten for [`IDLE_SEGMENT_MS`]: the
//! owner asks [`QueueLog::wants_idle_check`] after acking and calls
//! [`QueueLog::delete_idle_segment`] that much later.
//!
//! Must not: keep anything per message in memory, or take the syncer's lock before its own.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;

use super::layout::segment_file_name;
use super::record::{self, Kind, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN};
use super::syncer::{Core, SegmentFile};
use super::{Location, MessageRef, Store, StoreError, StoredMessage};

/// The write buffer is written out once it holds this much; larger records skip it.
pub(crate) const FLUSH_THRESHOLD: usize = 64 * 1024;
/// How long an emptied current segment must stay untouched before it is deleted.
pub const IDLE_SEGMENT_MS: u64 = 1000;
/// Older segments kept open for reading (deliveries read the oldest segments, in order).
const READER_CACHE: usize = 2;
/// Deliveries read paged-out messages in publish order, so a read fetches this much of the
/// segment and the next messages come from memory: one `pread` per chunk, not per message.
const READAHEAD: usize = 128 * 1024;

/// The log of one durable queue. Not `Clone`: one owner appends.
pub struct QueueLog {
    /// Keeps the store (and its syncer) alive while the log is in use.
    store: Arc<Store>,
    /// (vhost, queue), released in the store's open set on drop.
    names: (String, String),
    log: Arc<LogShared>,
    /// Every segment file of the queue, by id.
    segments: BTreeMap<u32, SegmentInfo>,
    /// One more than the largest seq in any record on disk.
    next_seq: u64,
    /// Records appended so far (tells whether the current segment was written since a check).
    appended: u64,
    /// The current segment emptied with `appended` at this value and the owner has not been
    /// told yet (`Some`), or has been and will call back (`None` with `idle_check_pending`).
    idle_since: Option<u64>,
    idle_check_pending: bool,
}

/// A handle that reads a queue's messages without the queue's owner (for example outside
/// the queue's lock). Cheap to clone.
#[derive(Clone)]
pub struct LogReader {
    log: Arc<LogShared>,
}

/// What the owner knows of one segment.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct SegmentInfo {
    /// Messages in it not acked yet.
    pub live: u64,
    /// Older segments it holds ack or delivered marks for (a handful at most).
    pub deps: Vec<u32>,
}

impl SegmentInfo {
    pub fn add_dep(&mut self, segment: u32) {
        if !self.deps.contains(&segment) {
            self.deps.push(segment);
        }
    }
}

/// The part of a log shared with the syncer.
pub(crate) struct LogShared {
    pub dir: PathBuf,
    core: Arc<Core>,
    writer: Mutex<Writer>,
    /// Small most-recently-used cache of older segments open for reading.
    readers: Mutex<Vec<OpenSegment>>,
    /// The last chunk read from a segment file (see [`READAHEAD`]).
    readahead: Mutex<Option<Chunk>>,
}

/// Bytes of a segment file starting at `offset`, as read from the file.
struct Chunk {
    segment: u32,
    offset: u64,
    /// The read buffer, reused by the next chunk read (no allocation or zeroing per chunk).
    buf: Vec<u8>,
    /// Bytes of `buf` read from the file.
    filled: usize,
}

impl Chunk {
    /// The record at `offset`, if this chunk holds all of it (copied, so a message kept in
    /// memory does not pin the whole chunk).
    fn record(&self, segment: u32, offset: u64) -> Option<Bytes> {
        if self.segment != segment {
            return None;
        }
        let start = usize::try_from(offset.checked_sub(self.offset)?).ok()?;
        let record = record::whole_record(self.buf[..self.filled].get(start..)?)?;
        Some(Bytes::copy_from_slice(record))
    }
}

/// Reads into `buf` at `offset` until it is full or the file ends; returns the bytes read.
fn read_up_to(segment: &OpenSegment, buf: &mut [u8], offset: u64) -> Result<usize, StoreError> {
    let mut filled = 0;
    while filled < buf.len() {
        match segment
            .file
            .file
            .read_at(&mut buf[filled..], offset + filled as u64)
        {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(source) => {
                return Err(StoreError::Io {
                    path: segment.file.path.clone(),
                    source,
                });
            }
        }
    }
    Ok(filled)
}

/// A segment open for writing at its end.
pub(crate) struct Current {
    pub id: u32,
    pub file: Arc<SegmentFile>,
    pub salt: u32,
    /// Bytes in the file; `pending` continues from here.
    pub written: u64,
    pub pending: Vec<u8>,
    /// Bytes were written since the last fsync.
    pub unsynced: bool,
}

struct Writer {
    current: Option<Current>,
    next_segment: u32,
    /// Older segments written since their last fsync.
    unsynced: Vec<Arc<SegmentFile>>,
    /// A segment file was created since the directory's last fsync.
    dir_unsynced: bool,
    /// On the syncer's dirty list.
    queued: bool,
    /// The queue was deleted; the syncer must not write.
    deleted: bool,
}

#[derive(Clone)]
struct OpenSegment {
    id: u32,
    file: Arc<SegmentFile>,
    salt: u32,
}

impl Current {
    fn end(&self) -> u64 {
        self.written + self.pending.len() as u64
    }
}

impl QueueLog {
    /// A log whose segments were just replayed.
    pub(crate) fn new(
        store: Arc<Store>,
        names: (String, String),
        dir: PathBuf,
        segments: BTreeMap<u32, SegmentInfo>,
        current: Option<Current>,
        next_seq: u64,
    ) -> Self {
        let next_segment = segments.keys().next_back().map_or(0, |id| id + 1);
        let log = Arc::new(LogShared {
            dir,
            core: Arc::clone(store.core()),
            writer: Mutex::new(Writer {
                current,
                next_segment,
                unsynced: Vec::new(),
                dir_unsynced: false,
                queued: false,
                deleted: false,
            }),
            readers: Mutex::new(Vec::new()),
            readahead: Mutex::new(None),
        });
        let mut queue_log = Self {
            store,
            names,
            log,
            segments,
            next_seq,
            appended: 0,
            idle_since: None,
            idle_check_pending: false,
        };
        // At open nothing is busy: an empty current segment goes at once.
        queue_log.collect(true);
        queue_log
    }

    /// Appends a message record (buffered; [`Store::request_sync`] makes it durable).
    /// `seq` must be unique in this log and at least [`next_seq`](Self::next_seq) at open.
    pub fn append(&mut self, seq: u64, message: MessageRef<'_>) -> Result<Location, StoreError> {
        self.log.core.check_writable()?;
        let payload_len = record::message_payload_len(&message)
            .ok_or(StoreError::TooLarge(message.body.len() as u64))?;
        let location = self.log.append_message(seq, &message, payload_len)?;
        self.segments.entry(location.segment).or_default().live += 1;
        self.next_seq = self.next_seq.max(seq.saturating_add(1));
        self.appended += 1;
        self.log.core.count_message_record();
        Ok(location)
    }

    /// Records that a message was acked (or dropped: purge, TTL, overflow) so recovery skips
    /// it; deletes every segment that no longer holds anything recovery needs.
    pub fn ack(&mut self, seq: u64, location: Location) -> Result<(), StoreError> {
        self.log.core.check_writable()?;
        let at = self.log.append_mark(Kind::Ack, seq, location.segment)?;
        let holder = self.segments.entry(at).or_default();
        if at != location.segment {
            holder.add_dep(location.segment);
        }
        let emptied = match self.segments.get_mut(&location.segment) {
            Some(target) => {
                debug_assert!(target.live > 0, "acked a message twice");
                target.live = target.live.saturating_sub(1);
                target.live == 0
            }
            None => false,
        };
        if emptied {
            self.collect(false);
        }
        Ok(())
    }

    /// Whether the owner should call [`delete_idle_segment`](Self::delete_idle_segment) in
    /// [`IDLE_SEGMENT_MS`] (asked after acks; true once per emptying).
    pub fn wants_idle_check(&mut self) -> bool {
        if self.idle_since.is_some() && !self.idle_check_pending {
            self.idle_check_pending = true;
            return true;
        }
        false
    }

    /// Deletes the current segment if it has been empty and unwritten since it emptied;
    /// returns true if it emptied again since (check again in [`IDLE_SEGMENT_MS`]).
    pub fn delete_idle_segment(&mut self) -> bool {
        self.idle_check_pending = false;
        let Some(since) = self.idle_since.take() else {
            return false;
        };
        if since == self.appended {
            self.collect(true);
            return false;
        }
        // Written since: if it emptied again meanwhile, wait for a quiet period from now.
        self.collect(false);
        self.wants_idle_check()
    }

    /// Records that a message was delivered (recovery marks it redelivered).
    pub fn delivered(&mut self, seq: u64, location: Location) -> Result<(), StoreError> {
        self.log.core.check_writable()?;
        let at = self
            .log
            .append_mark(Kind::Delivered, seq, location.segment)?;
        let holder = self.segments.entry(at).or_default();
        if at != location.segment {
            holder.add_dep(location.segment);
        }
        Ok(())
    }

    /// Reads a message back, checking its CRC.
    pub fn read(&self, location: Location) -> Result<StoredMessage, StoreError> {
        self.log.read(location)
    }

    /// A handle for reading messages without `&self`.
    pub fn reader(&self) -> LogReader {
        LogReader {
            log: Arc::clone(&self.log),
        }
    }

    /// One more than the largest seq found in the log at open (or appended since): the queue's
    /// seq counter must not go below it, or an old ack record could match a new message.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// How many segment files the queue has on disk.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Deletes the queue's log entirely (queue.delete, or an orphaned log).
    pub fn delete(mut self) -> Result<(), StoreError> {
        self.log.mark_deleted();
        self.segments.clear();
        self.store.remove_queue_dir(&self.log.dir)
    }

    /// Deletes every segment with no live message whose marks are no longer needed; the
    /// current one only with `idle` (otherwise it is noted for a later idle check).
    fn collect(&mut self, idle: bool) {
        let current = self.log.current_id();
        let empty: Vec<u32> = self
            .segments
            .iter()
            .filter(|(_, info)| info.live == 0)
            .map(|(id, _)| *id)
            .collect();
        for id in empty {
            if !idle && Some(id) == current {
                // Idle is counted from the first emptying not checked yet.
                self.idle_since.get_or_insert(self.appended);
                continue;
            }
            let needed = self
                .segments
                .get(&id)
                .is_some_and(|info| info.deps.iter().any(|dep| self.segments.contains_key(dep)));
            if !needed {
                self.log.delete_segment(id);
                self.segments.remove(&id);
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn segments(&self) -> &BTreeMap<u32, SegmentInfo> {
        &self.segments
    }
}

impl std::fmt::Debug for QueueLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueLog")
            .field("vhost", &self.names.0)
            .field("queue", &self.names.1)
            .field("segments", &self.segments.len())
            .field("next_seq", &self.next_seq)
            .finish()
    }
}

impl std::fmt::Debug for LogReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogReader")
    }
}

impl Drop for QueueLog {
    fn drop(&mut self) {
        // The next owner replays the files: they must hold everything appended so far.
        // (A failure has poisoned the store and said so.)
        let _ = self.log.write_buffer();
        self.store.release_queue(&self.names);
    }
}

impl LogReader {
    /// Reads a message back, checking its CRC. Fails with `Io` (not found) if the message's
    /// segment was deleted since, that is if the message was acked.
    pub fn read(&self, location: Location) -> Result<StoredMessage, StoreError> {
        self.log.read(location)
    }
}

impl LogShared {
    fn current_id(&self) -> Option<u32> {
        self.writer.lock().current.as_ref().map(|c| c.id)
    }

    fn append_message(
        self: &Arc<Self>,
        seq: u64,
        message: &MessageRef<'_>,
        payload_len: u32,
    ) -> Result<Location, StoreError> {
        let record_len = payload_len + RECORD_HEADER_LEN;
        let mut writer = self.writer.lock();
        let current = self.current_with_room(&mut writer, record_len)?;
        // `current_with_room` keeps every record end within u32; records start after the
        // segment header.
        let location =
            Location::new(current.id, current.end() as u32).ok_or_else(|| StoreError::Corrupt {
                path: current.file.path.clone(),
                offset: 0,
            })?;
        if record_len as usize >= FLUSH_THRESHOLD {
            // One write for the buffer and the record's head, one for the body: no copy.
            record::encode_message_prefix(
                &mut current.pending,
                current.salt,
                seq,
                message,
                payload_len,
            );
            self.write_pending(current)?;
            self.core.write_at(
                &current.file.file,
                message.body,
                current.written,
                &current.file.path,
            )?;
            current.written += message.body.len() as u64;
        } else {
            self.make_room(current, record_len)?;
            record::encode_message(
                &mut current.pending,
                current.salt,
                seq,
                message,
                payload_len,
            );
        }
        self.mark_dirty(&mut writer);
        Ok(location)
    }

    /// Appends an ack or delivered mark; returns the segment it went to.
    fn append_mark(self: &Arc<Self>, kind: Kind, seq: u64, target: u32) -> Result<u32, StoreError> {
        let record_len = RECORD_HEADER_LEN + record::MARK_PAYLOAD_LEN;
        let mut writer = self.writer.lock();
        let current = self.current_with_room(&mut writer, record_len)?;
        self.make_room(current, record_len)?;
        record::encode_mark(&mut current.pending, current.salt, kind, seq, target);
        let id = current.id;
        self.mark_dirty(&mut writer);
        Ok(id)
    }

    /// The current segment, rolled over to a new one if `record_len` does not fit.
    fn current_with_room<'w>(
        &self,
        writer: &'w mut Writer,
        record_len: u32,
    ) -> Result<&'w mut Current, StoreError> {
        let fits = |current: &Current| {
            let end = current.end() + u64::from(record_len);
            end <= u64::from(u32::MAX)
                && (current.end() == u64::from(SEGMENT_HEADER_LEN)
                    || end <= u64::from(self.core.options.segment_size))
        };
        if !writer.current.as_ref().is_some_and(fits)
            && let Some(mut old) = writer.current.take()
        {
            self.write_pending(&mut old)?;
            if old.unsynced {
                writer.unsynced.push(Arc::clone(&old.file));
            }
            self.cache_reader(OpenSegment {
                id: old.id,
                file: old.file,
                salt: old.salt,
            });
        }
        let id = writer.next_segment;
        if writer.current.is_none() {
            writer.next_segment = id + 1;
            writer.dir_unsynced = true;
        }
        match &mut writer.current {
            Some(current) => Ok(current),
            slot @ None => Ok(slot.insert(self.create_segment(id)?)),
        }
    }

    fn create_segment(&self, id: u32) -> Result<Current, StoreError> {
        let path = self.dir.join(segment_file_name(id));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|source| self.core.fail("create", &path, source))?;
        let salt = rand::random::<u32>();
        let mut pending = Vec::with_capacity(FLUSH_THRESHOLD);
        // The header goes out with the first records: a segment shorter than its header was
        // never synced, and recovery removes it.
        pending.extend_from_slice(&record::segment_header(salt));
        Ok(Current {
            id,
            file: Arc::new(SegmentFile { file, path }),
            salt,
            written: 0,
            pending,
            unsynced: false,
        })
    }

    /// Writes the buffer out if `record_len` more bytes would overflow it, so it never grows
    /// past [`FLUSH_THRESHOLD`].
    fn make_room(&self, current: &mut Current, record_len: u32) -> Result<(), StoreError> {
        if current.pending.len() + record_len as usize > FLUSH_THRESHOLD {
            self.write_pending(current)?;
        }
        if current.pending.capacity() == 0 {
            current.pending.reserve_exact(FLUSH_THRESHOLD);
        }
        Ok(())
    }

    fn write_pending(&self, current: &mut Current) -> Result<(), StoreError> {
        if current.pending.is_empty() {
            return Ok(());
        }
        self.core.write_at(
            &current.file.file,
            &current.pending,
            current.written,
            &current.file.path,
        )?;
        current.written += current.pending.len() as u64;
        current.pending.clear();
        current.unsynced = true;
        Ok(())
    }

    fn mark_dirty(self: &Arc<Self>, writer: &mut Writer) {
        if !writer.queued {
            writer.queued = true;
            self.core.register_dirty(Arc::clone(self));
        }
    }

    /// Writes the buffer and hands the syncer what needs an fsync.
    pub fn flush_for_sync(
        &self,
        files: &mut Vec<Arc<SegmentFile>>,
        dirs: &mut Vec<PathBuf>,
    ) -> Result<(), StoreError> {
        let mut writer = self.writer.lock();
        writer.queued = false;
        if writer.deleted {
            return Ok(());
        }
        if let Some(current) = writer.current.as_mut() {
            self.write_pending(current)?;
            // An idle queue must not keep a buffer.
            current.pending = Vec::new();
            if current.unsynced {
                current.unsynced = false;
                files.push(Arc::clone(&current.file));
            }
        }
        files.append(&mut writer.unsynced);
        if writer.dir_unsynced {
            writer.dir_unsynced = false;
            dirs.push(self.dir.clone());
        }
        Ok(())
    }

    fn read(&self, location: Location) -> Result<StoredMessage, StoreError> {
        let offset = u64::from(location.offset());
        // How far the file may be read: the current segment's unwritten tail is in `pending`.
        let mut readable = u64::MAX;
        let source = {
            let writer = self.writer.lock();
            match writer.current.as_ref() {
                Some(current) if current.id == location.segment => {
                    if offset >= current.written {
                        let start = (offset - current.written) as usize;
                        return current
                            .pending
                            .get(start..)
                            .and_then(record::whole_record)
                            .map(Bytes::copy_from_slice)
                            .and_then(|record| record::decode_message(record, current.salt))
                            .map(|(_, message)| message)
                            .ok_or_else(|| StoreError::Corrupt {
                                path: current.file.path.clone(),
                                offset,
                            });
                    }
                    readable = current.written;
                    Some(OpenSegment {
                        id: current.id,
                        file: Arc::clone(&current.file),
                        salt: current.salt,
                    })
                }
                _ => None,
            }
        };
        let segment = match source {
            Some(segment) => segment,
            None => self.open_reader(location.segment)?,
        };
        let (cached, buf) = {
            let mut readahead = self.readahead.lock();
            match readahead
                .as_ref()
                .and_then(|chunk| chunk.record(location.segment, offset))
            {
                Some(record) => (Some(record), Vec::new()),
                None => (None, readahead.take().map(|c| c.buf).unwrap_or_default()),
            }
        };
        let record = match cached {
            Some(record) => record,
            None => {
                let chunk = self.read_chunk(&segment, offset, readable, buf)?;
                match chunk.record(location.segment, offset) {
                    Some(record) => {
                        *self.readahead.lock() = Some(chunk);
                        record
                    }
                    None => self.read_large(&segment, &chunk, readable)?,
                }
            }
        };
        record::decode_message(record, segment.salt)
            .map(|(_, message)| message)
            .ok_or_else(|| StoreError::Corrupt {
                path: segment.file.path.clone(),
                offset,
            })
    }

    /// Reads up to [`READAHEAD`] bytes at `offset`, not past `readable` nor the file's end.
    fn read_chunk(
        &self,
        segment: &OpenSegment,
        offset: u64,
        readable: u64,
        mut buf: Vec<u8>,
    ) -> Result<Chunk, StoreError> {
        let room = usize::try_from(readable.saturating_sub(offset)).unwrap_or(usize::MAX);
        let want = READAHEAD.min(room);
        if buf.len() < want {
            buf.resize(want, 0);
        }
        let filled = read_up_to(segment, &mut buf[..want], offset)?;
        Ok(Chunk {
            segment: segment.id,
            offset,
            buf,
            filled,
        })
    }

    /// The record at the start of `chunk` when it is longer than the chunk: its length comes
    /// from its header, checked against the file before anything is allocated.
    fn read_large(
        &self,
        segment: &OpenSegment,
        chunk: &Chunk,
        readable: u64,
    ) -> Result<Bytes, StoreError> {
        let path = &segment.file.path;
        let corrupt = || StoreError::Corrupt {
            path: path.clone(),
            offset: chunk.offset,
        };
        let payload =
            record::framed_len(&chunk.buf[..chunk.filled], u64::MAX).ok_or_else(corrupt)?;
        let len = u64::from(payload) + u64::from(RECORD_HEADER_LEN);
        let file_len = segment
            .file
            .file
            .metadata()
            .map_err(|source| StoreError::Io {
                path: path.clone(),
                source,
            })?
            .len();
        if chunk.offset + len > readable.min(file_len) {
            return Err(corrupt());
        }
        let mut buf = vec![0u8; len as usize];
        if read_up_to(segment, &mut buf, chunk.offset)? < buf.len() {
            return Err(corrupt());
        }
        Ok(Bytes::from(buf))
    }

    fn open_reader(&self, id: u32) -> Result<OpenSegment, StoreError> {
        let mut readers = self.readers.lock();
        if let Some(i) = readers.iter().position(|r| r.id == id) {
            let segment = readers.remove(i);
            readers.insert(0, segment.clone());
            return Ok(segment);
        }
        let path = self.dir.join(segment_file_name(id));
        let io = |source| StoreError::Io {
            path: path.clone(),
            source,
        };
        let file = File::open(&path).map_err(io)?;
        let mut header = [0u8; SEGMENT_HEADER_LEN as usize];
        file.read_exact_at(&mut header, 0).map_err(io)?;
        let salt = record::parse_segment_header(&header).ok_or_else(|| StoreError::Corrupt {
            path: path.clone(),
            offset: 0,
        })?;
        let segment = OpenSegment {
            id,
            file: Arc::new(SegmentFile { file, path }),
            salt,
        };
        readers.insert(0, segment.clone());
        readers.truncate(READER_CACHE);
        Ok(segment)
    }

    fn cache_reader(&self, segment: OpenSegment) {
        let mut readers = self.readers.lock();
        readers.retain(|r| r.id != segment.id);
        readers.insert(0, segment);
        readers.truncate(READER_CACHE);
    }

    fn delete_segment(&self, id: u32) {
        let path = self.dir.join(segment_file_name(id));
        {
            let mut writer = self.writer.lock();
            if writer.current.as_ref().is_some_and(|c| c.id == id) {
                writer.current = None;
            }
            writer.unsynced.retain(|f| f.path != path);
        }
        self.readers.lock().retain(|r| r.id != id);
        let mut readahead = self.readahead.lock();
        if readahead.as_ref().is_some_and(|chunk| chunk.segment == id) {
            *readahead = None;
        }
        drop(readahead);
        match std::fs::remove_file(&path) {
            Ok(()) => tracing::debug!(path = %path.display(), "deleted fully acked segment"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            // Not a durability problem: recovery finds it fully acked and deletes it again.
            Err(e) => {
                tracing::warn!(path = %path.display(), "could not delete a fully acked segment: {e}")
            }
        }
    }

    /// Writes the buffer out (no fsync; the log stays on the syncer's list for that).
    fn write_buffer(&self) -> Result<(), StoreError> {
        let mut writer = self.writer.lock();
        if writer.deleted {
            return Ok(());
        }
        match writer.current.as_mut() {
            Some(current) => {
                self.write_pending(current)?;
                current.pending = Vec::new();
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn mark_deleted(&self) {
        let mut writer = self.writer.lock();
        writer.deleted = true;
        writer.current = None;
        writer.unsynced.clear();
        self.readers.lock().clear();
    }
}
