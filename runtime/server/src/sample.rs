//! The sample data a fresh platform starts with, so a newcomer can place a call at once: an
//! inventory of fictional numbers (+1 202 555 0100 to 0199), a demo account, and its number
//! +1 202 555 0100 answered by an IVR written in the XML dialect.

use anyhow::Context;
use opentact_store::{
    AccountRepo, AppMode, LeasePatch, LeaseRepo, NewAccount, NewLease, NewSipControlApp, NumberInventory,
    NumberRepo, SipControlAppRepo, Store,
};
use tracing::info;

/// The demo account's e-mail.
pub const SAMPLE_EMAIL: &str = "demo@opentact.local";
/// The number the sample app answers.
pub const SAMPLE_TN: i64 = 12_025_550_100;

/// The sample app's flow: a menu whose branches the SIP tests exercise.
pub const SAMPLE_IVR: &str = r#"<Response>
  <Answer/>
  <Say tag="welcome">Welcome to Opentact.</Say>
  <Gather dtmf_length="1" timeout="5000" tag="menu">
    <Say>Press 1 for sales, 2 for support.</Say>
    <DTMF value="1"><Say tag="sales">Connecting you to sales.</Say></DTMF>
    <DTMF value="2"><Say tag="support">Connecting you to support.</Say></DTMF>
    <Default><Say tag="no-input">We did not hear a choice.</Say></Default>
    <Error><Say tag="invalid">That is not an option.</Say></Error>
  </Gather>
  <Say>Goodbye.</Say>
  <Hangup/>
</Response>
"#;

/// The file under the data directory that holds the sample account's password when the log
/// is not a terminal.
pub const PASSWORD_FILE: &str = "sample-account-password";

/// Tells the operator the new sample account's password, once. At a terminal it is shown in
/// the log line; otherwise the log is a file or a journal that others may read, so the password
/// goes to a file only the operator can read (0600) and the log names the file.
pub fn announce_password(data_dir: &std::path::Path, password: &str) -> anyhow::Result<()> {
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        info!(
            email = SAMPLE_EMAIL,
            %password,
            "sample account created (the password is shown only now); call +1 202 555 0100 to hear its IVR"
        );
        return Ok(());
    }
    let path = data_dir.join(PASSWORD_FILE);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&path).with_context(|| format!("creating {}", path.display()))?;
    std::io::Write::write_all(&mut file, format!("{password}\n").as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    info!(
        email = SAMPLE_EMAIL,
        password_file = %path.display(),
        "sample account created (its password is in the file, readable by this user only); call +1 202 555 0100 to hear its IVR"
    );
    Ok(())
}

/// Seed the store when it has no demo account yet; returns the password of a new account.
pub async fn seed(store: &Store) -> anyhow::Result<Option<String>> {
    if store.account_by_email(SAMPLE_EMAIL).await?.is_some() {
        return Ok(None);
    }
    let now = chrono::Utc::now();
    let inventory: Vec<NumberInventory> = (SAMPLE_TN..SAMPLE_TN + 100)
        .map(|tn| NumberInventory {
            tn,
            npa: 202,
            state: Some("DC".to_owned()),
            voice: true,
            sms: true,
            available: true,
            created_on: now,
            modified_on: now,
        })
        .collect();
    store.upsert_numbers(&inventory).await.context("loading the sample number inventory")?;
    // A fresh random password, shown once in the log (the store keeps only its hash).
    let password = opentact_store::secret::new_token()?[..24].to_owned();
    let account = store
        .create_account(NewAccount {
            name: "Demo".to_owned(),
            email: SAMPLE_EMAIL.to_owned(),
            password: password.clone(),
            time_zone: "America/New_York".to_owned(),
        })
        .await
        .context("creating the demo account")?;
    let app = store
        .create_app(
            account.uuid,
            NewSipControlApp {
                name: "Sample IVR".to_owned(),
                mode: AppMode::Xml { document: SAMPLE_IVR.to_owned() },
                auto_answer: true,
                max_call_length_min: 60,
                event_url: None,
                shaken: Default::default(),
            },
        )
        .await
        .context("creating the sample app")?;
    let lease = store
        .lease_tn(account.uuid, NewLease { tn: SAMPLE_TN, voice: true, sms: true, autorenew: true })
        .await
        .context("leasing the sample number")?;
    store
        .update_lease(
            account.uuid,
            lease.uuid,
            LeasePatch { sip_control_app: Some(Some(app.uuid)), ..LeasePatch::default() },
        )
        .await
        .context("pointing the sample number at the sample app")?;
    info!(email = SAMPLE_EMAIL, number = SAMPLE_TN, app = %app.uuid, "sample account created");
    Ok(Some(password))
}
