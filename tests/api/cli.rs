//! The `tutorq` binary: `prompts check`, `token`, config errors, and `serve` with SIGHUP reload
//! and a clean exit on SIGTERM.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{repo_path, sample_input, spawn_app, test_settings};
use crate::prompts::prompt_copy;

fn tutorq(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tutorq"));
    command
        .current_dir(repo_path(""))
        .args(args)
        .env("TUTORQ_ENV", "test")
        .env_remove("RUST_LOG");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("run tutorq")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn prompts_check_passes_on_the_shipped_prompts() {
    let output = tutorq(&["prompts", "check"], &[]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(stdout.contains("ok, 5 features"), "{stdout}");
    assert!(stdout.contains("hint: 1.0"), "{stdout}");
}

#[test]
fn prompts_check_reports_every_bad_file_with_path_and_line() {
    let dir = prompt_copy();
    let hint = dir.path().join("hint.yaml");
    let broken = std::fs::read_to_string(&hint)
        .unwrap()
        .replace("Konu: {{subject}}", "Konu: {{ders}}");
    std::fs::write(&hint, broken).unwrap();
    let schema = dir.path().join("evaluation.yaml");
    let broken = std::fs::read_to_string(&schema).unwrap().replace(
        "type: integer\n      minimum: 0",
        "type: integr\n      minimum: 0",
    );
    std::fs::write(&schema, broken).unwrap();

    let output = tutorq(&["prompts", "check", dir.path().to_str().unwrap()], &[]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "{}:13: user_template: `{{{{ders}}}}` is not declared",
            hint.display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{}:", schema.display()))
            && stderr.contains("not a valid JSON Schema"),
        "{stderr}"
    );
    assert!(stderr.contains("2 problem(s) found"), "{stderr}");
}

#[tokio::test]
async fn token_prints_a_jwt_the_api_accepts() {
    let app = spawn_app().await;
    let output = tutorq(
        &["token", "--sub", "u42", "--role", "teacher", "--ttl", "10m"],
        &[],
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let token = text(&output.stdout).trim().to_owned();
    assert_eq!(token.matches('.').count(), 2, "{token}");
    let response = app
        .client
        .post(app.url("/v1/ai/hint"))
        .bearer_auth(&token)
        .json(&json!({ "input": sample_input("hint") }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let output = tutorq(&["token", "--sub", "u42", "--role", "principal"], &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("is not a role"));
}

#[test]
fn token_is_refused_in_production() {
    let secret = "p".repeat(40);
    let output = tutorq(
        &["token", "--sub", "u1", "--role", "admin"],
        &[
            ("TUTORQ_ENV", "production"),
            ("TUTORQ__AUTH__JWT_SECRET", &secret),
            ("TUTORQ__AUDIT__HASH_KEY", &secret),
        ],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("disabled in production"));
    assert!(!text(&output.stderr).contains(&secret));
}

#[test]
fn an_invalid_config_exits_with_the_key_and_the_reason() {
    let output = tutorq(&["migrate"], &[("TUTORQ__SERVER__PORT", "eighty")]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("`server.port`") && stderr.contains("invalid"),
        "{stderr}"
    );

    let output = tutorq(&["serve"], &[("TUTORQ__REDIS__URLL", "redis://x")]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("unknown field `urll`"));

    let output = tutorq(&["serve"], &[("TUTORQ_ENV", "production")]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("TUTORQ__AUTH__JWT_SECRET"));
}

#[tokio::test]
async fn serve_reloads_prompts_on_sighup_and_stops_cleanly_on_sigterm() {
    let settings = test_settings().await;
    let dir = prompt_copy();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tutorq"))
        .current_dir(repo_path(""))
        .arg("serve")
        .env("TUTORQ_ENV", "test")
        .env("TUTORQ__SERVER__PORT", &port)
        .envs(crate::helpers::redis_env(&settings))
        .env("TUTORQ__DATABASE__URL", settings.database.url.expose())
        .env("TUTORQ__PROMPTS__DIR", dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    while client.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "tutorq serve did not come up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let auth = tutorq::auth::Authenticator::new(&settings.auth);
    let admin = auth.mint("root", tutorq::auth::Role::Admin, Duration::from_secs(60));
    let versions = |client: reqwest::Client, admin: String, base: String| async move {
        let body: Value = client
            .get(format!("{base}/v1/admin/prompts"))
            .bearer_auth(admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["prompts"]["hint"].clone()
    };
    assert_eq!(
        versions(client.clone(), admin.clone(), base.clone()).await,
        json!(["1.0", "2.0"])
    );

    let v3 = std::fs::read_to_string(dir.path().join("hint.yaml"))
        .unwrap()
        .replace("version: \"1.0\"", "version: \"3.0\"");
    std::fs::write(dir.path().join("hint@3.0.yaml"), v3).unwrap();
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let started = Instant::now();
    while versions(client.clone(), admin.clone(), base.clone()).await
        != json!(["1.0", "2.0", "3.0"])
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "SIGHUP did not reload the prompts"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "tutorq serve exited with {status}");
}

#[tokio::test]
async fn migrate_creates_the_tables_and_is_idempotent() {
    let mut settings = test_settings().await;
    settings.database.migrate_on_start = false;
    let url = settings.database.url.expose().to_owned();
    for _ in 0..2 {
        let output = tutorq(&["migrate"], &[("TUTORQ__DATABASE__URL", &url)]);
        assert!(output.status.success(), "{}", text(&output.stderr));
        assert!(text(&output.stdout).contains("migrations applied"));
    }
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        tables,
        [
            "_sqlx_migrations",
            "api_keys",
            "audit_events",
            "audit_quarantine",
            "task_history",
            "webhook_deliveries"
        ]
    );
}
