//! What uploads may cost the host: compiles a few at a time within a time limit, compiled
//! components in a bounded LRU, and the disk cache of precompiled files bounded in size.

use std::sync::Arc;

use opentact_flows::{FlowHost, HostConfig, HostError};

const GUESTS: [&str; 4] = ["hello", "gather-park", "log-flood", "trap"];

fn host(config: HostConfig) -> Arc<FlowHost> {
    Arc::new(FlowHost::new(HostConfig { max_concurrent_calls: 4, ..config }).expect("host starts"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compiles_run_under_the_permits() {
    let host = host(HostConfig { max_concurrent_compiles: 1, ..HostConfig::default() });
    let loads = GUESTS.map(|guest| {
        let host = host.clone();
        tokio::spawn(async move { host.load_component_async(opentact_guest_artifacts::bytes(guest)).await })
    });
    for load in loads {
        load.await.expect("joined").expect("loads");
    }
    assert_eq!(host.stats().compiled, 4);
    assert_eq!(host.peak_concurrent_compiles(), 1, "more compiles ran at once than the permits");
    // Cached: no permit, no compile.
    host.load_component_async(opentact_guest_artifacts::bytes("hello")).await.expect("cached");
    assert_eq!((host.stats().compiled, host.stats().memory_hits), (4, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compile_over_the_time_limit_fails_and_the_next_waits_at_most_as_long() {
    // No real component compiles in 1 ms.
    let host =
        host(HostConfig { max_concurrent_compiles: 1, compile_timeout_ms: 1, ..HostConfig::default() });
    let slow = host.load_component_async(opentact_guest_artifacts::bytes("hello")).await;
    let error = slow.expect_err("a compile over the limit");
    assert!(matches!(error, HostError::CompileTimeout { limit_ms: 1 }), "{error:?}");
    assert!(error.to_string().contains("flows.compile_timeout_ms"), "{error}");
    // The abandoned compile still holds the one permit: the next upload is told to come back.
    let busy = host.load_component_async(opentact_guest_artifacts::bytes("gather-park")).await;
    let error = busy.expect_err("no permit within the limit");
    assert!(matches!(error, HostError::CompileBusy { running: 1, .. }), "{error:?}");
    assert!(error.to_string().contains("flows.max_concurrent_compiles"), "{error}");
    // What the abandoned compile produced is not kept.
    for _ in 0..600 {
        if host.compiles_running() == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!((host.compiles_running(), host.stats().compiled), (0, 1));
    assert_eq!(host.cached_components(), 0);
}

#[test]
fn compiled_components_are_kept_in_a_bounded_lru() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = host(HostConfig {
        max_cached_components: 2,
        cache_dir: Some(dir.path().to_path_buf()),
        ..HostConfig::default()
    });
    for guest in &GUESTS[..3] {
        host.load_component(&opentact_guest_artifacts::bytes(guest)).expect("loads");
    }
    assert_eq!(host.cached_components(), 2);
    assert_eq!(host.stats().compiled, 3);
    // The first was dropped from memory: it comes back from the disk cache, not from memory.
    host.load_component(&opentact_guest_artifacts::bytes(GUESTS[0])).expect("loads again");
    assert_eq!((host.stats().memory_hits, host.stats().loaded_from_disk), (0, 1));
    assert_eq!(host.cached_components(), 2);
}

#[test]
fn the_disk_cache_stays_under_its_size() {
    let dir = tempfile::tempdir().expect("tempdir");
    let size = || -> u64 {
        std::fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("entry").metadata().expect("meta").len())
            .sum()
    };
    let budget: u64 = 1024 * 1024;
    let host = host(HostConfig {
        cache_dir: Some(dir.path().to_path_buf()),
        cache_dir_max_mib: 1,
        ..HostConfig::default()
    });
    let mut written = 0;
    for guest in GUESTS {
        let before = size();
        host.load_component(&opentact_guest_artifacts::bytes(guest)).expect("loads");
        written += size().saturating_sub(before).max(1);
        assert!(size() <= budget, "{} bytes on disk, over 1 MiB", size());
    }
    let _ = written;
}
