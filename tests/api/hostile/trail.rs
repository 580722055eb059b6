//! The audit trail under hostile rows: one PostgreSQL refuses never holds back the rest, and
//! the solution hashes are keyed in production.

use std::process::Command;
use std::time::Duration;

use serde_json::json;
use sqlx::PgPool;

use crate::audit::Outage;
use crate::helpers::spawn_app;

fn facts(task: &str, user: &str) -> tutorq::audit::RequestFacts {
    tutorq::audit::RequestFacts::of(tutorq::facts::TaskFacts {
        task_id: task.to_owned(),
        request_id: format!("req-{task}"),
        user_id: user.to_owned(),
        role: tutorq::facts::Role::Student,
        feature: Some(tutorq::feature::Feature::Hint),
    })
}

/// Item 3: a row PostgreSQL refuses (a NUL byte; an index row too large) sent its whole batch,
/// other users' events included, to the spool, and the drain stopped at it for ever, so nothing
/// spooled after it arrived. Here two such rows sit among 60 good events spooled during an
/// outage: after recovery every good event is written exactly once, the two are in quarantine,
/// and the spool is empty.
#[tokio::test]
async fn a_poison_row_is_quarantined_and_never_blocks_the_audit_trail() {
    let app = spawn_app().await;
    let direct = app.settings.database.url.expose().to_owned();
    let (outage, proxied) = Outage::in_front_of(&direct).await;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(500))
        .connect(&proxied)
        .await
        .unwrap();
    let redis = app.redis().await;
    let mut settings = app.settings.audit.clone();
    settings.enabled = true;
    let log = tutorq::audit::AuditLog::start(&settings, pool, redis);

    outage.set(false);
    // Random hex (incompressible): too large for a btree index row.
    let huge: String = (0..700)
        .map(|_| uuid::Uuid::new_v4().simple().to_string())
        .collect();
    let mut good = Vec::new();
    for i in 0..60 {
        if i == 20 {
            log.pre_request(
                &facts(&uuid::Uuid::now_v7().to_string(), "poi\0son"),
                &json!({}),
            );
        }
        if i == 40 {
            log.pre_request(&facts(&uuid::Uuid::now_v7().to_string(), &huge), &json!({}));
        }
        let task = uuid::Uuid::now_v7().to_string();
        log.pre_request(
            &facts(&task, &format!("trail-{}", i % 5)),
            &json!({ "i": i }),
        );
        good.push(task);
        if i % 10 == 9 {
            // Separate batches, all of them spooled while PostgreSQL is away.
            log.flush(Duration::from_secs(10)).await;
        }
    }
    log.flush(Duration::from_secs(10)).await;
    let spooled: u64 = redis::cmd("LLEN")
        .arg(tutorq::audit::SPOOL_KEY)
        .query_async(&mut app.redis().await)
        .await
        .unwrap();
    assert_eq!(spooled, 62, "every event waited in the spool");
    outage.set(true);

    let checks = PgPool::connect(&direct).await.unwrap();
    let mut written = 0i64;
    for _ in 0..300 {
        written =
            sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE user_id LIKE 'trail-%'")
                .fetch_one(&checks)
                .await
                .unwrap();
        if written >= 60 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(written, 60, "every good event arrived");
    let distinct: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT task_id) FROM audit_events WHERE user_id LIKE 'trail-%'",
    )
    .fetch_one(&checks)
    .await
    .unwrap();
    assert_eq!(distinct, 60, "and each exactly once");
    let quarantined: Vec<(Option<String>, String)> =
        sqlx::query_as("SELECT sqlstate, reason FROM audit_quarantine ORDER BY sqlstate")
            .fetch_all(&checks)
            .await
            .unwrap();
    let states: Vec<Option<&str>> = quarantined.iter().map(|(s, _)| s.as_deref()).collect();
    assert_eq!(states, [Some("22021"), Some("54000")], "{quarantined:?}");
    for _ in 0..50 {
        let left: u64 = redis::cmd("LLEN")
            .arg(tutorq::audit::SPOOL_KEY)
            .query_async(&mut app.redis().await)
            .await
            .unwrap();
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // An admin sees them, with the reason.
    let listed = app
        .get_json(
            "/v1/admin/audit/quarantine",
            Some(&app.auth_token("root", tutorq::auth::Role::Admin)),
        )
        .await;
    assert_eq!(listed["total"], 2, "{listed}");
    assert!(
        listed["events"][0]["reason"]
            .as_str()
            .is_some_and(|r| !r.is_empty())
    );
}

/// Item 4: without `TUTORQ__AUDIT__HASH_KEY` a hint's `solution` was stored as plain SHA-256,
/// and a short answer came back by brute force in under a second. Production now refuses to
/// start without the key while `audit.hash_fields` is set, as it does for the JWT secret.
#[test]
fn production_refuses_to_start_without_the_audit_hash_key() {
    let secret = "p".repeat(40);
    let port = crate::servers::free_port().to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tutorq"))
        .arg("serve")
        .current_dir(crate::helpers::repo_path(""))
        .env("TUTORQ_ENV", "production")
        .env("TUTORQ__AUTH__JWT_SECRET", &secret)
        .env("TUTORQ__SERVER__PORT", &port)
        .env_remove("TUTORQ__AUDIT__HASH_KEY")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("tutorq serve started in production without the audit hash key");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("TUTORQ__AUDIT__HASH_KEY"), "{stderr}");
    assert!(!stderr.contains(&secret), "{stderr}");
}
