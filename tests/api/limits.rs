//! Admission limits against a real Redis, with concurrent requests through two web processes.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::future::join_all;
use serde_json::{Value, json};
use tutorq::auth::Role;
use tutorq::config::{RoleLimits, Settings};

use crate::helpers::{
    TestApp, sample_input, spawn_app_with, spawn_app_with_workers, spawn_sibling,
};

/// Every role gets these limits (tests change the figure they are about).
fn limits(settings: &mut Settings, change: impl Fn(&mut RoleLimits)) {
    let roles = &mut settings.limits.roles;
    for role in [
        &mut roles.student,
        &mut roles.teacher,
        &mut roles.service,
        &mut roles.admin,
    ] {
        change(role);
    }
}

/// A queued hint request; `label` makes it distinct (questions need a few words).
fn hint(label: &str) -> Value {
    let question = format!("{label}: 2x + 3 = 11 ise x kaçtır?");
    json!({ "input": { "question": question, "subject": "Matematik", "hint_level": 1 }, "mode": "async" })
}

async fn problem_type(response: reqwest::Response) -> (u16, String, reqwest::header::HeaderMap) {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (
        status,
        body["type"].as_str().unwrap_or("").to_owned(),
        headers,
    )
}

/// `(status, problem type)` of each response, counted.
async fn tally(responses: Vec<reqwest::Response>) -> BTreeMap<(u16, String), usize> {
    let mut counts = BTreeMap::new();
    for response in responses {
        let (status, kind, _) = problem_type(response).await;
        *counts.entry((status, kind)).or_insert(0) += 1;
    }
    counts
}

async fn quota(app: &TestApp, user: &str) -> Value {
    let token = app.auth_token(user, Role::Student);
    app.get_json("/v1/quota", Some(&token)).await
}

#[tokio::test]
async fn two_web_processes_admit_exactly_the_daily_request_cap() {
    let first = spawn_app_with(|s| limits(s, |r| r.daily_requests = 100)).await;
    let second = spawn_sibling(&first).await;
    let (first_ref, second_ref) = (&first, &second);
    let requests = (0..200).map(|i| async move {
        let app = if i % 2 == 0 { first_ref } else { second_ref };
        let body = hint(&format!("Soru {i}"));
        app.post_ai_as("capped", "hint", &body, &[]).await
    });
    let counts = tally(join_all(requests).await).await;
    assert_eq!(
        counts,
        BTreeMap::from([
            ((202, String::new()), 100),
            ((429, "/problems/daily-requests".to_owned()), 100),
        ])
    );
    let status = quota(&first, "capped").await;
    assert_eq!(status["daily"]["requests"]["used"], 100, "{status:#}");
    assert_eq!(status["daily"]["requests"]["remaining"], 0);
}

#[tokio::test]
async fn reserved_tokens_never_let_the_settled_total_pass_the_daily_cap() {
    // The estimate of one hint request: what a queued (unsettled) request holds.
    let probe = spawn_app_with(|_| {}).await;
    let response = probe
        .post_ai_as("probe", "hint", &hint("Soru 0"), &[])
        .await;
    assert_eq!(response.status(), 202);
    let estimate = quota(&probe, "probe").await["daily"]["tokens"]["used"]
        .as_u64()
        .unwrap();
    assert!(
        estimate > 200,
        "prompt estimate plus max_tokens: {estimate}"
    );

    let cap = estimate * 5 + estimate / 2;
    let first = spawn_app_with_workers(|s| limits(s, |r| r.daily_tokens = cap)).await;
    let second = spawn_sibling(&first).await;
    let (first_ref, second_ref) = (&first, &second);
    let requests = (0..40).map(|i| async move {
        let app = if i % 2 == 0 { first_ref } else { second_ref };
        // Same length as the probe's question, so the same estimate.
        let body = hint(&format!("Soru {}", i % 10));
        app.post_ai_as("tokens", "hint", &body, &[]).await
    });
    let responses = join_all(requests).await;
    let mut accepted = Vec::new();
    let mut refused = 0;
    for response in responses {
        match response.status().as_u16() {
            202 => accepted.push(
                response.json::<Value>().await.unwrap()["task_id"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            ),
            429 => {
                let (_, kind, _) = problem_type(response).await;
                assert_eq!(kind, "/problems/daily-tokens");
                refused += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    // Workers settle finished tasks while the burst goes on, which frees tokens: at least the
    // five that fit the cap unsettled got in, and the rest were refused for tokens.
    assert!(accepted.len() >= 5, "{} accepted", accepted.len());
    assert_eq!(accepted.len() + refused, 40);
    let mut settled = 0;
    for id in &accepted {
        let task: Value = first.task_as("tokens", id, 10).await.json().await.unwrap();
        assert_eq!(task["status"], "succeeded", "{task:#}");
        let used = task["usage"]["total_tokens"].as_u64().unwrap();
        assert!(used <= estimate, "used {used} of a {estimate} reservation");
        settled += used;
    }
    let status = quota(&first, "tokens").await;
    let used = status["daily"]["tokens"]["used"].as_u64().unwrap();
    assert_eq!(
        used, settled,
        "every reservation settled to real usage: {status:#}"
    );
    assert!(used <= cap, "{used} > {cap}");
    assert_eq!(
        status["monthly"]["tokens"]["used"].as_u64().unwrap(),
        settled
    );
}

#[tokio::test]
async fn the_sliding_window_refuses_one_over_the_limit_then_admits_after_it() {
    let app = spawn_app_with(|s| {
        s.limits.window_secs = 2;
        limits(s, |r| {
            r.per_minute = 3;
            r.cooldown_secs = 0;
        });
    })
    .await;
    for i in 0..3 {
        let response = app
            .post_ai_as("windowed", "hint", &hint(&format!("Soru {i}")), &[])
            .await;
        assert_eq!(response.status(), 202);
        let remaining = response.headers()["ratelimit-remaining"].to_str().unwrap();
        assert_eq!(remaining, (2 - i).to_string());
        assert!(response.headers().contains_key("ratelimit-policy"));
    }
    let (status, kind, headers) = problem_type(
        app.post_ai_as("windowed", "hint", &hint("Soru 3"), &[])
            .await,
    )
    .await;
    assert_eq!((status, kind.as_str()), (429, "/problems/rate-limited"));
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    assert_eq!(headers["ratelimit-remaining"], "0");
    tokio::time::sleep(Duration::from_secs(retry) + Duration::from_millis(100)).await;
    let response = app
        .post_ai_as("windowed", "hint", &hint("Soru 4"), &[])
        .await;
    assert_eq!(response.status(), 202, "the window slid on");
}

#[tokio::test]
async fn a_breach_starts_a_cooldown_that_outlasts_the_window() {
    let app = spawn_app_with(|s| {
        s.limits.window_secs = 1;
        limits(s, |r| {
            r.per_minute = 2;
            r.cooldown_secs = 3;
        });
    })
    .await;
    for i in 0..2 {
        let response = app
            .post_ai_as("cool", "hint", &hint(&format!("Soru {i}")), &[])
            .await;
        assert_eq!(response.status(), 202);
    }
    let (status, _, headers) =
        problem_type(app.post_ai_as("cool", "hint", &hint("Soru 2"), &[]).await).await;
    assert_eq!(status, 429);
    assert_eq!(headers["retry-after"], "3");
    // The window has slid on, but the cooldown still refuses.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let (status, kind, _) =
        problem_type(app.post_ai_as("cool", "hint", &hint("Soru 3"), &[]).await).await;
    assert_eq!((status, kind.as_str()), (429, "/problems/rate-limited"));
    tokio::time::sleep(Duration::from_millis(1900)).await;
    let response = app.post_ai_as("cool", "hint", &hint("Soru 4"), &[]).await;
    assert_eq!(response.status(), 202, "cooldown over");
}

#[tokio::test]
async fn the_per_ip_limit_holds_across_two_web_processes() {
    let first = spawn_app_with(|s| s.limits.ip.per_minute = 30).await;
    let second = spawn_sibling(&first).await;
    let token = first.auth_token("ip-user", Role::Student);
    let requests = (0..60).map(|i| {
        let app = if i % 2 == 0 { &first } else { &second };
        app.client
            .get(app.url("/v1/quota"))
            .bearer_auth(&token)
            .send()
    });
    let responses: Vec<reqwest::Response> = join_all(requests)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let counts = tally(responses).await;
    assert_eq!(
        counts,
        BTreeMap::from([
            ((200, String::new()), 30),
            ((429, "/problems/rate-limited".to_owned()), 30),
        ])
    );
    // Health checks are not limited.
    let health = first
        .client
        .get(first.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn repeated_violations_block_until_unblocked_or_the_block_expires() {
    let app = spawn_app_with(|s| {
        s.limits.abuse.violations = 3;
        s.limits.abuse.window_secs = 60;
        s.limits.abuse.block_secs = 2;
    })
    .await;
    let bad = json!({ "input": { "subject": "Matematik" } });
    let block = || async {
        for _ in 0..3 {
            let response = app.post_ai_as("abuser", "hint", &bad, &[]).await;
            assert_eq!(response.status(), 422);
        }
        let response = app.post_ai_as("abuser", "hint", &hint("Soru"), &[]).await;
        let (status, kind, headers) = problem_type(response).await;
        assert_eq!((status, kind.as_str()), (403, "/problems/blocked"));
        assert!(headers.contains_key("retry-after"));
    };
    block().await;
    let response = app.post_ai_as("abuser", "hint", &hint("Soru"), &[]).await;
    let body: Value = response.json().await.unwrap();
    assert!(
        body["blocked_until"].as_str().unwrap().ends_with('Z'),
        "{body:#}"
    );
    assert!(
        body["detail"].as_str().unwrap().contains("blocked until"),
        "{body:#}"
    );

    let admin = app.auth_token("root", Role::Admin);
    let blocks = app.get_json("/v1/admin/blocks", Some(&admin)).await;
    assert_eq!(blocks["blocks"][0]["user_id"], "abuser", "{blocks:#}");
    let unblocked: Value = app
        .client
        .post(app.url("/v1/admin/users/abuser/unblock"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(unblocked["was_blocked"], true);
    let response = app.post_ai_as("abuser", "hint", &hint("Soru"), &[]).await;
    assert_eq!(response.status(), 202, "unblocked");

    // Blocked again; this time the block runs out by itself.
    block().await;
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let response = app.post_ai_as("abuser", "hint", &hint("Soru"), &[]).await;
    assert_eq!(response.status(), 202, "the block expired");
    let blocks = app.get_json("/v1/admin/blocks", Some(&admin)).await;
    assert_eq!(blocks["blocks"], json!([]));
}

#[tokio::test]
async fn admin_overrides_change_one_users_caps() {
    let app = spawn_app_with(|s| limits(s, |r| r.daily_requests = 1000)).await;
    let admin = app.auth_token("root", Role::Admin);
    let set = app
        .client
        .put(app.url("/v1/admin/users/vip/limits"))
        .bearer_auth(&admin)
        .json(&json!({ "daily_requests": 2 }))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200);
    for i in 0..2 {
        let response = app
            .post_ai_as("vip", "hint", &hint(&format!("Soru {i}")), &[])
            .await;
        assert_eq!(response.status(), 202);
    }
    let (status, kind, _) =
        problem_type(app.post_ai_as("vip", "hint", &hint("Soru 2"), &[]).await).await;
    assert_eq!((status, kind.as_str()), (429, "/problems/daily-requests"));
    let status = quota(&app, "vip").await;
    assert_eq!(status["limits"]["daily_requests"], 2, "{status:#}");
    assert_eq!(status["overrides"]["daily_requests"], 2);
    // Other users keep the role's figure; a bad override is refused with the field named.
    let response = app.post_ai_as("other", "hint", &hint("Soru"), &[]).await;
    assert_eq!(response.status(), 202);
    let bad = app
        .client
        .put(app.url("/v1/admin/users/vip/limits"))
        .bearer_auth(&admin)
        .json(&json!({ "daily_requets": 5, "per_minute": -1 }))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    let body: Value = bad.json().await.unwrap();
    assert!(
        body["errors"]["daily_requets"]
            .as_str()
            .unwrap()
            .contains("daily_requests")
    );
    assert!(body["errors"]["per_minute"].is_string());
}

#[tokio::test]
async fn a_provider_failure_refunds_the_reserved_tokens() {
    let app = spawn_app_with(|s| s.providers.mock.failure_rate = 1.0).await;
    let before = quota(&app, "unlucky").await;
    assert_eq!(before["daily"]["tokens"]["used"], 0);
    let mut body = hint("Soru");
    body["mode"] = "sync".into();
    let response = app.post_ai_as("unlucky", "hint", &body, &[]).await;
    assert!(response.status().is_server_error(), "{}", response.status());
    let after = quota(&app, "unlucky").await;
    assert_eq!(after["daily"]["tokens"]["used"], 0, "{after:#}");
    assert_eq!(after["monthly"]["tokens"]["used"], 0);
    assert_eq!(
        after["daily"]["requests"]["used"], 1,
        "the request still counts"
    );
}

#[tokio::test]
async fn a_cache_hit_costs_no_tokens_and_no_provider_call_and_misses_coalesce() {
    let app = spawn_app_with(|s| {
        s.cache.ttl_secs.insert("hint".into(), 60);
        s.providers.mock.latency_ms = tutorq::config::LatencySetting::Fixed(300);
    })
    .await;
    let admin = app.auth_token("root", Role::Admin);
    let calls = || async {
        let providers = app.get_json("/v1/admin/providers", Some(&admin)).await;
        providers["providers"][0]["calls"].as_u64().unwrap()
    };
    let mut body = json!({ "input": sample_input("hint"), "mode": "sync" });
    let first: Value = app
        .post_ai_as("c1", "hint", &body, &[])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(first["cached"], false, "{first:#}");
    assert_eq!(calls().await, 1);
    let used_before = quota(&app, "c2").await;
    let second: Value = app
        .post_ai_as("c2", "hint", &body, &[])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(second["cached"], true, "{second:#}");
    assert_eq!(second["result"], first["result"]);
    assert_eq!(second["usage"]["total_tokens"], 0);
    assert_eq!(calls().await, 1, "a hit makes no provider call");
    let used_after = quota(&app, "c2").await;
    assert_eq!(
        used_after["daily"]["tokens"]["used"],
        used_before["daily"]["tokens"]["used"]
    );
    assert_eq!(
        used_after["daily"]["requests"]["used"], 1,
        "a hit costs one request"
    );
    // The hit is on the record as one (task history in PostgreSQL, written off the request path).
    let pool = sqlx::PgPool::connect(app.settings.database.url.expose())
        .await
        .unwrap();
    let mut hits = 0i64;
    for _ in 0..100 {
        hits = sqlx::query_scalar(
            "SELECT count(*) FROM task_history WHERE cached AND user_id = 'c2' AND provider = 'cache'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        if hits > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(hits, 1, "the cache hit is recorded as one");

    // Twenty identical misses at once: one provider call, one answer for all.
    body["input"]["question"] = "Yeni bir soru: 3x = 12 ise x kaçtır?".into();
    let (app_ref, body_ref) = (&app, &body);
    let requests = (0..20).map(|i| async move {
        let user = format!("burst-{i}");
        let response = app_ref.post_ai_as(&user, "hint", body_ref, &[]).await;
        response.json::<Value>().await.unwrap()
    });
    let answers: Vec<Value> = join_all(requests).await;
    assert_eq!(calls().await, 2, "coalesced into one call");
    let results: std::collections::BTreeSet<String> =
        answers.iter().map(|a| a["result"].to_string()).collect();
    assert_eq!(results.len(), 1, "{answers:#?}");
    assert_eq!(answers.iter().filter(|a| a["cached"] == false).count(), 1);

    // A streamed request is not cached, and another feature (study_plan) has no cache.
    let plan = json!({ "input": sample_input("study_plan"), "mode": "sync" });
    for _ in 0..2 {
        let answer: Value = app
            .post_ai_as("c3", "study_plan", &plan, &[])
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(answer["cached"], false);
    }
    assert_eq!(calls().await, 4);
}

#[tokio::test]
async fn the_quota_endpoint_shows_limits_usage_and_istanbul_resets() {
    let app = spawn_app_with(|_| {}).await;
    let response = app.post_ai_as("me", "hint", &hint("Soru"), &[]).await;
    assert_eq!(response.status(), 202);
    let status = quota(&app, "me").await;
    assert_eq!(status["user_id"], "me");
    assert_eq!(status["role"], "student");
    assert_eq!(status["daily"]["requests"]["used"], 1);
    assert_eq!(status["window"]["used"], 1);
    let resets: jiff::Timestamp = status["daily"]["resets_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let local = resets.to_zoned(jiff::tz::TimeZone::get("Europe/Istanbul").unwrap());
    assert_eq!(
        (local.hour(), local.minute()),
        (0, 0),
        "local midnight: {local}"
    );
    let monthly: jiff::Timestamp = status["monthly"]["resets_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let local = monthly.to_zoned(jiff::tz::TimeZone::get("Europe/Istanbul").unwrap());
    assert_eq!(local.day(), 1, "first of the month: {local}");
}
