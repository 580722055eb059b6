//! Tutoring safety end to end (issue 10): the hint guard inline, queued and streamed, with the
//! mock provider made to say a given hint; the guard table through the whole service; the
//! student's attempt before higher levels; moderation flags; and the reference solution never
//! reaching a response, a log line or an audit row.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tutorq::auth::Role;

use crate::helpers::{TestApp, repo_path, spawn_app_with, spawn_app_with_workers, test_settings};

const QUESTION: &str = "2x + 3 = 27 ise x kaçtır?";
const SOLUTION: &str = "x = 12";

fn hint(level: u8, solution: &str, mode: &str, stream: bool) -> Value {
    json!({
        "input": { "question": QUESTION, "subject": "Matematik", "hint_level": level, "solution": solution },
        "mode": mode,
        "stream": stream,
    })
}

/// Every audit row of the app's database, each as one JSON text.
async fn audit_rows(app: &TestApp) -> Vec<String> {
    let db = sqlx::PgPool::connect(app.settings.database.url.expose())
        .await
        .unwrap();
    let rows: Vec<(String,)> = sqlx::query_as("SELECT row_to_json(a)::text FROM audit_events a")
        .fetch_all(&db)
        .await
        .unwrap();
    db.close().await;
    rows.into_iter().map(|(row,)| row).collect()
}

/// Waits until the audit trail has an event of `kind` for `task_id`; returns all rows.
async fn audited(app: &TestApp, task_id: &str, kind: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let rows = audit_rows(app).await;
        let found = rows.iter().any(|r| {
            let row: Value = serde_json::from_str(r).unwrap();
            row["task_id"] == task_id && row["kind"] == kind
        });
        if found {
            return rows;
        }
        assert!(Instant::now() < deadline, "no {kind} event for {task_id}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every string in `value`, at any depth.
fn texts(value: &Value) -> Vec<String> {
    match value {
        Value::String(text) => vec![text.clone()],
        Value::Array(items) => items.iter().flat_map(texts).collect(),
        Value::Object(map) => map.values().flat_map(texts).collect(),
        _ => Vec::new(),
    }
}

fn leaking_app(replies: &[&str]) -> impl FnOnce(&mut tutorq::config::Settings) {
    let replies: Vec<String> = replies.iter().map(|r| (*r).to_owned()).collect();
    move |s| {
        s.providers.mock.replies = replies;
        s.providers.mock.stream_chunk_chars = 5;
    }
}

#[tokio::test]
async fn a_hint_that_leaks_twice_becomes_the_safe_hint_for_its_level() {
    let app = spawn_app_with(leaking_app(&[
        "İki taraftan 3 çıkarıp 2'ye bölünce x = 12 bulunur.",
        "Cevap 12'dir.",
    ]))
    .await;
    let response = app
        .post_ai_as("s1", "hint", &hint(2, SOLUTION, "sync", false), &[])
        .await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["guarded"], true, "{body:#}");
    assert_eq!(body["regenerated"], true);
    assert_eq!(
        body["result"],
        tutorq::guard::safe_hint(2, tutorq::guard::Lang::Tr)
    );
    // Every text the client got but the task id, whose random hex may hold "12" by chance.
    let task_id = body["task_id"].as_str().unwrap();
    assert!(
        texts(&body)
            .iter()
            .all(|t| t == task_id || !t.contains("12")),
        "the answer reached the client: {text}"
    );
    let rows = audited(&app, task_id, "guard").await;
    let guard: Value = rows
        .iter()
        .map(|r| serde_json::from_str::<Value>(r).unwrap())
        .find(|r| r["task_id"] == task_id && r["kind"] == "guard")
        .unwrap();
    assert_eq!(guard["payload"]["outcome"], "safe_hint", "{guard:#}");
    assert_eq!(guard["payload"]["first"], "number");
}

#[tokio::test]
async fn a_leaking_hint_is_regenerated_once_and_the_clean_one_is_answered_queued() {
    let app = spawn_app_with_workers(leaking_app(&[
        "Sonuç: 12",
        "Önce eşitliğin iki tarafından 3 çıkar.",
    ]))
    .await;
    let response = app
        .post_ai_as("s1", "hint", &hint(1, SOLUTION, "async", false), &[])
        .await;
    assert_eq!(response.status(), 202);
    let id = response.json::<Value>().await.unwrap()["task_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let task: Value = app.task_as("s1", &id, 10).await.json().await.unwrap();
    assert_eq!(task["status"], "succeeded", "{task:#}");
    assert_eq!(task["result"], "Önce eşitliğin iki tarafından 3 çıkar.");
    assert_eq!(task["regenerated"], true);
    assert!(task.get("guarded").is_none(), "{task:#}");
    // Both calls are paid for.
    assert!(task["usage"]["completion_tokens"].as_u64().unwrap() > 5);
}

#[tokio::test]
async fn a_streamed_hint_never_shows_the_leaking_sentence() {
    let app = spawn_app_with_workers(leaking_app(&[
        "Önce iki taraftan 3 çıkar. Sonra 2'ye böl, x = 12 olur. Kontrol et!",
        "Eşitliğin iki tarafını aynı sayıya bölebilirsin.",
    ]))
    .await;
    for mode in ["sync", "async"] {
        let response = app
            .post_ai_as("s1", "hint", &hint(2, SOLUTION, mode, true), &[])
            .await;
        assert!(response.status().is_success(), "{mode}");
        let id = match mode {
            "async" => response.json::<Value>().await.unwrap()["task_id"]
                .as_str()
                .unwrap()
                .to_owned(),
            _ => {
                // The SSE answer: every frame up to the end.
                let text = response.text().await.unwrap();
                // What the client was shown: the text of the `delta` frames.
                let shown: String = text
                    .split("\n\n")
                    .filter(|frame| frame.contains("event: delta"))
                    .filter_map(|frame| frame.lines().find_map(|l| l.strip_prefix("data: ")))
                    .map(|data| serde_json::from_str::<Value>(data).unwrap()["text"].to_string())
                    .collect();
                assert!(!shown.contains("12"), "the answer was streamed: {text}");
                assert!(text.contains("event: retracted"), "{text}");
                let id_line = text.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
                serde_json::from_str::<Value>(id_line).unwrap()["task_id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            }
        };
        let task: Value = app.task_as("s1", &id, 10).await.json().await.unwrap();
        assert_eq!(task["status"], "succeeded", "{mode}: {task:#}");
        assert_eq!(
            task["result"],
            "Eşitliğin iki tarafını aynı sayıya bölebilirsin."
        );
        let events = app.events(&id).await;
        let deltas: String = events
            .iter()
            .filter(|(name, _)| name == "delta")
            .map(|(_, data)| data["text"].as_str().unwrap())
            .collect();
        assert_eq!(deltas, "Önce iki taraftan 3 çıkar.", "{mode}");
        assert!(
            events.iter().any(|(name, _)| name == "retracted"),
            "{mode}: {events:?}"
        );
    }
}

#[derive(serde::Deserialize)]
struct Case {
    solution: Option<String>,
    question: String,
    hint: String,
    leak: bool,
}

/// The guard table (`tests/fixtures/guard/cases.json`, also run against the guard directly)
/// through the whole service: each hint is what the mock says; a leaking one must never be
/// the answer. On the service the prompt's forbidden topics (`cevap`, `sonuç`, `answer`)
/// refuse a hint only where they introduce a value (issue 19), so a clean row that names one
/// ("To find the answer, first add the two numbers.") is delivered.
#[tokio::test]
async fn the_guard_table_end_to_end() {
    let cases: Vec<Case> = serde_json::from_str(
        &std::fs::read_to_string(repo_path("tests/fixtures/guard/cases.json")).unwrap(),
    )
    .unwrap();
    // A refused hint makes two provider calls (the hint, then its regeneration): the replies
    // are laid out so each request finds its own hint.
    let mut replies = Vec::new();
    let mut refused_expected = Vec::new();
    for case in &cases {
        let refused = case.leak;
        replies.push(case.hint.clone());
        if refused {
            replies.push(case.hint.clone());
        }
        refused_expected.push(refused);
    }
    let app = spawn_app_with(move |s| s.providers.mock.replies = replies).await;
    let (mut leaking, mut caught, mut clean, mut clean_refused) = (0, 0, 0, 0);
    for (i, (case, refused)) in cases.iter().zip(&refused_expected).enumerate() {
        // The service needs a question of at least 10 characters without a forbidden topic.
        let question = if case.question.len() >= 10 {
            case.question.clone()
        } else {
            format!("Soru {i}: bir sayı bul.")
        };
        let mut input = json!({ "question": question, "subject": "Matematik", "hint_level": 2 });
        if let Some(solution) = &case.solution {
            input["solution"] = solution.as_str().into();
        }
        let response = app
            .post_ai_as(
                "table",
                "hint",
                &json!({ "input": input, "mode": "sync" }),
                &[],
            )
            .await;
        assert_eq!(response.status(), 200, "row {i}");
        let body: Value = response.json().await.unwrap();
        let answered = body["result"].as_str().unwrap();
        let was_refused = body["guarded"] == true;
        if case.leak {
            leaking += 1;
            caught += usize::from(was_refused && answered != case.hint);
        } else if !refused {
            clean += 1;
            clean_refused += usize::from(was_refused);
            assert_eq!(answered, case.hint, "row {i}: a clean hint was changed");
        }
        assert_eq!(was_refused, *refused, "row {i}: {:?} → {body:#}", case.hint);
    }
    println!(
        "end to end: leaking caught {caught}/{leaking}, clean refused {clean_refused}/{clean}"
    );
    assert_eq!(caught, leaking);
    assert_eq!(clean_refused, 0);
}

#[tokio::test]
async fn students_show_an_attempt_before_higher_levels_where_configured() {
    let app = spawn_app_with(|s| {
        s.safety.require_attempt_subjects = vec!["matematik".into()];
        s.safety.require_attempt_from_level = 2;
    })
    .await;
    let level1 = app
        .post_ai_as("s1", "hint", &hint(1, SOLUTION, "sync", false), &[])
        .await;
    assert_eq!(level1.status(), 200);
    let refused = app
        .post_ai_as("s1", "hint", &hint(3, SOLUTION, "sync", false), &[])
        .await;
    let body = crate::helpers::assert_problem(refused, 422, "invalid-input").await;
    assert!(
        body["errors"]["input.student_attempt"]
            .as_str()
            .unwrap()
            .contains("level 3"),
        "{body:#}"
    );
    let mut with_attempt = hint(3, SOLUTION, "sync", false);
    with_attempt["input"]["student_attempt"] = "2x = 24 buldum, sonra ne yapmalıyım?".into();
    let answered = app.post_ai_as("s1", "hint", &with_attempt, &[]).await;
    assert_eq!(answered.status(), 200);
}

#[tokio::test]
async fn distress_is_answered_with_support_and_flagged_for_teachers() {
    let app = spawn_app_with(|_| {}).await;
    let body = json!({
        "input": {
            "question": "Bu soruyu çözemiyorum, artık dayanamıyorum. 2x + 3 = 27 ise x kaçtır?",
            "subject": "Matematik",
            "hint_level": 1,
        },
        "mode": "sync",
    });
    let answer: Value = app
        .post_ai_as("s-flag", "hint", &body, &[])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(answer["flags"], json!(["distress"]), "{answer:#}");
    assert!(answer["support"].as_str().unwrap().contains("183"));
    let task_id = answer["task_id"].as_str().unwrap();
    audited(&app, task_id, "flag").await;
    let teacher = app.auth_token("teacher-1", Role::Teacher);
    let flags = app.get_json("/v1/admin/flags", Some(&teacher)).await;
    let event = &flags["events"][0];
    assert_eq!(event["user_id"], "s-flag", "{flags:#}");
    assert_eq!(event["payload"]["flags"][0]["category"], "distress");
    let student = app
        .client
        .get(app.url("/v1/admin/flags"))
        .bearer_auth(app.auth_token("s1", Role::Student))
        .send()
        .await
        .unwrap();
    assert_eq!(student.status(), 403);
}

/// The reference solution, with a marker no other text has, must not reach any answer, event,
/// audit row or log line; its hash is in the audit trail instead.
#[tokio::test]
async fn the_solution_never_appears_in_responses_logs_or_audit_rows() {
    let settings = test_settings().await;
    let secret = "Zq7 çözüm: x = 12";
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut command =
        tokio::process::Command::from(crate::helpers::tutorq_command(&settings, &["all"]));
    let mut child = command
        .env("TUTORQ__SERVER__PORT", port.to_string())
        .env("TUTORQ__LOG__LEVEL", "debug")
        .env(
            "TUTORQ__PROVIDERS__MOCK__REPLIES",
            r#"["Sonunda x = 12 bulursun.", "Zq7 diye bir şey yok; x = 12."]"#,
        )
        .env("TUTORQ__AUDIT__HASH_KEY", "test-hash-key-0123456789")
        .stdout(log.reopen().unwrap())
        .stderr(log.reopen().unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while client.get(format!("{base}/readyz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "tutorq all did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let auth = tutorq::auth::Authenticator::new(&settings.auth);
    let token = auth.mint("s-secret", Role::Student, Duration::from_secs(600));
    let mut seen = String::new();
    let mut ids = Vec::new();
    for (mode, stream) in [("sync", false), ("async", false), ("sync", true)] {
        let response = client
            .post(format!("{base}/v1/ai/hint"))
            .bearer_auth(&token)
            .json(&hint(1, secret, mode, stream))
            .send()
            .await
            .unwrap();
        let text = response.text().await.unwrap();
        if let Some(id) = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["task_id"].as_str().map(str::to_owned))
        {
            ids.push(id);
        }
        seen.push_str(&text);
    }
    for id in &ids {
        let task = client
            .get(format!("{base}/v1/tasks/{id}?wait=10"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        seen.push_str(&task);
        let events = client
            .get(format!("{base}/v1/tasks/{id}/events"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        seen.push_str(&events);
    }
    assert!(!ids.is_empty());
    for word in ["Zq7", "x = 12"] {
        assert!(!seen.contains(word), "{word:?} reached a client: {seen}");
    }
    // The audit trail: every row, every column, once the writer caught up.
    let db = sqlx::PgPool::connect(settings.database.url.expose())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let rows = loop {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT row_to_json(a)::text FROM audit_events a")
                .fetch_all(&db)
                .await
                .unwrap();
        let finals = rows
            .iter()
            .filter(|(r,)| r.contains("\"kind\":\"success\""))
            .count();
        if finals >= 2 {
            break rows;
        }
        assert!(Instant::now() < deadline, "audit rows missing: {rows:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let all: String = rows.into_iter().map(|(r,)| r).collect();
    assert!(
        !all.contains("Zq7"),
        "the solution is in the audit trail: {all}"
    );
    assert!(
        all.contains("hmac-sha256:"),
        "no hash of the solution: {all}"
    );
    assert!(all.contains("\"kind\":\"guard\""), "{all}");
    child.start_kill().unwrap();
    let _ = child.wait().await;
    let logs = std::fs::read_to_string(log.path()).unwrap();
    assert!(logs.lines().count() > 5, "the process logged: {logs}");
    assert!(!logs.contains("Zq7"), "the solution is in the logs");
}
