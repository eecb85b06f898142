//! Nodes sharing one database: a survivor takes over a node whose heartbeat stopped — its open
//! CDRs closed, its batch items in progress failed, its pending webhook deliveries claimed —
//! and never a live node's; commands relayed to the node that carries a call are claimed once,
//! in order, answered, or expired by their sender and then never claimed; limit leases and
//! rate slots hold across many takers and go with their node. SQLite, and PostgreSQL at `OPENTACT_TEST_PG_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`; skipped when unreachable, except under CI).

use std::time::Duration;

use anyhow::{Context, ensure};
use opentact_store::*;
use sqlx::Connection;
use uuid::Uuid;

#[tokio::test]
async fn a_survivor_takes_over_a_dead_node_and_not_a_live_one() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let sqlite = Store::open(&format!("sqlite://{}/n.db?mode=rwc", dir.path().display())).await?;
    take_over(&sqlite).await.context("on SQLite")?;
    relay_commands(&sqlite).await.context("relaying on SQLite")?;
    limits(&sqlite).await.context("limits on SQLite")?;

    let admin_url = std::env::var("OPENTACT_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let mut admin =
        match tokio::time::timeout(Duration::from_secs(5), sqlx::PgConnection::connect(&admin_url)).await {
            Ok(Ok(conn)) => conn,
            _ if std::env::var_os("CI").is_some() => {
                anyhow::bail!("PostgreSQL at {admin_url} is unreachable")
            }
            _ => {
                eprintln!("SKIP the PostgreSQL half: {admin_url} unreachable");
                return Ok(());
            }
        };
    let db = format!("opentact_test_{}", Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}"))).execute(&mut admin).await?;
    let url = format!("{}/{db}", &admin_url[..admin_url.rfind('/').context("a database in the URL")?]);
    let outcome = async {
        let store = Store::open(&url).await?;
        let mut result = take_over(&store).await;
        if result.is_ok() {
            result = relay_commands(&store).await.context("relaying");
        }
        if result.is_ok() {
            result = limits(&store).await.context("limits");
        }
        store.close().await;
        result
    }
    .await;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")))
        .execute(&mut admin)
        .await?;
    outcome.context("on PostgreSQL")
}

async fn take_over(s: &Store) -> anyhow::Result<()> {
    let owner = s
        .create_account(NewAccount {
            name: "nodes".into(),
            email: "nodes@example.com".into(),
            password: "correct horse battery".into(),
            time_zone: "UTC".into(),
        })
        .await?
        .uuid;
    let now = chrono::Utc::now();
    // Node a was last seen 10 s ago; b and c are alive.
    s.register_node("a", now - chrono::Duration::seconds(10)).await?;
    s.register_node("b", now).await?;
    s.register_node("c", now).await?;
    let call = |node: &str| NewCallRecord {
        uuid: Uuid::new_v4(),
        app: None,
        direction: CallDirection::Inbound,
        from: "13105550111".to_owned(),
        to: "12025550100".to_owned(),
        started_on: now - chrono::Duration::seconds(30),
        node: Some(node.to_owned()),
    };
    let (on_a, on_b) = (call("a"), call("b"));
    for c in [&on_a, &on_b] {
        s.record_call_start(owner, c.clone()).await?;
    }
    let delivery = |node: &str| NewWebhookDelivery {
        account: owner,
        node: Some(node.to_owned()),
        url: "https://hooks.example.com/a".to_owned(),
        url2: None,
        event: Uuid::new_v4(),
        event_type: "call.initiated".to_owned(),
        call: None,
        body: "{}".to_owned(),
    };
    // A batch with one call on each node: a's answered, b's ringing.
    let tn = 12029822917;
    s.upsert_numbers(&[NumberInventory {
        tn,
        npa: 202,
        state: Some("DC".into()),
        voice: true,
        sms: false,
        available: true,
        created_on: now,
        modified_on: now,
    }])
    .await?;
    let lease = s.lease_tn(owner, NewLease { tn, voice: true, sms: false, autorenew: false }).await?;
    let batch = s
        .create_batch(
            owner,
            NewBatch {
                outbound_voice_profile: None,
                tn_lease: lease.uuid,
                from_tn: tn,
                xml: Some("<Response><Hangup/></Response>".into()),
                sip_control_app: None,
                ring_timeout_secs: 30,
                phones: vec!["12025550100".into(), "12025550101".into()],
            },
        )
        .await?
        .uuid;
    for (position, state, call) in [(0, BatchItemState::Answered, &on_a), (1, BatchItemState::Calling, &on_b)]
    {
        let update = BatchItemUpdate { call: Some(call.uuid), ..BatchItemUpdate::state(state) };
        s.update_batch_item(batch, position, update).await?;
    }
    let written = s.enqueue_deliveries(vec![delivery("a"), delivery("a"), delivery("b")]).await?;
    // Each holds a channel of a profile limited to two.
    for node in ["a", "b"] {
        ensure!(s.take_lease("profile:takeover", 2, node, new_id(), now).await?);
    }

    // Nothing is dead for a timeout of 20 s.
    let reason = "node {node} stopped";
    let cutoff = |secs| now - chrono::Duration::seconds(secs);
    ensure!(s.take_over_dead_node("b", cutoff(20), now, reason).await?.is_none(), "a is not dead yet");
    // For 5 s, a is: b takes it over, once.
    let taken = s.take_over_dead_node("b", cutoff(5), now, reason).await?.context("a is dead")?;
    ensure!(
        taken
            == NodeTakeover { node: "a".into(), calls_closed: 1, batch_items_failed: 1, deliveries_taken: 2 },
        "{taken:?}"
    );
    ensure!(s.take_over_dead_node("c", cutoff(5), now, reason).await?.is_none(), "a was taken over already");
    ensure!(s.leases_held("profile:takeover").await? == 1, "a's channel is free, b's is not");
    let closed = s.get_call(owner, on_a.uuid).await?.context("a's call")?;
    ensure!(
        closed.state == CallState::Failed
            && closed.q850_cause == Some(41)
            && closed.hangup_reason.as_deref() == Some("node a stopped"),
        "{closed:?}"
    );
    let live = s.get_call(owner, on_b.uuid).await?.context("b's call")?;
    ensure!(live.ended_on.is_none(), "a live node's call stays open: {live:?}");
    let items = s.batch_items(batch).await?;
    ensure!(
        items[0].state == BatchItemState::Failed && items[0].q850_cause == Some(41),
        "a's answered item failed: {:?}",
        items[0]
    );
    ensure!(items[1].state == BatchItemState::Calling, "b's ringing item goes on: {:?}", items[1]);
    // a's deliveries are b's to send now, with b's own.
    let b_sends: Vec<Uuid> = s.pending_deliveries(Some("b"), 0, 100).await?.iter().map(|d| d.uuid).collect();
    let all: Vec<Uuid> = written.iter().map(|d| d.uuid).collect();
    ensure!(b_sends == all, "b sends every pending delivery, in order: {b_sends:?}");
    ensure!(s.pending_deliveries(Some("a"), 0, 100).await?.is_empty(), "a claims nothing now");
    // a, late, learns it was taken over; started again it is a node like the others.
    ensure!(!s.renew_node("a", now).await?, "a's renewal tells it was taken over");
    ensure!(s.renew_node("b", now).await?, "b's renewal holds");
    s.register_node("a", now).await?;
    ensure!(s.renew_node("a", now).await?, "a, registered again, renews");
    Ok(())
}

async fn relay_commands(s: &Store) -> anyhow::Result<()> {
    let mut listener = s.listen(&[COMMAND_CHANNEL, OUTCOME_CHANNEL]).await?;
    let account = new_id();
    let call = new_id();
    let sent = chrono::Utc::now();
    let command = |node: &str, name: &str, at_ms: i64| RelayedCommand {
        id: new_id(),
        account,
        call,
        node: node.to_owned(),
        name: name.to_owned(),
        xml: format!("<Response><{name}/></Response>"),
        command_id: Some(format!("{name}-1")),
        created_on: sent + chrono::Duration::milliseconds(at_ms),
    };
    // Sent out of order: claimed in the order they were made.
    let hangup = command("b", "Hangup", 2);
    let say = command("b", "Say", 1);
    let for_c = command("c", "Pause", 3);
    for relayed in [&hangup, &say, &for_c] {
        s.relay_command(relayed).await?;
    }
    if let Some(listener) = listener.as_mut() {
        hear(listener, COMMAND_CHANNEL, "b").await.context("node b is woken")?;
        hear(listener, COMMAND_CHANNEL, "c").await.context("node c is woken")?;
    }

    let claimed = s.claim_relayed_commands("b", 10).await?;
    ensure!(claimed.len() == 2, "b's two commands, not c's: {claimed:?}");
    ensure!(claimed[0].id == say.id && claimed[1].id == hangup.id, "in the order made: {claimed:?}");
    ensure!(
        claimed[0].xml == say.xml && claimed[0].command_id == say.command_id && claimed[0].account == account
    );
    ensure!(s.claim_relayed_commands("b", 10).await?.is_empty(), "each command is claimed once");
    ensure!(s.relayed_command_outcome(say.id).await?.is_none(), "running: no outcome yet");

    let refused = RelayedOutcome::WrongState { state: "ringing".into(), reason: "not answered yet".into() };
    s.answer_relayed_command(say.id, &refused, chrono::Utc::now()).await?;
    ensure!(s.relayed_command_outcome(say.id).await? == Some(refused), "the outcome as written");
    if let Some(listener) = listener.as_mut() {
        hear(listener, OUTCOME_CHANNEL, &say.id.to_string()).await.context("the sender is woken")?;
    }
    // A claimed command is not expired under its runner; an unclaimed one is, and never runs.
    ensure!(!s.expire_relayed_command(hangup.id, chrono::Utc::now()).await?, "hangup is being run");
    ensure!(s.expire_relayed_command(for_c.id, chrono::Utc::now()).await?, "nobody took c's command");
    ensure!(s.relayed_command_outcome(for_c.id).await? == Some(RelayedOutcome::Expired));
    ensure!(s.claim_relayed_commands("c", 10).await?.is_empty(), "an expired command is not claimed");

    ensure!(s.purge_relayed_commands(sent).await? == 0, "nothing older than the first");
    ensure!(s.purge_relayed_commands(sent + chrono::Duration::seconds(1)).await? == 3, "all three purged");
    ensure!(s.relayed_command_outcome(say.id).await?.is_none(), "gone");
    Ok(())
}

/// Waits up to 5 s for `payload` on `channel`, passing over other notifications.
async fn hear(listener: &mut StoreListener, channel: &str, payload: &str) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let heard =
            tokio::time::timeout_at(deadline, listener.recv()).await.context("nothing heard in 5 s")??;
        if heard.0 == channel && heard.1 == payload {
            return Ok(());
        }
    }
}

async fn limits(s: &Store) -> anyhow::Result<()> {
    let at = chrono::Utc::now();
    // Twenty takers at once on two nodes, for a limit of four: exactly four hold a lease.
    let takers = (0..20).map(|i| {
        let s = s.clone();
        tokio::spawn(async move {
            let id = new_id();
            let node = if i % 2 == 0 { "a" } else { "b" };
            s.take_lease("profile:x", 4, node, id, at).await.map(|taken| taken.then_some(id))
        })
    });
    let mut held = Vec::new();
    for taker in takers {
        if let Some(id) = taker.await?? {
            held.push(id);
        }
    }
    ensure!(held.len() == 4, "exactly the limit taken: {}", held.len());
    ensure!(s.leases_held("profile:x").await? == 4);
    ensure!(s.take_lease("profile:y", 1, "a", new_id(), at).await?, "another scope has its own count");
    s.give_back_lease(held[0]).await?;
    ensure!(s.take_lease("profile:x", 4, "a", new_id(), at).await?, "a lease given back is free again");
    ensure!(!s.take_lease("profile:x", 4, "a", new_id(), at).await?, "full again");
    let b_held = s.release_node_leases("b").await?;
    ensure!(b_held > 0, "b held some: the takers alternated");
    let left = s.leases_held("profile:x").await?;
    ensure!(left < 4, "b's leases went with it: {left} left");
    ensure!(s.release_node_leases("b").await? == 0, "b holds none now");

    // A rate of 10/s: slots 100 ms apart from now on; a taker that will not wait gets none.
    let now_us = 1_000_000_000_000;
    ensure!(s.reserve_rate_slot("rate", 100_000, now_us, Some(0)).await? == Some(now_us));
    ensure!(s.reserve_rate_slot("rate", 100_000, now_us, None).await? == Some(now_us + 100_000));
    ensure!(
        s.reserve_rate_slot("rate", 100_000, now_us, Some(0)).await?.is_none(),
        "the next is 200 ms away"
    );
    ensure!(s.reserve_rate_slot("rate", 100_000, now_us, Some(200_000)).await? == Some(now_us + 200_000));
    // Later, the slot is now again.
    let later = now_us + 5_000_000;
    ensure!(s.reserve_rate_slot("rate", 100_000, later, Some(0)).await? == Some(later));
    Ok(())
}
