//! Follow-up steps across slots (tasks/outbox.rs): a step a dead process left in its
//! partition's outbox is applied by another process's sweeper, and a step applied twice counts
//! once (webhook steps: `webhooks.rs`).

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tutorq::auth::Role;

use crate::helpers::{TestApp, sample_input, spawn_app};

async fn daily_tokens_used(app: &TestApp, user: &str) -> i64 {
    let token = app.auth_token(user, Role::Student);
    app.get_json("/v1/quota", Some(&token)).await["daily"]["tokens"]["used"]
        .as_i64()
        .expect("the quota shows the day's tokens")
}

/// A queued hint (no workers run here, so it holds its reservation) and its reservation as
/// the task record keeps it.
async fn queued_with_reservation(app: &TestApp, user: &str) -> (String, String) {
    let id = app.queue_hint(user).await;
    let quota: Option<String> = redis::cmd("HGET")
        .arg(app.partitions().task(&id))
        .arg("quota")
        .query_async(&mut app.redis().await)
        .await
        .unwrap();
    (id, quota.expect("a queued task keeps its reservation"))
}

#[tokio::test]
async fn a_settlement_applied_twice_counts_once() {
    let app = spawn_app().await;
    let user = "settles-twice";
    let (id, quota) = queued_with_reservation(&app, user).await;
    let reserved = daily_tokens_used(&app, user).await;
    assert!(reserved > 10, "the reservation counts at once: {reserved}");
    let mut conn = app.redis().await;
    for _ in 0..2 {
        tutorq::limits::settle(&mut conn, user, "hint", &id, &quota, 10)
            .await
            .unwrap();
    }
    assert_eq!(daily_tokens_used(&app, user).await, 10);
}

/// Writes a follow-up step (`fields`) into `id`'s partition outbox as a process that recorded
/// the task's change and died before applying it would have left it: ten seconds old.
pub(crate) async fn leave_in_outbox(app: &TestApp, id: &str, fields: &[(&str, &str)]) {
    let parts = app.partitions();
    let stamp = jiff::Timestamp::now().as_millisecond() - 10_000;
    let add = |entry: String| {
        let mut add = redis::cmd("XADD");
        add.arg(parts.outbox(parts.of(id))).arg(entry).arg(fields);
        add
    };
    let mut conn = app.redis().await;
    let backdated: redis::RedisResult<String> =
        add(format!("{stamp}-*")).query_async(&mut conn).await;
    if backdated.is_err() {
        // The stream took an entry since (its ids only grow): this one is left now, and the
        // sweeper takes it once it is old enough.
        let _: String = add("*".into()).query_async(&mut conn).await.unwrap();
    }
}

/// A settlement of `id`'s reservation `quota` to `used` tokens, left in the outbox.
async fn leave_settlement(app: &TestApp, user: &str, id: &str, quota: &str, used: u64) {
    let used = used.to_string();
    let fields = [
        ("op", "settle"),
        ("task", id),
        ("user", user),
        ("feature", "hint"),
        ("quota", quota),
        ("used", used.as_str()),
    ];
    leave_in_outbox(app, id, &fields).await;
}

/// Waits until `id`'s partition outbox is empty (applied and deleted).
pub(crate) async fn outbox_drained(app: &TestApp, id: &str) {
    let parts = app.partitions();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left: u64 = redis::cmd("XLEN")
            .arg(parts.outbox(parts.of(id)))
            .query_async(&mut app.redis().await)
            .await
            .unwrap();
        if left == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{left} follow-ups still in the outbox"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_follow_up_a_dead_process_left_is_applied_once_by_the_sweeper() {
    let app = spawn_app().await;
    let user = "left-behind";
    let (id, quota) = queued_with_reservation(&app, user).await;
    assert!(daily_tokens_used(&app, user).await > 10);

    leave_settlement(&app, user, &id, &quota, 10).await;
    outbox_drained(&app, &id).await;
    assert_eq!(
        daily_tokens_used(&app, user).await,
        10,
        "the sweeper settled the reservation to its real use"
    );

    // A sweeper that applied the step and died before deleting it: the step comes round again
    // and changes nothing.
    leave_settlement(&app, user, &id, &quota, 10).await;
    outbox_drained(&app, &id).await;
    assert_eq!(daily_tokens_used(&app, user).await, 10);
    let status: Value = app.task_as(user, &id, 0).await.json().await.unwrap();
    assert_eq!(status["status"], "queued", "{status:#}");
}

/// How many entries `id`'s partition outbox holds.
async fn outbox_len(app: &TestApp, id: &str) -> u64 {
    let parts = app.partitions();
    redis::cmd("XLEN")
        .arg(parts.outbox(parts.of(id)))
        .query_async(&mut app.redis().await)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_inline_run_settles_its_reservation_once() {
    let app = spawn_app().await;
    let user = "inline-settles";
    let response = app
        .post_ai_as(
            user,
            "hint",
            &json!({ "input": sample_input("hint"), "mode": "sync" }),
            &[],
        )
        .await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    let id = answer["task_id"].as_str().unwrap().to_owned();
    let used = answer["usage"]["total_tokens"].as_i64().unwrap();
    if !crate::servers::cluster_mode() {
        // On one server the finish settled in its own step: nothing was left to follow up.
        assert_eq!(outbox_len(&app, &id).await, 0);
    }
    outbox_drained(&app, &id).await;
    assert_eq!(daily_tokens_used(&app, user).await, used);
    if crate::servers::cluster_mode() {
        // There the settlement was a follow-up, and the settled set knows the task: the same
        // follow-up, left again by a process that died, gives nothing back a second time.
        let mut conn = app.redis().await;
        let mut reset_at = Vec::new();
        for key in [
            tutorq::limits::keys::daily(user),
            tutorq::limits::keys::monthly(user),
        ] {
            let at: String = redis::cmd("HGET")
                .arg(key)
                .arg("reset_at")
                .query_async(&mut conn)
                .await
                .unwrap();
            reset_at.push(at);
        }
        let quota = format!("400:{}:{}", reset_at[0], reset_at[1]);
        leave_settlement(&app, user, &id, &quota, 0).await;
        outbox_drained(&app, &id).await;
        assert_eq!(daily_tokens_used(&app, user).await, used);
    }
}
