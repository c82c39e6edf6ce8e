//! What `Store::open` refuses at start-up, and what it tightens.

use std::os::unix::fs::PermissionsExt as _;

use livestack_store::{Store, StoreError};

fn refused(dir: &std::path::Path) -> String {
    match Store::open(dir) {
        Err(e @ StoreError::Refused { .. }) => e.to_string(),
        Err(e) => panic!("refused for the wrong reason: {e}"),
        Ok(_) => panic!("opened a database it should refuse"),
    }
}

#[test]
fn an_empty_database_file_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(dir.path().join("livestack.db"), b"").expect("write");
    assert!(refused(dir.path()).contains("empty file"));
}

#[test]
fn another_programs_sqlite_file_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let conn = rusqlite::Connection::open(dir.path().join("livestack.db")).expect("open");
    conn.execute_batch("CREATE TABLE photos (id INTEGER PRIMARY KEY)")
        .expect("create");
    drop(conn);
    assert!(refused(dir.path()).contains("another program"));
}

#[test]
fn a_database_of_a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    drop(Store::open(dir.path()).expect("a new database"));
    let conn = rusqlite::Connection::open(dir.path().join("livestack.db")).expect("open");
    conn.execute(
        "INSERT INTO schema_migrations (version, applied_at) VALUES (9999, 0)",
        [],
    )
    .expect("insert");
    drop(conn);
    assert!(refused(dir.path()).contains("newer livestack"));
}

#[test]
fn a_data_dir_open_to_others_is_tightened_to_0700() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).expect("mkdir");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    drop(Store::open(&data).expect("open"));
    let mode = std::fs::metadata(&data).expect("stat").permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
}

#[test]
fn the_offline_commands_never_create_a_data_dir() {
    let dir = tempfile::tempdir().expect("tmp");
    let missing = dir.path().join("livestack-data");
    assert!(matches!(
        Store::open_existing(&missing, None),
        Err(StoreError::Refused { .. })
    ));
    assert!(!missing.exists(), "nothing was created");
}
