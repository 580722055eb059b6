//! The prompt registry: bad files refused with path and reason, versions side by side, reload
//! by endpoint and by SIGHUP that keeps the running prompts when a file is bad.

use std::path::Path;

use serde_json::{Value, json};
use tutorq::app::Application;
use tutorq::auth::Role;
use tutorq::prompts::PromptSet;

use crate::helpers::{
    TestApp, assert_problem, repo_path, sample_input, spawn_app_with, test_settings,
};

/// A copy of the shipped prompts that a test may break.
pub fn prompt_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(repo_path("prompts")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    dir
}

fn edit(dir: &Path, file: &str, from: &str, to: &str) {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{file} has no {from:?}");
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
}

fn load_error(dir: &Path) -> String {
    PromptSet::load(dir, true).unwrap_err().to_string()
}

#[test]
fn the_shipped_prompts_load() {
    let set = PromptSet::load(&repo_path("prompts"), true).unwrap();
    assert_eq!(set.versions().len(), 5);
}

#[test]
fn each_kind_of_bad_file_is_refused_with_path_line_and_reason() {
    let dir = prompt_copy();
    let hint = dir.path().join("hint.yaml");

    edit(
        dir.path(),
        "hint.yaml",
        "temperature: 0.7",
        "temperature: [0.7",
    );
    let err = load_error(dir.path());
    assert!(err.starts_with(&format!("{}:", hint.display())), "{err}");
    assert!(
        err.contains("hint.yaml:19: parameters.temperature: invalid type: sequence"),
        "YAML errors carry their line: {err}"
    );
    assert_eq!(err.lines().count(), 1, "one problem, reported once: {err}");

    let dir = prompt_copy();
    edit(
        dir.path(),
        "hint.yaml",
        "Soru: {{question}}",
        "Soru: {{#if question}}",
    );
    let err = load_error(dir.path());
    assert!(
        err.contains("hint.yaml:") && err.contains(": user_template: "),
        "{err}"
    );

    let dir = prompt_copy();
    edit(
        dir.path(),
        "hint.yaml",
        "Konu: {{subject}}",
        "Konu: {{subjcet}}",
    );
    let err = load_error(dir.path());
    assert!(
        err.contains("hint.yaml:13: user_template: `{{subjcet}}` is not declared in `inputs`"),
        "{err}"
    );

    let dir = prompt_copy();
    edit(
        dir.path(),
        "evaluation.yaml",
        "minimum: 0\n      maximum: 100",
        "minimum: zero\n      maximum: 100",
    );
    let err = load_error(dir.path());
    assert!(
        err.contains("evaluation.yaml:")
            && err.contains("output_schema is not a valid JSON Schema"),
        "{err}"
    );

    let dir = prompt_copy();
    std::fs::rename(
        dir.path().join("hint.yaml"),
        dir.path().join("hint@2.0.yaml"),
    )
    .unwrap();
    let err = load_error(dir.path());
    assert!(
        err.contains("the file name says version 2.0 but the file says 1.0"),
        "{err}"
    );

    let dir = prompt_copy();
    std::fs::copy(
        dir.path().join("hint.yaml"),
        dir.path().join("horoscope.yaml"),
    )
    .unwrap();
    assert!(load_error(dir.path()).contains("`horoscope` is not a feature"));

    let dir = prompt_copy();
    std::fs::remove_file(dir.path().join("study_plan.yaml")).unwrap();
    assert!(load_error(dir.path()).contains("no prompt for feature `study_plan`"));

    let dir = prompt_copy();
    edit(
        dir.path(),
        "hint.yaml",
        "  - min_input_length: 10",
        "  - min_input_length: 10\n  - max_input_length: 5",
    );
    assert!(load_error(dir.path()).contains("constraint `max_input_length` is given twice"));
}

#[tokio::test]
async fn a_bad_prompt_file_stops_the_start_with_its_path() {
    let dir = prompt_copy();
    edit(
        dir.path(),
        "question_gen.yaml",
        "Konu: {{topic}}",
        "Konu: {{konu}}",
    );
    let mut settings = test_settings().await;
    settings.prompts.dir = dir.path().to_path_buf();
    let err = Application::build(settings)
        .await
        .err()
        .expect("the start is refused");
    let text = format!("{err:#}");
    assert!(
        text.contains("question_gen.yaml") && text.contains("`{{konu}}` is not declared"),
        "{text}"
    );
}

async fn reload(app: &TestApp) -> reqwest::Response {
    app.client
        .post(app.url("/v1/admin/prompts/reload"))
        .bearer_auth(app.token(Role::Admin))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn reload_adds_versions_and_a_bad_file_keeps_the_running_prompts() {
    let dir = prompt_copy();
    let path = dir.path().to_path_buf();
    let app = spawn_app_with(|s| s.prompts.dir = path).await;

    // A second version beside the first: the highest becomes the default, the first stays pinnable.
    let v21 = std::fs::read_to_string(dir.path().join("hint@2.0.yaml"))
        .unwrap()
        .replace("version: \"2.0\"", "version: \"2.1\"");
    std::fs::write(dir.path().join("hint@2.1.yaml"), v21).unwrap();
    let response = reload(&app).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["prompts"]["hint"], json!(["1.0", "2.0", "2.1"]));
    let answer: Value = app
        .post_ai("hint", &json!({ "input": sample_input("hint") }))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(answer["prompt"]["version"], "2.1");
    let pinned: Value = app
        .post_ai(
            "hint",
            &json!({ "input": sample_input("hint"), "prompt_version": "1.0" }),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(pinned["prompt"]["version"], "1.0");

    // A broken file: 422 with the reason, and the running prompts keep answering.
    edit(
        dir.path(),
        "explanation.yaml",
        "Konu: {{topic}}",
        "Konu: {{#each}}",
    );
    let body = assert_problem(reload(&app).await, 422, "invalid-prompts").await;
    let errors = body["errors"].as_object().unwrap();
    let (file, reason) = errors.iter().next().unwrap();
    assert!(file.ends_with("explanation.yaml"), "{body}");
    assert!(
        reason
            .as_str()
            .unwrap()
            .starts_with("line 20: user_template: invalid handlebars syntax"),
        "{body}"
    );
    assert_eq!(errors.len(), 1, "{body}");
    let response = app
        .post_ai(
            "explanation",
            &json!({ "input": sample_input("explanation") }),
        )
        .await;
    assert_eq!(response.status(), 200);
    let listed = app
        .get_json("/v1/admin/prompts", Some(&app.token(Role::Admin)))
        .await;
    assert_eq!(listed["prompts"]["hint"], json!(["1.0", "2.0", "2.1"]));
}
