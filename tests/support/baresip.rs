//! Starting baresip phones reliably next to other test processes.

use std::path::Path;
use std::time::Duration;

/// Starts a phone with `launch` until one is ready, and returns it. `launch` must pick fresh
/// ports each time and send baresip's output to `<dir>/baresip.log`.
///
/// Ports come from binding port 0 and releasing it; another test process may bind the same port
/// before baresip does, and baresip then exits with "Address already in use". Such a phone is
/// started again (at most 5 times); a phone that exits for another reason, or is not ready
/// within 10 s, fails the test with its log.
pub async fn until_ready(
    dir: &Path,
    mut launch: impl FnMut() -> tokio::process::Child,
) -> tokio::process::Child {
    for _ in 0..5 {
        let mut phone = launch();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let log = std::fs::read_to_string(dir.join("baresip.log")).unwrap_or_default();
            if log.contains("baresip is ready") {
                return phone;
            }
            if phone.try_wait().expect("baresip's status").is_some() {
                assert!(log.contains("Address already in use"), "baresip exited:\n{log}");
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "baresip did not start:\n{log}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    panic!("baresip found no free port in 5 tries");
}
