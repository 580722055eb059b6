//! Run as an operator would: several workers per machine under a Procfile runner, the
//! platform's backend behind one address, and a `script/server` that installs only the service.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use tutorq::auth::Role;

use crate::helpers::{
    TestApp, assert_problem, repo_path, sample_input, spawn_app_with, test_settings,
};

fn port_is_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// A base port for honcho whose `+100` and `+101` (the two workers) are free too.
fn honcho_base() -> u16 {
    loop {
        let base = 20_000 + (fastrand_u16() % 20_000);
        if [base, base + 100, base + 101]
            .iter()
            .all(|p| port_is_free(*p))
        {
            return base;
        }
    }
}

fn fastrand_u16() -> u16 {
    (crate::servers::fastrand_suffix() % 65_000) as u16
}

async fn answers(client: &reqwest::Client, port: u16) -> bool {
    client
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await
        .is_ok_and(|r| r.status() == 200)
}

/// Item 17: a second `tutorq worker` on one machine exited ("Address already in use" on the
/// admin port), and honcho then stopped the whole formation. Under the project's own Procfile
/// with `-c worker=2`, web listens on its `$PORT` and each worker's admin port follows its own.
#[tokio::test]
async fn the_procfile_runs_two_workers_per_machine_under_honcho() {
    let honcho = repo_path("target/pyenv/bin/honcho");
    assert!(
        honcho.exists(),
        "run script/bootstrap test: it installs honcho into target/pyenv"
    );
    let settings = test_settings().await;
    let base = honcho_base();
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_tutorq"))
        .parent()
        .unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut child = Command::new(&honcho)
        .current_dir(repo_path(""))
        .args([
            "start",
            "-f",
            "Procfile",
            "-c",
            "web=1,worker=2",
            "-p",
            &base.to_string(),
        ])
        .env("PATH", path)
        .env("TUTORQ_ENV", "development")
        .envs(crate::helpers::redis_env(&settings))
        .env("TUTORQ__DATABASE__URL", settings.database.url.expose())
        .env("TUTORQ__LOG__LEVEL", "warn")
        .env_remove("TUTORQ__SERVER__PORT")
        .env_remove("TUTORQ__WORKER__ADMIN_PORT")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let ports = [base, base + 100, base + 101];
    let started = Instant::now();
    loop {
        let mut up = 0;
        for port in ports {
            up += usize::from(answers(&client, port).await);
        }
        if up == ports.len() {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("honcho stopped the formation ({status}) before all three answered");
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "web and two workers did not come up on {ports:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // All three stay up.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "honcho is still running"
    );
    for port in ports {
        assert!(answers(&client, port).await, "port {port} still answers");
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let stopped = Instant::now();
    while child.try_wait().unwrap().is_none() && stopped.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if child.try_wait().unwrap().is_none() {
        let _ = child.kill();
    }
}

async fn hint(app: &TestApp, bearer: &str) -> u16 {
    let body = json!({ "input": sample_input("hint"), "mode": "async" });
    app.post_json("/v1/ai/hint", bearer, &body)
        .await
        .status()
        .as_u16()
}

/// Item 18: all `/v1` traffic from one address shared 1,000 requests a minute before
/// authentication, so the platform's backend (role `service`) was refused whatever its own
/// limits. A service principal is held to its own limits; everyone else to the address's.
#[tokio::test]
async fn the_per_ip_cap_does_not_throttle_the_platforms_own_services() {
    let app = spawn_app_with(|s| s.limits.ip.per_minute = 5).await;
    let service = app.auth_token("svc-backend", Role::Service);
    for i in 0..12 {
        assert_eq!(hint(&app, &service).await, 202, "service request {i}");
    }
    let student = app.auth_token("u1", Role::Student);
    let body = json!({ "input": sample_input("hint"), "mode": "async" });
    let response = app.post_json("/v1/ai/hint", &student, &body).await;
    let body = assert_problem(response, 429, "rate-limited").await;
    assert_eq!(body["layer"], "ip", "{body}");
    // A bad token is no way around the address's cap.
    assert_eq!(hint(&app, "not-a-token").await, 429);
}

/// Item 19: `script/server` installed Chromium, the browser tests' Node packages and the
/// Python test packages; a newcomer who wants the service waited for a browser.
#[test]
fn script_server_installs_only_what_the_service_needs() {
    let server = std::fs::read_to_string(repo_path("script/server")).unwrap();
    assert!(
        server.lines().any(|l| l.trim() == "script/bootstrap"),
        "script/server bootstraps the service"
    );
    let test = std::fs::read_to_string(repo_path("script/test")).unwrap();
    assert!(
        test.lines().any(|l| l.trim() == "script/bootstrap test"),
        "script/test bootstraps the tests"
    );
    let run = |args: &[&str]| {
        let output = Command::new("bash")
            .arg(repo_path("script/bootstrap"))
            .args(args)
            .current_dir(repo_path(""))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    };
    let service = run(&[]);
    for test_tool in [
        "chromium",
        "Node packages",
        "standardwebhooks",
        "schemathesis",
        "honcho",
    ] {
        assert!(
            !service.contains(test_tool),
            "the service bootstrap mentions {test_tool}:\n{service}"
        );
    }
    let tests = run(&["test"]);
    for test_tool in [
        "Node packages",
        "standardwebhooks",
        "schemathesis",
        "honcho",
    ] {
        assert!(
            tests.contains(test_tool),
            "the test bootstrap leaves out {test_tool}:\n{tests}"
        );
    }
}
