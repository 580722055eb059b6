//! The audit trail against real PostgreSQL and Redis, including a PostgreSQL outage (a TCP
//! proxy in front of the real server drops every connection while "down").

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt as _;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::{TestApp, sample_input, spawn_app_with, test_settings};

async fn pool(app: &TestApp) -> PgPool {
    PgPool::connect(app.settings.database.url.expose())
        .await
        .unwrap()
}

/// `(kind, payload, provider, prompt_tokens, error_kind, client_ip)` of one audit event.
type EventRow = (
    String,
    Value,
    Option<String>,
    i32,
    Option<String>,
    Option<String>,
);

/// A task's audit events, oldest first, once there are `expected` of them.
async fn events_of(
    pool: &PgPool,
    task_id: &str,
    expected: usize,
) -> Vec<(
    String,
    Value,
    Option<String>,
    i32,
    Option<String>,
    Option<String>,
)> {
    for _ in 0..200 {
        let rows: Vec<EventRow> =
            sqlx::query_as(
                "SELECT kind, payload, provider, prompt_tokens, error_kind, client_ip FROM audit_events \
                 WHERE task_id = $1::uuid ORDER BY created_at",
            )
            .bind(task_id)
            .fetch_all(pool)
            .await
            .unwrap();
        if rows.len() >= expected {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("task {task_id} did not get {expected} audit events");
}

#[tokio::test]
async fn an_answered_request_leaves_a_pre_request_and_a_success_event() {
    let app = spawn_app_with(|_| {}).await;
    let body = json!({ "input": sample_input("hint"), "mode": "sync" });
    let answer: Value = app
        .post_ai_as("u-audit", "hint", &body, &[])
        .await
        .json()
        .await
        .unwrap();
    let task_id = answer["task_id"].as_str().unwrap();
    let pool = pool(&app).await;
    let events = events_of(&pool, task_id, 2).await;
    assert_eq!(events.len(), 2, "{events:#?}");
    let (kind, payload, _, _, _, ip) = &events[0];
    assert_eq!(kind, "pre_request");
    assert_eq!(payload["input"], sample_input("hint"));
    assert_eq!(payload["input_hash"].as_str().unwrap().len(), 64);
    assert_eq!(ip.as_deref(), Some("127.0.0.1"));
    let (kind, payload, provider, prompt_tokens, error_kind, _) = &events[1];
    assert_eq!(kind, "success");
    assert_eq!(provider.as_deref(), Some("mock"));
    assert_eq!(
        *prompt_tokens as u64,
        answer["usage"]["prompt_tokens"].as_u64().unwrap()
    );
    assert_eq!(payload["response"], answer["result"]);
    assert_eq!(*error_kind, None);
    let (user, duration, cost): (String, Option<i32>, f64) = sqlx::query_as(
        "SELECT user_id, duration_ms, cost_usd FROM audit_events WHERE task_id = $1::uuid AND kind = 'success'",
    )
    .bind(task_id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(user, "u-audit");
    assert!(duration.is_some());
    assert_eq!(cost, 0.0, "the mock is free");
}

#[tokio::test]
async fn failures_cancellations_and_refusals_leave_error_events() {
    // A request whose provider fails ends `error` with the failure's kind.
    let app = spawn_app_with(|s| {
        s.providers.mock.failure_rate = 1.0;
        s.limits.roles.student.daily_requests = 2;
    })
    .await;
    let pool = pool(&app).await;
    let body = json!({ "input": sample_input("hint"), "mode": "sync" });
    let failed = app.post_ai_as("u-err", "hint", &body, &[]).await;
    assert!(failed.status().is_server_error());
    assert_eq!(error_event(&pool, "provider_error").await, "error");

    // Refused by the daily cap (2 requests; the third is refused).
    let queued = json!({ "input": sample_input("hint"), "mode": "async" });
    let accepted: Value = app
        .post_ai_as("u-err", "hint", &queued, &[])
        .await
        .json()
        .await
        .unwrap();
    // Cancelled before any worker took it.
    let cancel = app
        .client
        .delete(app.url(&format!(
            "/v1/tasks/{}",
            accepted["task_id"].as_str().unwrap()
        )))
        .bearer_auth(app.auth_token("u-err", tutorq::auth::Role::Student))
        .send()
        .await
        .unwrap();
    assert!(cancel.status().is_success(), "{}", cancel.status());
    assert_eq!(error_event(&pool, "cancelled").await, "error");
    let refused = app.post_ai_as("u-err", "hint", &queued, &[]).await;
    assert_eq!(refused.status(), 429);
    assert_eq!(error_event(&pool, "daily-requests").await, "error");
}

/// The kind of u-err's event with this error kind, once it is written.
async fn error_event(pool: &PgPool, error_kind: &str) -> String {
    for _ in 0..200 {
        let row: Option<(String,)> = sqlx::query_as(
            "SELECT kind FROM audit_events WHERE user_id = 'u-err' AND error_kind = $1",
        )
        .bind(error_kind)
        .fetch_optional(pool)
        .await
        .unwrap();
        if let Some((kind,)) = row {
            return kind;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no `{error_kind}` event for u-err");
}

/// A TCP proxy to PostgreSQL that can be switched off: while off it cuts every connection.
pub struct Outage {
    up: Arc<AtomicBool>,
    pub port: u16,
}

impl Outage {
    pub async fn start(target: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let flag = up.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                if !flag.load(Ordering::SeqCst) {
                    continue; // dropped: connection refused in effect
                }
                let flag = flag.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(("127.0.0.1", target)).await else {
                        return;
                    };
                    let copy = tokio::io::copy_bidirectional(&mut client, &mut server);
                    let down = async {
                        while flag.load(Ordering::SeqCst) {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    };
                    tokio::select! {
                        _ = copy => {}
                        () = down => {}
                    }
                });
            }
        });
        Self { up, port }
    }

    pub fn set(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
    }

    /// A proxy in front of the test cluster of `url`, and `url` through it.
    pub async fn in_front_of(url: &str) -> (Self, String) {
        let target: u16 = url
            .split("127.0.0.1:")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .and_then(|p| p.parse().ok())
            .expect("the test cluster listens on 127.0.0.1");
        let outage = Self::start(target).await;
        let proxied = url.replace(
            &format!("127.0.0.1:{target}/"),
            &format!("127.0.0.1:{}/", outage.port),
        );
        (outage, proxied)
    }
}

#[tokio::test]
async fn a_postgres_outage_loses_no_audit_event_and_duplicates_none() {
    let mut settings = test_settings().await;
    let direct = settings.database.url.expose().to_owned();
    let target: u16 = direct
        .split("127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|p| p.parse().ok())
        .expect("the test cluster listens on 127.0.0.1");
    let outage = Outage::start(target).await;
    let proxied = direct.replace(
        &format!("127.0.0.1:{target}/"),
        &format!("127.0.0.1:{}/", outage.port),
    );
    settings.database.url = tutorq::config::Secret::new(proxied);
    settings.database.acquire_timeout_ms = 500;
    let app = crate::helpers::spawn_app_from_settings(settings).await;

    let send = |range: std::ops::Range<usize>| {
        let app = &app;
        futures_util::stream::iter(range)
            .map(move |i| async move {
                let body = json!({
                    "input": { "question": format!("Soru {i}: 2x + 3 = 11 ise x kaçtır?"), "subject": "Matematik", "hint_level": 1 },
                    "mode": "sync",
                });
                let response = app.post_ai_as(&format!("outage-{}", i % 7), "hint", &body, &[]).await;
                assert_eq!(response.status(), 200, "request {i}");
            })
            .buffer_unordered(32)
            .collect::<Vec<()>>()
    };
    send(0..300).await;
    outage.set(false);
    send(300..700).await;
    let spooled: u64 = redis::cmd("LLEN")
        .arg(tutorq::audit::SPOOL_KEY)
        .query_async(&mut app.redis().await)
        .await
        .unwrap();
    assert!(spooled > 0, "events waited in Redis during the outage");
    outage.set(true);
    send(700..1000).await;

    let pool = PgPool::connect(&direct).await.unwrap();
    let mut counts = (0i64, 0i64);
    for _ in 0..600 {
        counts = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE kind = 'pre_request'), count(*) FILTER (WHERE kind <> 'pre_request') \
             FROM audit_events WHERE user_id LIKE 'outage-%'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        if counts == (1000, 1000) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        counts,
        (1000, 1000),
        "every request has exactly one pre_request and one final event"
    );
    let (tasks, out_of_order): (i64, i64) = sqlx::query_as(
        "SELECT count(DISTINCT task_id), count(*) FILTER (WHERE pre.created_at > fin.created_at) \
         FROM audit_events pre JOIN audit_events fin USING (task_id) \
         WHERE pre.kind = 'pre_request' AND fin.kind <> 'pre_request' AND pre.user_id LIKE 'outage-%'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((tasks, out_of_order), (1000, 0));
}

#[tokio::test]
async fn a_batch_holding_a_row_already_written_adds_only_its_new_rows() {
    let app = crate::helpers::spawn_app().await;
    let pool = pool(&app).await;
    let redis = app.redis().await;
    let mut settings = app.settings.audit.clone();
    settings.enabled = true;
    let log = tutorq::audit::AuditLog::start(&settings, pool.clone(), redis);
    let facts = |task_id: &str| {
        tutorq::audit::RequestFacts::of(tutorq::facts::TaskFacts {
            task_id: task_id.to_owned(),
            request_id: format!("req-{task_id}"),
            user_id: "dup-check".into(),
            role: tutorq::facts::Role::Student,
            feature: Some(tutorq::feature::Feature::Hint),
        })
    };
    let (first, second) = (
        uuid::Uuid::now_v7().to_string(),
        uuid::Uuid::now_v7().to_string(),
    );

    log.pre_request(&facts(&first), &json!({ "question": "first write" }));
    log.flush(Duration::from_secs(10)).await;
    // One batch: a retry of `first` (already a row) and the new `second`.
    log.pre_request(&facts(&first), &json!({ "question": "retried" }));
    log.pre_request(&facts(&second), &json!({ "question": "new" }));
    log.flush(Duration::from_secs(10)).await;

    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT task_id::text, payload->'input'->>'question' FROM audit_events \
         WHERE user_id = 'dup-check' ORDER BY task_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        rows,
        vec![
            (first, "first write".to_owned()),
            (second, "new".to_owned())
        ],
        "the retried row is skipped, the first write kept, and the batch's new row written"
    );
}

#[tokio::test]
async fn sigterm_under_load_loses_no_event_of_an_answered_request() {
    let settings = test_settings().await;
    let port = crate::servers::free_port();
    let mut web = crate::helpers::tutorq_command(&settings, &["serve"])
        .env("TUTORQ__SERVER__PORT", port.to_string())
        .env("TUTORQ__PROVIDERS__MOCK__LATENCY_MS", "30")
        .env("TUTORQ__LOG__LEVEL", "error")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start tutorq serve");
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    for _ in 0..200 {
        if client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let token = tutorq::auth::Authenticator::new(&settings.auth).mint(
        "sigterm",
        tutorq::auth::Role::Service,
        Duration::from_secs(600),
    );
    let answered = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut load = tokio::task::JoinSet::new();
    for worker in 0..16 {
        let (client, base, token, answered) = (
            client.clone(),
            base.clone(),
            token.clone(),
            answered.clone(),
        );
        load.spawn(async move {
            for i in 0.. {
                let body = json!({
                    "input": { "question": format!("Soru {worker}-{i}: 2x + 3 = 11 ise x kaçtır?"), "subject": "Matematik", "hint_level": 1 },
                    "mode": "sync",
                });
                let Ok(response) = client.post(format!("{base}/v1/ai/hint")).bearer_auth(&token).json(&body).send().await else {
                    break;
                };
                if response.status() != 200 {
                    break;
                }
                let answer: Value = response.json().await.unwrap();
                answered.lock().unwrap().push(answer["task_id"].as_str().unwrap().to_owned());
            }
        });
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    std::process::Command::new("kill")
        .args(["-TERM", &web.id().to_string()])
        .status()
        .unwrap();
    let status = web.wait().unwrap();
    assert!(status.success(), "{status}");
    while load.join_next().await.is_some() {}
    let answered = answered.lock().unwrap().clone();
    assert!(answered.len() > 20, "only {} answered", answered.len());

    // Whatever was spooled is drained by any process of the deployment; this one drains.
    let _drainer = crate::helpers::spawn_app_from_settings(settings.clone()).await;
    let pool = PgPool::connect(settings.database.url.expose())
        .await
        .unwrap();
    let mut missing = answered.len() as i64;
    for _ in 0..200 {
        let complete: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM (SELECT task_id FROM audit_events WHERE task_id::text = ANY($1) \
             GROUP BY task_id HAVING count(*) FILTER (WHERE kind = 'pre_request') = 1 \
             AND count(*) FILTER (WHERE kind = 'success') = 1) AS t",
        )
        .bind(&answered)
        .fetch_one(&pool)
        .await
        .unwrap();
        missing = answered.len() as i64 - complete;
        if missing == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        missing,
        0,
        "answered requests without both events, of {}",
        answered.len()
    );
}

/// Some traffic: three users, two features, one failure.
async fn traffic(app: &TestApp) {
    for (user, feature) in [
        ("r1", "hint"),
        ("r1", "explanation"),
        ("r2", "hint"),
        ("r3", "explanation"),
    ] {
        let body = json!({ "input": sample_input(feature), "mode": "sync" });
        assert_eq!(
            app.post_ai_as(user, feature, &body, &[]).await.status(),
            200
        );
    }
}

async fn wait_for_events(pool: &PgPool, count: i64) {
    for _ in 0..200 {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_events")
            .fetch_one(pool)
            .await
            .unwrap();
        if n >= count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("fewer than {count} audit events");
}

#[tokio::test]
async fn usage_and_latency_reports_match_a_recount_of_the_rows() {
    let app = spawn_app_with(|_| {}).await;
    traffic(&app).await;
    let pool = pool(&app).await;
    wait_for_events(&pool, 8).await;
    let admin = app.auth_token("root", tutorq::auth::Role::Admin);
    for group_by in ["user", "feature", "provider", "model", "day"] {
        let report = app
            .get_json(
                &format!("/v1/admin/usage?group_by={group_by}"),
                Some(&admin),
            )
            .await;
        let column = match group_by {
            "user" => "user_id",
            "day" => "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
            "provider" => "coalesce(provider, '')",
            "model" => "coalesce(model, '')",
            _ => group_by,
        };
        let recount: Vec<(String, i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {column}, count(*), sum(prompt_tokens + completion_tokens)::int8 FROM audit_events \
             WHERE kind <> 'pre_request' GROUP BY 1 ORDER BY 1"
        )))
        .fetch_all(&pool)
        .await
        .unwrap();
        let rows: Vec<(String, i64, i64)> = report["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["group"].as_str().unwrap().to_owned(),
                    r["requests"].as_i64().unwrap(),
                    r["prompt_tokens"].as_i64().unwrap() + r["completion_tokens"].as_i64().unwrap(),
                )
            })
            .collect();
        assert_eq!(rows, recount, "group_by={group_by}");
    }
    let latency = app
        .get_json("/v1/admin/latency?feature=hint", Some(&admin))
        .await;
    assert_eq!(latency["rows"][0]["feature"], "hint");
    assert_eq!(latency["rows"][0]["requests"], 2);
    assert!(latency["rows"][0]["p99_ms"].as_f64().is_some());

    // Bad parameters are named.
    for (path, field) in [
        ("/v1/admin/usage?group_by=week", "group_by"),
        ("/v1/admin/usage?from=yesterday", "from"),
        ("/v1/admin/audit?limit=0", "limit"),
        ("/v1/admin/audit?cursor=abc", "cursor"),
    ] {
        let response = app
            .client
            .get(app.url(path))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        let body = crate::helpers::assert_problem(response, 422, "invalid-input").await;
        assert!(body["errors"][field].is_string(), "{path}: {body:#}");
    }
}

#[tokio::test]
async fn the_audit_listing_pages_by_keyset_and_exports_csv_a_parser_reads() {
    let app = spawn_app_with(|_| {}).await;
    traffic(&app).await;
    let pool = pool(&app).await;
    wait_for_events(&pool, 8).await;
    let admin = app.auth_token("root", tutorq::auth::Role::Admin);
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/admin/audit?limit=3&cursor={c}"),
            None => "/v1/admin/audit?limit=3".to_owned(),
        };
        let page = app.get_json(&path, Some(&admin)).await;
        for event in page["events"].as_array().unwrap() {
            seen.push((
                event["created_at"].as_str().unwrap().to_owned(),
                event["id"].as_str().unwrap().to_owned(),
            ));
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 8, "{seen:#?}");
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.reverse();
    assert_eq!(seen, sorted, "newest first, no repeats");
    let filtered = app
        .get_json("/v1/admin/audit?user_id=r1&status=success", Some(&admin))
        .await;
    assert_eq!(filtered["events"].as_array().unwrap().len(), 2);

    // CSV, read by Python's csv module.
    let csv = app
        .client
        .get(app.url("/v1/admin/audit"))
        .bearer_auth(&admin)
        .header("accept", "text/csv")
        .send()
        .await
        .unwrap();
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let text = csv.text().await.unwrap();
    let parsed = std::process::Command::new(crate::helpers::repo_path("target/pyenv/bin/python"))
        .args(["-c", "import csv, json, sys; rows = list(csv.DictReader(sys.stdin)); print(json.dumps([len(rows), sorted({r['kind'] for r in rows}), json.loads(rows[0]['payload']) is not None]))"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write as _;
            child.stdin.take().unwrap().write_all(text.as_bytes())?;
            child.wait_with_output()
        })
        .expect("run python's csv module");
    let summary: Value = serde_json::from_slice(&parsed.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&parsed.stderr)));
    assert_eq!(summary, json!([8, ["pre_request", "success"], true]));
}

#[tokio::test]
async fn report_queries_use_the_indexes() {
    let app = spawn_app_with(|_| {}).await;
    let pool = pool(&app).await;
    let mut conn = pool.acquire().await.unwrap();
    sqlx::query("SET enable_seqscan = off")
        .execute(&mut *conn)
        .await
        .unwrap();
    let plan: Vec<String> = sqlx::query_scalar(
        "EXPLAIN SELECT id FROM audit_events WHERE user_id = 'u' AND created_at >= now() - interval '30 days' \
         ORDER BY created_at DESC LIMIT 100",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    let plan = plan.join("\n");
    println!("{plan}");
    assert!(plan.contains("audit_events_user_created"), "{plan}");
    let plan: Vec<String> = sqlx::query_scalar(
        "EXPLAIN SELECT feature, count(*) FROM audit_events WHERE created_at >= now() - interval '1 day' GROUP BY 1",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    let plan = plan.join("\n");
    println!("{plan}");
    assert!(
        plan.contains("audit_events_created") || plan.contains("audit_events_feature_created"),
        "{plan}"
    );
}
