//! The hint guard's second table (issue 19, `tests/fixtures/guard/round-two.json`) end to end:
//! every hint is what a scripted OpenAI-compatible server says (the vendor's real wire format,
//! plain and streamed, served by wiremock), and the service must never let a planted leak reach
//! the client, nor change a clean hint.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::helpers::{repo_path, spawn_app_with};

#[derive(serde::Deserialize)]
struct Case {
    kind: String,
    solution: Option<String>,
    question: String,
    hint: String,
    leak: bool,
    /// Where a leaking hint states the answer: what must never be shown.
    planted: Option<String>,
}

/// What the server says when asked again after a refusal: a hint with nothing to leak.
const SECOND_HINT: &str = "Adım adım ilerle ve her işlemi kontrol et.";

/// Streamed content comes in pieces this long (in characters), cutting words and sentences.
const PIECE: usize = 6;

/// An OpenAI-compatible server with a script: the request's subject (`Konu:` in the rendered
/// prompt) names the case; its first request gets the case's hint, any later one
/// [`SECOND_HINT`]. A request with `"stream": true` is answered as `chat.completion.chunk`s.
struct Scripted {
    hints: HashMap<String, String>,
    asked: Mutex<HashMap<String, usize>>,
    completion: Value,
    stream: StreamShape,
}

/// The chunks of the vendor's streamed answer that carry no text, and one that does.
struct StreamShape {
    role: String,
    content: Value,
    finish: String,
    usage: String,
}

impl StreamShape {
    fn of(fixture: &str) -> Self {
        let events: Vec<&str> = fixture
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .collect();
        let json = |e: &&str| serde_json::from_str::<Value>(e).ok();
        let find = |test: &dyn Fn(&Value) -> bool| {
            events
                .iter()
                .find(|e| json(e).is_some_and(|v| test(&v)))
                .map(|e| (*e).to_owned())
                .expect("the stream fixture has every kind of chunk")
        };
        Self {
            role: find(&|v| v["choices"][0]["delta"]["role"] == "assistant"),
            content: serde_json::from_str(&find(&|v| {
                v["choices"][0]["delta"]["content"]
                    .as_str()
                    .is_some_and(|c| !c.is_empty())
            }))
            .unwrap(),
            finish: find(&|v| v["choices"][0]["finish_reason"] == "stop"),
            usage: find(&|v| v["choices"].as_array().is_some_and(Vec::is_empty)),
        }
    }

    fn body(&self, text: &str) -> String {
        let chars: Vec<char> = text.chars().collect();
        let mut out = format!("data: {}\n\n", self.role);
        for piece in chars.chunks(PIECE) {
            let mut chunk = self.content.clone();
            chunk["choices"][0]["delta"]["content"] = piece.iter().collect::<String>().into();
            out.push_str(&format!("data: {chunk}\n\n"));
        }
        out.push_str(&format!(
            "data: {}\n\ndata: {}\n\ndata: [DONE]\n\n",
            self.finish, self.usage
        ));
        out
    }
}

impl Respond for Scripted {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        let user = body["messages"]
            .as_array()
            .and_then(|m| m.iter().find(|m| m["role"] == "user"))
            .and_then(|m| m["content"].as_str())
            .unwrap_or_default();
        let subject = user
            .lines()
            .find_map(|l| l.strip_prefix("Konu: "))
            .unwrap_or_default()
            .trim()
            .to_owned();
        let times = {
            let mut asked = self.asked.lock().unwrap();
            let n = asked.entry(subject.clone()).or_default();
            *n += 1;
            *n
        };
        let text = match self.hints.get(&subject) {
            Some(hint) if times == 1 => hint.as_str(),
            _ => SECOND_HINT,
        };
        if body["stream"] == true {
            ResponseTemplate::new(200).set_body_raw(self.stream.body(text), "text/event-stream")
        } else {
            let mut completion = self.completion.clone();
            completion["choices"][0]["message"]["content"] = text.into();
            let pretty = serde_json::to_string_pretty(&completion).unwrap();
            ResponseTemplate::new(200).set_body_raw(pretty, "application/json")
        }
    }
}

/// The subject that names case `index` in `mode`: letters only, so that it adds no number
/// to the prompt.
fn subject(index: usize, streamed: bool) -> String {
    let letters: String = [index / 26, index % 26]
        .iter()
        .map(|&d| char::from(b'a' + u8::try_from(d).unwrap()))
        .collect();
    format!("Matematik {letters}{}", if streamed { "s" } else { "p" })
}

/// What the client was shown of a streamed answer (its `delta` frames), and the final result.
fn read_stream(sse: &str) -> (String, Value) {
    let mut shown = String::new();
    let mut last = Value::Null;
    for frame in sse.split("\n\n") {
        let event = frame.lines().find_map(|l| l.strip_prefix("event: "));
        let Some(data) = frame.lines().find_map(|l| l.strip_prefix("data: ")) else {
            continue;
        };
        let data: Value = serde_json::from_str(data).unwrap_or(Value::Null);
        match event {
            Some("delta") => shown.push_str(data["text"].as_str().unwrap_or_default()),
            Some("succeeded" | "failed" | "dead" | "cancelled") => last = data,
            _ => {}
        }
    }
    (shown, last)
}

/// Per kind and mode: (kind, leak, rows, rows decided right).
type Figures = Vec<(String, bool, usize, usize)>;

fn count(figures: &mut Figures, case: &Case, right: bool) {
    match figures.iter_mut().find(|f| f.0 == case.kind) {
        Some(f) => {
            f.2 += 1;
            f.3 += usize::from(right);
        }
        None => figures.push((case.kind.clone(), case.leak, 1, usize::from(right))),
    }
}

#[tokio::test]
async fn the_second_guard_table_end_to_end_plain_and_streamed() {
    let cases: Vec<Case> = serde_json::from_str(
        &std::fs::read_to_string(repo_path("tests/fixtures/guard/round-two.json")).unwrap(),
    )
    .unwrap();
    let fixture = |file: &str| {
        std::fs::read_to_string(repo_path(&format!(
            "tests/fixtures/providers/openai/{file}"
        )))
        .unwrap()
    };
    let mut hints = HashMap::new();
    for (i, case) in cases.iter().enumerate() {
        for streamed in [false, true] {
            hints.insert(subject(i, streamed), case.hint.clone());
        }
    }
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(Scripted {
            hints,
            asked: Mutex::new(HashMap::new()),
            completion: serde_json::from_str(&fixture("chat_completion.json")).unwrap(),
            stream: StreamShape::of(&fixture("chat_stream.sse")),
        })
        .mount(&server)
        .await;
    let uri = server.uri();
    let app = spawn_app_with(move |s| {
        s.providers
            .chains
            .insert("hint".into(), vec!["openai".into()]);
        s.providers.openai.base_url = format!("{uri}/v1");
        s.providers.openai.api_key = Some(tutorq::config::Secret::new("sk-test"));
    })
    .await;

    let (mut plain, mut streamed) = (Figures::new(), Figures::new());
    let mut wrong = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        for stream in [false, true] {
            let mut input = json!({
                "question": case.question, "subject": subject(i, stream), "hint_level": 2,
            });
            if let Some(solution) = &case.solution {
                input["solution"] = solution.as_str().into();
            }
            let body = json!({ "input": input, "mode": "sync", "stream": stream });
            let response = app.post_ai_as("round-two", "hint", &body, &[]).await;
            assert_eq!(response.status(), 200, "row {i}: {:?}", case.hint);
            let text = response.text().await.unwrap();
            let (shown, result) = if stream {
                read_stream(&text)
            } else {
                (String::new(), serde_json::from_str(&text).unwrap())
            };
            let answered = result["result"].as_str().unwrap_or_default();
            // Nothing the client saw may hold the planted leak; a clean hint arrives unchanged.
            let right = match &case.planted {
                Some(planted) if case.leak => {
                    !answered.contains(planted.as_str()) && !shown.contains(planted.as_str())
                }
                _ => answered == case.hint && result["regenerated"] != true,
            };
            if stream {
                assert!(
                    case.hint.starts_with(&shown),
                    "row {i}: streamed text that is not the hint's: {shown:?}"
                );
            }
            if !right {
                let mode = if stream { "streamed" } else { "plain" };
                wrong.push(format!(
                    "{mode} row {i} {}: {:?} → {answered:?}",
                    case.kind, case.hint
                ));
            }
            count(if stream { &mut streamed } else { &mut plain }, case, right);
        }
    }
    for (mode, figures) in [("plain", &plain), ("streamed", &streamed)] {
        for (kind, leak, rows, right) in figures {
            let what = if *leak { "caught" } else { "delivered" };
            println!("end to end, {mode}: {kind}: {what} {right}/{rows}");
        }
    }
    for line in &wrong {
        println!("decided wrong: {line}");
    }
    let total = |figures: &Figures, leak: bool| {
        figures
            .iter()
            .filter(|f| f.1 == leak)
            .fold((0, 0), |(rows, right), f| (rows + f.2, right + f.3))
    };
    for (mode, figures) in [("plain", &plain), ("streamed", &streamed)] {
        let (planted, caught) = total(figures, true);
        let (clean, delivered) = total(figures, false);
        assert!(
            planted >= 60 && clean >= 40,
            "{mode}: {planted} leaks, {clean} clean"
        );
        assert_eq!(
            caught,
            planted,
            "{mode}: a leak got through:\n{}",
            wrong.join("\n")
        );
        assert!(
            clean - delivered <= 1,
            "{mode}: {} clean hints refused:\n{}",
            clean - delivered,
            wrong.join("\n")
        );
    }
}
