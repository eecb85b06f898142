//! `opentact admin …`: the operator's tools, on the store directly (like `numbers import`), so
//! they need the server's configuration and no account. `admin 10dlc` lists the campaigns
//! accounts registered and approves or rejects them; a US long code sends application-to-person
//! SMS only in an approved campaign (the messaging crate's `tendlc` check). `admin account`
//! creates accounts and credits their balances; `admin telecom import` loads the NPA-NXX data.

use std::process::ExitCode;

use anyhow::Context;
use opentact_store::{
    CampaignDecision, CampaignState, ListParams, MAX_TAKE, StoreError, TenDlcCampaign, TenDlcRepo,
};

use crate::cli::{
    AdminAccountCommand, AdminCommand, AdminTelecomCommand, AdminTenDlcCommand, CampaignStateArg, StoreArgs,
};
use crate::config::Config;

/// Longest excerpt of a campaign's description `list` prints, characters.
const DESCRIPTION_EXCERPT: usize = 60;

/// Runs one `opentact admin` subcommand.
pub async fn run(command: AdminCommand) -> anyhow::Result<ExitCode> {
    match command {
        AdminCommand::TenDlc { command } => tendlc(command).await,
        AdminCommand::Account { command } => account(command).await,
        AdminCommand::Telecom { command: AdminTelecomCommand::Import(args) } => {
            let file = match crate::telecom::read(&args.file) {
                Ok(file) => file,
                Err(error) => {
                    eprintln!("error: {error:#}");
                    return Ok(ExitCode::from(2));
                }
            };
            let store = open(&args.store).await?;
            let imported = crate::telecom::import(&store, &file).await;
            store.close().await;
            let imported = imported?;
            println!("{} NPA-NXX rows imported from {}", imported.rows, imported.source);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Shortest password `admin account create` takes.
const MIN_PASSWORD: usize = 8;

async fn account(command: AdminAccountCommand) -> anyhow::Result<ExitCode> {
    use opentact_store::{AccountRepo, BillingRepo, NewAccount};
    match command {
        AdminAccountCommand::Create(args) => {
            if args.password.chars().count() < MIN_PASSWORD {
                anyhow::bail!("--password: at least {MIN_PASSWORD} characters");
            }
            if !args.email.contains('@') {
                anyhow::bail!("--email {:?}: an e-mail address", args.email);
            }
            let time_zone = args.time_zone.parse::<chrono_tz::Tz>().map_err(|_| {
                anyhow::anyhow!("--time-zone {:?}: an IANA time zone such as UTC", args.time_zone)
            })?;
            let store = open(&args.store).await?;
            let new = NewAccount {
                name: args.name.trim().to_owned(),
                email: args.email,
                password: args.password,
                time_zone: time_zone.name().to_owned(),
            };
            let created = store.create_account(new).await;
            store.close().await;
            match created {
                Ok(account) => {
                    println!("{}\t{}", account.uuid, account.email);
                    Ok(ExitCode::SUCCESS)
                }
                Err(error @ StoreError::Conflict { .. }) => {
                    eprintln!("error: {error}");
                    Ok(ExitCode::from(1))
                }
                Err(error) => Err(error).context("creating the account"),
            }
        }
        AdminAccountCommand::Credit(args) => {
            let (negative, digits) = match args.amount.trim().strip_prefix('-') {
                Some(digits) => (true, digits),
                None => (false, args.amount.trim()),
            };
            let micros =
                opentact_rating::parse_amount(digits).map_err(|e| anyhow::anyhow!("--amount: {e}"))?;
            let micros = if negative { -micros } else { micros };
            let store = open(&args.store).await?;
            let found = match args.account.parse::<uuid::Uuid>() {
                Ok(id) => store.get_account(id).await,
                Err(_) => store.account_by_email(&args.account).await,
            };
            let result = match found {
                Ok(Some(account)) => store.credit(account.uuid, micros, args.note.trim()).await.map(Some),
                Ok(None) => Ok(None),
                Err(error) => Err(error),
            };
            store.close().await;
            match result.context("crediting the account")? {
                Some(row) => {
                    println!(
                        "{}\t{}\tbalance {}",
                        row.account,
                        opentact_rating::format_amount(row.amount_micros),
                        opentact_rating::format_amount(row.balance_after_micros)
                    );
                    Ok(ExitCode::SUCCESS)
                }
                None => {
                    eprintln!("error: no account {}", args.account);
                    Ok(ExitCode::from(1))
                }
            }
        }
    }
}

async fn open(args: &StoreArgs) -> anyhow::Result<opentact_store::Store> {
    let mut config = Config::load(args.config.as_deref())?;
    if let Some(data_dir) = &args.data_dir {
        config.server.data_dir = data_dir.clone();
    }
    crate::provision::open_store(&config).await
}

/// One line of `list` and of a verdict: uuid, state, account, use case, numbers, and the
/// reason or the description's start.
fn line(c: &TenDlcCampaign) -> String {
    let numbers = if c.numbers.is_empty() {
        "-".to_owned()
    } else {
        c.numbers.iter().map(|n| n.tn.to_string()).collect::<Vec<_>>().join(",")
    };
    let note = match (&c.state, &c.reason) {
        (CampaignState::Rejected, Some(reason)) => format!("rejected: {reason}"),
        _ => {
            let mut excerpt: String = c.description.chars().take(DESCRIPTION_EXCERPT).collect();
            if c.description.chars().count() > DESCRIPTION_EXCERPT {
                excerpt.push('…');
            }
            excerpt
        }
    };
    format!("{}\t{}\t{}\t{}\t{numbers}\t{note}", c.uuid, c.state.as_str(), c.account, c.use_case)
}

async fn tendlc(command: AdminTenDlcCommand) -> anyhow::Result<ExitCode> {
    match command {
        AdminTenDlcCommand::List(args) => {
            let store = open(&args.store).await?;
            let state = args.state.map(|s| match s {
                CampaignStateArg::Pending => CampaignState::Pending,
                CampaignStateArg::Approved => CampaignState::Approved,
                CampaignStateArg::Rejected => CampaignState::Rejected,
            });
            let mut skip = 0;
            loop {
                let page = store
                    .all_campaigns(state, ListParams::page(MAX_TAKE, skip))
                    .await
                    .context("reading the campaigns")?;
                for c in &page.data {
                    println!("{}", line(c));
                }
                skip += MAX_TAKE;
                if page.data.is_empty() || i64::from(skip) >= page.total {
                    if page.total == 0 {
                        eprintln!(
                            "no campaign{}",
                            state.map(|s| format!(" is {}", s.as_str())).unwrap_or_default()
                        );
                    }
                    break;
                }
            }
            store.close().await;
            Ok(ExitCode::SUCCESS)
        }
        AdminTenDlcCommand::Approve(args) => {
            decide(&args.store, args.campaign, CampaignDecision::Approve).await
        }
        AdminTenDlcCommand::Reject(args) => {
            let reason = args.reason.trim();
            if reason.is_empty() {
                anyhow::bail!("--reason: say why, as the account will read it (what to correct)");
            }
            decide(&args.store, args.campaign, CampaignDecision::Reject { reason: reason.to_owned() }).await
        }
    }
}

async fn decide(
    store: &StoreArgs,
    campaign: uuid::Uuid,
    decision: CampaignDecision,
) -> anyhow::Result<ExitCode> {
    let store = open(store).await?;
    let result = store.decide_campaign(campaign, decision).await;
    store.close().await;
    match result {
        Ok(c) => {
            println!("{}", line(&c));
            Ok(ExitCode::SUCCESS)
        }
        Err(StoreError::NotFound { .. }) => {
            eprintln!("error: no campaign {campaign} (opentact admin 10dlc list shows them)");
            Ok(ExitCode::from(1))
        }
        Err(e) => Err(e).context("recording the verdict"),
    }
}
