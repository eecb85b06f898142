//! Writes test accounts, numbers, apps and SIP users straight into a data directory's store,
//! before `opentact serve` opens it (the REST API does this for real users).

use std::path::Path;

use opentact_store::{
    AccountRepo, AppMode, DigestCredentials, LeasePatch, LeaseRepo, NewAccount, NewLease, NewSipControlApp,
    NewSipDomain, NewSipUser, NewTnProfile, NumberInventory, NumberRepo, SipConnectionRepo,
    SipControlAppRepo, SipDomainRepo, Store, TnProfileRepo,
};
use uuid::Uuid;

/// What was created.
#[derive(Debug, Clone)]
pub struct Provisioned {
    pub account: Uuid,
    pub app: Uuid,
    pub tn: i64,
}

async fn open(data: &Path) -> Store {
    std::fs::create_dir_all(data).expect("data dir");
    Store::open(&format!("sqlite://{}?mode=rwc", data.join("opentact.db").display())).await.expect("store")
}

/// An account with the tests' password (`correct horse battery staple`) and nothing else.
pub async fn account(data: &Path, email: &str) -> Uuid {
    let store = open(data).await;
    let account = store
        .create_account(NewAccount {
            name: email.to_owned(),
            email: email.to_owned(),
            password: "correct horse battery staple".to_owned(),
            time_zone: "UTC".to_owned(),
        })
        .await
        .expect("account");
    store.close().await;
    account.uuid
}

/// Puts `tn` in the number inventory (voice and SMS capable, available).
async fn in_inventory(store: &Store, tn: i64) {
    let now = chrono::Utc::now();
    store
        .upsert_numbers(&[NumberInventory {
            tn,
            npa: i32::try_from((tn / 10_000_000) % 1000).expect("npa"),
            state: None,
            voice: true,
            sms: true,
            available: true,
            created_on: now,
            modified_on: now,
        }])
        .await
        .expect("inventory");
}

/// An account whose number `tn` runs `mode`.
pub async fn number_with_app(data: &Path, email: &str, tn: i64, mode: AppMode) -> Provisioned {
    let store = open(data).await;
    let provisioned = number_with_app_in(&store, email, tn, mode).await;
    store.close().await;
    provisioned
}

/// [`number_with_app`] in an open store (a PostgreSQL several nodes share).
pub async fn number_with_app_in(store: &Store, email: &str, tn: i64, mode: AppMode) -> Provisioned {
    in_inventory(store, tn).await;
    let account = match store.account_by_email(email).await.expect("lookup") {
        Some(account) => account,
        None => store
            .create_account(NewAccount {
                name: email.to_owned(),
                email: email.to_owned(),
                password: "correct horse battery staple".to_owned(),
                time_zone: "UTC".to_owned(),
            })
            .await
            .expect("account"),
    };
    let app = store
        .create_app(
            account.uuid,
            NewSipControlApp {
                name: format!("app for {tn}"),
                mode,
                auto_answer: true,
                max_call_length_min: 10,
                event_url: None,
                shaken: Default::default(),
            },
        )
        .await
        .expect("app");
    let lease = store
        .lease_tn(account.uuid, NewLease { tn, voice: true, sms: false, autorenew: false })
        .await
        .expect("lease");
    store
        .update_lease(
            account.uuid,
            lease.uuid,
            LeasePatch { sip_control_app: Some(Some(app.uuid)), ..Default::default() },
        )
        .await
        .expect("attach app");
    Provisioned { account: account.uuid, app: app.uuid, tn }
}

/// An XML app on `tn`.
pub async fn xml_number(data: &Path, email: &str, tn: i64, xml: &str) -> Provisioned {
    number_with_app(data, email, tn, AppMode::Xml { document: xml.to_owned() }).await
}

/// A component app on `tn`, with `wasm` deployed as its current version.
pub async fn component_number(data: &Path, email: &str, tn: i64, wasm: &[u8]) -> Provisioned {
    let provisioned = number_with_app(data, email, tn, AppMode::Component).await;
    let store = open(data).await;
    let version =
        store.add_component_version(provisioned.account, provisioned.app, wasm).await.expect("version");
    store.set_current_component(provisioned.account, provisioned.app, version.uuid).await.expect("deploy");
    store.close().await;
    provisioned
}

/// A component app on `tn` with `wasm` deployed, and SMS enabled on the number (in an approved
/// 10DLC campaign), so the component's `handle-sms` runs for the number's inbound SMS.
pub async fn component_sms_number(data: &Path, email: &str, tn: i64, wasm: &[u8]) -> Provisioned {
    let provisioned = component_number(data, email, tn, wasm).await;
    let store = open(data).await;
    let lease = store.lease_by_tn(tn).await.expect("lease lookup").expect("the lease");
    store
        .update_lease(provisioned.account, lease.uuid, LeasePatch { sms: Some(true), ..Default::default() })
        .await
        .expect("enable SMS");
    approved_campaign(&store, provisioned.account, lease.uuid).await;
    store.close().await;
    provisioned
}

/// The platform's default SIP domain (`sip.domain`).
pub const PLATFORM_SIP_DOMAIN: &str = "sip.opentact.local";

/// A SIP domain `label` of `account` with one user `login` / `password`; returns the user's
/// full domain (`<label>.sip.opentact.local`).
pub async fn sip_user(data: &Path, account: Uuid, label: &str, login: &str, password: &str) -> String {
    let store = open(data).await;
    let domain = format!("{label}.{PLATFORM_SIP_DOMAIN}");
    let domain = domain.as_str();
    let created = store
        .create_domain(account, NewSipDomain { name: label.to_owned(), app: None, event_url: None })
        .await
        .expect("domain");
    store
        .create_sip_user(
            account,
            created.uuid,
            NewSipUser {
                credentials: DigestCredentials::new(login, password, domain, domain),
                is_active: true,
                tn_lease: None,
                same_domain_calls_only: false,
                event_url: None,
            },
        )
        .await
        .expect("user");
    store.close().await;
    domain.to_owned()
}

/// Another user in the existing domain `label` of `account`.
pub async fn sip_user_in(data: &Path, account: Uuid, label: &str, login: &str, password: &str) {
    let store = open(data).await;
    let domain = format!("{label}.{PLATFORM_SIP_DOMAIN}");
    let existing = store.domain_by_name(label).await.expect("lookup").expect("the domain exists");
    store
        .create_sip_user(
            account,
            existing.uuid,
            NewSipUser {
                credentials: DigestCredentials::new(login, password, &domain, &domain),
                is_active: true,
                tn_lease: None,
                same_domain_calls_only: false,
                event_url: None,
            },
        )
        .await
        .expect("user");
    store.close().await;
}

/// Keeps the user `login` of the domain `label` to calls within its domain.
pub async fn keep_to_domain(data: &Path, account: Uuid, label: &str, login: &str) {
    let store = open(data).await;
    let user = store.sip_user_by_login(label, login).await.expect("lookup").expect("the user exists");
    store
        .update_sip_user(
            account,
            user.uuid,
            opentact_store::SipUserPatch { same_domain_calls_only: Some(true), ..Default::default() },
        )
        .await
        .expect("restrict");
    store.close().await;
}

/// A TN profile with caller-ID lists, applied to the account's number `tn`.
pub async fn caller_lists(data: &Path, account: Uuid, tn: i64, blacklist: &[&str], whitelist: &[&str]) {
    let store = open(data).await;
    let profile = store
        .create_tn_profile(
            account,
            NewTnProfile {
                name: format!("lists for {tn}"),
                blacklist: blacklist.iter().map(|s| (*s).to_owned()).collect(),
                whitelist: whitelist.iter().map(|s| (*s).to_owned()).collect(),
            },
        )
        .await
        .expect("profile");
    let lease = store.lease_by_tn(tn).await.expect("lookup").expect("leased");
    store
        .update_lease(
            account,
            lease.uuid,
            LeasePatch { tn_profile: Some(Some(profile.uuid)), ..Default::default() },
        )
        .await
        .expect("attach profile");
    store.close().await;
}

/// A SIP connection of `account` with subdomain `label` and digest credentials.
pub async fn connection_with_credentials(
    data: &Path,
    account: Uuid,
    label: &str,
    login: &str,
    password: &str,
) {
    let store = open(data).await;
    let realm = format!("{label}.{PLATFORM_SIP_DOMAIN}");
    store
        .create_connection(
            account,
            opentact_store::NewSipConnection {
                name: format!("{label} PBX"),
                subdomain: Some(label.to_owned()),
                ip: None,
                port: None,
                is_active: true,
                credentials: Some(DigestCredentials::new(login, password, &realm, &realm)),
                outbound_voice_profile: None,
                ..opentact_store::NewSipConnection::default()
            },
        )
        .await
        .expect("connection");
    store.close().await;
}

/// A SIP connection of `account` recognised by its address `ip` (no credentials).
pub async fn connection_with_ip(data: &Path, account: Uuid, ip: &str) {
    let store = open(data).await;
    store
        .create_connection(
            account,
            opentact_store::NewSipConnection {
                name: format!("PBX at {ip}"),
                subdomain: None,
                ip: Some(ip.to_owned()),
                port: None,
                is_active: true,
                credentials: None,
                outbound_voice_profile: None,
                ..opentact_store::NewSipConnection::default()
            },
        )
        .await
        .expect("connection");
    store.close().await;
}

/// `account` leases `tn` (voice) and assigns it to a new IP connection, the PBX at `ip:port`:
/// calls to the number go to that PBX (SIP trunking).
pub async fn number_on_connection(data: &Path, account: Uuid, tn: i64, ip: &str, port: u16) {
    let store = open(data).await;
    in_inventory(&store, tn).await;
    let connection = store
        .create_connection(
            account,
            opentact_store::NewSipConnection {
                name: format!("PBX at {ip}:{port}"),
                ip: Some(ip.to_owned()),
                port: Some(i32::from(port)),
                is_active: true,
                ..opentact_store::NewSipConnection::default()
            },
        )
        .await
        .expect("connection");
    let lease = store
        .lease_tn(account, NewLease { tn, voice: true, sms: false, autorenew: false })
        .await
        .expect("lease");
    store
        .update_lease(
            account,
            lease.uuid,
            LeasePatch { sip_connection: Some(Some(connection.uuid)), ..Default::default() },
        )
        .await
        .expect("assign the number to the connection");
    store.close().await;
}

/// A new account leasing `tn`, with SMS enabled on the lease or not; returns the account. An
/// SMS-enabled number is also put in an approved 10DLC campaign, as a US long code must be to
/// send (the 10DLC refusal itself is tested in runtime/api/tests/tendlc.rs and
/// tests/cli_client.rs).
pub async fn sms_number(data: &Path, email: &str, tn: i64, sms: bool) -> Uuid {
    let account = account(data, email).await;
    let store = open(data).await;
    in_inventory(&store, tn).await;
    let lease =
        store.lease_tn(account, NewLease { tn, voice: true, sms, autorenew: false }).await.expect("lease");
    if sms {
        approved_campaign(&store, account, lease.uuid).await;
    }
    store.close().await;
    account
}

/// Puts the lease in a new approved 10DLC campaign of a new brand of the account.
pub async fn approved_campaign(store: &Store, account: Uuid, lease: Uuid) -> Uuid {
    use opentact_store::{BrandEntityType, CampaignDecision, NewTenDlcBrand, NewTenDlcCampaign, TenDlcRepo};
    let text = |s: &str| s.to_owned();
    let brand = store
        .create_brand(
            account,
            NewTenDlcBrand {
                legal_name: text("Test Co"),
                dba_name: None,
                entity_type: BrandEntityType::PrivateProfit,
                ein: text("12-3456789"),
                country: text("US"),
                vertical: text("TECHNOLOGY"),
                website: None,
                street: text("1 Main St"),
                city: text("Washington"),
                state: text("DC"),
                postal_code: text("20001"),
                contact_name: text("Test Ops"),
                contact_email: text("ops@test.example.com"),
                contact_phone: text("12025550199"),
            },
        )
        .await
        .expect("brand");
    let campaign = store
        .create_campaign(
            account,
            NewTenDlcCampaign {
                brand: brand.uuid,
                use_case: text("MIXED"),
                description: text("Messages the end-to-end tests send and receive."),
                message_flow: text("The tests' handsets opted in when they were provisioned."),
                sample_messages: vec![
                    text("Test Co: hello from the tests."),
                    text("Test Co: a second sample."),
                ],
                opt_in_message: text("Test Co: you are subscribed."),
                opt_out_message: text("Test Co: you are unsubscribed."),
                help_message: text("Test Co: help at ops@test.example.com."),
                embedded_links: false,
                embedded_phone: false,
            },
        )
        .await
        .expect("campaign");
    store.assign_campaign_numbers(account, campaign.uuid, &[lease], &[]).await.expect("assign");
    store.decide_campaign(campaign.uuid, CampaignDecision::Approve).await.expect("approve");
    campaign.uuid
}

/// The call log (CDRs) of `account` in the data directory's store, as the platform wrote it.
pub async fn call_log(data: &Path, account: Uuid) -> opentact_store::List<opentact_store::CallRecord> {
    let store = open(data).await;
    let calls = opentact_store::CallLogRepo::search_calls(
        &store,
        account,
        opentact_store::CallFilter::default(),
        opentact_store::ListParams::default(),
    )
    .await
    .expect("call log");
    store.close().await;
    calls
}

/// Gives the SIP user `login` of the domain `label` the account's leased number `tn` (its
/// caller ID and SMS sender).
pub async fn give_number(data: &Path, account: Uuid, label: &str, login: &str, tn: i64) {
    let store = open(data).await;
    let user = store.sip_user_by_login(label, login).await.expect("lookup").expect("the user exists");
    let lease = store.lease_by_tn(tn).await.expect("lookup").expect("leased");
    store
        .update_sip_user(
            account,
            user.uuid,
            opentact_store::SipUserPatch { tn_lease: Some(Some(lease.uuid)), ..Default::default() },
        )
        .await
        .expect("give the number");
    store.close().await;
}
