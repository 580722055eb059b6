//! `tutorq batch submit|status|results`: a client of a running server's `/v1/batches` API, for
//! batch schedulers and people at a terminal. `submit --wait` follows the batch's progress
//! events with a progress bar and writes the results as JSON lines.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use futures_util::StreamExt as _;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;

use crate::providers::SseDecoder;

#[derive(Debug, Subcommand)]
pub enum BatchCommand {
    /// Submit a JSON-lines file (one `{"input": {...}}` per line) as one batch.
    Submit {
        /// The items, one JSON object per line.
        file: PathBuf,
        /// The feature every item asks for.
        #[arg(long, default_value = "question_gen")]
        feature: String,
        /// Run the valid items even when some are invalid.
        #[arg(long)]
        allow_partial: bool,
        /// Items that may run at once (the server caps it).
        #[arg(long)]
        concurrency: Option<usize>,
        /// Follow the batch with a progress bar until it ends, then write its results.
        #[arg(long)]
        wait: bool,
        /// Where `--wait` writes the results (default: `<batch id>.results.jsonl`).
        #[arg(long, short)]
        output: Option<PathBuf>,
        #[command(flatten)]
        server: Server,
    },
    /// Print a batch's state and counts as JSON.
    Status {
        id: String,
        #[command(flatten)]
        server: Server,
    },
    /// Write a batch's finished items as JSON lines (to stdout, or `--output`).
    Results {
        id: String,
        #[arg(long, short)]
        output: Option<PathBuf>,
        #[command(flatten)]
        server: Server,
    },
}

/// Which server, as whom.
#[derive(Debug, Args)]
pub struct Server {
    /// The tutorq server's base URL.
    #[arg(long, env = "TUTORQ_SERVER", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// A bearer token: a JWT (teacher, service or admin) or an API key (`tq_...`).
    #[arg(long, env = "TUTORQ_TOKEN", hide_env_values = true)]
    token: String,
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.trim_end_matches('/'))
    }
}

pub fn run(command: BatchCommand) -> ExitCode {
    let Some(runtime) = crate::cli::runtime() else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(execute(command)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("tutorq batch: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn execute(command: BatchCommand) -> anyhow::Result<ExitCode> {
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .build()?;
    match command {
        BatchCommand::Submit {
            file,
            feature,
            allow_partial,
            concurrency,
            wait,
            output,
            server,
        } => {
            let body =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let mut query = vec![
                ("feature", feature),
                ("allow_partial", allow_partial.to_string()),
            ];
            if let Some(concurrency) = concurrency {
                query.push(("concurrency", concurrency.to_string()));
            }
            let url = reqwest::Url::parse_with_params(&server.url("/v1/batches"), &query)
                .with_context(|| format!("--server {} is not a URL", server.server))?;
            let response = client
                .post(url)
                .bearer_auth(&server.token)
                .header(reqwest::header::CONTENT_TYPE, "application/x-ndjson")
                .body(body)
                .send()
                .await?;
            let batch = answer(response).await?;
            let id = batch["id"]
                .as_str()
                .context("the answer has no batch id")?
                .to_owned();
            eprintln!(
                "batch {id}: {} items ({} invalid)",
                batch["total"], batch["invalid"]
            );
            println!("{id}");
            if !wait {
                return Ok(ExitCode::SUCCESS);
            }
            let last = follow(&client, &server, &id, &batch).await?;
            let output = output.unwrap_or_else(|| PathBuf::from(format!("{id}.results.jsonl")));
            let lines = write_results(&client, &server, &id, Some(&output)).await?;
            eprintln!(
                "batch {id} {}: {} succeeded, {} failed, {} cancelled; {lines} result lines in {}",
                last["state"].as_str().unwrap_or("?"),
                last["succeeded"],
                last["failed"],
                last["cancelled"],
                output.display()
            );
            Ok(match last["state"].as_str() {
                Some("completed" | "completed_with_errors") => ExitCode::SUCCESS,
                _ => ExitCode::from(3),
            })
        }
        BatchCommand::Status { id, server } => {
            let response = client
                .get(server.url(&format!("/v1/batches/{id}")))
                .bearer_auth(&server.token)
                .send()
                .await?;
            println!("{:#}", answer(response).await?);
            Ok(ExitCode::SUCCESS)
        }
        BatchCommand::Results { id, output, server } => {
            write_results(&client, &server, &id, output.as_deref()).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The JSON body of a successful answer; a problem+json answer becomes its title and detail.
async fn answer(response: reqwest::Response) -> anyhow::Result<Value> {
    let status = response.status();
    let text = response.text().await?;
    if !status.is_success() {
        let problem: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        match problem["detail"].as_str().or(problem["title"].as_str()) {
            Some(detail) => bail!("the server answered {status}: {detail}"),
            None => bail!("the server answered {status}: {text}"),
        }
    }
    serde_json::from_str(&text).context("the server's answer is not JSON")
}

/// Follows `/v1/batches/{id}/events` with a progress bar until the final event; returns the
/// batch as it ended. A dropped connection is picked up again.
async fn follow(
    client: &reqwest::Client,
    server: &Server,
    id: &str,
    first: &Value,
) -> anyhow::Result<Value> {
    let total = first["total"].as_u64().unwrap_or(0);
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} {msg} (eta {eta})",
        )
        .expect("a valid template"),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    let mut failures = 0;
    loop {
        match follow_once(client, server, id, &bar).await {
            Ok(Some(last)) => {
                // The summary line that follows says the same, on a line of its own.
                bar.finish_and_clear();
                return Ok(last);
            }
            Ok(None) => {}
            Err(err) => {
                failures += 1;
                if failures > 5 {
                    bar.abandon();
                    return Err(err);
                }
                bar.println(format!(
                    "progress stream interrupted ({err:#}); reconnecting"
                ));
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn follow_once(
    client: &reqwest::Client,
    server: &Server,
    id: &str,
    bar: &ProgressBar,
) -> anyhow::Result<Option<Value>> {
    let response = client
        .get(server.url(&format!("/v1/batches/{id}/events")))
        .bearer_auth(&server.token)
        .send()
        .await?;
    if !response.status().is_success() {
        answer(response).await?;
        bail!("the progress stream was refused");
    }
    let mut decoder = SseDecoder::default();
    let mut chunks = response.bytes_stream();
    while let Some(chunk) = chunks.next().await {
        for event in decoder.push(&chunk?) {
            let view: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
            let done = ["succeeded", "failed", "cancelled"]
                .iter()
                .filter_map(|name| view[*name].as_u64())
                .sum::<u64>();
            bar.set_position(done);
            bar.set_message(format!(
                "{} running, {} failed",
                view["running"].as_u64().unwrap_or(0),
                view["failed"].as_u64().unwrap_or(0)
            ));
            match event.event.as_deref() {
                Some("progress") | None => {}
                Some("error") => bail!("{}", event.data),
                Some(_) => return Ok(Some(view)),
            }
        }
    }
    Ok(None)
}

/// Writes the batch's results (JSON lines) to `output` or stdout; returns the line count.
async fn write_results(
    client: &reqwest::Client,
    server: &Server,
    id: &str,
    output: Option<&Path>,
) -> anyhow::Result<usize> {
    let response = client
        .get(server.url(&format!("/v1/batches/{id}/results")))
        .bearer_auth(&server.token)
        .send()
        .await?;
    let status = response.status();
    if !status.is_success() {
        answer(response).await?;
        bail!("the results were refused ({status})");
    }
    let body = response.bytes().await?;
    let lines = body.iter().filter(|b| **b == b'\n').count();
    match output {
        Some(path) => std::fs::write(path, &body)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => {
            use std::io::Write as _;
            std::io::stdout().write_all(&body)?;
        }
    }
    Ok(lines)
}
