//! The SQLite file is private: created 0600 (its -wal and -shm too), and a
//! file open to others draws a warning at start.

use crate::helpers::{captured_logs, spawn_app_with, PASSWORD};

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// SQLite whatever backend the suite runs on: the files are what is tested.
fn sqlite_url(dir: &tempfile::TempDir) -> (std::path::PathBuf, String) {
    let path = dir.path().join("private.db");
    let url = format!("sqlite://{}?mode=rwc", path.display());
    (path, url)
}

#[tokio::test]
async fn a_fresh_sqlite_database_and_its_wal_and_shm_files_are_readable_by_the_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    let (path, url) = sqlite_url(&dir);
    let app = spawn_app_with(|c| c.database_url = url.into()).await;
    // A write, so the WAL holds data.
    let body = app
        .gql(
            None,
            "mutation($i: RegisterInput!) { register(input: $i) { accessToken } }",
            serde_json::json!({ "i": { "email": "private@example.com", "password": PASSWORD } }),
        )
        .await;
    assert!(
        body["data"]["register"]["accessToken"].is_string(),
        "{body}"
    );
    for suffix in ["", "-wal", "-shm"] {
        let file = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
        assert_eq!(
            mode(&file),
            0o600,
            "{} is {:o}",
            file.display(),
            mode(&file)
        );
    }
    assert!(
        !captured_logs()
            .lines()
            .any(|l| l.contains("WARN") && l.contains(&path.display().to_string())),
        "a private file drew a warning"
    );
}

#[tokio::test]
async fn start_up_warns_when_the_database_file_is_readable_by_others() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let (path, url) = sqlite_url(&dir);
    std::fs::write(&path, b"").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let app = spawn_app_with(|c| c.database_url = url.into()).await;
    let response = app
        .client
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let logs = captured_logs();
    let warning = logs
        .lines()
        .find(|l| l.contains("WARN") && l.contains(&path.display().to_string()))
        .unwrap_or_else(|| panic!("no warning names {}", path.display()));
    assert!(warning.contains("644"), "{warning}");
    // Warden warns; it does not change an operator's file behind their back.
    assert_eq!(mode(&path), 0o644);
}
