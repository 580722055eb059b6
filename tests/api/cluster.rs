//! tutorq on Redis Cluster, step one (issue 21): a local three-master cluster the tests start
//! themselves, and which of the stores' scripts already run there. A script runs on a cluster
//! only if every key it touches is passed in `KEYS` and all of them share one hash slot: Redis
//! refuses a call whose declared keys span slots (`CROSSSLOT`), and a script that reaches a key
//! of another slot at run time. The scripts are run with the keys the stores' own key builders
//! make, routed to the master that owns their slot (following `MOVED`).
//!
//! The engine's task scripts and the admission script are not there yet: each is listed in
//! [`NOT_YET`] with the reason, and the test fails once one of them runs, so the list only
//! shrinks. (Making them run is the partition and outbox work of issue 21.)

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

const TASK_PRELUDE: &str = include_str!("../../src/tasks/lua/prelude.lua");
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
    ];
    let task = uuid::Uuid::now_v7().to_string();
    let queue = keys::queue("cluster_drill");
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
            vec![keys::task(&task)],
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
            include_str!("../../src/tasks/lua/reclaim.lua").into(),
            vec![queue.clone()],
            vec![keys::GROUP.to_owned(), "1000".into(), "10".into()],
        ),
        (
            "limits/ip",
            with(LIMITS_PRELUDE, include_str!("../../src/limits/lua/ip.lua")),
            vec![tutorq::limits::keys::ip("10.1.2.3")],
            strings(&["60"]),
        ),
        (
            "limits/refund",
            include_str!("../../src/limits/lua/refund.lua").into(),
            quota.to_vec(),
            strings(&["5", "2026-12-04", "2026-12"]),
        ),
    ];
    for (name, script, keys, args) in cases {
        if let Err(err) = eval(&script, &keys, &args).await {
            panic!("{name} does not run on a cluster: {err} (keys {keys:?})");
        }
    }
}

/// The admission and violation scripts, through `Limits` itself, against the cluster node that
/// owns the user's slot (a `ConnectionManager` speaks to one node): admitted, then blocked by a
/// violation, then refused as blocked. The index of blocked users is a follow-up outside the
/// user's slot (`Limits::index_block`), so the scripts themselves touch one slot.
#[tokio::test]
async fn admission_and_violations_run_on_the_node_of_the_users_slot() {
    use tutorq::auth::{Principal, Role};
    use tutorq::limits::{LimitError, Limits, Violation};

    let user = format!("cluster-{}", uuid::Uuid::now_v7().simple());
    // Ask node 0 about a key of the user: it answers, or points at the owner.
    let mut cmd = redis::cmd("EXISTS");
    cmd.arg(tutorq::limits::keys::daily(&user));
    let mut conn = redis::Client::open(cluster().url(0))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let owner = match cmd.query_async::<i64>(&mut conn).await {
        Ok(_) => cluster().url(0),
        Err(err) => format!("redis://{}", err.redirect_node().expect("a MOVED").0),
    };
    let manager = redis::aio::ConnectionManager::new(redis::Client::open(owner).unwrap())
        .await
        .unwrap();
    let mut settings = tutorq::config::Settings::load_from(
        &crate::helpers::repo_path("config"),
        "test",
        Vec::new(),
    )
    .unwrap()
    .limits;
    settings.enabled = true;
    settings.abuse.violations = 1;
    let limits = Limits::new(manager, &settings);
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

/// Scripts that do not run on a cluster yet, with why. Each is called with the keys its store
/// passes today; the test fails when one starts to run, so that it moves to the list above.
const NOT_YET: &[(&str, &str)] = &[
    (
        "tasks/create",
        "the task, its user's index and feed, and the queue span slots",
    ),
    (
        "tasks/start",
        "the queue and the dead set span slots; task keys built in Lua",
    ),
    (
        "tasks/finish",
        "the queue, dead and delayed sets and the tasks span slots; quota and batch keys built in Lua",
    ),
    (
        "tasks/promote",
        "the delayed set and the queue span slots; task keys built in Lua",
    ),
    ("tasks/cancel", "the task and the delayed set span slots"),
    (
        "tasks/replay",
        "the task, the dead set and the queue span slots",
    ),
    (
        "tasks/append",
        "announces on the global ai:watching/ai:events from inside the script",
    ),
];

#[tokio::test]
async fn the_scripts_not_yet_on_the_cluster_are_refused_there() {
    // Fixed names: whether two keys share a slot must not depend on a random id.
    let task = "0190a0a0-0000-7000-8000-000000000001".to_owned();
    let user = "cluster-user";
    let queue = keys::queue("ai_request");
    let delayed = keys::delayed("ai_request");
    let source = |name: &str| -> String {
        match name {
            "tasks/create" => with(TASK_PRELUDE, include_str!("../../src/tasks/lua/create.lua")),
            "tasks/start" => with(TASK_PRELUDE, include_str!("../../src/tasks/lua/start.lua")),
            "tasks/finish" => with(TASK_PRELUDE, include_str!("../../src/tasks/lua/finish.lua")),
            "tasks/promote" => with(
                TASK_PRELUDE,
                include_str!("../../src/tasks/lua/promote.lua"),
            ),
            "tasks/cancel" => with(TASK_PRELUDE, include_str!("../../src/tasks/lua/cancel.lua")),
            "tasks/replay" => with(TASK_PRELUDE, include_str!("../../src/tasks/lua/replay.lua")),
            "tasks/append" => with(TASK_PRELUDE, include_str!("../../src/tasks/lua/append.lua")),
            other => panic!("no source for {other}"),
        }
    };
    let declared = |name: &str| -> (Vec<String>, Vec<String>) {
        match name {
            "tasks/create" => (
                vec![
                    keys::task(&task),
                    keys::events(&task),
                    keys::user_tasks(user),
                    queue.clone(),
                    keys::user_feed(user),
                ],
                Vec::new(),
            ),
            "tasks/start" => (vec![queue.clone(), keys::DEAD.to_owned()], Vec::new()),
            "tasks/finish" => (
                vec![
                    queue.clone(),
                    keys::DEAD.to_owned(),
                    delayed.clone(),
                    keys::task(&task),
                    keys::events(&task),
                ],
                Vec::new(),
            ),
            "tasks/promote" => (vec![delayed.clone(), queue.clone()], Vec::new()),
            "tasks/cancel" => (
                vec![keys::task(&task), keys::events(&task), delayed.clone()],
                Vec::new(),
            ),
            "tasks/replay" => (
                vec![
                    keys::task(&task),
                    keys::events(&task),
                    keys::DEAD.to_owned(),
                    queue.clone(),
                ],
                Vec::new(),
            ),
            // One declared key: refused only when the script reaches the global announcement
            // keys, which sit in other slots.
            "tasks/append" => (
                vec![keys::events(&task)],
                strings(&["progress", r#"{"at_us":1}"#, "1000"]),
            ),
            other => panic!("no keys for {other}"),
        }
    };
    // Someone subscribes to the task's events, so the append announces (as in production).
    on_cluster(
        redis::cmd("ZADD")
            .arg(keys::WATCHING)
            .arg(i64::MAX)
            .arg(keys::events(&task)),
    )
    .await
    .unwrap();
    for (name, why) in NOT_YET {
        let (keys, args) = declared(name);
        match eval(&source(name), &keys, &args).await {
            Ok(_) => panic!(
                "{name} now runs on a cluster ({why} no longer holds): move it to \
                 the_scripts_whose_keys_share_a_slot_run_on_the_cluster"
            ),
            Err(err) => {
                let text = err.to_string();
                assert!(
                    err.code() == Some("CROSSSLOT")
                        || text.contains("same slot")
                        || text.contains("non local key"),
                    "{name} failed, but not for its keys' slots: {text}"
                );
            }
        }
    }
}

/// Scripts that still name or build keys themselves (a Lua string starting with `ai:`), with
/// what they build. On a cluster a script may touch only the keys it is given.
const BUILDS_KEYS: &[(&str, &str)] = &[
    (
        "tasks/lua/prelude.lua",
        "ai:watching, ai:events, a user's quota keys, a batch's keys",
    ),
    ("tasks/lua/start.lua", "each started task's hash and events"),
    (
        "tasks/lua/promote.lua",
        "each promoted task's hash and events",
    ),
    ("tasks/lua/replay.lua", "the replayed task's batch"),
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
            code.contains("'ai:") || code.contains("\"ai:")
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
