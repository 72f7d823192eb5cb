//! Replaying a queue's segments at open: which messages are live, which were delivered, what
//! each segment still holds, and where appending continues.
//!
//! Segments are read with large sequential reads (a window of [`READ_CHUNK`] bytes, one
//! `pread` per window, never one per record) and every record's CRC is checked. After a bad
//! record, the log resynchronises at the next offset where a valid record starts (its length
//! field may be what broke; the per-segment salt keeps message bodies from passing for
//! records); the skipped record is counted and logged. A bad record with nothing valid after
//! it is a torn tail: the file is truncated there, with a warning. A helper thread reads the
//! next few segments ahead of the scan ([`Prefetch`]), so on a cold page cache the disk works
//! while the CRCs are checked.
//!
//! Must not: return a message whose record failed its CRC, or keep the whole segment in memory.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use super::Recovered;
use super::layout::{list_segments, segment_file_name};
use super::log::{Current, SegmentInfo};
use super::record::{self, Kind, Parsed, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN};
use super::syncer::{Core, SegmentFile};
use super::{Location, StoreError};

/// Bytes read per `pread` while replaying.
const READ_CHUNK: usize = 2 * 1024 * 1024;
/// Segments the prefetch thread may read ahead of the scan.
const PREFETCH_AHEAD: usize = 2;

/// What replaying a queue's directory found.
pub(crate) struct Replayed {
    /// Live messages in seq order.
    pub messages: Vec<Recovered>,
    pub segments: BTreeMap<u32, SegmentInfo>,
    /// The last segment, open for appending, if it has room.
    pub current: Option<Current>,
    pub next_seq: u64,
}

/// Replays every segment in `dir`.
pub(crate) fn replay(core: &Core, dir: &Path) -> Result<Replayed, StoreError> {
    let ids = list_segments(dir)?;
    let mut messages = Vec::new();
    let mut acks = Vec::new();
    let mut delivered = Vec::new();
    let mut segments = BTreeMap::new();
    let mut next_seq = 0u64;
    let mut last: Option<(u32, File, u32, u64)> = None;
    let mut window = Window::new();
    let prefetch = Prefetch::start(
        ids.iter()
            .map(|id| dir.join(segment_file_name(*id)))
            .collect(),
    );
    for id in ids {
        prefetch.scanned_one();
        let path = dir.join(segment_file_name(id));
        let Some((file, salt)) = open_segment(core, &path)? else {
            continue;
        };
        let mut info = SegmentInfo::default();
        let end = scan(core, &file, &path, salt, &mut window, |pos, parsed| {
            next_seq = next_seq.max(parsed.seq.saturating_add(1));
            match parsed.kind {
                Kind::Message => {
                    // Segment offsets fit u32 (writers never go past it) and records start
                    // after the segment header.
                    if let Some(location) = Location::new(id, pos as u32) {
                        messages.push(Recovered {
                            seq: parsed.seq,
                            location,
                            body_len: parsed.body_len,
                            priority: parsed.priority,
                            expires_unix_ms: parsed.expires_unix_ms,
                            delivered: false,
                        });
                    }
                }
                Kind::Ack => acks.push(parsed.seq),
                Kind::Delivered => delivered.push(parsed.seq),
            }
            if parsed.kind != Kind::Message && parsed.target_segment != id {
                info.add_dep(parsed.target_segment);
            }
        })?;
        segments.insert(id, info);
        last = Some((id, file, salt, end));
    }

    // Appends come in seq order, so these sorts are linear scans in practice.
    messages.sort_by_key(|m| m.seq);
    acks.sort_unstable();
    delivered.sort_unstable();
    let messages = apply_marks(messages, &acks, &delivered);
    drop((acks, delivered));

    let present: Vec<u32> = segments.keys().copied().collect();
    for info in segments.values_mut() {
        info.deps.retain(|dep| present.binary_search(dep).is_ok());
    }
    count_live(&messages, &mut segments);

    let current = last.and_then(|(id, file, salt, end)| {
        (end < u64::from(core.options.segment_size)).then(|| Current {
            id,
            file: Arc::new(SegmentFile {
                file,
                path: dir.join(segment_file_name(id)),
            }),
            salt,
            written: end,
            pending: Vec::new(),
            unsynced: false,
        })
    });
    Ok(Replayed {
        messages,
        segments,
        current,
        next_seq,
    })
}

/// Opens a segment and reads its salt. `None` for a segment that holds nothing usable: one
/// torn at creation (removed) or one with a damaged header (renamed aside, counted).
fn open_segment(core: &Core, path: &Path) -> Result<Option<(File, u32)>, StoreError> {
    let io = |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    if len < u64::from(SEGMENT_HEADER_LEN) {
        // The header is written with the first records: nothing here was ever synced.
        tracing::warn!(path = %path.display(), len, "removing a segment torn at creation");
        std::fs::remove_file(path).map_err(io)?;
        core.count_truncated_tail();
        return Ok(None);
    }
    let mut header = [0u8; SEGMENT_HEADER_LEN as usize];
    file.read_exact_at(&mut header, 0).map_err(io)?;
    match record::parse_segment_header(&header) {
        Some(salt) => Ok(Some((file, salt))),
        None => {
            let aside = path.with_extension("corrupt");
            tracing::error!(
                path = %path.display(),
                "segment header is damaged; its records cannot be checked and are skipped \
                 (file kept as {})",
                aside.display()
            );
            std::fs::rename(path, &aside).map_err(io)?;
            core.count_corrupt_record();
            Ok(None)
        }
    }
}

/// Reads segment files into the page cache a little ahead of the scan. Only a hint: errors are
/// ignored (the scan reads and checks everything itself), and it stops when dropped.
struct Prefetch {
    /// Segments the scan has started.
    scanned: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Prefetch {
    fn start(paths: Vec<PathBuf>) -> Self {
        let scanned = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        // One segment is nothing to overlap with.
        let thread = (paths.len() > 1)
            .then(|| {
                let (scanned, stop) = (Arc::clone(&scanned), Arc::clone(&stop));
                std::thread::Builder::new()
                    .name("store-prefetch".into())
                    .spawn(move || prefetch(&paths, &scanned, &stop))
                    .ok()
            })
            .flatten();
        Self {
            scanned,
            stop,
            thread,
        }
    }

    fn scanned_one(&self) {
        self.scanned.fetch_add(1, Ordering::Release);
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn prefetch(paths: &[PathBuf], scanned: &AtomicUsize, stop: &AtomicBool) {
    let mut buf = vec![0u8; READ_CHUNK];
    // The scan reads the first segment itself.
    for (i, path) in paths.iter().enumerate().skip(1) {
        while i >= scanned.load(Ordering::Acquire) + PREFETCH_AHEAD {
            if stop.load(Ordering::Acquire) {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let Ok(file) = File::open(path) else { continue };
        let mut at = 0;
        while let Ok(n @ 1..) = file.read_at(&mut buf, at) {
            if stop.load(Ordering::Acquire) {
                return;
            }
            at += n as u64;
        }
    }
}

/// Calls `on_record` with the offset of every valid record, skips corrupt ones, truncates a
/// torn tail; returns the offset where valid data ends.
fn scan(
    core: &Core,
    file: &File,
    path: &Path,
    salt: u32,
    window: &mut Window,
    mut on_record: impl FnMut(u64, Parsed),
) -> Result<u64, StoreError> {
    let file_len = file
        .metadata()
        .map_err(|source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        })?
        .len();
    window.reset(file_len);
    let mut pos = u64::from(SEGMENT_HEADER_LEN);
    while pos < file_len {
        if let Some(parsed) = window.record_at(file, path, pos, salt)? {
            on_record(pos, parsed);
            pos += u64::from(parsed.record_len);
            continue;
        }
        match window.next_valid(file, path, pos, salt)? {
            Some(next) => {
                tracing::warn!(
                    path = %path.display(),
                    offset = pos,
                    skipped_bytes = next - pos,
                    "skipping a corrupt record in the message log"
                );
                core.count_corrupt_record();
                pos = next;
            }
            None => {
                tracing::warn!(
                    path = %path.display(),
                    offset = pos,
                    dropped_bytes = file_len - pos,
                    "truncating a torn or corrupt tail of the message log"
                );
                core.count_truncated_tail();
                file.set_len(pos).map_err(|source| StoreError::Io {
                    path: path.to_path_buf(),
                    source,
                })?;
                core.sync_file(file, path)?;
                return Ok(pos);
            }
        }
    }
    Ok(pos)
}

/// Drops acked messages and flags delivered ones; all three inputs sorted by seq.
fn apply_marks(messages: Vec<Recovered>, acks: &[u64], delivered: &[u64]) -> Vec<Recovered> {
    let mut acks = acks.iter().copied().peekable();
    let mut delivered = delivered.iter().copied().peekable();
    let mut live = messages;
    live.retain_mut(|message| {
        while acks.next_if(|seq| *seq < message.seq).is_some() {}
        if acks.peek() == Some(&message.seq) {
            return false;
        }
        while delivered.next_if(|seq| *seq < message.seq).is_some() {}
        message.delivered = delivered.peek() == Some(&message.seq);
        true
    });
    live
}

/// Sets each segment's live count from the live messages (grouped by segment in practice).
fn count_live(messages: &[Recovered], segments: &mut BTreeMap<u32, SegmentInfo>) {
    let mut run: Option<(u32, u64)> = None;
    let flush = |run: Option<(u32, u64)>, segments: &mut BTreeMap<u32, SegmentInfo>| {
        if let Some(info) = run.and_then(|(id, _)| segments.get_mut(&id)) {
            info.live += run.map_or(0, |(_, n)| n);
        }
    };
    for message in messages {
        match &mut run {
            Some((id, n)) if *id == message.location.segment => *n += 1,
            _ => {
                flush(run, segments);
                run = Some((message.location.segment, 1));
            }
        }
    }
    flush(run, segments);
}

/// A forward-moving window over a file: `[start, start + filled)` is in `buf`.
struct Window {
    buf: Vec<u8>,
    start: u64,
    filled: usize,
    file_len: u64,
}

impl Window {
    fn new() -> Self {
        Self {
            buf: Vec::new(),
            start: 0,
            filled: 0,
            file_len: 0,
        }
    }

    fn reset(&mut self, file_len: u64) {
        self.start = 0;
        self.filled = 0;
        self.file_len = file_len;
    }

    /// Bytes `[pos, pos + n)`, or `None` if the file ends before.
    fn get(
        &mut self,
        file: &File,
        path: &Path,
        pos: u64,
        n: usize,
    ) -> Result<Option<&[u8]>, StoreError> {
        let end = pos + n as u64;
        if end > self.file_len {
            return Ok(None);
        }
        let buffered_end = self.start + self.filled as u64;
        if pos < self.start || end > buffered_end {
            if pos >= self.start && pos < buffered_end {
                let keep = (pos - self.start) as usize;
                self.buf.copy_within(keep..self.filled, 0);
                self.filled -= keep;
            } else {
                self.filled = 0;
            }
            self.start = pos;
            let want = n.max(READ_CHUNK).min((self.file_len - pos) as usize);
            if self.buf.len() < want {
                self.buf.resize(want, 0);
            }
            file.read_exact_at(&mut self.buf[self.filled..want], pos + self.filled as u64)
                .map_err(|source| StoreError::Io {
                    path: path.to_path_buf(),
                    source,
                })?;
            self.filled = want;
        }
        let at = (pos - self.start) as usize;
        Ok(Some(&self.buf[at..at + n]))
    }

    /// The valid record starting at `pos`, if there is one.
    fn record_at(
        &mut self,
        file: &File,
        path: &Path,
        pos: u64,
        salt: u32,
    ) -> Result<Option<Parsed>, StoreError> {
        let header_len = RECORD_HEADER_LEN as usize;
        let available = self.file_len.saturating_sub(pos + RECORD_HEADER_LEN as u64);
        // Header and kind byte first: cheap to reject while resynchronising.
        let Some(header) = self.get(file, path, pos, header_len + 1)? else {
            return Ok(None);
        };
        let Some(len) = record::framed_len(header, available) else {
            return Ok(None);
        };
        if !record::is_kind(header[header_len]) {
            return Ok(None);
        }
        let Some(bytes) = self.get(file, path, pos, header_len + len as usize)? else {
            return Ok(None);
        };
        Ok(record::parse(bytes, salt))
    }

    /// Where the first valid record after the bad one at `bad` starts. Every offset is
    /// tried rather than trusting the bad record's length field, which may be what broke.
    fn next_valid(
        &mut self,
        file: &File,
        path: &Path,
        bad: u64,
        salt: u32,
    ) -> Result<Option<u64>, StoreError> {
        let min_record = u64::from(RECORD_HEADER_LEN + record::MIN_PAYLOAD_LEN);
        let mut candidate = bad + 1;
        while candidate + min_record <= self.file_len {
            if self.record_at(file, path, candidate, salt)?.is_some() {
                return Ok(Some(candidate));
            }
            candidate += 1;
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn recovered(seq: u64) -> Recovered {
        Recovered {
            seq,
            location: Location::new((seq / 10) as u32, 16).expect("non-zero offset"),
            body_len: 0,
            priority: 0,
            expires_unix_ms: 0,
            delivered: false,
        }
    }

    #[test]
    fn marks_drop_acked_and_flag_delivered() {
        let messages = (1..=6).map(recovered).collect();
        let live = apply_marks(messages, &[0, 2, 5, 9], &[1, 2, 3, 3, 7]);
        let seqs: Vec<(u64, bool)> = live.iter().map(|m| (m.seq, m.delivered)).collect();
        assert_eq!(seqs, vec![(1, true), (3, true), (4, false), (6, false)]);
    }

    #[test]
    fn live_counts_per_segment() {
        let messages: Vec<Recovered> = [1, 2, 11, 12, 13, 35].into_iter().map(recovered).collect();
        let mut segments: BTreeMap<u32, SegmentInfo> = [0, 1, 2, 3]
            .into_iter()
            .map(|id| (id, SegmentInfo::default()))
            .collect();
        count_live(&messages, &mut segments);
        let live: Vec<u64> = segments.values().map(|i| i.live).collect();
        assert_eq!(live, vec![2, 3, 0, 1]);
    }

    #[test]
    fn window_serves_ranges_across_chunk_boundaries() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path: PathBuf = dir.path().join("f");
        let data: Vec<u8> = (0..READ_CHUNK * 2 + 100).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).expect("write");
        let file = File::open(&path).expect("open");
        let mut window = Window::new();
        window.reset(data.len() as u64);
        for (pos, n) in [
            (0, 10),
            (READ_CHUNK - 5, 10),
            (READ_CHUNK * 2, 100),
            (3, 7),
            (0, READ_CHUNK * 2 + 100),
        ] {
            let got = window
                .get(&file, &path, pos as u64, n)
                .expect("io")
                .expect("in file");
            assert_eq!(got, &data[pos..pos + n], "pos {pos} n {n}");
        }
        assert!(
            window
                .get(&file, &path, data.len() as u64 - 5, 6)
                .expect("io")
                .is_none()
        );
    }
}
