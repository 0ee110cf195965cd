//! Process hygiene through the library: a datadir is opened by one store
//! at a time.

mod common;

use streamsync::chain::ChainBackend;
use streamsync::store::{Store, StoreError, StoreOptions, LOCK_FILE};

fn opts() -> StoreOptions {
    StoreOptions {
        durable: false,
        ..StoreOptions::default()
    }
}

#[test]
fn a_datadir_already_open_is_refused_naming_the_holder_until_the_store_is_dropped() {
    let (genesis, _, _) = common::chain(common::spec(4, 10, 4), 0, 0);
    let dir = tempfile::tempdir().expect("tmp");
    let first = Store::open_or_create(dir.path(), &genesis, opts()).expect("create");
    let me = std::process::id();
    let lock = std::fs::read_to_string(dir.path().join(LOCK_FILE)).expect("lock file");
    assert_eq!(
        lock.trim(),
        me.to_string(),
        "the holder's pid is in the lock"
    );

    for err in [
        Store::open(dir.path(), opts()).expect_err("second open refused"),
        Store::open_or_create(dir.path(), &genesis, opts()).expect_err("second create refused"),
    ] {
        assert!(
            matches!(err, StoreError::InUse { pid: Some(p), .. } if p == me),
            "{err}"
        );
        let text = err.to_string();
        assert!(
            text.contains(&format!("datadir {} is in use", dir.path().display()))
                && text.contains(&format!("pid {me}")),
            "{text}"
        );
    }
    drop(first);
    Store::open(dir.path(), opts()).expect("reopens once the first store is dropped");
}

#[test]
fn a_directory_holding_only_a_lock_file_is_created_into() {
    // What a creation that failed after taking the lock leaves behind.
    let (genesis, _, _) = common::chain(common::spec(5, 10, 4), 0, 0);
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(dir.path().join(LOCK_FILE), b"12345\n").expect("write");
    let store = Store::open_or_create(dir.path(), &genesis, opts()).expect("created");
    assert_eq!(store.head().expect("head").number, 0);
}
