//! `opentact provision`: point a number at a hosted XML flow straight in the store.

use std::process::ExitCode;

use anyhow::Context;
use opentact_store::{
    AccountRepo, AppMode, LeasePatch, LeaseRepo, NewAccount, NewLease, NewSipControlApp, NumberInventory,
    NumberRepo, SipControlAppRepo, Store,
};

use crate::cli::ProvisionArgs;
use crate::config::Config;

/// Open the configured store (the SQLite file under the data directory by default).
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let data_dir = &config.server.data_dir;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating the data directory {}", data_dir.display()))?;
    // A directory made before (or by another tool) may be readable by others: the database and
    // keys inside are not for them.
    #[cfg(unix)]
    std::fs::set_permissions(data_dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .with_context(|| format!("restricting the data directory {} to its owner", data_dir.display()))?;
    let url = config
        .store
        .url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", data_dir.join("opentact.db").display()));
    Store::open(&url).await.context("opening the store")
}

/// `opentact provision`.
pub async fn run(args: ProvisionArgs) -> anyhow::Result<ExitCode> {
    let mut config = Config::load(args.config.as_deref())?;
    if let Some(data_dir) = args.data_dir {
        config.server.data_dir = data_dir;
    }
    let xml =
        std::fs::read_to_string(&args.xml).with_context(|| format!("reading {}", args.xml.display()))?;
    if let Err(errors) = opentact_xml::parse(&xml) {
        anyhow::bail!("{}: {errors}", args.xml.display());
    }
    anyhow::ensure!(
        (10_000_000_000..=999_999_999_999_999).contains(&args.tn),
        "--tn {}: give the number with its country code",
        args.tn
    );
    let store = open_store(&config).await?;
    let now = chrono::Utc::now();
    if store.get_number(args.tn).await?.is_none() {
        store
            .upsert_numbers(&[NumberInventory {
                tn: args.tn,
                npa: i32::try_from((args.tn / 10_000_000) % 1000).unwrap_or(0),
                state: None,
                voice: true,
                sms: true,
                available: true,
                created_on: now,
                modified_on: now,
            }])
            .await?;
    }
    let account = match store.account_by_email(&args.email).await? {
        Some(account) => account,
        None => {
            let password = opentact_store::secret::new_token()?[..24].to_owned();
            let account = store
                .create_account(NewAccount {
                    name: args.email.clone(),
                    email: args.email.clone(),
                    password: password.clone(),
                    time_zone: "UTC".to_owned(),
                })
                .await?;
            eprintln!("created account {} with password {password} (shown once)", args.email);
            account
        }
    };
    let app = store
        .create_app(
            account.uuid,
            NewSipControlApp {
                name: format!("{} for {}", args.xml.display(), args.tn),
                mode: AppMode::Xml { document: xml },
                auto_answer: true,
                max_call_length_min: 240,
                event_url: None,
                shaken: Default::default(),
            },
        )
        .await?;
    let lease = match store.lease_by_tn(args.tn).await? {
        Some(lease) if lease.account == account.uuid => lease,
        Some(_) => anyhow::bail!("{} is leased by another account", args.tn),
        None => {
            store
                .lease_tn(account.uuid, NewLease { tn: args.tn, voice: true, sms: true, autorenew: true })
                .await?
        }
    };
    store
        .update_lease(
            account.uuid,
            lease.uuid,
            LeasePatch { sip_control_app: Some(Some(app.uuid)), ..Default::default() },
        )
        .await?;
    store.close().await;
    println!("{} now runs {} (app {})", args.tn, args.xml.display(), app.uuid);
    Ok(ExitCode::SUCCESS)
}
