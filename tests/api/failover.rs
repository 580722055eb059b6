//! The failover drill of issue 21: three masters with a replica each, a drain in progress, and
//! one master killed (`kill -9`). While its slots have no master, a request that needs them is
//! answered 503 at once instead of hanging; once its replica takes over, every task that got a
//! 202 completes, exactly once, and new work is taken again. The replica is told not to fail
//! over by itself (`cluster-replica-no-failover`) until the test has seen the 503, then takes
//! over (`CLUSTER FAILOVER TAKEOVER`): the window is the test's, not the clock's.

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use redis::Value;

use crate::helpers::{TestApp, sample_input, spawn_app_with_workers};
use crate::servers::start_cluster;

async fn node(port: u16) -> redis::aio::MultiplexedConnection {
    redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// One line of `CLUSTER NODES`: id, port, master id (`-` for a master), slot ranges.
type Node = (String, u16, String, Vec<(u16, u16)>);

/// Every node, from `CLUSTER NODES`.
async fn nodes(port: u16) -> Vec<Node> {
    let text: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query_async(&mut node(port).await)
        .await
        .unwrap();
    text.lines()
        .map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let port = fields[1]
                .split('@')
                .next()
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            let ranges = fields
                .iter()
                .skip(8)
                .filter_map(|r| {
                    let (a, b) = r.split_once('-').unwrap_or((r, r));
                    Some((a.parse().ok()?, b.parse().ok()?))
                })
                .collect();
            (fields[0].to_owned(), port, fields[3].to_owned(), ranges)
        })
        .collect()
}

async fn slot_of(port: u16, key: &str) -> u16 {
    redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(key)
        .query_async(&mut node(port).await)
        .await
        .unwrap()
}

async fn cluster_ok(port: u16) -> bool {
    let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{port}")) else {
        return false;
    };
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
        return false;
    };
    let info: String = redis::cmd("CLUSTER")
        .arg("INFO")
        .query_async(&mut conn)
        .await
        .unwrap_or_default();
    info.contains("cluster_state:ok")
}

async fn accept(app: &TestApp, user: &str) -> reqwest::Response {
    let body = serde_json::json!({ "input": sample_input("hint"), "mode": "async" });
    app.post_ai_as(user, "hint", &body, &[]).await
}

#[tokio::test]
async fn a_master_killed_during_a_drain_fails_over_and_loses_no_accepted_task() {
    if crate::servers::cluster_mode() {
        // It starts a cluster of its own either way: once per `script/test` is enough.
        eprintln!("the failover drill runs in the single-server pass");
        return;
    }
    let mut cluster = start_cluster(3, 1);
    cluster.stop_on_drop = true;
    let seeds: Vec<tutorq::config::Secret> = cluster
        .urls()
        .into_iter()
        .map(tutorq::config::Secret::new)
        .collect();
    let app = spawn_app_with_workers(move |s| {
        s.redis.cluster = seeds;
        // A 202 waits until its task is on a replica too: then it survives the failover.
        s.redis.wait_replicas = 1;
        s.providers.mock.latency_ms = tutorq::config::LatencySetting::Fixed(100);
    })
    .await;
    // Every replica in sync with its master before the drill.
    let deadline = Instant::now() + Duration::from_secs(30);
    for port in &cluster.ports {
        loop {
            let info: String = redis::cmd("INFO")
                .arg("replication")
                .query_async(&mut node(*port).await)
                .await
                .unwrap();
            if info.contains("role:master") || info.contains("master_link_status:up") {
                break;
            }
            assert!(Instant::now() < deadline, "replica {port} never synced");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let mut accepted = Vec::new();
    for n in 0..400 {
        let response = accept(&app, &format!("drill-{}", n % 20)).await;
        assert_eq!(response.status(), 202, "{:?}", response.text().await);
        let task: serde_json::Value = response.json().await.unwrap();
        accepted.push(task["task_id"].as_str().unwrap().to_owned());
    }

    // The master to kill, its replica, and its slots.
    let seed = cluster.ports[0];
    let before = nodes(seed).await;
    let (master_id, master_port, _, ranges) = before
        .iter()
        .find(|(_, port, flags, _)| flags == "-" && *port != seed)
        .or_else(|| before.iter().find(|(_, _, flags, _)| flags == "-"))
        .cloned()
        .expect("a master");
    let master_port: u16 = master_port;
    let replica_port = before
        .iter()
        .find(|(_, _, master, _)| *master == master_id)
        .map(|(_, port, _, _)| *port)
        .expect("the master's replica");
    let live = *cluster
        .ports
        .iter()
        .find(|p| **p != master_port && **p != replica_port)
        .unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("cluster-replica-no-failover")
        .arg("yes")
        .query_async(&mut node(replica_port).await)
        .await
        .unwrap();
    // A user whose keys live on the master that goes.
    let mut doomed_user = None;
    for n in 0..10_000 {
        let user = format!("doomed-{n}");
        let slot = slot_of(live, &tutorq::limits::keys::daily(&user)).await;
        if ranges.iter().any(|(a, b)| (*a..=*b).contains(&slot)) {
            doomed_user = Some(user);
            break;
        }
    }
    let doomed_user = doomed_user.expect("a user in the doomed master's slots");

    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut node(master_port).await)
        .await
        .unwrap();
    let pid = info
        .lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .unwrap()
        .trim()
        .to_owned();
    let killed_at = Instant::now();
    assert!(
        Command::new("kill")
            .args(["-9", &pid])
            .status()
            .unwrap()
            .success()
    );

    // No master for those slots: the API says so, promptly.
    let started = Instant::now();
    let refused = accept(&app, &doomed_user).await;
    let answered_in = started.elapsed();
    crate::helpers::assert_problem(refused, 503, "store-unavailable").await;
    assert!(
        answered_in < Duration::from_secs(15),
        "a request for a masterless slot waited {answered_in:?}"
    );

    // The replica takes over.
    let _: () = redis::cmd("CLUSTER")
        .arg("FAILOVER")
        .arg("TAKEOVER")
        .query_async(&mut node(replica_port).await)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(cluster_ok(live).await && cluster_ok(replica_port).await) {
        assert!(Instant::now() < deadline, "the cluster never recovered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let failed_over_in = killed_at.elapsed();

    // New work is taken again, on the promoted node's slots too.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let response = accept(&app, &doomed_user).await;
        if response.status() == 202 {
            let task: serde_json::Value = response.json().await.unwrap();
            accepted.push(task["task_id"].as_str().unwrap().to_owned());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the promoted slots never took work"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Everything that got a 202 completes, exactly once.
    completes_exactly_once(&app, &accepted).await;
    eprintln!(
        "failover drill: accepted {n}, completed {n}, lost 0, duplicates 0; 503 in {answered_in:?}; \
         cluster ok again {failed_over_in:?} after the kill",
        n = accepted.len()
    );
}

/// Waits until every task of `accepted` succeeded (failing on one that failed, or after two
/// minutes), and checks each has exactly one `succeeded` event.
async fn completes_exactly_once(app: &TestApp, accepted: &[String]) {
    let parts = app.partitions();
    let mut conn = app.redis().await;
    let deadline = Instant::now() + Duration::from_secs(120);
    for id in accepted {
        loop {
            let state: Option<String> = redis::cmd("HGET")
                .arg(parts.task(id))
                .arg("state")
                .query_async(&mut conn)
                .await
                .unwrap_or(None);
            if state.as_deref() == Some("succeeded") {
                break;
            }
            assert_ne!(state.as_deref(), Some("failed"), "task {id}");
            assert!(
                Instant::now() < deadline,
                "task {id} never completed (state {state:?})"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let events: Vec<(String, HashMap<String, Value>)> = redis::cmd("XRANGE")
            .arg(parts.events(id))
            .arg("-")
            .arg("+")
            .query_async(&mut conn)
            .await
            .unwrap();
        let succeeded = events
            .iter()
            .filter(|(_, f)| {
                f.get("event")
                    .and_then(|v| redis::from_redis_value_ref::<String>(v).ok())
                    .as_deref()
                    == Some("succeeded")
            })
            .count();
        assert_eq!(succeeded, 1, "task {id} succeeded {succeeded} times");
    }
}

/// A resharding during a drain: a third of one master's slots moves to another
/// (`redis-cli --cluster reshard`) while tasks are queued and running. The processes follow the
/// `MOVED`/`ASK` redirections without a restart; every task completes, exactly once.
#[tokio::test]
async fn a_resharding_during_a_drain_is_followed_without_a_restart() {
    if crate::servers::cluster_mode() {
        eprintln!("the resharding drill runs in the single-server pass");
        return;
    }
    let mut cluster = start_cluster(3, 0);
    cluster.stop_on_drop = true;
    let seeds: Vec<tutorq::config::Secret> = cluster
        .urls()
        .into_iter()
        .map(tutorq::config::Secret::new)
        .collect();
    let app = spawn_app_with_workers(move |s| {
        s.redis.cluster = seeds;
        s.providers.mock.latency_ms = tutorq::config::LatencySetting::Fixed(20);
    })
    .await;
    let mut accepted = Vec::new();
    for n in 0..300 {
        let response = accept(&app, &format!("reshard-{}", n % 20)).await;
        assert_eq!(response.status(), 202, "{:?}", response.text().await);
        let task: serde_json::Value = response.json().await.unwrap();
        accepted.push(task["task_id"].as_str().unwrap().to_owned());
    }
    let seed = cluster.ports[0];
    let masters: Vec<Node> = nodes(seed)
        .await
        .into_iter()
        .filter(|(_, _, master, ranges)| master == "-" && !ranges.is_empty())
        .collect();
    let (from, to) = (&masters[0].0, &masters[1].0);
    let started = Instant::now();
    let moved = Command::new("redis-cli")
        .args([
            "--cluster",
            "reshard",
            &format!("127.0.0.1:{seed}"),
            "--cluster-from",
            from,
            "--cluster-to",
            to,
            "--cluster-slots",
            "1800",
            "--cluster-yes",
        ])
        .output()
        .unwrap();
    assert!(
        moved.status.success(),
        "reshard failed: {}",
        String::from_utf8_lossy(&moved.stderr)
    );
    let resharded_in = started.elapsed();
    // More work after the move, on the same processes.
    for n in 0..100 {
        let response = accept(&app, &format!("reshard-{}", n % 20)).await;
        assert_eq!(response.status(), 202, "{:?}", response.text().await);
        let task: serde_json::Value = response.json().await.unwrap();
        accepted.push(task["task_id"].as_str().unwrap().to_owned());
    }
    completes_exactly_once(&app, &accepted).await;
    eprintln!(
        "resharding drill: 1800 slots moved in {resharded_in:?}; accepted {}, completed {}, lost 0, duplicates 0",
        accepted.len(),
        accepted.len()
    );
}
