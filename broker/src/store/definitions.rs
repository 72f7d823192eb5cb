//! The durable definitions file: one JSON document (its schema belongs to the caller),
//! replaced atomically so a crash leaves either the old or the new version, never a mix.
//!
//! Must not: interpret the JSON.

use std::fs;
use std::path::Path;

use super::StoreError;
use super::layout::{DEFINITIONS_FILE, io, write_atomically};
use super::syncer::Core;

/// The saved definitions, if any.
pub(crate) fn load(dir: &Path) -> Result<Option<Vec<u8>>, StoreError> {
    let path = dir.join(DEFINITIONS_FILE);
    match fs::read(&path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(&path)(e)),
    }
}

/// Saves the definitions: temp file, fsync, rename, fsync of the directory.
pub(crate) fn save(core: &Core, dir: &Path, json: &[u8]) -> Result<(), StoreError> {
    core.check_writable()?;
    write_atomically(core, dir, DEFINITIONS_FILE, json)
}

/// Removes a temp file left by a save that a crash interrupted.
pub(crate) fn clean_leftovers(dir: &Path) -> Result<(), StoreError> {
    let tmp = dir.join(format!("{DEFINITIONS_FILE}.tmp"));
    match fs::remove_file(&tmp) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(&tmp)(e)),
    }
}

#[cfg(test)]
mod tests {
    use crate::store::{Store, StoreOptions};

    #[test]
    fn definitions_round_trip_atomically() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), StoreOptions::default()).expect("open");
        assert_eq!(store.load_definitions().expect("load"), None);
        store.save_definitions(br#"{"queues":[1]}"#).expect("save");
        store
            .save_definitions(br#"{"queues":[1,2]}"#)
            .expect("save again");
        assert_eq!(
            store.load_definitions().expect("load").as_deref(),
            Some(&br#"{"queues":[1,2]}"#[..])
        );
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .expect("read dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert!(!names.iter().any(|n| n.ends_with(".tmp")), "{names:?}");
        store.close().expect("close");
        drop(store);
        let store = Store::open(dir.path(), StoreOptions::default()).expect("reopen");
        assert_eq!(
            store.load_definitions().expect("load").as_deref(),
            Some(&br#"{"queues":[1,2]}"#[..])
        );
    }

    #[test]
    fn an_interrupted_save_keeps_the_old_version_and_is_cleaned() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = Store::open(dir.path(), StoreOptions::default()).expect("open");
            store.save_definitions(b"old").expect("save");
        }
        // A crash between writing the temp file and the rename.
        std::fs::write(dir.path().join("definitions.json.tmp"), b"half-writ").expect("write");
        let store = Store::open(dir.path(), StoreOptions::default()).expect("reopen");
        assert_eq!(
            store.load_definitions().expect("load").as_deref(),
            Some(&b"old"[..])
        );
        assert!(!dir.path().join("definitions.json.tmp").exists());
    }

    #[test]
    fn a_failed_save_poisons_and_keeps_the_old_version() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = Store::open(dir.path(), StoreOptions::default()).expect("open");
            store.save_definitions(b"old").expect("save");
        }
        let options = StoreOptions {
            fail_fsync_after: Some(1),
            ..StoreOptions::default()
        };
        let store = Store::open(dir.path(), options).expect("reopen");
        assert!(store.save_definitions(b"new").is_err());
        assert!(store.is_poisoned());
        assert_eq!(
            store.load_definitions().expect("load").as_deref(),
            Some(&b"old"[..])
        );
    }
}
