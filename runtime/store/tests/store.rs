//! The backend-neutral suite: every case runs against SQLite (always) and PostgreSQL.
//!
//! PostgreSQL: `OPENTACT_TEST_PG_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`)
//! names a server where a fresh `opentact_test_<random>` database is created for each case and
//! dropped after it. If the server is unreachable the PostgreSQL half is skipped with a message,
//! except under `CI`, where that is a failure.

use std::future::Future;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use opentact_store::*;
use sqlx::Connection;
use uuid::Uuid;

const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// What a case gets: the store, and the URL for the raw-row assertions.
struct Ctx {
    store: Store,
    url: String,
}

async fn run<F, Fut>(name: &str, case: F) -> anyhow::Result<()>
where
    F: Fn(Ctx) -> Fut,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    // SQLite: a file in a directory that does not exist yet (open must create both).
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}/data/opentact.db?mode=rwc", dir.path().display());
    let store = Store::open(&url).await.context("open sqlite")?;
    assert_eq!(store.backend(), Backend::Sqlite);
    case(Ctx { store: store.clone(), url }).await.with_context(|| format!("{name} on SQLite"))?;
    store.close().await;

    // PostgreSQL.
    let admin_url = std::env::var("OPENTACT_TEST_PG_URL").unwrap_or_else(|_| DEFAULT_PG_URL.to_owned());
    let admin = tokio::time::timeout(Duration::from_secs(5), sqlx::PgConnection::connect(&admin_url)).await;
    let mut admin = match admin {
        Ok(Ok(conn)) => conn,
        failed => {
            let why = match failed {
                Ok(Err(e)) => e.to_string(),
                _ => "timed out".to_owned(),
            };
            if std::env::var_os("CI").is_some() {
                bail!("{name}: PostgreSQL at {admin_url} is unreachable ({why}) and CI is set");
            }
            eprintln!("SKIP {name} on PostgreSQL: {admin_url} unreachable ({why}); SQLite half passed");
            return Ok(());
        }
    };
    let db = format!("opentact_test_{}", Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}"))).execute(&mut admin).await?;
    let url = match admin_url.rfind('/') {
        Some(i) if i > "postgres://".len() => format!("{}/{db}", &admin_url[..i]),
        _ => bail!("OPENTACT_TEST_PG_URL must end in /<database>"),
    };
    let outcome = async {
        let store = Store::open(&url).await.context("open postgres")?;
        assert_eq!(store.backend(), Backend::Postgres);
        // Spawned so that a failed assertion still lets the database be dropped below.
        let result = tokio::spawn(case(Ctx { store: store.clone(), url: url.clone() })).await;
        store.close().await;
        anyhow::Ok(result)
    }
    .await;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")))
        .execute(&mut admin)
        .await?;
    match outcome? {
        Ok(result) => result.with_context(|| format!("{name} on PostgreSQL")),
        Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
        Err(join) => Err(join.into()),
    }
}

macro_rules! store_test {
    ($($name:ident),* $(,)?) => {
        mod both_backends {
            $(
                #[tokio::test]
                async fn $name() -> anyhow::Result<()> {
                    super::run(stringify!($name), super::$name).await
                }
            )*
        }
    };
}

store_test!(
    accounts_and_passwords,
    tokens_are_hashed,
    inventory_and_leases,
    account_isolation,
    paging_totals_and_order,
    apps_and_components,
    sip_domains_and_users,
    a_numbers_sip_user_is_found_by_its_lease,
    sip_connections,
    tn_profiles_and_caller_lists,
    outbound_voice_profiles,
    wildcard_number_search,
    invites_work_once_and_expire,
    batches_store_their_numbers_and_count_them,
    batch_states_and_cancel,
    outbox_rows_keep_their_order_across_chunks,
    outbox_writers_on_two_nodes_never_share_a_position,
    rows_made_in_one_millisecond_list_in_creation_order,
    finished_outbox_rows_are_purged,
    a_node_closes_only_its_own_abandoned_calls,
    signing_keys_are_sealed_at_rest,
    sms_messages_are_the_accounts_own,
    sms_queue_claims_attempts_and_receipts,
    sms_claims_never_overlap_and_expired_claims_follow_the_policy,
    inbound_sms_is_the_accounts_own_and_settles_once,
    recordings_are_counted_per_account_and_deleted_once,
    concurrent_uploads_never_pass_the_version_quota,
    balances_move_only_with_their_ledger,
    a_lease_is_charged_once_per_month_and_never_on_credit,
    telecom_data_is_replaced_whole,
);

// ---------------------------------------------------------------------------------------------
// helpers

async fn account(s: &Store, email: &str) -> anyhow::Result<Uuid> {
    let a = s
        .create_account(NewAccount {
            name: email.into(),
            email: email.into(),
            password: "correct horse battery".into(),
            time_zone: "America/New_York".into(),
        })
        .await?;
    Ok(a.uuid)
}

fn xml_app(name: &str) -> NewSipControlApp {
    NewSipControlApp {
        name: name.into(),
        mode: AppMode::Xml { document: "<Response><Hangup/></Response>".into() },
        auto_answer: true,
        max_call_length_min: 60,
        event_url: None,
        shaken: Default::default(),
    }
}

fn number(tn: i64, state: &str) -> NumberInventory {
    let t = opentact_store::model::now();
    NumberInventory {
        tn,
        npa: ((tn / 10_000_000) % 1000) as i32,
        state: Some(state.into()),
        voice: true,
        sms: tn % 2 == 0,
        available: true,
        created_on: t,
        modified_on: t,
    }
}

fn connection(name: &str, subdomain: Option<&str>, ip: Option<&str>) -> NewSipConnection {
    NewSipConnection {
        name: name.into(),
        subdomain: subdomain.map(Into::into),
        ip: ip.map(Into::into),
        port: Some(5060),
        is_active: true,
        credentials: None,
        outbound_voice_profile: None,
        ..NewSipConnection::default()
    }
}

fn sip_user(login: &str, domain: &str) -> NewSipUser {
    NewSipUser {
        credentials: DigestCredentials::new(login, "pw", "sip.opentact.test", domain),
        is_active: true,
        tn_lease: None,
        same_domain_calls_only: false,
        event_url: None,
    }
}

fn is_not_found<T: std::fmt::Debug>(r: Result<T>) -> bool {
    matches!(r, Err(StoreError::NotFound { .. }))
}

fn is_conflict<T: std::fmt::Debug>(r: Result<T>) -> bool {
    matches!(r, Err(StoreError::Conflict { .. }))
}

// ---------------------------------------------------------------------------------------------
// cases

async fn accounts_and_passwords(ctx: Ctx) -> anyhow::Result<()> {
    let s = &ctx.store;
    let id = account(s, "Ops@Acme.test").await?;
    let a = s.get_account(id).await?.context("created account")?;
    assert_eq!(a.email, "ops@acme.test");
    assert!(a.password_hash.starts_with("$argon2id$"), "{}", a.password_hash);
    assert!(!a.password_hash.contains("correct horse"));
    assert_eq!(a.created_on, a.modified_on);

    // Emails are unique, case-insensitively.
    let dup = s
        .create_account(NewAccount {
            name: "x".into(),
            email: "OPS@acme.test".into(),
            password: "p".into(),
            time_zone: "UTC".into(),
        })
        .await;
    assert!(is_conflict(dup));

    assert_eq!(s.verify_password("ops@acme.test", "correct horse battery").await?.map(|a| a.uuid), Some(id));
    assert!(s.verify_password("ops@acme.test", "wrong").await?.is_none());
    assert!(s.verify_password("nobody@acme.test", "correct horse battery").await?.is_none());

    s.set_password(id, "new password").await?;
    assert!(s.verify_password("ops@acme.test", "correct horse battery").await?.is_none());
    assert!(s.verify_password("ops@acme.test", "new password").await?.is_some());

    let a =
        s.update_account(id, AccountPatch { time_zone: Some("UTC".into()), ..Default::default() }).await?;
    assert_eq!(a.time_zone, "UTC");
    assert_eq!(s.get_account(id).await?.context("account")?.time_zone, "UTC");

    s.delete_account(id).await?;
    assert!(s.get_account(id).await?.is_none());
    assert!(s.verify_password("ops@acme.test", "new password").await?.is_none());
    assert!(is_not_found(s.delete_account(id).await));
    // The email is free again once the account is deleted.
    account(s, "ops@acme.test").await?;
    Ok(())
}

async fn tokens_are_hashed(ctx: Ctx) -> anyhow::Result<()> {
    let s = &ctx.store;
    let (a, b) = (account(s, "a@x.test").await?, account(s, "b@x.test").await?);
    let created = s.create_token(a, NewApiToken { name: "ci".into(), ttl_secs: Some(3600) }).await?;
    assert_eq!(created.plain.len(), 64);
    assert_eq!(created.token.token_hash, opentact_store::secret::sha256_hex(created.plain.as_bytes()));

    // The raw row holds the hash, never the plain token.
    let rows = raw_token_rows(&ctx).await?;
    assert_eq!(rows.len(), 1);
    for col in &rows[0] {
        assert!(!col.contains(&created.plain), "plain token stored in {col}");
    }
    assert!(rows[0].contains(&created.token.token_hash));

    let found = s.token_by_plain(&created.plain).await?.context("lookup by plain token")?;
    assert_eq!(found.uuid, created.token.uuid);
    assert_eq!(found.account, a);
    assert!(s.token_by_plain("not-a-token").await?.is_none());
    assert!(s.token_by_hash(&created.plain).await?.is_none(), "the plain token is not a key");

    assert!(matches!(
        s.create_token(a, NewApiToken { name: "bad".into(), ttl_secs: Some(0) }).await,
        Err(StoreError::Invalid { field: "ttl", .. })
    ));

    // Expired tokens do not authenticate.
    let old = s.create_token(a, NewApiToken { name: "old".into(), ttl_secs: Some(60) }).await?;
    raw_exec(&ctx, "UPDATE api_token SET expires_on = 1000 WHERE name = 'old'").await?;
    assert!(s.token_by_plain(&old.plain).await?.is_none());

    assert_eq!(s.list_tokens(a, ListParams::default()).await?.total, 2);
    assert_eq!(s.list_tokens(b, ListParams::default()).await?.total, 0);
    assert!(is_not_found(s.delete_token(b, created.token.uuid).await));
    assert!(s.token_by_plain(&created.plain).await?.is_some());
    s.delete_token(a, created.token.uuid).await?;
    assert!(s.token_by_plain(&created.plain).await?.is_none());
    assert_eq!(s.delete_all_tokens(b).await?, 0);
    assert_eq!(s.delete_all_tokens(a).await?, 1);
    Ok(())
}

async fn inventory_and_leases(ctx: Ctx) -> anyhow::Result<()> {
    let s = &ctx.store;
    let (a, b) = (account(s, "a@x.test").await?, account(s, "b@x.test").await?);
    let tns = [12029822917, 12029822918, 12129822919, 12129822920];
    let mut numbers: Vec<_> =
        tns.iter().map(|&tn| number(tn, if tn < 12100000000 { "DC" } else { "NY" })).collect();
    numbers.push(NumberInventory { available: false, ..number(13105550000, "CA") });
    s.upsert_numbers(&numbers).await?;
    s.upsert_numbers(&numbers[..1]).await?; // idempotent

    let dc = s
        .search_numbers(
            NumberFilter { state: Some("DC".into()), ..Default::default() },
            ListParams::default(),
        )
        .await?;
    assert_eq!((dc.total, dc.data.len()), (2, 2));
    let npa = s
        .search_numbers(
            NumberFilter { npa: Some(212), sms: true, ..Default::default() },
            ListParams::default(),
        )
        .await?;
    assert_eq!(npa.data.iter().map(|n| n.tn).collect::<Vec<_>>(), vec![12129822920]);
    let avail = NumberFilter { available_only: true, ..Default::default() };
    let pattern = NumberFilter { pattern: Some("***982291*".into()), ..Default::default() };
    let matched = s.search_numbers(pattern, ListParams::default()).await?;
    assert_eq!(
        matched.data.iter().map(|n| n.tn).collect::<Vec<_>>(),
        vec![12029822917, 12029822918, 12129822919]
    );
    assert_eq!(s.search_numbers(avail.clone(), ListParams::default()).await?.total, 4);

    let new = |tn| NewLease { tn, voice: true, sms: false, autorenew: true };
    let lease = s.lease_tn(a, new(12029822917)).await?;
    assert_eq!(lease.account, a);
    assert!(!s.get_number(12029822917).await?.context("number")?.available);
    assert_eq!(s.search_numbers(avail.clone(), ListParams::default()).await?.total, 3);

    // One lease per number, whoever asks.
    assert!(is_conflict(s.lease_tn(b, new(12029822917)).await));
    assert!(is_conflict(s.lease_tn(a, new(12029822917)).await));
    assert!(matches!(
        s.lease_tn(a, new(13105550000)).await,
        Err(StoreError::NumberUnavailable { tn: 13105550000 })
    ));
    assert!(matches!(
        s.lease_tn(a, new(19999999999)).await,
        Err(StoreError::NotFound { kind: ObjectKind::Number, .. })
    ));

    assert_eq!(s.lease_by_tn(12029822917).await?.map(|l| l.uuid), Some(lease.uuid));
    assert!(s.lease_by_tn(12029822918).await?.is_none());

    // Attach an app and a connection; another account's app is rejected.
    let app = s.create_app(a, xml_app("ivr")).await?;
    let conn = s.create_connection(a, connection("pbx", Some("acme"), None)).await?;
    let b_app = s.create_app(b, xml_app("theirs")).await?;
    let l = s
        .update_lease(
            a,
            lease.uuid,
            LeasePatch {
                sip_control_app: Some(Some(app.uuid)),
                sip_connection: Some(Some(conn.uuid)),
                sms: Some(true),
                ..Default::default()
            },
        )
        .await?;
    assert_eq!((l.sip_control_app, l.sip_connection, l.sms), (Some(app.uuid), Some(conn.uuid), true));
    assert_eq!(s.get_lease(a, lease.uuid).await?.as_ref(), Some(&l));
    let bad = s
        .update_lease(
            a,
            lease.uuid,
            LeasePatch { sip_control_app: Some(Some(b_app.uuid)), ..Default::default() },
        )
        .await;
    assert!(matches!(bad, Err(StoreError::NotFound { kind: ObjectKind::SipControlApp, .. })));
    let by_app = LeaseFilter { sip_control_app: Some(app.uuid), ..Default::default() };
    assert_eq!(s.list_leases(a, by_app, ListParams::default()).await?.total, 1);

    // Release: the number is free again and can be leased by someone else.
    let released = s.release_lease(a, lease.uuid).await?;
    assert!(released.released_on.is_some());
    assert!(is_not_found(s.release_lease(a, lease.uuid).await));
    assert!(is_not_found(s.update_lease(a, lease.uuid, LeasePatch::default()).await));
    assert!(s.get_number(12029822917).await?.context("number")?.available);
    assert!(s.lease_by_tn(12029822917).await?.is_none());
    let again = s.lease_tn(b, new(12029822917)).await?;
    assert_eq!(s.lease_by_tn(12029822917).await?.map(|l| l.account), Some(b));

    let list = |state| s.list_leases(a, LeaseFilter { state, ..Default::default() }, ListParams::default());
    assert_eq!(list(LeaseState::Active).await?.total, 0);
    assert_eq!(list(LeaseState::Released).await?.total, 1);
    assert_eq!(list(LeaseState::All).await?.total, 1);
    assert_eq!(
        s.list_leases(b, LeaseFilter::default(), ListParams::default()).await?.data[0].uuid,
        again.uuid
    );
    Ok(())
}

async fn account_isolation(ctx: Ctx) -> anyhow::Result<()> {
    let s = &ctx.store;
    let (a, b) = (account(s, "a@x.test").await?, account(s, "b@x.test").await?);
    s.upsert_numbers(&[number(12029822917, "DC")]).await?;
    let lease = s.lease_tn(a, NewLease { tn: 12029822917, voice: true, sms: true, autorenew: false }).await?;
    let app = s.create_app(a, xml_app("ivr")).await?;
    let conn = s.create_connection(a, connection("pbx", None, Some("192.0.2.10"))).await?;
    let domain = s.create_domain(a, NewSipDomain { name: "acme".into(), app: None, event_url: None }).await?;
    let user = s.create_sip_user(a, domain.uuid, sip_user("alice", "acme")).await?;
    let profile = s.create_tn_profile(a, NewTnProfile { name: "p".into(), ..Default::default() }).await?;
    let ovp = s.create_ovp(a, NewOutboundVoiceProfile { name: "o".into(), ..Default::default() }).await?;
    let version = s.add_component_version(a, app.uuid, b"\0asm").await?;

    // B reads nothing...
    assert!(s.get_lease(b, lease.uuid).await?.is_none());
    assert!(s.get_app(b, app.uuid).await?.is_none());
    assert!(s.get_connection(b, conn.uuid).await?.is_none());
    assert!(s.get_domain(b, domain.uuid).await?.is_none());
    assert!(s.get_sip_user(b, user.uuid).await?.is_none());
    assert!(s.get_tn_profile(b, profile.uuid).await?.is_none());
    assert!(s.get_ovp(b, ovp.uuid).await?.is_none());
    assert!(s.component_bytes(b, version.uuid).await?.is_none());
    assert!(is_not_found(s.list_component_versions(b, app.uuid).await));
    assert!(is_not_found(s.list_sip_users(b, domain.uuid, ListParams::default()).await));
    let p = ListParams::default();
    assert_eq!(s.list_leases(b, LeaseFilter::default(), p).await?.total, 0);
    assert_eq!(s.list_apps(b, p).await?.total, 0);
    assert_eq!(s.list_connections(b, p).await?.total, 0);
    assert_eq!(s.list_domains(b, p).await?.total, 0);
    assert_eq!(s.list_tn_profiles(b, p).await?.total, 0);
    assert_eq!(s.list_ovps(b, p).await?.total, 0);

    // ...updates nothing...
    assert!(is_not_found(
        s.update_lease(b, lease.uuid, LeasePatch { sms: Some(false), ..Default::default() }).await
    ));
    assert!(is_not_found(
        s.update_app(b, app.uuid, SipControlAppPatch { name: Some("x".into()), ..Default::default() }).await
    ));
    assert!(is_not_found(
        s.update_connection(
            b,
            conn.uuid,
            SipConnectionPatch { is_active: Some(false), ..Default::default() }
        )
        .await
    ));
    assert!(is_not_found(s.update_domain(b, domain.uuid, SipDomainPatch::default()).await));
    assert!(is_not_found(
        s.update_sip_user(b, user.uuid, SipUserPatch { is_active: Some(false), ..Default::default() }).await
    ));
    assert!(is_not_found(s.rename_tn_profile(b, profile.uuid, "x".into()).await));
    assert!(is_not_found(s.update_caller_list(b, profile.uuid, CallerList::Black, &["1".into()], &[]).await));
    assert!(is_not_found(s.update_ovp(b, ovp.uuid, OutboundVoiceProfilePatch::default()).await));
    assert!(is_not_found(s.add_component_version(b, app.uuid, b"x").await));
    assert!(is_not_found(s.set_current_component(b, app.uuid, version.uuid).await));
    assert!(is_not_found(s.create_sip_user(b, domain.uuid, sip_user("mallory", "acme")).await));

    // ...deletes nothing.
    assert!(is_not_found(s.release_lease(b, lease.uuid).await));
    assert!(is_not_found(s.delete_app(b, app.uuid).await));
    assert!(is_not_found(s.delete_connection(b, conn.uuid).await));
    assert!(is_not_found(s.delete_domain(b, domain.uuid).await));
    assert!(is_not_found(s.delete_sip_user(b, user.uuid).await));
    assert!(is_not_found(s.delete_tn_profile(b, profile.uuid).await));
    assert!(is_not_found(s.delete_ovp(b, ovp.uuid).await));

    // And A's objects are all intact.
    assert_eq!(s.get_lease(a, lease.uuid).await?.as_ref(), Some(&lease));
    assert_eq!(s.get_app(a, app.uuid).await?.map(|x| x.name), Some("ivr".into()));
    assert!(s.get_connection(a, conn.uuid).await?.context("conn")?.is_active);
    assert!(s.get_sip_user(a, user.uuid).await?.context("user")?.is_active);
    assert_eq!(s.component_bytes(a, version.uuid).await?.as_deref(), Some(&b"\0asm"[..]));

    // Nor can B point its own objects at A's.
    let b_domain =
        s.create_domain(b, NewSipDomain { name: "bee".into(), app: None, event_url: None }).await?;
    assert!(is_not_found(
        s.update_domain(b, b_domain.uuid, SipDomainPatch { app: Some(Some(app.uuid)), event_url: None })
            .await
    ));
    assert!(is_not_found(
        s.create_sip_user(
            b,
            b_domain.uuid,
            NewSipUser { tn_lease: Some(lease.uuid), ..sip_user("bob", "bee") }
        )
        .await
    ));
    assert!(is_not_found(
        s.create_connection(
            b,
            NewSipConnection { outbound_voice_profile: Some(ovp.uuid), ..connection("c", None, None) }
        )
        .await
    ));
    Ok(())
}

async fn paging_totals_and_order(ctx: Ctx) -> anyhow::Result<()> {
    let s = &ctx.store;
    let (a, b) = (account(s, "a@x.test").await?, account(s, "b@x.test").await?);
    for i in 0..7 {
        s.create_app(a, xml_app(&format!("app{i}"))).await?;
        // Distinct created_on values, so the order is by time, not only by the id tie-break.
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    s.create_app(b, xml_app("other")).await?;
    let names = |l: List<SipControlApp>| l.data.into_iter().map(|a| a.name).collect::<Vec<_>>();

    let p1 = s.list_apps(a, ListParams::page(3, 0)).await?;
    assert_eq!((p1.total, p1.take, p1.skip), (7, 3, 0));
    assert_eq!(names(p1), ["app0", "app1", "app2"]);
    assert_eq!(names(s.list_apps(a, ListParams::page(3, 3)).await?), ["app3", "app4", "app5"]);
    let last = s.list_apps(a, ListParams::page(3, 6)).await?;
    assert_eq!((last.total, last.data.len()), (7, 1));
    let past = s.list_apps(a, ListParams::page(3, 10)).await?;
    assert_eq!((past.total, past.data.len()), (7, 0));
    let desc = s.list_apps(a, ListParams { take: 2, skip: 0, order: Order::Desc }).await?;
    assert_eq!(names(desc), ["app6", "app5"]);
    let huge = s.list_apps(a, ListParams::page(u32::MAX, 0)).await?;
    assert_eq!(huge.data.len(), 7);

    // Soft-deleted objects leave the totals.
    let first = s.list_apps(a, ListParams::page(1, 0)).await?.data.remove(0);
    s.delete_app(a, first.uuid).await?;
    assert_eq!(s.list_apps(a, ListParams::default()).await?.total, 6);
    Ok(())
}

async fn apps_and_components(ctx: Ctx) -> anyhow::Result<()> {
    let s = &ctx.store;
    let a = account(s, "a@x.test").await?;
    let modes = [
        AppMode::Xml { document: "<Response/>".into() },
        AppMode::Webhook {
            url: "https://example.test/flow".into(),
            method: WebhookMethod::Post,
            timeout_ms: 5000,
        },
        AppMode::Async,
        AppMode::Component,
    ];
    for mode in modes.clone() {
        let app = s
            .create_app(
                a,
                NewSipControlApp { mode, event_url: Some("https://e.test".into()), ..xml_app("m") },
            )
            .await?;
        assert_eq!(s.get_app(a, app.uuid).await?.as_ref(), Some(&app));
    }
    assert!(matches!(
        s.create_app(a, NewSipControlApp { max_call_length_min: 0, ..xml_app("bad") }).await,
        Err(StoreError::Invalid { field: "max_call_length_min", .. })
    ));

    let app = s.create_app(a, xml_app("ivr")).await?;
    let updated = s
        .update_app(
            a,
            app.uuid,
            SipControlAppPatch {
                mode: Some(modes[1].clone()),
                event_url: Some(None),
                name: Some("ivr2".into()),
                ..Default::default()
            },
        )
        .await?;
    assert_eq!(updated.mode, modes[1]);
    assert!(updated.modified_on >= app.modified_on);
    assert_eq!(s.get_app(a, app.uuid).await?.as_ref(), Some(&updated));

    let v1 = s.add_component_version(a, app.uuid, b"first").await?;
    let v2 = s.add_component_version(a, app.uuid, b"second!").await?;
    assert_eq!((v1.version, v2.version), (1, 2));
    assert_eq!(v2.size, 7);
    assert_eq!(v2.sha256, opentact_store::secret::sha256_hex(b"second!"));
    assert_eq!(s.get_app(a, app.uuid).await?.context("app")?.current_component, Some(v2.uuid));
    let versions = s.list_component_versions(a, app.uuid).await?;
    assert_eq!(versions, vec![v2.clone(), v1.clone()]);
    assert_eq!(s.component_bytes(a, v1.uuid).await?.as_deref(), Some(&b"first"[..]));
    let rolled = s.set_current_component(a, app.uuid, v1.uuid).await?;
    assert_eq!(rolled.current_component, Some(v1.uuid));
    assert!(is_not_found(s.set_current_component(a, app.uuid, Uuid::new_v4()).await));

    // Deleting the app detaches it from leases and domains.
    s.upsert_numbers(&[number(12029822917, "DC")]).await?;
    let lease =
        s.lease_tn(a, NewLease { tn: 12029822917, voice: true, sms: false, autorenew: false }).await?;
    s.update_lease(a, lease.uuid, LeasePatch { sip_control_app: Some(Some(app.uuid)), ..Default::default() })
        .await?;
    let domain = s
        .create_domain(a, NewSipDomain { name: "acme".into(), app: Some(app.uuid), event_url: None })
        .await?;
    s.delete_app(a, app.uuid).await?;
    assert!(s.get_app(a, app.uuid).await?.is_none());
    assert!(is_not_found(s.delete_app(a, app.uuid).await));
    assert_eq!(s.get_lease(a, lease.uuid).await?.context("lease")?.sip_control_app, None);
    assert_eq!(s.get_domain(a, domain.uuid).await?.context("domain")?.app, None);
    assert!(s.component_bytes(a, v1.uuid).await?.is_none());
    Ok(())
}

async fn sip_domains_and_users(ctx: Ctx) -> anyhow::Result<()> {
    let s = &ctx.store;
    let (a, b) = (account(s, "a@x.test").await?, account(s, "b@x.test").await?);
    let acme = s.create_domain(a, NewSipDomain { name: "acme".into(), app: None, event_url: None }).await?;
    // Domain names are unique across accounts.
    assert!(is_conflict(
        s.create_domain(b, NewSipDomain { name: "acme".into(), app: None, event_url: None }).await
    ));
    assert!(matches!(
        s.create_domain(a, NewSipDomain { name: "Not A Label".into(), app: None, event_url: None }).await,
        Err(StoreError::Invalid { field: "name", .. })
    ));
    let other = s.create_domain(a, NewSipDomain { name: "other".into(), app: None, event_url: None }).await?;
    // Event webhooks per domain and per user: stored, read back by the routing lookups, removed.
    let hook = Some("https://hooks.example.com/acme".to_owned());
    let hooked = s
        .update_domain(a, acme.uuid, SipDomainPatch { event_url: Some(hook.clone()), ..Default::default() })
        .await?;
    assert_eq!((hooked.event_url.clone(), hooked.app), (hook.clone(), None));
    assert_eq!(s.domain_by_name("acme").await?.context("acme")?.event_url, hook);
    let cleared =
        s.update_domain(a, acme.uuid, SipDomainPatch { event_url: Some(None), ..Default::default() }).await?;
    assert_eq!(cleared.event_url, None);
    assert_eq!(s.get_domain(a, acme.uuid).await?.context("acme")?.event_url, None);
    let hooked = s
        .create_domain(a, NewSipDomain { name: "hooked".into(), app: None, event_url: hook.clone() })
        .await?;
    assert_eq!(s.get_domain(a, hooked.uuid).await?.context("hooked")?.event_url, hook);
    let user_hook = Some("https://hooks.example.com/zed".to_owned());
    let zed = s
        .create_sip_user(
            a,
            hooked.uuid,
            NewSipUser { event_url: user_hook.clone(), ..sip_user("zed", "hooked") },
        )
        .await?;
    assert_eq!(s.sip_user_by_login("hooked", "zed").await?.context("zed")?.event_url, user_hook);
    let zed =
        s.update_sip_user(a, zed.uuid, SipUserPatch { event_url: Some(None), ..Default::default() }).await?;
    assert_eq!(zed.event_url, None);
    assert_eq!(s.get_sip_user(a, zed.uuid).await?.context("zed")?.event_url, None);

    let alice = s.create_sip_user(a, acme.uuid, sip_user("alice", "acme.sip.opentact.test")).await?;
    // One login per domain; the same login in another domain is fine.
    assert!(is_conflict(s.create_sip_user(a, acme.uuid, sip_user("alice", "acme")).await));
    s.create_sip_user(a, other.uuid, sip_user("alice", "other")).await?;

    let expected = DigestCredentials::new("alice", "pw", "sip.opentact.test", "acme.sip.opentact.test");
    assert_eq!(alice.ha1, expected.ha1);
    assert_ne!(alice.ha1, alice.ha1b);
    let found = s.sip_user_by_login("acme", "alice").await?.context("user by login")?;
    assert_eq!(found, alice);
    assert!(s.sip_user_by_login("acme", "bob").await?.is_none());
    assert_eq!(s.domain_by_name("acme").await?.map(|d| d.uuid), Some(acme.uuid));
    // REST authentication by HA1B: exact hash (any case), active users only.
    assert_eq!(s.sip_user_by_ha1b(&alice.ha1b).await?.map(|u| u.uuid), Some(alice.uuid));
    assert_eq!(s.sip_user_by_ha1b(&alice.ha1b.to_ascii_uppercase()).await?.map(|u| u.uuid), Some(alice.uuid));
    assert!(s.sip_user_by_ha1b(&alice.ha1).await?.is_none(), "HA1 is not HA1B");

    let new_creds = DigestCredentials::new("alice", "pw2", "sip.opentact.test", "acme");
    let u = s
        .update_sip_user(
            a,
            alice.uuid,
            SipUserPatch {
                credentials: Some(new_creds.clone()),
                is_active: Some(false),
                ..Default::default()
            },
        )
        .await?;
    assert_eq!((u.ha1.as_str(), u.is_active), (new_creds.ha1.as_str(), false));
    assert!(s.sip_user_by_ha1b(&u.ha1b).await?.is_none(), "an inactive user cannot use the API");
    assert!(matches!(
        s.update_sip_user(
            a,
            alice.uuid,
            SipUserPatch {
                credentials: Some(DigestCredentials::new("eve", "p", "r", "d")),
                ..Default::default()
            }
        )
        .await,
        Err(StoreError::Invalid { field: "login", .. })
    ));
    assert_eq!(s.list_sip_users(a, acme.uuid, ListParams::default()).await?.total, 1);

    // Soft delete frees the login, then the name.
    s.delete_sip_user(a, alice.uuid).await?;
    assert!(s.get_sip_user(a, alice.uuid).await?.is_none());
    assert!(s.sip_user_by_login("acme", "alice").await?.is_none());
    let alice2 = s.create_sip_user(a, acme.uuid, sip_user("alice", "acme")).await?;
    s.delete_domain(a, acme.uuid).await?;
    assert!(s.get_sip_user(a, alice2.uuid).await?.is_none(), "users go with their domain");
    assert!(s.domain_by_name("acme").await?.is_none());
    let reborn = s.create_domain(b, NewSipDomain { name: "acme".into(), app: None, event_url: None }).await?;
    assert_eq!(s.domain_by_name("acme").await?.map(|d| d.account), Some(reborn.account));
    Ok(())
}

async fn a_numbers_sip_user_is_found_by_its_lease(ctx: Ctx) -> anyhow::Result<()> {
    let s = &ctx.store;
    let (a, b) = (account(s, "a@x.test").await?, account(s, "b@x.test").await?);
    s.upsert_numbers(&[number(12025550170, "DC"), number(12025550171, "DC")]).await?;
    let lease = s.lease_tn(a, NewLease { tn: 12025550170, voice: true, sms: true, autorenew: false }).await?;
    let other = s.lease_tn(a, NewLease { tn: 12025550171, voice: true, sms: true, autorenew: false }).await?;
    let acme = s.create_domain(a, NewSipDomain { name: "acme".into(), app: None, event_url: None }).await?;
    assert!(s.sip_user_of_lease(a, lease.uuid).await?.is_none(), "nobody has the number yet");
    s.create_sip_user(a, acme.uuid, sip_user("bob", "acme")).await?;
    let alice = s
        .create_sip_user(a, acme.uuid, NewSipUser { tn_lease: Some(lease.uuid), ..sip_user("alice", "acme") })
        .await?;
    let (domain, found) = s.sip_user_of_lease(a, lease.uuid).await?.context("alice has the number")?;
    assert_eq!((domain.as_str(), found.uuid), ("acme", alice.uuid));
    assert!(s.sip_user_of_lease(a, other.uuid).await?.is_none(), "another number is nobody's");
    assert!(s.sip_user_of_lease(b, lease.uuid).await?.is_none(), "another account never sees it");
    // An inactive user does not take the number's SMS; a deleted domain takes its users along.
    s.update_sip_user(a, alice.uuid, SipUserPatch { is_active: Some(false), ..Default::default() }).await?;
    assert!(s.sip_user_of_lease(a, lease.uuid).await?.is_none(), "alice is inactive");
    s.update_sip_user(a, alice.uuid, SipUserPatch { is_active: Some(true), ..Default::default() }).await?;
    assert!(s.sip_user_of_lease(a, lease.uuid).await?.is_some());
    s.delete_domain(a, acme.uuid).await?;
    assert!(s.sip_user_of_lease(a, lease.uuid).await?.is_none(), "the domain is gone");
    Ok(())
}

async fn sip_connections(ctx: Ctx) -> anyhow::Result<()> {
    let s = &ctx.store;
    let (a, b) = (account(s, "a@x.test").await?, account(s, "b@x.test").await?);
    let ovp = s.create_ovp(a, NewOutboundVoiceProfile { name: "o".into(), ..Default::default() }).await?;
    let c = s
        .create_connection(
            a,
            NewSipConnection {
                credentials: Some(DigestCredentials::new("trunk", "pw", "acme.sip.test", "acme.sip.test")),
                outbound_voice_profile: Some(ovp.uuid),
                ..connection("pbx", Some("acme"), Some("192.0.2.10"))
            },
        )
        .await?;
    assert_eq!(s.get_connection(a, c.uuid).await?.as_ref(), Some(&c));
    assert_eq!(c.login.as_deref(), Some("trunk"));
    assert!(is_conflict(s.create_connection(b, connection("dup", Some("acme"), None)).await));

    let theirs = s.create_connection(b, connection("carrier", None, Some("192.0.2.10"))).await?;
    // Both accounts' connections at that address (created in the same millisecond, they may
    // list in either order: ties of created_on fall to the random id).
    let by_ip = s.connections_by_ip("192.0.2.10").await?;
    let mut found: Vec<Uuid> = by_ip.iter().map(|c| c.uuid).collect();
    let mut expected = vec![c.uuid, theirs.uuid];
    found.sort();
    expected.sort();
    assert_eq!(found, expected);
    s.update_connection(b, theirs.uuid, SipConnectionPatch { is_active: Some(false), ..Default::default() })
        .await?;
    assert_eq!(s.connections_by_ip("192.0.2.10").await?.len(), 1);
    assert!(s.connections_by_ip("198.51.100.1").await?.is_empty());
    assert_eq!(s.connection_by_subdomain("acme").await?.map(|c| c.uuid), Some(c.uuid));
    assert!(s.connection_by_subdomain("nobody").await?.is_none());

    let moved = s
        .update_connection(
            a,
            c.uuid,
            SipConnectionPatch {
                ip: Some(Some("192.0.2.11".into())),
                credentials: Some(None),
                ..Default::default()
            },
        )
        .await?;
    assert_eq!(
        (moved.ip.as_deref(), moved.login.as_deref(), moved.ha1.as_deref()),
        (Some("192.0.2.11"), None, None)
    );
    assert!(is_conflict(
        s.update_connection(
            b,
            theirs.uuid,
            SipConnectionPatch { subdomain: Some(Some("acme".into())), ..Default::default() }
        )
        .await
    ));

    // Deleting the profile detaches it; deleting the connection frees its subdomain.
    s.delete_ovp(a, ovp.uuid).await?;
    assert_eq!(s.get_connection(a, c.uuid).await?.context("conn")?.outbound_voice_profile, None);
    s.delete_connection(a, c.uuid).await?;
    assert!(s.get_connection(a, c.uuid).await?.is_none());
    s.create_connection(b, connection("now mine", Some("acme"), None)).await?;
    Ok(())
}

async fn tn_profiles_and_caller_lists(ctx: Ctx) -> anyhow::Result<()> {
    let s = &ctx.store;
    let a = account(s, "a@x.test").await?;
    let p = s
        .create_tn_profile(
            a,
            NewTnProfile { name: "front desk".into(), blacklist: vec!["1900".into()], whitelist: vec![] },
        )
        .await?;
    assert_eq!(p.blacklist, ["1900"]);
    assert!(p.admits("12025550100"));
    assert!(!p.admits("19005550100"));

    let p = s.update_caller_list(a, p.uuid, CallerList::White, &["1202".into(), "1212".into()], &[]).await?;
    assert_eq!(p.whitelist, ["1202", "1212"]);
    assert!(p.admits("12025550100"));
    assert!(!p.admits("13105550100"));
    let p = s.update_caller_list(a, p.uuid, CallerList::White, &["1202".into()], &["1212".into()]).await?;
    assert_eq!(p.whitelist, ["1202"]);
    let p = s.update_caller_list(a, p.uuid, CallerList::Black, &[], &["1900".into()]).await?;
    assert!(p.blacklist.is_empty());
    assert!(matches!(
        s.update_caller_list(a, p.uuid, CallerList::Black, &["+1900".into()], &[]).await,
        Err(StoreError::Invalid { .. })
    ));

    let renamed = s.rename_tn_profile(a, p.uuid, "lobby".into()).await?;
    assert_eq!((renamed.name.as_str(), renamed.whitelist.len()), ("lobby", 1));
    let second = s.create_tn_profile(a, NewTnProfile { name: "second".into(), ..Default::default() }).await?;
    let all = s.list_tn_profiles(a, ListParams::default()).await?;
    assert_eq!(all.total, 2);
    assert_eq!(all.data[0].whitelist, ["1202"]);
    assert!(all.data[1].whitelist.is_empty());

    s.upsert_numbers(&[number(12029822917, "DC")]).await?;
    let lease =
        s.lease_tn(a, NewLease { tn: 12029822917, voice: true, sms: false, autorenew: false }).await?;
    s.update_lease(a, lease.uuid, LeasePatch { tn_profile: Some(Some(second.uuid)), ..Default::default() })
        .await?;
    s.delete_tn_profile(a, second.uuid).await?;
    assert!(s.get_tn_profile(a, second.uuid).await?.is_none());
    assert_eq!(s.get_lease(a, lease.uuid).await?.context("lease")?.tn_profile, None);
    Ok(())
}

async fn outbound_voice_profiles(ctx: Ctx) -> anyhow::Result<()> {
    let s = &ctx.store;
    let a = account(s, "a@x.test").await?;
    let o = s
        .create_ovp(
            a,
            NewOutboundVoiceProfile {
                name: "default".into(),
                channel_limit: Some(10),
                calls_per_second: Some(5),
                max_rate_micros: Some(15_000),
                daily_spend_limit_micros: Some(50_000_000),
                record_calls: true,
                shaken_sign_policy: ShakenSignPolicy::Off,
            },
        )
        .await?;
    assert_eq!(s.get_ovp(a, o.uuid).await?.as_ref(), Some(&o));
    let u = s
        .update_ovp(
            a,
            o.uuid,
            OutboundVoiceProfilePatch {
                channel_limit: Some(None),
                record_calls: Some(false),
                ..Default::default()
            },
        )
        .await?;
    assert_eq!((u.channel_limit, u.record_calls, u.max_rate_micros), (None, false, Some(15_000)));
    assert_eq!(u.calls_per_second, Some(5), "a patch without it keeps it");
    let u = s
        .update_ovp(
            a,
            o.uuid,
            OutboundVoiceProfilePatch { calls_per_second: Some(None), ..Default::default() },
        )
        .await?;
    assert_eq!(u.calls_per_second, None);
    let u = s
        .update_ovp(
            a,
            o.uuid,
            OutboundVoiceProfilePatch { calls_per_second: Some(Some(20)), ..Default::default() },
        )
        .await?;
    assert_eq!(u.calls_per_second, Some(20));
    assert_eq!(s.get_ovp(a, o.uuid).await?.as_ref(), Some(&u));
    assert_eq!(s.list_ovps(a, ListParams::default()).await?.total, 1);
    s.delete_ovp(a, o.uuid).await?;
    assert!(s.get_ovp(a, o.uuid).await?.is_none());
    assert_eq!(s.list_ovps(a, ListParams::default()).await?.total, 0);
    Ok(())
}

/// An account with a voice lease, an outbound voice profile and an XML app, for batches.
async fn batch_fixture(s: &Store, email: &str, tn: i64) -> anyhow::Result<(Uuid, TnLease, Uuid, Uuid)> {
    let a = account(s, email).await?;
    s.upsert_numbers(&[number(tn, "DC")]).await?;
    let lease = s.lease_tn(a, NewLease { tn, voice: true, sms: false, autorenew: false }).await?;
    let ovp = s.create_ovp(a, NewOutboundVoiceProfile { name: "bulk".into(), ..Default::default() }).await?;
    let app = s.create_app(a, xml_app("ivr")).await?;
    Ok((a, lease, ovp.uuid, app.uuid))
}

fn new_batch(lease: &TnLease, phones: Vec<String>) -> NewBatch {
    NewBatch {
        outbound_voice_profile: None,
        tn_lease: lease.uuid,
        from_tn: lease.tn,
        xml: Some("<Response><Say>Hello</Say></Response>".into()),
        sip_control_app: None,
        ring_timeout_secs: 30,
        phones,
    }
}

async fn batches_store_their_numbers_and_count_them(ctx: Ctx) -> anyhow::Result<()> {
    let s = &ctx.store;
    let (a, lease, ovp, app) = batch_fixture(s, "a@x.test", 12029822917).await?;
    // More than one insert statement's worth of numbers.
    let phones: Vec<String> = (0..1203).map(|i| format!("1415555{i:04}")).collect();
    let created = s
        .create_batch(
            a,
            NewBatch {
                outbound_voice_profile: Some(ovp),
                xml: None,
                sip_control_app: Some(app),
                ring_timeout_secs: 20,
                ..new_batch(&lease, phones.clone())
            },
        )
        .await?;
    assert_eq!(
        (created.state, created.total, created.queued, created.calling),
        (BatchState::Queued, 1203, 1203, 0)
    );
    assert_eq!((created.from_tn, created.ring_timeout_secs), (12029822917, 20));
    assert_eq!(s.get_batch(a, created.uuid).await?.as_ref(), Some(&created), "read back as created");
    let items = s.batch_items(created.uuid).await?;
    assert_eq!(items.len(), 1203);
    assert!(
        items.iter().enumerate().all(|(i, item)| item.position as usize == i
            && item.phone == phones[i]
            && item.state == BatchItemState::Queued
            && item.call.is_none()
            && item.started_on.is_none()),
        "positions follow the list, every item queued"
    );

    // The runner's updates: None leaves a field as it is.
    let call = Uuid::new_v4();
    let started = now();
    s.update_batch_item(
        created.uuid,
        0,
        BatchItemUpdate {
            call: Some(call),
            started_on: Some(started),
            ..BatchItemUpdate::state(BatchItemState::Calling)
        },
    )
    .await?;
    s.update_batch_item(created.uuid, 0, BatchItemUpdate::state(BatchItemState::Answered)).await?;
    let ended = now();
    s.update_batch_item(
        created.uuid,
        0,
        BatchItemUpdate {
            q850_cause: Some(16),
            ended_on: Some(ended),
            ..BatchItemUpdate::state(BatchItemState::Completed)
        },
    )
    .await?;
    s.update_batch_item(
        created.uuid,
        1,
        BatchItemUpdate {
            q850_cause: Some(17),
            reason: Some("user busy".into()),
            ..BatchItemUpdate::state(BatchItemState::Busy)
        },
    )
    .await?;
    s.update_batch_item(created.uuid, 2, BatchItemUpdate::state(BatchItemState::NoAnswer)).await?;
    s.update_batch_item(created.uuid, 3, BatchItemUpdate::state(BatchItemState::Failed)).await?;
    s.update_batch_item(created.uuid, 4, BatchItemUpdate::state(BatchItemState::Calling)).await?;
    s.update_batch_item(created.uuid, 1202, BatchItemUpdate::state(BatchItemState::Answered)).await?;
    assert!(is_not_found(
        s.update_batch_item(created.uuid, 1203, BatchItemUpdate::state(BatchItemState::Failed)).await
    ));
    assert!(is_not_found(
        s.update_batch_item(Uuid::new_v4(), 0, BatchItemUpdate::state(BatchItemState::Failed)).await
    ));

    let items = s.batch_items(created.uuid).await?;
    let first = &items[0];
    assert_eq!(
        (first.state, first.call, first.q850_cause, first.started_on, first.ended_on),
        (BatchItemState::Completed, Some(call), Some(16), Some(started), Some(ended)),
        "{first:?}"
    );
    assert_eq!((items[1].state, items[1].reason.as_deref()), (BatchItemState::Busy, Some("user busy")));
    let b = s.get_batch(a, created.uuid).await?.context("batch")?;
    assert_eq!(
        [b.total, b.queued, b.calling, b.answered, b.completed, b.busy, b.no_answer, b.failed],
        [1203, 1197, 1, 1, 1, 1, 1, 1]
    );
    assert!(b.modified_on >= created.modified_on);

    // Another account sees none of it, nor can it use A's lease, profile or app.
    let (other, other_lease, _, _) = batch_fixture(s, "b@x.test", 12029822918).await?;
    assert!(s.get_batch(other, created.uuid).await?.is_none());
    assert_eq!(s.list_batches(other, 50, 0).await?.total, 0);
    assert!(is_not_found(s.cancel_batch(other, created.uuid).await));
    assert!(is_not_found(s.create_batch(other, new_batch(&lease, vec!["12025550100".into()])).await));
    for bad in [
        NewBatch { outbound_voice_profile: Some(ovp), ..new_batch(&other_lease, vec!["12025550100".into()]) },
        NewBatch {
            xml: None,
            sip_control_app: Some(app),
            ..new_batch(&other_lease, vec!["12025550100".into()])
        },
    ] {
        assert!(is_not_found(s.create_batch(other, bad).await));
    }
    // Exactly one flow, at least one number.
    let both = NewBatch { sip_control_app: Some(app), ..new_batch(&lease, vec!["12025550100".into()]) };
    assert!(matches!(s.create_batch(a, both).await, Err(StoreError::Invalid { .. })));
    let neither = NewBatch { xml: None, ..new_batch(&lease, vec!["12025550100".into()]) };
    assert!(matches!(s.create_batch(a, neither).await, Err(StoreError::Invalid { .. })));
    assert!(matches!(
        s.create_batch(a, new_batch(&lease, Vec::new())).await,
        Err(StoreError::Invalid { .. })
    ));

    // Paging, oldest first.
    let mut ids = vec![created.uuid];
    for i in 0..4 {
        tokio::time::sleep(Duration::from_millis(3)).await;
        ids.push(s.create_batch(a, new_batch(&lease, vec![format!("1202555010{i}")])).await?.uuid);
    }
    let page = s.list_batches(a, 2, 1).await?;
    assert_eq!((page.take, page.skip, page.total), (2, 1, 5));
    assert_eq!(page.data.iter().map(|b| b.uuid).collect::<Vec<_>>(), ids[1..3].to_vec());
    assert_eq!(page.data[0].total, 1, "listed batches have their counts");
    assert_eq!(s.list_batches(a, 5000, -3).await?.take, MAX_TAKE);
    Ok(())
}

async fn batch_states_and_cancel(ctx: Ctx) -> anyhow::Result<()> {
    let s = &ctx.store;
    let (a, lease, _, _) = batch_fixture(s, "a@x.test", 12029822917).await?;
    let (b, other_lease, _, _) = batch_fixture(s, "b@x.test", 12029822918).await?;
    let first = s.create_batch(a, new_batch(&lease, vec!["12025550100".into()])).await?;
    tokio::time::sleep(Duration::from_millis(3)).await;
    let second = s.create_batch(b, new_batch(&other_lease, vec!["12025550101".into()])).await?;
    tokio::time::sleep(Duration::from_millis(3)).await;
    let third = s.create_batch(a, new_batch(&lease, vec!["12025550102".into()])).await?;
    let unfinished = |v: Vec<Batch>| v.into_iter().map(|b| b.uuid).collect::<Vec<_>>();
    assert_eq!(
        unfinished(s.unfinished_batches().await?),
        vec![first.uuid, second.uuid, third.uuid],
        "every account's, oldest first"
    );

    s.set_batch_state(first.uuid, BatchState::Running).await?;
    assert_eq!(s.get_batch(a, first.uuid).await?.context("first")?.state, BatchState::Running);
    s.set_batch_state(first.uuid, BatchState::Completed).await?;
    assert!(is_not_found(s.set_batch_state(Uuid::new_v4(), BatchState::Running).await));
    // A completed batch cannot be cancelled, and stays completed.
    let refused = s.cancel_batch(a, first.uuid).await;
    assert!(matches!(refused, Err(StoreError::WrongState { state: "completed", .. })), "{refused:?}");
    s.set_batch_state(first.uuid, BatchState::Running).await?;
    assert_eq!(s.get_batch(a, first.uuid).await?.context("first")?.state, BatchState::Completed);

    // Cancelling: once, then again (the same answer); the runner cannot undo it.
    s.set_batch_state(third.uuid, BatchState::Running).await?;
    let cancelled = s.cancel_batch(a, third.uuid).await?;
    assert_eq!(cancelled.state, BatchState::Cancelled);
    assert_eq!(s.cancel_batch(a, third.uuid).await?.state, BatchState::Cancelled);
    s.set_batch_state(third.uuid, BatchState::Completed).await?;
    assert_eq!(s.get_batch(a, third.uuid).await?.context("third")?.state, BatchState::Cancelled);
    // A queued batch can be cancelled too.
    assert_eq!(s.cancel_batch(b, second.uuid).await?.state, BatchState::Cancelled);
    assert!(s.unfinished_batches().await?.is_empty());
    assert!(is_not_found(s.cancel_batch(a, Uuid::new_v4()).await));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// raw access, to check what is really in the tables

async fn outbox_rows_keep_their_order_across_chunks(ctx: Ctx) -> anyhow::Result<()> {
    let s = &ctx.store;
    let owner = account(s, "outbox@example.com").await?;
    // More rows than one INSERT carries, in two writes.
    let new = |i: usize| NewWebhookDelivery {
        account: owner,
        node: Some("node-a".to_owned()),
        url: format!("https://hooks.example.com/{}", i % 3),
        url2: i.is_multiple_of(2).then(|| "https://backup.example.com/".to_owned()),
        event: Uuid::new_v4(),
        event_type: "call.callflow".to_owned(),
        call: Some(format!("call-{}", i % 7)),
        body: format!("{{\"n\":{i}}}"),
    };
    let first = s.enqueue_deliveries((0..1_234).map(new).collect()).await?;
    let second = s.enqueue_deliveries((1_234..1_300).map(new).collect()).await?;
    ensure!(first.len() == 1_234 && second.len() == 66);
    let positions: Vec<i64> = first.iter().chain(&second).map(|d| d.position).collect();
    ensure!(positions.windows(2).all(|w| w[1] == w[0] + 1), "consecutive positions");
    // Read back in pages, as the dispatcher does: every row once, in order, as written.
    let mut read = Vec::new();
    let mut after = 0;
    loop {
        let page = s.pending_deliveries(None, after, 500).await?;
        let Some(last) = page.last() else { break };
        after = last.position;
        read.extend(page);
    }
    ensure!(read.len() == 1_300, "{} rows read back", read.len());
    for (i, (stored, written)) in read.iter().zip(first.iter().chain(&second)).enumerate() {
        ensure!(stored.uuid == written.uuid && stored.position == written.position, "row {i}");
        ensure!(
            stored.body == format!("{{\"n\":{i}}}") && stored.url2 == written.url2,
            "row {i}: {stored:?}"
        );
        ensure!(stored.call == written.call && stored.event == written.event, "row {i}");
        ensure!(stored.node.as_deref() == Some("node-a"), "row {i}: the writer's node");
    }
    // Delivered rows leave the pending list.
    let done: Vec<Uuid> = read[..10].iter().map(|d| d.uuid).collect();
    s.mark_delivered(&done).await?;
    let pending = s.pending_deliveries(None, 0, 500).await?;
    ensure!(pending.first().map(|d| d.uuid) == Some(read[10].uuid), "the first pending row is the 11th");
    Ok(())
}

/// Two writers with their own pools (two nodes on one database) enqueue at the same time:
/// the database hands out every position once, each writer's rows keep the order it gave,
/// and every row reads back once.
async fn outbox_writers_on_two_nodes_never_share_a_position(ctx: Ctx) -> anyhow::Result<()> {
    const BATCHES: usize = 20;
    const ROWS: usize = 25;
    let owner = account(&ctx.store, "outbox-writers@example.com").await?;
    let second_node = Store::open(&ctx.url).await?;
    let write = |store: Store, node: &'static str| async move {
        let mut written = Vec::new();
        for batch in 0..BATCHES {
            let rows = (0..ROWS).map(|i| NewWebhookDelivery {
                account: owner,
                node: Some(node.to_owned()),
                url: format!("https://hooks.example.com/{node}"),
                url2: None,
                event: Uuid::new_v4(),
                event_type: "call.callflow".to_owned(),
                call: Some(format!("{node}-call")),
                body: format!("{{\"n\":{}}}", batch * ROWS + i),
            });
            written.extend(store.enqueue_deliveries(rows.collect()).await?);
        }
        anyhow::Ok(written)
    };
    let (a, b) = tokio::join!(
        tokio::spawn(write(ctx.store.clone(), "a")),
        tokio::spawn(write(second_node.clone(), "b"))
    );
    let (a, b) = (a??, b??);
    second_node.close().await;
    for (node, rows) in [("a", &a), ("b", &b)] {
        ensure!(rows.len() == BATCHES * ROWS, "node {node} wrote {}", rows.len());
        ensure!(rows.windows(2).all(|w| w[0].position < w[1].position), "node {node}'s rows in its order");
    }
    let mut positions: Vec<i64> = a.iter().chain(&b).map(|d| d.position).collect();
    positions.sort_unstable();
    positions.dedup();
    ensure!(positions.len() == 2 * BATCHES * ROWS, "a position was handed out twice");
    let mut read = Vec::new();
    let mut after = 0;
    loop {
        let page = ctx.store.pending_deliveries(None, after, 300).await?;
        let Some(last) = page.last() else { break };
        after = last.position;
        read.extend(page);
    }
    ensure!(
        read.iter().map(|d| d.position).eq(positions.iter().copied()),
        "every row once, in position order"
    );
    for d in &read {
        let node = d.node.as_deref().context("the writer's node")?;
        ensure!(d.url == format!("https://hooks.example.com/{node}"), "{d:?}");
    }
    Ok(())
}

/// Rows made in the same millisecond list in the order they were made, both ways and across
/// pages: `created_on` ties are broken by the id, a UUIDv7. (The rows are made as fast as the
/// store goes, then all given one `created_on`, so every comparison is a tie.)
async fn rows_made_in_one_millisecond_list_in_creation_order(ctx: Ctx) -> anyhow::Result<()> {
    const N: usize = 30;
    let s = &ctx.store;
    let a = account(s, "order@example.com").await?;
    let (mut subscriptions, mut tokens, mut messaging, mut tn_profiles, mut ovps) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..N {
        let subscription = NewEventSubscription {
            channel: EventChannel::Wss,
            event_type: format!("call.t{i}"),
            url: None,
            url2: None,
        };
        subscriptions.push(s.create_subscription(a, subscription).await?.uuid);
        tokens
            .push(s.create_token(a, NewApiToken { name: format!("k{i}"), ttl_secs: None }).await?.token.uuid);
        let profile = NewMessagingProfile { name: format!("m{i}"), ..Default::default() };
        messaging.push(s.create_messaging_profile(a, profile).await?.uuid);
        let profile = NewTnProfile { name: format!("t{i}"), ..Default::default() };
        tn_profiles.push(s.create_tn_profile(a, profile).await?.uuid);
        let profile = NewOutboundVoiceProfile { name: format!("o{i}"), ..Default::default() };
        ovps.push(s.create_ovp(a, profile).await?.uuid);
    }
    for table in
        ["event_subscription", "api_token", "messaging_profile", "tn_profile", "outbound_voice_profile"]
    {
        raw_exec(&ctx, &format!("UPDATE {table} SET created_on = 1767225600000")).await?;
    }
    listed_in_creation_order("subscriptions", &subscriptions, |p| s.list_subscriptions(a, p), |x| x.uuid)
        .await?;
    listed_in_creation_order("tokens", &tokens, |p| s.list_tokens(a, p), |x| x.uuid).await?;
    listed_in_creation_order(
        "messaging profiles",
        &messaging,
        |p| s.list_messaging_profiles(a, p),
        |x| x.uuid,
    )
    .await?;
    listed_in_creation_order("tn profiles", &tn_profiles, |p| s.list_tn_profiles(a, p), |x| x.uuid).await?;
    listed_in_creation_order("outbound voice profiles", &ovps, |p| s.list_ovps(a, p), |x| x.uuid).await?;
    Ok(())
}

/// `list` gives `made` in that order: in pages of 7 oldest first, and newest first.
async fn listed_in_creation_order<T, F, Fut>(
    what: &str,
    made: &[Uuid],
    list: F,
    id: fn(&T) -> Uuid,
) -> anyhow::Result<()>
where
    F: Fn(ListParams) -> Fut,
    Fut: Future<Output = Result<List<T>>>,
{
    let mut oldest_first = Vec::new();
    for skip in (0..made.len()).step_by(7) {
        let page = list(ListParams::page(7, u32::try_from(skip)?)).await?;
        oldest_first.extend(page.data.iter().map(id));
    }
    ensure!(oldest_first == made, "{what}, oldest first:\n{oldest_first:?}\nmade:\n{made:?}");
    let newest_first = list(ListParams { take: MAX_TAKE, skip: 0, order: Order::Desc }).await?;
    ensure!(newest_first.data.iter().map(id).rev().eq(made.iter().copied()), "{what}, newest first");
    Ok(())
}

/// The outbox's retention: finished deliveries (delivered, given up) older than the cutoff
/// go, pending ones and the newest row stay (positions continue after it).
async fn finished_outbox_rows_are_purged(ctx: Ctx) -> anyhow::Result<()> {
    let s = &ctx.store;
    let owner = account(s, "outbox-purge@example.com").await?;
    let new = |i: usize| NewWebhookDelivery {
        account: owner,
        node: None,
        url: "https://hooks.example.com/".to_owned(),
        url2: None,
        event: Uuid::new_v4(),
        event_type: "call.callflow".to_owned(),
        call: None,
        body: format!("{{\"n\":{i}}}"),
    };
    let rows = s.enqueue_deliveries((0..5).map(new).collect()).await?;
    let ids: Vec<Uuid> = rows.iter().map(|d| d.uuid).collect();
    // 0 and 1 delivered, 2 given up, 3 pending, 4 (the newest) delivered.
    s.mark_delivered(&[ids[0], ids[1], ids[4]]).await?;
    s.mark_attempt_failed(ids[2], 12, "HTTP 500", None).await?;
    let past = chrono::Utc::now() - chrono::Duration::days(1);
    ensure!(s.purge_deliveries(past, 100).await? == 0, "nothing finished a day ago");
    let future = chrono::Utc::now() + chrono::Duration::seconds(5);
    ensure!(s.purge_deliveries(future, 2).await? == 2, "at most the limit per call");
    ensure!(s.purge_deliveries(future, 100).await? == 1, "the rest of the finished ones");
    let left: Vec<Uuid> =
        s.list_deliveries(owner, ListParams::default()).await?.data.iter().map(|d| d.uuid).collect();
    ensure!(left.len() == 2 && left.contains(&ids[3]) && left.contains(&ids[4]), "{left:?} {ids:?}");
    // Positions continue after the newest row.
    let next = s.enqueue_deliveries(vec![new(5)]).await?;
    ensure!(next[0].position == rows[4].position + 1, "{} after {}", next[0].position, rows[4].position);
    Ok(())
}

async fn a_node_closes_only_its_own_abandoned_calls(ctx: Ctx) -> anyhow::Result<()> {
    let s = &ctx.store;
    let owner = account(s, "cdr-nodes@example.com").await?;
    let start = |node: &str| NewCallRecord {
        uuid: Uuid::new_v4(),
        app: None,
        direction: CallDirection::Inbound,
        from: "13105550111".to_owned(),
        to: "12025550100".to_owned(),
        started_on: chrono::Utc::now() - chrono::Duration::seconds(30),
        node: Some(node.to_owned()),
    };
    let (ringing, talking, ended, elsewhere) = (start("a"), start("a"), start("a"), start("b"));
    for call in [&ringing, &talking, &ended, &elsewhere] {
        s.record_call_start(owner, call.clone()).await?;
    }
    let answered = chrono::Utc::now() - chrono::Duration::seconds(20);
    s.record_call_answer(owner, talking.uuid, answered).await?;
    let end =
        CallEnd { ended_on: chrono::Utc::now(), answered: false, q850_cause: Some(16), ..CallEnd::default() };
    s.record_call_end(owner, ended.uuid, end).await?;

    let at = chrono::Utc::now();
    let closed = s.close_abandoned_calls("a", at, "node a stopped").await?;
    ensure!(closed == 2, "node a's two open calls, not its ended one nor node b's: {closed}");
    for id in [ringing.uuid, talking.uuid] {
        let call = s.get_call(owner, id).await?.context("the call")?;
        ensure!(call.state == CallState::Failed && call.ended_on.is_some(), "{call:?}");
        ensure!(
            call.q850_cause == Some(41) && call.hangup_reason.as_deref() == Some("node a stopped"),
            "{call:?}"
        );
    }
    let talked = s.get_call(owner, talking.uuid).await?.context("the call")?;
    ensure!(talked.duration_ms.is_some_and(|ms| (19_000..=21_000).contains(&ms)), "{talked:?}");
    let other = s.get_call(owner, elsewhere.uuid).await?.context("node b's call")?;
    ensure!(other.ended_on.is_none(), "node b's live call is not node a's to close: {other:?}");
    let done = s.get_call(owner, ended.uuid).await?.context("the ended call")?;
    ensure!(done.q850_cause == Some(16), "an ended call keeps its end: {done:?}");
    ensure!(s.close_abandoned_calls("a", at, "again").await? == 0, "nothing left to close");
    Ok(())
}

async fn recordings_are_counted_per_account_and_deleted_once(ctx: Ctx) -> anyhow::Result<()> {
    let s = &ctx.store;
    let (owner, stranger) =
        (account(s, "rec-quota@example.com").await?, account(s, "rec-other@example.com").await?);
    let call = NewCallRecord {
        uuid: Uuid::new_v4(),
        app: None,
        direction: CallDirection::Inbound,
        from: "13105550111".to_owned(),
        to: "12025550100".to_owned(),
        started_on: chrono::Utc::now(),
        node: None,
    };
    s.record_call_start(owner, call.clone()).await?;
    ensure!(s.recording_usage(owner).await? == RecordingUsage::default(), "nothing recorded yet");
    let (first, second) = (Uuid::new_v4(), Uuid::new_v4());
    let kept = s.add_recording(owner, call.uuid, first, "memo", 2_000, 32_044).await?;
    ensure!(kept.size_bytes == 32_044, "{kept:?}");
    s.add_recording(owner, call.uuid, second, "memo2", 1_000, 16_044).await?;
    ensure!(s.get_recording(owner, first).await? == Some(kept.clone()), "stored as returned");
    let usage = s.recording_usage(owner).await?;
    ensure!(usage == RecordingUsage { count: 2, bytes: 48_088 }, "{usage:?}");
    ensure!(
        s.recording_usage(stranger).await? == RecordingUsage::default(),
        "another account's are not counted"
    );

    // Another account's recording is not found, and stays.
    ensure!(is_not_found(s.delete_recording(stranger, first).await), "another account's recording");
    let deleted = s.delete_recording(owner, first).await?;
    ensure!(deleted == kept, "the delete says what was deleted: {deleted:?}");
    ensure!(s.get_recording(owner, first).await?.is_none(), "gone");
    ensure!(is_not_found(s.delete_recording(owner, first).await), "deleted once");
    let usage = s.recording_usage(owner).await?;
    ensure!(usage == RecordingUsage { count: 1, bytes: 16_044 }, "the delete frees its share: {usage:?}");
    Ok(())
}

async fn concurrent_uploads_never_pass_the_version_quota(ctx: Ctx) -> anyhow::Result<()> {
    let s = &ctx.store;
    let a = account(s, "versions@example.com").await?;
    let app = s.create_app(a, xml_app("uploads")).await?;
    const QUOTA: u32 = 3;
    // Eight uploads at once against a quota of three: three are stored, five refused.
    let uploads = (0..8u8).map(|i| {
        let (s, app) = (s.clone(), app.uuid);
        tokio::spawn(async move { s.add_component_version_within(a, app, &[i; 16], QUOTA).await })
    });
    let mut stored = Vec::new();
    let mut refused = 0;
    for upload in uploads {
        match upload.await?? {
            Some(version) => stored.push(version.version),
            None => refused += 1,
        }
    }
    stored.sort_unstable();
    ensure!(stored == vec![1, 2, 3] && refused == 5, "stored {stored:?}, refused {refused}");
    ensure!(s.list_component_versions(a, app.uuid).await?.len() == 3, "three kept");
    // Under the quota again once one is deleted.
    let versions = s.list_component_versions(a, app.uuid).await?;
    s.delete_component_version(a, app.uuid, versions[2].uuid).await?;
    let next = s.add_component_version_within(a, app.uuid, b"again", QUOTA).await?.context("room for one")?;
    ensure!(next.version == 4, "numbers continue: {next:?}");
    ensure!(s.add_component_version_within(a, app.uuid, b"over", QUOTA).await?.is_none(), "full again");
    Ok(())
}

async fn signing_keys_are_sealed_at_rest(ctx: Ctx) -> anyhow::Result<()> {
    let plain = ctx.store.clone();
    let a = account(&plain, "sealed@example.com").await?;
    let sealed = plain.clone().with_sealer(opentact_store::seal::Sealer::new(&[9u8; 32])?);
    let key = SigningKey { public_key: "PUBLIC".to_owned(), private_pkcs8: "PRIVATE-PKCS8-BYTES".to_owned() };
    let stored = sealed.insert_signing_key(a, key.clone()).await?;
    ensure!(stored == key, "read back as written: {stored:?}");
    ensure!(sealed.signing_key(a).await?.as_ref() == Some(&key));
    let rows = sqlx_rows(&ctx, "SELECT private_pkcs8 FROM account_signing_key").await?;
    ensure!(rows.len() == 1, "{rows:?}");
    ensure!(
        rows[0].starts_with(opentact_store::seal::SEALED_PREFIX) && !rows[0].contains("PRIVATE-PKCS8-BYTES"),
        "the database holds no usable key: {rows:?}"
    );
    // Without the key file the store says so, it does not hand out ciphertext as a key.
    ensure!(
        matches!(plain.signing_key(a).await, Err(StoreError::Sealing { .. })),
        "a store without the secret key cannot read a sealed key"
    );
    let other = plain.clone().with_sealer(opentact_store::seal::Sealer::new(&[10u8; 32])?);
    ensure!(other.signing_key(a).await.is_err(), "another key file opens nothing");
    Ok(())
}

async fn wildcard_number_search(ctx: Ctx) -> anyhow::Result<()> {
    let s = &ctx.store;
    // 300 numbers, of which those ending in 17 are every hundredth; one outside +1.
    let numbers: Vec<_> =
        (0..300).map(|i| number(12_025_550_000 + i, "DC")).chain([number(442_071_838_750, "LN")]).collect();
    s.upsert_numbers(&numbers).await?;
    let ending = |p: &str| NumberFilter { pattern: Some(p.to_owned()), ..Default::default() };
    let found = s.search_numbers(ending("********17"), ListParams::page(2, 1)).await?;
    assert_eq!(found.total, 3, "the total counts every match, not a page");
    assert_eq!(found.data.iter().map(|n| n.tn).collect::<Vec<_>>(), vec![12_025_550_117, 12_025_550_217]);
    // Only North American numbers match a ten-digit pattern.
    assert_eq!(s.search_numbers(ending("**********"), ListParams::default()).await?.total, 300);
    assert_eq!(s.search_numbers(ending("2071838750"), ListParams::default()).await?.total, 0);
    Ok(())
}

async fn invites_work_once_and_expire(ctx: Ctx) -> anyhow::Result<()> {
    let s = &ctx.store;
    let a = account(s, "a@x.test").await?;
    let b = account(s, "b@x.test").await?;
    let conn = s.create_connection(a, connection("pbx", Some("acme"), None)).await?;
    let later = now() + chrono::Duration::hours(1);
    let created = s.create_invite(a, conn.uuid, "it".into(), later).await?;
    assert!(
        is_not_found(s.create_invite(b, conn.uuid, "x".into(), later).await),
        "another account's connection"
    );
    assert_eq!(s.list_invites(a, conn.uuid, ListParams::default()).await?.total, 1);
    assert!(is_not_found(s.list_invites(b, conn.uuid, ListParams::default()).await));
    assert!(s.use_invite("not the token").await?.is_none());
    let used = s.use_invite(&created.token).await?.context("a fresh token works")?;
    assert_eq!((used.uuid, used.connection), (created.invite.uuid, conn.uuid));
    assert!(used.used_on.is_some());
    assert!(s.use_invite(&created.token).await?.is_none(), "a token works once");

    let expired = s.create_invite(a, conn.uuid, "old".into(), now() - chrono::Duration::seconds(1)).await?;
    assert!(s.use_invite(&expired.token).await?.is_none(), "an expired token");
    let revoked = s.create_invite(a, conn.uuid, "revoked".into(), later).await?;
    assert!(is_not_found(s.delete_invite(b, conn.uuid, revoked.invite.uuid).await));
    s.delete_invite(a, conn.uuid, revoked.invite.uuid).await?;
    assert!(s.use_invite(&revoked.token).await?.is_none(), "a revoked token");
    let orphan = s.create_invite(a, conn.uuid, "orphan".into(), later).await?;
    s.delete_connection(a, conn.uuid).await?;
    assert!(s.use_invite(&orphan.token).await?.is_none(), "a deleted connection's token");
    // Only the hash is stored.
    let rows = sqlx_rows(&ctx, "SELECT token_hash FROM sip_invite").await?;
    assert!(rows.iter().all(|h| h.len() == 64 && *h != created.token), "{rows:?}");
    Ok(())
}

/// The first column of every row of `sql`, read past the store.
async fn sqlx_rows(ctx: &Ctx, sql: &'static str) -> anyhow::Result<Vec<String>> {
    let rows: Vec<(String,)> = match ctx.store.backend() {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&ctx.url).await?;
            sqlx::query_as(sql).fetch_all(&mut c).await?
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(&ctx.url).await?;
            sqlx::query_as(sql).fetch_all(&mut c).await?
        }
    };
    Ok(rows.into_iter().map(|(a,)| a).collect())
}

async fn raw_token_rows(ctx: &Ctx) -> anyhow::Result<Vec<Vec<String>>> {
    const SQL: &str = "SELECT id, account_id, name, token_hash FROM api_token";
    let rows: Vec<(String, String, String, String)> = match ctx.store.backend() {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&ctx.url).await?;
            sqlx::query_as(SQL).fetch_all(&mut c).await?
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(&ctx.url).await?;
            sqlx::query_as(SQL).fetch_all(&mut c).await?
        }
    };
    Ok(rows.into_iter().map(|(a, b, c, d)| vec![a, b, c, d]).collect())
}

async fn raw_exec(ctx: &Ctx, sql: &str) -> anyhow::Result<()> {
    let n = match ctx.store.backend() {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&ctx.url).await?;
            sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())).execute(&mut c).await?.rows_affected()
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(&ctx.url).await?;
            sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())).execute(&mut c).await?.rows_affected()
        }
    };
    ensure!(n > 0, "{sql} changed nothing");
    Ok(())
}

#[tokio::test]
async fn open_rejects_unknown_schemes_without_leaking_passwords() {
    let err = Store::open("mysql://root:hunter2@localhost/db").await.unwrap_err();
    assert!(matches!(err, StoreError::UnsupportedUrl { .. }));
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// SMS messages and the outbound queue

/// An account with an SMS-enabled lease.
async fn sms_fixture(s: &Store, email: &str, tn: i64) -> anyhow::Result<(Uuid, TnLease)> {
    let a = account(s, email).await?;
    s.upsert_numbers(&[number(tn, "DC")]).await?;
    let lease = s.lease_tn(a, NewLease { tn, voice: false, sms: true, autorenew: false }).await?;
    Ok((a, lease))
}

fn new_sms(lease: &TnLease, to: &str, parts: i32) -> NewSms {
    NewSms {
        direction: SmsDirection::Smso,
        tn_lease: Some(lease.uuid),
        from: lease.tn.to_string(),
        to: to.into(),
        text: "hello".into(),
        encoding: "gsm7".into(),
        parts,
        custom_callback_url: None,
        queue: true,
    }
}

fn states(m: &SmsMessage) -> Vec<SmsState> {
    m.history.iter().map(|h| h.state).collect()
}

fn receipt(id: &str, status: &str, part_final: Option<SmsState>) -> SmsReceipt {
    SmsReceipt { carrier_id: id.into(), status: status.into(), part_final }
}

async fn sms_messages_are_the_accounts_own(ctx: Ctx) -> anyhow::Result<()> {
    let s = &ctx.store;
    let (a, lease) = sms_fixture(s, "a@sms.test", 12029820001).await?;
    let (b, other_lease) = sms_fixture(s, "b@sms.test", 12029820002).await?;
    let m = s.create_sms(a, new_sms(&lease, "12025550111", 1)).await?;
    ensure!(m.state == SmsState::Queued && states(&m) == vec![SmsState::Created, SmsState::Queued]);
    ensure!(m.account == a && m.direction == SmsDirection::Smso && m.tn_lease == Some(lease.uuid));
    ensure!(s.get_sms(a, m.uuid).await? == Some(m.clone()));
    // Another account's message reads as absent, by id and in search.
    ensure!(s.get_sms(b, m.uuid).await?.is_none());
    ensure!(s.search_sms(b, SmsFilter::default(), ListParams::default()).await?.total == 0);
    // Nor can a message be stored from another account's lease.
    ensure!(is_not_found(s.create_sms(b, new_sms(&lease, "12025550111", 1)).await));
    s.create_sms(b, new_sms(&other_lease, "12025550112", 1)).await?;
    let found = s.search_sms(a, SmsFilter::default(), ListParams::default()).await?;
    ensure!(found.total == 1 && found.data == vec![m.clone()]);
    let by_to = SmsFilter { to: Some("12025550999".into()), ..Default::default() };
    ensure!(s.search_sms(a, by_to, ListParams::default()).await?.total == 0);
    let by_state = SmsFilter { state: Some(SmsState::Queued), ..Default::default() };
    ensure!(s.search_sms(a, by_state, ListParams::default()).await?.total == 1);
    Ok(())
}

/// Inbound (smsr): stored received for the number's account only, settled once (received →
/// delivered or failed, the reason kept), never an outbound message.
async fn inbound_sms_is_the_accounts_own_and_settles_once(ctx: Ctx) -> anyhow::Result<()> {
    let s = &ctx.store;
    let (a, lease) = sms_fixture(s, "in-a@sms.test", 12029820011).await?;
    let (b, _) = sms_fixture(s, "in-b@sms.test", 12029820012).await?;
    let inbound = |text: &str| NewSms {
        direction: SmsDirection::Smsr,
        from: "14155550100".into(),
        to: lease.tn.to_string(),
        text: text.into(),
        queue: false,
        ..new_sms(&lease, "", 1)
    };
    let m = s.create_sms(a, inbound("hi")).await?;
    ensure!(
        m.direction == SmsDirection::Smsr
            && m.state == SmsState::Received
            && states(&m) == vec![SmsState::Received]
    );
    ensure!(s.get_sms(b, m.uuid).await?.is_none(), "another account does not see it");
    let smsr = SmsFilter { direction: Some(SmsDirection::Smsr), ..Default::default() };
    ensure!(s.search_sms(b, smsr.clone(), ListParams::default()).await?.total == 0);
    ensure!(s.search_sms(a, smsr, ListParams::default()).await?.data == vec![m.clone()]);
    // Settled once; a second outcome changes nothing.
    let done = s.settle_inbound_sms(m.uuid, SmsState::Delivered, None, opentact_store::now()).await?;
    let done = done.context("moved")?;
    ensure!(
        done.state == SmsState::Delivered && states(&done) == vec![SmsState::Received, SmsState::Delivered]
    );
    ensure!(
        s.settle_inbound_sms(m.uuid, SmsState::Failed, Some("late".into()), opentact_store::now())
            .await?
            .is_none()
    );
    let failed = s.create_sms(a, inbound("no app")).await?;
    let failed = s
        .settle_inbound_sms(
            failed.uuid,
            SmsState::Failed,
            Some("the app is gone".into()),
            opentact_store::now(),
        )
        .await?;
    ensure!(
        failed.and_then(|f| f.history.last().and_then(|h| h.reason.clone())).as_deref()
            == Some("the app is gone")
    );
    // Not for outbound messages, nor to any other state.
    let out = s.create_sms(a, new_sms(&lease, "12025550111", 1)).await?;
    ensure!(
        s.settle_inbound_sms(out.uuid, SmsState::Delivered, None, opentact_store::now()).await?.is_none()
    );
    ensure!(s.get_sms(a, out.uuid).await?.context("out")?.state == SmsState::Queued);
    ensure!(matches!(
        s.settle_inbound_sms(m.uuid, SmsState::Queued, None, opentact_store::now()).await,
        Err(StoreError::Invalid { .. })
    ));
    Ok(())
}

async fn sms_queue_claims_attempts_and_receipts(ctx: Ctx) -> anyhow::Result<()> {
    let s = &ctx.store;
    let (a, lease) = sms_fixture(s, "q@sms.test", 12029820003).await?;
    let one = s.create_sms(a, new_sms(&lease, "12025550111", 1)).await?;
    let claimed = s.claim_sms(10, 60_000, ExpiredClaim::Requeue).await?;
    ensure!(claimed.len() == 1 && claimed[0].uuid == one.uuid && claimed[0].attempts == 0);
    ensure!(claimed[0].accepted.is_empty() && claimed[0].text == "hello");
    // Held: not handed out again while the claim lasts.
    ensure!(s.claim_sms(10, 60_000, ExpiredClaim::Requeue).await?.is_empty());
    // The receipt overtakes the attempt's record: kept, then applied.
    ensure!(
        s.record_sms_receipt(&receipt("c1", "delivered", Some(SmsState::Delivered)), now()).await?.is_none()
    );
    let accepted = std::collections::BTreeMap::from([(0, "c1".to_string())]);
    let moved = s.record_sms_attempt(one.uuid, &accepted, &SmsAttempt::Sent, now()).await?;
    let moved = moved.context("the attempt moved the message")?;
    ensure!(moved.state == SmsState::Delivered, "{moved:?}");
    ensure!(states(&moved) == vec![SmsState::Created, SmsState::Queued, SmsState::Sent, SmsState::Delivered]);
    ensure!(moved.attempts == 1);

    // Two parts: the first accepted, then a retry; the retry's claim knows the first part.
    let two = s.create_sms(a, new_sms(&lease, "12025550112", 2)).await?;
    ensure!(s.claim_sms(10, 60_000, ExpiredClaim::Requeue).await?.len() == 1);
    let first = std::collections::BTreeMap::from([(0, "p0".to_string())]);
    let retry =
        SmsAttempt::Retry { not_before: now() - chrono::Duration::milliseconds(1), reason: "timeout".into() };
    ensure!(s.record_sms_attempt(two.uuid, &first, &retry, now()).await?.is_none());
    let again = s.claim_sms(10, 60_000, ExpiredClaim::Requeue).await?;
    ensure!(again.len() == 1 && again[0].attempts == 1 && again[0].accepted == first, "{again:?}");
    let both = std::collections::BTreeMap::from([(0, "p0".to_string()), (1, "p1".to_string())]);
    let sent = s.record_sms_attempt(two.uuid, &both, &SmsAttempt::Sent, now()).await?.context("sent")?;
    ensure!(sent.state == SmsState::Sent);
    // One part delivered is not the message; an intermediate receipt changes nothing.
    ensure!(
        s.record_sms_receipt(&receipt("p0", "delivered", Some(SmsState::Delivered)), now()).await?.is_none()
    );
    ensure!(s.record_sms_receipt(&receipt("p1", "enroute", None), now()).await?.is_none());
    let undelivered =
        s.record_sms_receipt(&receipt("p1", "expired", Some(SmsState::Undelivered)), now()).await?;
    ensure!(undelivered.context("moved")?.state == SmsState::Undelivered);
    // A late, contradicting receipt cannot rewrite the outcome.
    ensure!(
        s.record_sms_receipt(&receipt("p1", "delivered", Some(SmsState::Delivered)), now()).await?.is_none()
    );
    let last = s.get_sms(a, two.uuid).await?.context("two")?;
    ensure!(
        last.state == SmsState::Undelivered
            && last.history.last().and_then(|h| h.reason.clone()) == Some("expired".into())
    );

    // A failed attempt, and an unknown id.
    let three = s.create_sms(a, new_sms(&lease, "12025550113", 1)).await?;
    ensure!(s.claim_sms(10, 60_000, ExpiredClaim::Requeue).await?.len() == 1);
    let failed = SmsAttempt::Failed { reason: "refused".into() };
    let f = s.record_sms_attempt(three.uuid, &Default::default(), &failed, now()).await?.context("failed")?;
    ensure!(
        f.state == SmsState::Failed
            && f.history.last().and_then(|h| h.reason.clone()) == Some("refused".into())
    );
    ensure!(is_not_found(s.record_sms_attempt(Uuid::new_v4(), &Default::default(), &failed, now()).await));
    Ok(())
}

async fn sms_claims_never_overlap_and_expired_claims_follow_the_policy(ctx: Ctx) -> anyhow::Result<()> {
    let s = &ctx.store;
    let (a, lease) = sms_fixture(s, "c@sms.test", 12029820004).await?;
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(s.create_sms(a, new_sms(&lease, &format!("120255501{i:02}"), 1)).await?.uuid);
    }
    // Four claimers at once: every message handed out once.
    let claims = concurrent_claims(s, 4).await?;
    let mut got: Vec<Uuid> = claims.into_iter().flatten().map(|c| c.uuid).collect();
    got.sort();
    ids.sort();
    ensure!(got == ids, "claimed {} of 20 (duplicates or losses)", got.len());

    // Claims that ran out (a crashed sender): at-least-once hands them out again…
    let (b, lease2) = sms_fixture(s, "d@sms.test", 12029820005).await?;
    let m = s.create_sms(b, new_sms(&lease2, "12025550200", 1)).await?;
    ensure!(s.claim_sms(1, -1, ExpiredClaim::Requeue).await?.iter().any(|c| c.uuid == m.uuid));
    let again = s.claim_sms(1, -1, ExpiredClaim::Requeue).await?;
    ensure!(again.len() == 1 && again[0].uuid == m.uuid);
    // …at-most-once fails them.
    ensure!(s.claim_sms(1, 60_000, ExpiredClaim::Fail).await?.is_empty());
    let m = s.get_sms(b, m.uuid).await?.context("m")?;
    ensure!(
        m.state == SmsState::Failed
            && states(&m) == vec![SmsState::Created, SmsState::Queued, SmsState::Failed]
    );
    Ok(())
}

/// `n` claimers of 5 messages each at once, then one for whatever is left.
async fn concurrent_claims(s: &Store, n: usize) -> anyhow::Result<Vec<Vec<ClaimedSms>>> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.claim_sms(5, 60_000, ExpiredClaim::Requeue).await })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await??);
    }
    out.push(s.claim_sms(100, 60_000, ExpiredClaim::Requeue).await?);
    Ok(out)
}

async fn balances_move_only_with_their_ledger(ctx: Ctx) -> anyhow::Result<()> {
    let s = &ctx.store;
    let (owner, stranger) =
        (account(s, "money@example.com").await?, account(s, "money-other@example.com").await?);
    ensure!(s.balance(owner).await? == 0, "a new account has nothing");
    ensure!(is_not_found(s.balance(Uuid::new_v4()).await), "no such account");
    let credit = s.credit(owner, 5_000_000, "payment 42").await?;
    ensure!(credit.kind == TransactionKind::Credit && credit.balance_after_micros == 5_000_000, "{credit:?}");

    let call = NewCallRecord {
        uuid: Uuid::new_v4(),
        app: None,
        direction: CallDirection::Outbound,
        from: "12025550100".to_owned(),
        to: "14155550123".to_owned(),
        started_on: chrono::Utc::now(),
        node: None,
    };
    s.record_call_start(owner, call.clone()).await?;
    let profile = s
        .create_ovp(
            owner,
            NewOutboundVoiceProfile {
                name: "rated".into(),
                channel_limit: None,
                calls_per_second: None,
                max_rate_micros: None,
                daily_spend_limit_micros: Some(1_000_000),
                record_calls: false,
                shaken_sign_policy: ShakenSignPolicy::default(),
            },
        )
        .await?;
    let price = CallPrice {
        price_micros: 11_000,
        billed_secs: 66,
        rate_prefix: "1".into(),
        rate_per_minute_micros: 10_000,
    };
    let charge = |target: ChargeTarget| NewCharge {
        target,
        amount_micros: 11_000,
        description: "call to +14155550123".into(),
    };
    let call_target = ChargeTarget::Call {
        call: call.uuid,
        price: price.clone(),
        outbound_voice_profile: Some(profile.uuid),
    };

    // Another account cannot charge (or price) the owner's call.
    ensure!(is_not_found(s.charge(stranger, charge(call_target.clone())).await), "another account's call");
    ensure!(s.balance(stranger).await? == 0 && s.balance(owner).await? == 5_000_000, "nothing moved");

    let charged = s.charge(owner, charge(call_target.clone())).await?;
    ensure!(charged.amount_micros == -11_000 && charged.balance_after_micros == 4_989_000, "{charged:?}");
    ensure!(
        charged.reference == Some(call.uuid) && charged.outbound_voice_profile == Some(profile.uuid),
        "{charged:?}"
    );
    let again = s.charge(owner, charge(call_target)).await?;
    ensure!(again == charged, "a call is charged once: {again:?}");
    ensure!(s.balance(owner).await? == 4_989_000, "charged once");
    let cdr = s.get_call(owner, call.uuid).await?.context("the CDR")?;
    ensure!(cdr.price == Some(price), "the CDR is priced: {:?}", cdr.price);

    let today = chrono::Utc::now() - chrono::Duration::hours(1);
    ensure!(s.spent_since(owner, profile.uuid, today).await? == 11_000, "the profile's spend");
    ensure!(s.spent_since(owner, Uuid::new_v4(), today).await? == 0, "another profile spent nothing");
    ensure!(
        s.spent_since(owner, profile.uuid, chrono::Utc::now() + chrono::Duration::hours(1)).await? == 0,
        "nothing after now"
    );

    // The ledger: newest first, filtered, the account's own.
    let all = s
        .search_transactions(
            owner,
            TransactionFilter::default(),
            ListParams { order: Order::Desc, ..ListParams::default() },
        )
        .await?;
    ensure!(all.total == 2 && all.data[0].uuid == charged.uuid && all.data[1].uuid == credit.uuid, "{all:?}");
    let calls = s
        .search_transactions(
            owner,
            TransactionFilter { kind: Some(TransactionKind::Call), ..Default::default() },
            ListParams::default(),
        )
        .await?;
    ensure!(calls.total == 1 && calls.data[0].uuid == charged.uuid, "{calls:?}");
    let by_call = s
        .search_transactions(
            owner,
            TransactionFilter { reference: Some(call.uuid), ..Default::default() },
            ListParams::default(),
        )
        .await?;
    ensure!(by_call.total == 1, "{by_call:?}");
    let later = s
        .search_transactions(
            owner,
            TransactionFilter {
                since: Some(chrono::Utc::now() + chrono::Duration::seconds(5)),
                ..Default::default()
            },
            ListParams::default(),
        )
        .await?;
    ensure!(later.total == 0, "{later:?}");
    let theirs = s.search_transactions(stranger, TransactionFilter::default(), ListParams::default()).await?;
    ensure!(theirs.total == 0, "another account sees none: {theirs:?}");

    // A balance may go below zero (an operator's correction; a call is charged what it
    // talked); a negative charge is refused.
    let debt = s.credit(owner, -6_000_000, "correction").await?;
    ensure!(debt.balance_after_micros == -1_011_000, "{debt:?}");
    let bad = NewCharge {
        amount_micros: -1,
        ..charge(ChargeTarget::Call {
            call: call.uuid,
            price: cdr.price.clone().context("priced")?,
            outbound_voice_profile: None,
        })
    };
    ensure!(matches!(s.charge(owner, bad).await, Err(StoreError::Invalid { .. })), "a negative charge");

    // A SIP connection's leg out is charged (once) to its outbound voice profile's spend too.
    let leg = ChargeTarget::Leg {
        call: call.uuid,
        leg: Uuid::new_v4(),
        outbound_voice_profile: Some(profile.uuid),
    };
    let leg_charged = s.charge(owner, charge(leg.clone())).await?;
    ensure!(
        leg_charged.outbound_voice_profile == Some(profile.uuid)
            && leg_charged.balance_after_micros == -1_022_000,
        "{leg_charged:?}"
    );
    ensure!(s.charge(owner, charge(leg)).await? == leg_charged, "a leg is charged once");
    ensure!(s.spent_since(owner, profile.uuid, today).await? == 22_000, "the call and its leg");

    // The operator's credits wait to be announced: each is taken once, oldest first, however
    // many ask; charges are announced where they are made, not here.
    let stranger_credit = s.credit(stranger, 1_000, "theirs").await?;
    let first = s.take_credits_to_announce(2).await?;
    let rest = s.take_credits_to_announce(10).await?;
    let taken: Vec<Uuid> = first.iter().chain(&rest).map(|t| t.uuid).collect();
    ensure!(taken == [credit.uuid, debt.uuid, stranger_credit.uuid], "{first:?} {rest:?}");
    ensure!(first.len() == 2 && first[1] == debt, "the limit, and the rows as booked: {first:?}");
    ensure!(s.take_credits_to_announce(10).await?.is_empty(), "taken once");
    Ok(())
}

async fn a_lease_is_charged_once_per_month_and_never_on_credit(ctx: Ctx) -> anyhow::Result<()> {
    let s = &ctx.store;
    let (owner, stranger) = (account(s, "rent@x.test").await?, account(s, "rent-b@x.test").await?);
    s.upsert_numbers(&[number(12029822917, "DC"), number(12029822918, "DC")]).await?;
    let lease =
        s.lease_tn(owner, NewLease { tn: 12029822917, voice: true, sms: false, autorenew: true }).await?;
    ensure!(lease.paid_until.is_none(), "not billed until charged: {lease:?}");
    let month = |n: i64| lease.created_on + chrono::Duration::days(30 * n);
    let charge = |expected: Option<chrono::DateTime<chrono::Utc>>, until| NewLeaseCharge {
        lease: lease.uuid,
        amount_micros: 1_000_000,
        expected_paid_until: expected,
        paid_until: until,
        description: "number 12029822917".into(),
    };
    // Not on credit: nothing moves.
    let unpaid = s.charge_lease(owner, charge(None, month(1))).await?;
    ensure!(unpaid == LeaseChargeOutcome::Unpaid { balance_micros: 0 }, "{unpaid:?}");
    ensure!(s.get_lease(owner, lease.uuid).await?.context("lease")?.paid_until.is_none(), "unchanged");
    ensure!(s.leases_due(month(5), 10).await?.is_empty(), "an unbilled lease is never due");

    s.credit(owner, 1_500_000, "prepaid").await?;
    // Another account's lease is not its to charge.
    ensure!(s.charge_lease(stranger, charge(None, month(1))).await? == LeaseChargeOutcome::Stale);
    let LeaseChargeOutcome::Charged(row) = s.charge_lease(owner, charge(None, month(1))).await? else {
        anyhow::bail!("the first month is paid");
    };
    ensure!(
        row.kind == TransactionKind::Number
            && row.amount_micros == -1_000_000
            && row.balance_after_micros == 500_000
            && row.reference == Some(lease.uuid),
        "{row:?}"
    );
    ensure!(s.get_lease(owner, lease.uuid).await?.context("lease")?.paid_until == Some(month(1)));
    // Read before that charge: stale, not charged twice.
    ensure!(s.charge_lease(owner, charge(None, month(1))).await? == LeaseChargeOutcome::Stale);
    ensure!(s.balance(owner).await? == 500_000);

    // Due once its month is over, the longest due first.
    ensure!(s.leases_due(month(1) - chrono::Duration::seconds(1), 10).await?.is_empty(), "inside the month");
    let due = s.leases_due(month(1), 10).await?;
    ensure!(due.len() == 1 && due[0].uuid == lease.uuid, "{due:?}");
    // The second month: unpaid at 0.50, then paid; a second row for the same lease.
    let unpaid = s.charge_lease(owner, charge(Some(month(1)), month(2))).await?;
    ensure!(unpaid == LeaseChargeOutcome::Unpaid { balance_micros: 500_000 }, "{unpaid:?}");
    // Its retry: the first failure is told apart from later ones, and the lease waits for it.
    let hour = chrono::Duration::hours(1);
    ensure!(s.defer_renewal(lease.uuid, month(1), month(1) + hour).await? == Some(true), "the first failure");
    ensure!(s.defer_renewal(lease.uuid, month(1), month(1) + hour * 2).await? == Some(false), "a later one");
    ensure!(s.defer_renewal(lease.uuid, month(0), month(1) + hour).await?.is_none(), "a stale month");
    ensure!(s.leases_due(month(1) + hour, 10).await?.is_empty(), "waiting for its retry");
    ensure!(s.leases_due(month(1) + hour * 2, 10).await?.len() == 1, "due at its retry");
    s.credit(owner, 500_000, "top-up").await?;
    ensure!(matches!(
        s.charge_lease(owner, charge(Some(month(1)), month(2))).await?,
        LeaseChargeOutcome::Charged(_)
    ));
    ensure!(s.leases_due(month(2), 10).await?.len() == 1, "a paid renewal clears the retry");
    ensure!(
        s.defer_renewal(lease.uuid, month(2), month(2) + hour).await? == Some(true),
        "the next month's first"
    );
    let rows = s
        .search_transactions(
            owner,
            TransactionFilter { reference: Some(lease.uuid), ..Default::default() },
            ListParams::default(),
        )
        .await?;
    ensure!(rows.total == 2 && s.balance(owner).await? == 0, "{rows:?}");
    // A released lease is neither due nor charged.
    s.release_lease(owner, lease.uuid).await?;
    ensure!(s.leases_due(month(9), 10).await?.is_empty());
    s.credit(owner, 5_000_000, "more").await?;
    ensure!(s.charge_lease(owner, charge(Some(month(2)), month(3))).await? == LeaseChargeOutcome::Stale);
    Ok(())
}

async fn telecom_data_is_replaced_whole(ctx: Ctx) -> anyhow::Result<()> {
    let s = &ctx.store;
    ensure!(
        s.telecom_import().await?.is_none() && s.exchanges().await?.is_empty(),
        "nothing before an import"
    );
    // More rows than one INSERT takes; exchanges and thousands-blocks.
    let rows: Vec<ExchangeRow> = (0..1_200u16)
        .map(|n| ExchangeRow {
            npa: 200 + n / 100,
            nxx: 200 + n % 100,
            block: (n % 3 == 0).then_some(u8::try_from(n % 10).unwrap_or(0)),
            state: Some("DC".into()),
            county: (n % 2 == 0).then(|| format!("County {n}")),
            rate_center: Some("WASHINGTON".into()),
            time_zone: Some("America/New_York".into()),
            line_type: Some("landline".into()),
            carrier: Some("Verizon".into()),
            ocn: Some("9206".into()),
        })
        .collect();
    let imported = s.replace_exchanges(&rows, "digest-1", "npanxx.csv").await?;
    ensure!(imported.rows == 1_200 && imported.digest == "digest-1", "{imported:?}");
    let key = |row: &ExchangeRow| (row.npa, row.nxx, row.block);
    let mut stored = s.exchanges().await?;
    stored.sort_by_key(key);
    let mut expected = rows.clone();
    expected.sort_by_key(key);
    ensure!(stored == expected, "every row comes back as it went in");
    ensure!(s.telecom_import().await? == Some(imported), "the import is recorded");

    // A new import replaces everything.
    let again = s.replace_exchanges(&rows[..2], "digest-2", "smaller.csv").await?;
    ensure!(s.exchanges().await?.len() == 2, "only the new rows");
    ensure!(
        s.telecom_import().await?.is_some_and(|i| i.digest == "digest-2" && i == again),
        "the new import"
    );
    Ok(())
}
