//! `spawn_app()`: a tutorq instance on a free port, with its own PostgreSQL database and Redis
//! database on the test run's real servers.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde_json::{Value, json};
use tutorq::app::Application;
use tutorq::auth::{Authenticator, Claims, Role};
use tutorq::config::{Secret, Settings};
use tutorq::service::AiService;
use tutorq::tasks::JobRegistry;

use crate::servers::{LocalCluster, cluster_mode, servers, start_cluster};

pub struct TestApp {
    pub address: String,
    pub settings: Settings,
    pub auth: Authenticator,
    pub client: reqwest::Client,
    /// The app's own Redis Cluster in cluster mode, shared with its siblings, stopped with the
    /// last of them.
    _cluster: Option<Arc<LocalCluster>>,
}

/// Clusters of cluster mode by their first seed: held here from [`test_settings`] until an app
/// takes them; siblings find them through the weak reference.
static CLUSTERS: Mutex<Vec<HeldCluster>> = Mutex::new(Vec::new());

/// A cluster's first seed, the strong reference until an app takes it, and a weak one.
type HeldCluster = (String, Option<Arc<LocalCluster>>, Weak<LocalCluster>);

/// A fresh cluster for one test's settings (cluster mode).
fn fresh_cluster(settings: &mut Settings) {
    let mut cluster = start_cluster(3, 0);
    cluster.stop_on_drop = true;
    let cluster = Arc::new(cluster);
    settings.redis.cluster = cluster.urls().into_iter().map(Secret::new).collect();
    let mut clusters = CLUSTERS.lock().unwrap();
    clusters.retain(|(_, held, weak)| held.is_some() || weak.strong_count() > 0);
    clusters.push((
        cluster.url(0),
        Some(cluster.clone()),
        Arc::downgrade(&cluster),
    ));
}

/// The cluster `settings` point at, for an app to hold.
fn cluster_of(settings: &Settings) -> Option<Arc<LocalCluster>> {
    let seed = settings.redis.cluster.first()?.expose().to_owned();
    let mut clusters = CLUSTERS.lock().unwrap();
    let (_, held, weak) = clusters.iter_mut().find(|(s, _, _)| *s == seed)?;
    held.take().or_else(|| weak.upgrade())
}

/// The environment that points a `tutorq` process at the Redis of `settings`.
pub fn redis_env(settings: &Settings) -> Vec<(&'static str, String)> {
    let seeds: Vec<&str> = settings.redis.cluster.iter().map(|s| s.expose()).collect();
    let mut env = vec![
        ("TUTORQ__REDIS__URL", settings.redis.url.expose().to_owned()),
        ("TUTORQ__REDIS__CLUSTER", format!("[{}]", seeds.join(", "))),
    ];
    // Every process of a deployment splits its queues into the same partitions.
    if let Some(partitions) = settings.redis.partitions {
        env.push(("TUTORQ__REDIS__PARTITIONS", partitions.to_string()));
    }
    env
}

/// `tutorq <args>` as a process of the test's deployment: run from the repository (its
/// `config/`, `prompts/`, `jobs/`), in the test environment, on the test's Redis (server or
/// cluster, same partitions) and database.
pub fn tutorq_command(settings: &Settings, args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_tutorq"));
    command
        .current_dir(repo_path(""))
        .args(args)
        .env("TUTORQ_ENV", "test")
        .envs(redis_env(settings))
        .env("TUTORQ__DATABASE__URL", settings.database.url.expose());
    command
}

pub fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// Every file below `dir` (recursively) whose name ends in `.<extension>`.
pub fn files_under(dir: &Path, extension: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == extension) {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// A copy of the shipped `jobs/`: one file per registered kind (`service/jobs.rs`), each
/// file's text passed through `edit(kind, text)`.
pub fn jobs_copy(edit: impl Fn(&str, String) -> String) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for kind in tutorq::service::jobs::registry().kinds() {
        let text = std::fs::read_to_string(repo_path(&format!("jobs/{kind}.yaml"))).unwrap();
        std::fs::write(dir.path().join(format!("{kind}.yaml")), edit(kind, text)).unwrap();
    }
    dir
}

/// The partitions of the keys of an app with `settings`.
pub fn partitions_of(settings: &Settings) -> tutorq::tasks::keys::Partitions {
    tutorq::tasks::keys::Partitions::configured(
        settings.redis.partitions,
        !settings.redis.cluster.is_empty(),
    )
}

/// Settings of the `test` environment pointed at this test's own stores.
pub async fn test_settings() -> Settings {
    let servers = servers();
    let mut settings =
        Settings::load_from(&repo_path("config"), "test", Vec::new()).expect("test settings load");
    let database = format!("t_{}", uuid::Uuid::now_v7().simple());
    let admin = sqlx::PgPool::connect(&servers.postgres_admin_url)
        .await
        .expect("connect to the test cluster");
    // The name is ours (a UUID), not input: safe to splice into DDL, which takes no parameters.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        r#"CREATE DATABASE "{database}""#
    )))
    .execute(&admin)
    .await
    .expect("create the test database");
    admin.close().await;
    settings.server.port = 0;
    settings.redis.url = Secret::new(servers.fresh_redis_url());
    if cluster_mode() {
        fresh_cluster(&mut settings);
    }
    settings.database.url = Secret::new(servers.database_url(&database));
    settings.database.migrate_on_start = true;
    settings.prompts.dir = repo_path("prompts");
    settings
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(customize: impl FnOnce(&mut Settings)) -> TestApp {
    spawn(customize, false).await
}

/// An app with its worker pools running in the same process (like `tutorq all`).
pub async fn spawn_app_with_workers(customize: impl FnOnce(&mut Settings)) -> TestApp {
    spawn(customize, true).await
}

/// An app with its worker pools running in the same process, serving the kinds of `jobs`
/// (the shipped registry with a test's own kinds added).
pub async fn spawn_app_with_jobs(
    jobs: JobRegistry<AiService>,
    customize: impl FnOnce(&mut Settings),
) -> TestApp {
    let mut settings = test_settings().await;
    customize(&mut settings);
    spawn_serving(settings, Some(jobs)).await
}

/// An app with exactly these settings (from [`test_settings`], changed by the test).
pub async fn spawn_app_from_settings(settings: Settings) -> TestApp {
    spawn_from(settings, false).await
}

/// Another web process on the same Redis and PostgreSQL as `app`, with the same settings.
pub async fn spawn_sibling(app: &TestApp) -> TestApp {
    spawn_from(app.settings.clone(), false).await
}

async fn spawn(customize: impl FnOnce(&mut Settings), workers: bool) -> TestApp {
    let mut settings = test_settings().await;
    customize(&mut settings);
    spawn_from(settings, workers).await
}

async fn spawn_from(settings: Settings, workers: bool) -> TestApp {
    let jobs = workers.then(tutorq::service::jobs::registry);
    spawn_serving(settings, jobs).await
}

/// The app, with worker pools for the kinds of `jobs` when given.
async fn spawn_serving(settings: Settings, jobs: Option<JobRegistry<AiService>>) -> TestApp {
    let registry = jobs.clone().unwrap_or_else(tutorq::service::jobs::registry);
    let application = Application::build_with_jobs(settings.clone(), &registry)
        .await
        .expect("the app builds");
    let address = format!("http://127.0.0.1:{}", application.port());
    if let Some(jobs) = jobs {
        let service = application.state().service.clone();
        let never = tutorq::shutdown::Shutdown::never();
        tokio::spawn(async move {
            tutorq::service::workers::run_with(
                service,
                &jobs,
                Vec::new(),
                never,
                Duration::from_secs(1),
            )
            .await
        });
    }
    tokio::spawn(application.run_until_stopped(std::future::pending()));
    TestApp {
        _cluster: cluster_of(&settings),
        address,
        auth: Authenticator::new(&settings.auth),
        settings,
        // The server closes a keep-alive connection idle for `server.header_read_timeout_secs`
        // (10 s); a client that reuses one at that moment gets it closed under its request, as
        // any HTTP/1.1 client would. Idle connections are dropped well before that.
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_idle_timeout(Duration::from_secs(4))
            .build()
            .unwrap(),
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub fn token(&self, role: Role) -> String {
        self.auth.mint("user-1", role, Duration::from_secs(600))
    }

    /// A token for `user` with `role`.
    pub fn auth_token(&self, user: &str, role: Role) -> String {
        self.auth.mint(user, role, Duration::from_secs(600))
    }

    pub fn token_with(&self, claims: &Claims) -> String {
        self.auth.mint_claims(claims)
    }

    /// GET `path` (with a bearer token when given) and decode the JSON answer.
    pub async fn get_json(&self, path: &str, token: Option<&str>) -> Value {
        let mut request = self.client.get(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request
            .send()
            .await
            .expect("request sent")
            .json()
            .await
            .expect("a JSON body")
    }

    /// The request as user `user` (a student).
    pub async fn post_ai_as(
        &self,
        user: &str,
        feature: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = self
            .client
            .post(self.url(&format!("/v1/ai/{feature}")))
            .bearer_auth(
                self.auth
                    .mint(user, Role::Student, Duration::from_secs(600)),
            )
            .json(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("request sent")
    }

    /// `GET /v1/tasks/{id}?wait=` as user `user`.
    pub async fn task_as(&self, user: &str, id: &str, wait_secs: u64) -> reqwest::Response {
        let token = self
            .auth
            .mint(user, Role::Student, Duration::from_secs(600));
        self.client
            .get(self.url(&format!("/v1/tasks/{id}?wait={wait_secs}")))
            .bearer_auth(token)
            .send()
            .await
            .expect("request sent")
    }

    /// The partitions of this app's keys.
    pub fn partitions(&self) -> tutorq::tasks::keys::Partitions {
        partitions_of(&self.settings)
    }

    /// A connection to this app's Redis (its database on one server, or its cluster).
    pub async fn redis(&self) -> tutorq::storage::RedisConnection {
        tutorq::storage::connect_redis(&self.settings.redis)
            .await
            .expect("connect to the app's Redis")
            .0
    }

    /// The event names of a task's stream, in order.
    pub async fn events(&self, id: &str) -> Vec<(String, Value)> {
        let mut conn = self.redis().await;
        let entries: Vec<(String, std::collections::HashMap<String, String>)> =
            redis::cmd("XRANGE")
                .arg(self.partitions().events(id))
                .arg("-")
                .arg("+")
                .query_async(&mut conn)
                .await
                .unwrap();
        entries
            .into_iter()
            .map(|(_, fields)| {
                (
                    fields["event"].clone(),
                    serde_json::from_str(&fields["data"]).unwrap(),
                )
            })
            .collect()
    }

    /// Queues a request of `feature` with its sample input (`mode: async`) as student `user`;
    /// its task id.
    pub async fn queue(&self, user: &str, feature: &str) -> String {
        let body = json!({ "input": sample_input(feature), "mode": "async" });
        let response = self.post_ai_as(user, feature, &body, &[]).await;
        assert_eq!(response.status(), 202, "{}", response.text().await.unwrap());
        let task: Value = response.json().await.unwrap();
        task["task_id"].as_str().unwrap().to_owned()
    }

    /// Queues a hint (`mode: async`) as student `user`; its task id.
    pub async fn queue_hint(&self, user: &str) -> String {
        self.queue(user, "hint").await
    }

    /// `POST /v1/admin/api-keys` as an admin with `body`.
    pub async fn create_api_key(&self, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url("/v1/admin/api-keys"))
            .bearer_auth(self.auth_token("root", Role::Admin))
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    /// A new API key (`tq_…`) for `owner` with `role`.
    pub async fn api_key(&self, owner: &str, role: &str) -> String {
        let response = self
            .create_api_key(&json!({ "name": owner, "owner": owner, "role": role }))
            .await;
        assert_eq!(response.status(), 201, "the key is created");
        let created: Value = response.json().await.unwrap();
        created["key"].as_str().unwrap().to_owned()
    }

    /// `POST path` with a JSON body and a bearer credential.
    pub async fn post_json(&self, path: &str, bearer: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(bearer)
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    /// This app's `host:port`.
    pub fn host(&self) -> &str {
        self.address.trim_start_matches("http://")
    }

    pub async fn post_ai(&self, feature: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(&format!("/v1/ai/{feature}")))
            .bearer_auth(self.token(Role::Student))
            .json(body)
            .send()
            .await
            .expect("request sent")
    }
}

/// A valid input for each feature.
pub fn sample_input(feature: &str) -> Value {
    match feature {
        "hint" => {
            json!({"question": "2x + 3 = 11 denkleminde x kaçtır?", "subject": "Matematik", "hint_level": 1})
        }
        "explanation" => json!({"topic": "Fotosentez", "subject": "Biyoloji", "level": "ortaokul"}),
        "study_plan" => {
            json!({"goal": "YKS matematik netlerimi artırmak", "subjects": ["Matematik", "Geometri"], "days": 7, "hours_per_day": 3, "exam": "YKS"})
        }
        "evaluation" => {
            json!({"question": "Türkiye'nin başkenti neresidir?", "student_answer": "İstanbul", "subject": "Coğrafya"})
        }
        "question_gen" => {
            json!({"subject": "Matematik", "topic": "Üslü sayılar", "difficulty": "orta", "count": 3})
        }
        other => panic!("no sample for {other}"),
    }
}

/// Asserts an RFC 9457 answer: status, content type, `type`, and the request id.
pub async fn assert_problem(response: reqwest::Response, status: u16, kind: &str) -> Value {
    assert_eq!(response.status().as_u16(), status, "status");
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(content_type.as_deref(), Some("application/problem+json"));
    let request_id = response
        .headers()
        .get("x-request-id")
        .map(|v| v.to_str().unwrap().to_owned());
    let body: Value = response.json().await.expect("a JSON problem body");
    assert_eq!(body["type"], format!("/problems/{kind}"), "{body:#}");
    assert_eq!(body["status"], status, "{body:#}");
    assert!(
        body["title"].as_str().is_some_and(|t| !t.is_empty()),
        "{body:#}"
    );
    assert!(
        body["detail"].as_str().is_some_and(|t| !t.is_empty()),
        "{body:#}"
    );
    assert_eq!(
        body["request_id"].as_str(),
        request_id.as_deref(),
        "{body:#}"
    );
    body
}
