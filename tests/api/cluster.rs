//! tutorq on Redis Cluster (issue 21): a local three-master cluster the tests start themselves.
//! A script runs on a cluster only if every key it touches is passed in `KEYS` and all of them
//! share one hash slot: Redis refuses a call whose declared keys span slots (`CROSSSLOT`), and a
//! script that reaches a key of another slot at run time. The stores' small scripts are run with
//! the keys their key builders make, routed to the master that owns their slot (following
//! `MOVED`); the limits and the whole engine (its partitioned queues, the follow-ups across
//! slots, the doorbells and the event readers) run through the cluster client itself.

use std::sync::OnceLock;

use redis::{RedisResult, Value};
use tutorq::feature::Feature;
use tutorq::tasks::keys;

use crate::servers::{LocalCluster, start_cluster};

fn cluster() -> &'static LocalCluster {
    static CLUSTER: OnceLock<LocalCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| start_cluster(3, 0))
}

/// Runs `cmd` on the master that owns its keys' slot: sent to the first node, then wherever a
/// `MOVED` points.
async fn on_cluster(cmd: &redis::Cmd) -> RedisResult<Value> {
    let mut url = cluster().url(0);
    for _ in 0..4 {
        let mut conn = redis::Client::open(url.as_str())?
            .get_multiplexed_async_connection()
            .await?;
        match cmd.query_async::<Value>(&mut conn).await {
            Err(err) if err.redirect_node().is_some() => {
                let (node, _slot) = err.redirect_node().unwrap();
                url = format!("redis://{node}");
            }
            other => return other,
        }
    }
    panic!("more than three redirections for one command");
}

async fn eval(script: &str, keys: &[String], args: &[String]) -> RedisResult<Value> {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(script).arg(keys.len()).arg(keys).arg(args);
    on_cluster(&cmd).await
}

const LIMITS_PRELUDE: &str = include_str!("../../src/limits/lua/violations.lua");

fn with(prelude: &str, script: &str) -> String {
    format!("{prelude}{script}")
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test]
async fn a_local_cluster_serves_every_slot_from_three_masters() {
    let cluster = cluster();
    let mut conn = redis::Client::open(cluster.url(0))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let info: String = redis::cmd("CLUSTER")
        .arg("INFO")
        .query_async(&mut conn)
        .await
        .unwrap();
    for line in [
        "cluster_state:ok",
        "cluster_slots_assigned:16384",
        "cluster_size:3",
    ] {
        assert!(info.contains(line), "{line} missing from\n{info}");
    }
    assert_eq!(cluster.masters, 3);
    // Keys of one user, of one task, of one cache entry land together; different ones spread.
    let slot = |key: String| {
        let mut cmd = redis::cmd("CLUSTER");
        cmd.arg("KEYSLOT").arg(key);
        cmd
    };
    let mut slots = Vec::new();
    for key in [
        tutorq::limits::keys::daily("u1"),
        tutorq::limits::keys::bucket("u1", Feature::Hint),
        keys::idempotency("u1", "k"),
        keys::user_feed("u1"),
    ] {
        let n: i64 = slot(key).query_async(&mut conn).await.unwrap();
        slots.push(n);
    }
    assert!(slots.windows(2).all(|w| w[0] == w[1]), "{slots:?}");
}

/// Every script whose keys share a slot runs on the cluster with the keys its store builds.
#[tokio::test]
async fn the_scripts_whose_keys_share_a_slot_run_on_the_cluster() {
    let hash = format!("h{}", uuid::Uuid::now_v7().simple());
    let cache = [
        tutorq::cache::keys::answer(&hash),
        tutorq::cache::keys::lock(&hash),
    ];
    let spool = [
        tutorq::audit::SPOOL_KEY.to_owned(),
        tutorq::audit::SPOOL_LOCK.to_owned(),
    ];
    let user = "cluster-user";
    let quota = [
        tutorq::limits::keys::daily(user),
        tutorq::limits::keys::monthly(user),
        tutorq::limits::keys::bucket(user, Feature::Hint),
        tutorq::limits::keys::settled(user),
    ];
    let task = uuid::Uuid::now_v7().to_string();
    let parts = keys::Partitions::new(keys::DEFAULT_PARTITIONS_CLUSTER);
    let queue = parts.queue(parts.of(&task), "cluster_drill");
    on_cluster(
        redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&queue)
            .arg(keys::GROUP)
            .arg("$")
            .arg("MKSTREAM"),
    )
    .await
    .unwrap();
    let cases: Vec<(&str, String, Vec<String>, Vec<String>)> = vec![
        (
            "cache/lookup",
            include_str!("../../src/cache/lua/lookup.lua").into(),
            cache.to_vec(),
            strings(&["token", "1000"]),
        ),
        (
            "cache/store",
            include_str!("../../src/cache/lua/store.lua").into(),
            cache.to_vec(),
            strings(&[r#"{"text":"x"}"#, "60", "token"]),
        ),
        (
            "audit/trim",
            include_str!("../../src/audit/lua/trim.lua").into(),
            spool.to_vec(),
            strings(&["token", "0", "1000"]),
        ),
        (
            "audit/release",
            include_str!("../../src/audit/lua/release.lua").into(),
            spool[1..].to_vec(),
            strings(&["token"]),
        ),
        (
            "tasks/idempotency_release",
            include_str!("../../src/tasks/lua/idempotency_release.lua").into(),
            vec![keys::idempotency(user, "k")],
            strings(&["prefix"]),
        ),
        (
            "tasks/webhook_state",
            include_str!("../../src/tasks/lua/webhook_state.lua").into(),
            vec![parts.task(&task)],
            strings(&["delivered"]),
        ),
        (
            "tasks/latency",
            include_str!("../../src/tasks/lua/latency.lua").into(),
            vec![keys::latency("hint")],
            strings(&["120", "3", "0.1"]),
        ),
        (
            "tasks/reclaim",
            format!(
                "local key_queue = KEYS[1]\n\
                 local arg_group, arg_min_idle_ms, arg_limit = ARGV[1], ARGV[2], ARGV[3]\n{}",
                include_str!("../../src/tasks/lua/reclaim.lua")
            ),
            vec![queue.clone()],
            vec![keys::GROUP.to_owned(), "1000".into(), "10".into()],
        ),
        (
            "tasks/user_task",
            format!(
                "{}local key_user_tasks, key_user_feed = KEYS[1], KEYS[2]\n\
                 local arg_task_id, arg_ttl_secs = ARGV[1], ARGV[2]\n{}",
                include_str!("../../src/tasks/lua/prelude.lua"),
                include_str!("../../src/tasks/lua/user_task.lua")
            ),
            vec![keys::user_tasks(user), keys::user_feed(user)],
            vec![task.clone(), "60".into()],
        ),
        (
            "limits/ip",
            with(LIMITS_PRELUDE, include_str!("../../src/limits/lua/ip.lua")),
            vec![tutorq::limits::keys::ip("10.1.2.3")],
            strings(&["60"]),
        ),
        (
            "limits/refund",
            with(
                tutorq::limits::SETTLEMENT_LUA,
                include_str!("../../src/limits/lua/refund.lua"),
            ),
            quota.to_vec(),
            strings(&["5", "1764806400000", "1764547200000"]),
        ),
        (
            "limits/settle",
            with(
                tutorq::limits::SETTLEMENT_LUA,
                include_str!("../../src/limits/lua/settle.lua"),
            ),
            quota.to_vec(),
            vec![
                "40:1764806400000:1764547200000".into(),
                "10".into(),
                task.clone(),
            ],
        ),
    ];
    for (name, script, keys, args) in cases {
        if let Err(err) = eval(&script, &keys, &args).await {
            panic!("{name} does not run on a cluster: {err} (keys {keys:?})");
        }
    }
}

/// The admission and violation scripts, through `Limits` itself on the cluster client: admitted,
/// then blocked by a violation, then refused as blocked. The index of blocked users is a follow-up outside the
/// user's slot (`Limits::index_block`), so the scripts themselves touch one slot.
#[tokio::test]
async fn admission_and_violations_run_on_the_node_of_the_users_slot() {
    use tutorq::auth::{Principal, Role};
    use tutorq::limits::{LimitError, Limits, Violation};

    let user = format!("cluster-{}", uuid::Uuid::now_v7().simple());
    let (conn, _) = tutorq::storage::connect_redis(&cluster_settings().redis)
        .await
        .expect("the cluster client connects");
    let mut settings = tutorq::config::Settings::load_from(
        &crate::helpers::repo_path("config"),
        "test",
        Vec::new(),
    )
    .unwrap()
    .limits;
    settings.enabled = true;
    settings.abuse.violations = 1;
    let limits = Limits::new(conn, &settings);
    let principal = Principal::new(user.as_str(), Role::Student);
    let admitted = limits
        .admit(&principal, Feature::Hint, 10, "m1")
        .await
        .expect("admission runs on the cluster");
    assert!(admitted.reservation.is_some());
    let blocked = limits
        .violation(&user, Violation::ForbiddenTopic)
        .await
        .expect("a violation is recorded on the cluster");
    assert!(
        blocked.is_some(),
        "one violation blocks at a threshold of 1"
    );
    match limits.admit(&principal, Feature::Hint, 10, "m2").await {
        Err(LimitError::Refused(refusal)) => assert_eq!(refusal.limit.name(), "blocked"),
        other => panic!("a blocked user is refused, not {other:?}"),
    }
}

/// Test settings pointed at the local cluster (PostgreSQL as every test's).
fn cluster_settings() -> tutorq::config::Settings {
    let mut settings = tutorq::config::Settings::load_from(
        &crate::helpers::repo_path("config"),
        "test",
        Vec::new(),
    )
    .unwrap();
    settings.redis.cluster = (0..cluster().ports.len())
        .map(|node| tutorq::config::Secret::new(cluster().url(node)))
        .collect();
    settings
}

/// The whole engine on the cluster: an app with its workers, its queues in six partitions over
/// three masters. Queued hints, an inline one, a subscription to a task's events, a cancelled
/// task and a user's task list all work, and the partitions all carried work.
#[tokio::test]
async fn the_engine_runs_on_a_cluster() {
    use crate::helpers::{sample_input, spawn_app_with_workers};

    let seeds = cluster_settings().redis.cluster;
    let app = spawn_app_with_workers(move |settings| {
        settings.redis.cluster = seeds;
    })
    .await;
    let user = format!("cluster-{}", uuid::Uuid::now_v7().simple());
    let mut ids = Vec::new();
    for _ in 0..30 {
        ids.push(app.queue_hint(&user).await);
    }
    for id in &ids {
        let task: serde_json::Value = app.task_as(&user, id, 30).await.json().await.unwrap();
        assert_eq!(task["status"], "succeeded", "{task}");
    }
    let parts = app.partitions();
    let used: std::collections::HashSet<usize> = ids.iter().map(|id| parts.of(id)).collect();
    assert!(used.len() >= 4, "30 tasks used only partitions {used:?}");
    for id in &ids {
        let succeeded = app
            .events(id)
            .await
            .into_iter()
            .filter(|(name, _)| name == "succeeded")
            .count();
        assert_eq!(succeeded, 1, "task {id}");
    }
    // Inline, on the same cluster.
    let body = serde_json::json!({ "input": sample_input("hint") });
    let inline = app.post_ai_as(&user, "hint", &body, &[]).await;
    assert_eq!(inline.status(), 200, "{:?}", inline.text().await);
    // The user's list holds them all.
    let token = app.auth_token(&user, tutorq::auth::Role::Student);
    let list = app.get_json("/v1/tasks?limit=100", Some(&token)).await;
    assert!(
        list["tasks"]
            .as_array()
            .is_some_and(|tasks| tasks.len() >= 31),
        "the user's list: {list}"
    );
}

/// Scripts that still name or build keys themselves (a Lua string starting with `ai:`), with
/// what they build. On a cluster a script may touch only the keys it is given.
const BUILDS_KEYS: &[(&str, &str)] = &[
    (
        "tasks/lua/prelude.lua",
        "a batch's keys and its next held item's, from the task's record, in the task's partition",
    ),
    (
        "tasks/lua/replay.lua",
        "the replayed task's batch, in its partition",
    ),
];

/// No script builds a key except those listed in [`BUILDS_KEYS`]; a listed one that no longer
/// does fails too, so the list only shrinks.
#[test]
fn no_script_builds_a_key_of_its_own_beyond_the_known_ones() {
    let root = crate::helpers::repo_path("src");
    let scripts = crate::helpers::files_under(&root, "lua");
    assert!(scripts.len() >= 20, "found only {} scripts", scripts.len());
    let mut building = Vec::new();
    for path in &scripts {
        let text = std::fs::read_to_string(path).unwrap();
        let names_a_key = text.lines().any(|line| {
            let code = line.split("--").next().unwrap_or("");
            ["'ai:", "\"ai:", "'batch:", "'task:"]
                .iter()
                .any(|name| code.contains(name))
        });
        if names_a_key {
            let relative = path
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            building.push(relative);
        }
    }
    building.sort();
    let mut known: Vec<String> = BUILDS_KEYS.iter().map(|(f, _)| (*f).to_owned()).collect();
    known.sort();
    assert_eq!(
        building, known,
        "scripts that build keys themselves changed: pass new keys in KEYS (built by the store's \
         keys module), and drop a script from BUILDS_KEYS once it builds none"
    );
}
