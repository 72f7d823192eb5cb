//! Where things live in the data directory, and how files are replaced atomically.
//!
//! ```text
//! <data-dir>/
//!   broker.lock            held (flock) by the running broker; holds its pid
//!   definitions.json       durable definitions, replaced atomically
//!   queues/
//!     <hash16>[-n]/        one directory per durable queue; the name is a hash of
//!       meta               (vhost, queue), which may be any bytes: meta holds the real names
//!       0000000000.seg     segments, numbered from 0; fully acked ones are deleted
//!     tmp-*, deleted-*     a queue directory being created or removed (cleaned at open)
//! ```
//!
//! Queue names are hashed (FNV-1a 64 over both names, length-prefixed) because a vhost and a
//! queue name of 255 bytes each, with `/` or NUL in them, make no valid file name. A collision
//! takes the next free `-n` suffix; lookups probe [`PROBE_LIMIT`] names and compare the meta.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use super::StoreError;
use super::syncer::Core;

pub(crate) const LOCK_FILE: &str = "broker.lock";
pub(crate) const DEFINITIONS_FILE: &str = "definitions.json";
pub(crate) const QUEUES_DIR: &str = "queues";

const META_FILE: &str = "meta";
const META_MAGIC: &[u8; 4] = b"AQMT";
const TMP_PREFIX: &str = "tmp-";
const DELETED_PREFIX: &str = "deleted-";
const SEGMENT_SUFFIX: &str = ".seg";
/// Directory names tried per queue; 64-bit hashes make a second one rare already.
const PROBE_LIMIT: u32 = 16;

/// Where a queue's directory is, or would go.
pub(crate) enum QueueDir {
    Existing(PathBuf),
    Free(PathBuf),
}

pub(crate) fn segment_file_name(id: u32) -> String {
    format!("{id:010}{SEGMENT_SUFFIX}")
}

fn parse_segment_file_name(name: &str) -> Option<u32> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    (digits.len() == 10 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// The ids of a queue directory's segments, ascending.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<u32>, StoreError> {
    let mut ids = Vec::new();
    for entry in fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        if let Some(id) = entry.file_name().to_str().and_then(parse_segment_file_name) {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// Finds the directory of (vhost, queue) under `queues`, or the free name it would take.
pub(crate) fn find_queue_dir(
    queues: &Path,
    vhost: &str,
    queue: &str,
) -> Result<QueueDir, StoreError> {
    let hash = name_hash(vhost, queue);
    let mut free = None;
    for probe in 0..PROBE_LIMIT {
        let path = queues.join(dir_name(hash, probe));
        if !path.exists() {
            free.get_or_insert(path);
            continue;
        }
        if read_meta(&path).is_some_and(|(v, q)| v == vhost && q == queue) {
            return Ok(QueueDir::Existing(path));
        }
    }
    free.map(QueueDir::Free).ok_or_else(|| StoreError::Io {
        path: queues.join(dir_name(hash, 0)),
        source: std::io::Error::other("too many queue names share this hash"),
    })
}

/// Creates a queue's directory with its meta file, atomically and durably.
pub(crate) fn create_queue_dir(
    core: &Core,
    queues: &Path,
    path: &Path,
    vhost: &str,
    queue: &str,
) -> Result<(), StoreError> {
    let tmp = queues.join(format!("{TMP_PREFIX}{:016x}", rand::random::<u64>()));
    fs::create_dir(&tmp).map_err(io(&tmp))?;
    write_file(core, &tmp.join(META_FILE), &encode_meta(vhost, queue))?;
    core.sync_dir(&tmp)?;
    fs::rename(&tmp, path).map_err(io(path))?;
    core.sync_dir(queues)
}

/// Removes a queue's directory: renamed aside first (atomic), then deleted.
pub(crate) fn remove_queue_dir(core: &Core, queues: &Path, path: &Path) -> Result<(), StoreError> {
    let aside = queues.join(format!("{DELETED_PREFIX}{:016x}", rand::random::<u64>()));
    fs::rename(path, &aside).map_err(io(path))?;
    core.sync_dir(queues)?;
    if let Err(e) = fs::remove_dir_all(&aside) {
        tracing::warn!(path = %aside.display(), "could not remove a deleted queue's log: {e}");
    }
    Ok(())
}

/// Every queue directory with its (vhost, queue) names.
pub(crate) fn list_queue_dirs(queues: &Path) -> Result<Vec<(PathBuf, String, String)>, StoreError> {
    let mut found = Vec::new();
    for entry in fs::read_dir(queues).map_err(io(queues))? {
        let entry = entry.map_err(io(queues))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(TMP_PREFIX) || name.starts_with(DELETED_PREFIX) {
            continue;
        }
        let path = entry.path();
        match read_meta(&path) {
            Some((vhost, queue)) => found.push((path, vhost, queue)),
            None => {
                tracing::warn!(path = %path.display(), "ignoring a queue log without a readable meta file")
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Removes what an interrupted queue creation or removal left behind.
pub(crate) fn clean_leftovers(queues: &Path) -> Result<(), StoreError> {
    for entry in fs::read_dir(queues).map_err(io(queues))? {
        let entry = entry.map_err(io(queues))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(TMP_PREFIX) || name.starts_with(DELETED_PREFIX) {
            let path = entry.path();
            fs::remove_dir_all(&path).map_err(io(&path))?;
        }
    }
    Ok(())
}

/// Replaces `dir/name` with `bytes`: temp file, fsync, rename, fsync of the directory.
pub(crate) fn write_atomically(
    core: &Core,
    dir: &Path,
    name: &str,
    bytes: &[u8],
) -> Result<(), StoreError> {
    let tmp = dir.join(format!("{name}.tmp"));
    let path = dir.join(name);
    write_file(core, &tmp, bytes)?;
    fs::rename(&tmp, &path).map_err(io(&path))?;
    core.sync_dir(dir)
}

/// Creates (truncating) a file with `bytes` and fsyncs it.
fn write_file(core: &Core, path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let file = File::create(path).map_err(io(path))?;
    core.write_at(&file, bytes, 0, path)?;
    core.sync_file(&file, path)
}

/// `fsync`s a directory outside the store's fault accounting (used at open only).
pub(crate) fn fsync_dir(dir: &Path) -> Result<(), StoreError> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

pub(crate) fn io(path: &Path) -> impl Fn(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn dir_name(hash: u64, probe: u32) -> String {
    if probe == 0 {
        format!("{hash:016x}")
    } else {
        format!("{hash:016x}-{probe}")
    }
}

/// FNV-1a 64 of both names, each prefixed with its length so ("a", "bc") ≠ ("ab", "c").
/// Spelled out rather than `DefaultHasher`, whose output may change between Rust releases.
fn name_hash(vhost: &str, queue: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in [vhost, queue] {
        let len = (part.len() as u64).to_le_bytes();
        for byte in len.iter().chain(part.as_bytes()) {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash
}

fn encode_meta(vhost: &str, queue: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + vhost.len() + queue.len());
    out.extend_from_slice(META_MAGIC);
    for part in [vhost, queue] {
        out.extend_from_slice(&(part.len() as u32).to_le_bytes());
        out.extend_from_slice(part.as_bytes());
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

fn decode_meta(bytes: &[u8]) -> Option<(String, String)> {
    let (body, crc) = bytes.split_at_checked(bytes.len().checked_sub(4)?)?;
    if crc32fast::hash(body) != u32::from_le_bytes(crc.try_into().ok()?) {
        return None;
    }
    let mut rest = body.strip_prefix(META_MAGIC)?;
    let mut take = || -> Option<String> {
        let (len, tail) = rest.split_at_checked(4)?;
        let len = u32::from_le_bytes(len.try_into().ok()?) as usize;
        let (name, tail) = tail.split_at_checked(len)?;
        rest = tail;
        String::from_utf8(name.to_vec()).ok()
    };
    let vhost = take()?;
    let queue = take()?;
    rest.is_empty().then_some((vhost, queue))
}

fn read_meta(dir: &Path) -> Option<(String, String)> {
    fs::read(dir.join(META_FILE))
        .ok()
        .and_then(|bytes| decode_meta(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_round_trip_and_sort() {
        for id in [0, 1, 42, u32::MAX] {
            assert_eq!(parse_segment_file_name(&segment_file_name(id)), Some(id));
        }
        assert!(segment_file_name(9) < segment_file_name(10));
        for bad in [
            "1.seg",
            "000000000a.seg",
            "0000000001.corrupt",
            "0000000001.seg.tmp",
            "99999999999.seg",
        ] {
            assert_eq!(parse_segment_file_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn meta_round_trips_any_names() {
        let long = "é".repeat(127);
        for (vhost, queue) in [
            ("/", "orders"),
            ("", ""),
            ("a/b\0c", "../.."),
            (long.as_str(), long.as_str()),
        ] {
            assert_eq!(
                decode_meta(&encode_meta(vhost, queue)),
                Some((vhost.to_owned(), queue.to_owned()))
            );
        }
    }

    #[test]
    fn damaged_meta_is_rejected() {
        let meta = encode_meta("/", "orders");
        for i in 0..meta.len() {
            let mut bad = meta.clone();
            bad[i] ^= 1;
            assert_eq!(decode_meta(&bad), None, "byte {i}");
            assert_eq!(decode_meta(&meta[..i]), None, "cut at {i}");
        }
    }

    #[test]
    fn hash_separates_name_boundaries() {
        assert_ne!(name_hash("a", "bc"), name_hash("ab", "c"));
        assert_ne!(name_hash("/", "q"), name_hash("q", "/"));
        // Pinned: directory names must not change between releases.
        assert_eq!(dir_name(name_hash("/", "orders"), 0), "ee7c58ad61f5fdce");
        assert_eq!(dir_name(name_hash("/", "orders"), 2), "ee7c58ad61f5fdce-2");
    }

    #[test]
    fn a_hash_collision_takes_the_next_name_and_survives_a_gap() {
        use crate::store::{MessageRef, Store, StoreOptions};

        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), StoreOptions::default()).expect("open");
        let queues = dir.path().join(QUEUES_DIR);
        // Another queue holds the hash name of ("/", "orders"), as a collision would.
        let squatter = queues.join(dir_name(name_hash("/", "orders"), 0));
        fs::create_dir(&squatter).expect("mkdir");
        fs::write(squatter.join(META_FILE), encode_meta("other", "q")).expect("meta");
        let (mut log, _) = store.open_queue("/", "orders").expect("open queue");
        let message = MessageRef {
            priority: 0,
            expires_unix_ms: 0,
            exchange: "",
            routing_key: "orders",
            raw_properties: &[],
            body: b"kept",
        };
        log.append(1, message).expect("append");
        drop(log);
        assert!(queues.join(dir_name(name_hash("/", "orders"), 1)).exists());
        // The other queue goes away and leaves a gap before ours.
        fs::remove_dir_all(&squatter).expect("rm");
        let (log, recovered) = store.open_queue("/", "orders").expect("reopen queue");
        assert_eq!(recovered.len(), 1);
        assert_eq!(
            &log.read(recovered[0].location).expect("read").body[..],
            b"kept"
        );
    }
}
