//! The operator's NPA-NXX data (county, rate center, line type and carrier of numbers), kept
//! in the database so every node reads the same: `opentact admin telecom import <file>` puts
//! a file's rows in place of the old ones, each node loads them at start and again within
//! `[telecom] refresh_secs` of an import. `[telecom] npanxx` names a file imported at start
//! when it differs from the last import (a single node's shortcut).

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use opentact_numbers::exchanges::{Exchange, Exchanges};
use opentact_store::{ExchangeRow, Store, TelecomImport, TelecomRepo};
use sha2::Digest;
use tracing::{info, warn};

/// What a file holds, checked, and its digest.
pub struct TelecomFile {
    pub rows: Vec<ExchangeRow>,
    pub digest: String,
    pub source: String,
}

/// Read and check `path` (the first bad line is named).
pub fn read(path: &Path) -> anyhow::Result<TelecomFile> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the NPA-NXX data {}", path.display()))?;
    let data = Exchanges::from_csv(&text)
        .with_context(|| format!("the NPA-NXX data {} is invalid", path.display()))?;
    let rows = data
        .rows()
        .map(|((npa, nxx, block), row)| ExchangeRow {
            npa,
            nxx,
            block,
            state: row.state.clone(),
            county: row.county.clone(),
            rate_center: row.rate_center.clone(),
            time_zone: row.time_zone.clone(),
            line_type: row.line_type.clone(),
            carrier: row.carrier.clone(),
            ocn: row.ocn.clone(),
        })
        .collect();
    let digest = sha2::Sha256::digest(text.as_bytes()).iter().map(|byte| format!("{byte:02x}")).collect();
    let source = path
        .file_name()
        .map_or_else(|| path.display().to_string(), |name| name.to_string_lossy().into_owned());
    Ok(TelecomFile { rows, digest, source })
}

/// Import `file` into the store, in place of what was there.
pub async fn import(store: &Store, file: &TelecomFile) -> anyhow::Result<TelecomImport> {
    store.replace_exchanges(&file.rows, &file.digest, &file.source).await.context("storing the NPA-NXX data")
}

/// `[telecom] npanxx` at start: imported unless the last import was this very file.
pub async fn import_if_changed(store: &Store, path: &Path) -> anyhow::Result<()> {
    let file = read(path)?;
    let last = store.telecom_import().await.context("reading the last NPA-NXX import")?;
    if last.is_some_and(|last| last.digest == file.digest) {
        return Ok(());
    }
    let imported = import(store, &file).await?;
    info!(rows = imported.rows, source = %imported.source, "NPA-NXX data imported");
    Ok(())
}

/// Install the stored rows for number lookups; the import they came from.
pub async fn load(store: &Store) -> anyhow::Result<Option<TelecomImport>> {
    let import = store.telecom_import().await.context("reading the last NPA-NXX import")?;
    let rows = store.exchanges().await.context("reading the NPA-NXX data")?;
    opentact_numbers::install_exchanges(Exchanges::from_rows(rows.into_iter().map(|row| {
        let exchange = Exchange {
            state: row.state,
            county: row.county,
            rate_center: row.rate_center,
            time_zone: row.time_zone,
            line_type: row.line_type,
            carrier: row.carrier,
            ocn: row.ocn,
        };
        ((row.npa, row.nxx, row.block), exchange)
    })));
    Ok(import)
}

/// Reload the data whenever another import is recorded (checked every `every`), starting from
/// `current` (what [`load`] installed).
pub async fn keep_current(store: Store, mut current: Option<TelecomImport>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let last = match store.telecom_import().await {
            Ok(last) => last,
            Err(error) => {
                warn!(%error, "checking for new NPA-NXX data");
                continue;
            }
        };
        if last.as_ref().map(|last| &last.digest) == current.as_ref().map(|current| &current.digest) {
            continue;
        }
        match load(&store).await {
            Ok(loaded) => {
                let rows = loaded.as_ref().map_or(0, |import| import.rows);
                info!(rows, "new NPA-NXX data loaded");
                current = loaded;
            }
            Err(error) => warn!(%error, "loading new NPA-NXX data"),
        }
    }
}
