//! Workers take the partitions of a queue in turn: a backlog in one partition does not starve
//! a job in another (issue 21: "no partition starves"). A real worker process, on one server
//! and on the cluster, with the queue split into four partitions.

use std::time::{Duration, Instant};

use crate::crash::{drill_jobs, drill_store, drill_task, kill_9, redis_of, worker};
use crate::helpers::test_settings;

/// When task `id` started (µs), once it has.
async fn started_us(
    conn: &mut tutorq::storage::RedisConnection,
    parts: &tutorq::tasks::keys::Partitions,
    id: &str,
) -> Option<i64> {
    redis::cmd("HGET")
        .arg(parts.task(id))
        .arg("started_us")
        .query_async::<Option<i64>>(conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_backlog_in_one_partition_does_not_starve_another() {
    let mut settings = test_settings().await;
    settings.redis.partitions = Some(4);
    // Two slots, 10 ms a job: the backlog takes about 1.5 s to drain.
    let jobs = drill_jobs(2, "15s");
    let store = drill_store(&settings, jobs.path()).await;
    let parts = store.partitions().clone();
    assert_eq!(parts.count(), 4);
    let backlog: Vec<_> = (0..300)
        .map(|i| drill_task(i, parts.new_id_in(0)))
        .collect();
    store.enqueue_many(&backlog).await.unwrap();
    let lone = drill_task(300, parts.new_id_in(3));
    store.enqueue(&lone).await.unwrap();

    let mut process = worker(&settings, jobs.path(), 10);
    let mut conn = redis_of(&settings).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let lone_started = loop {
        if let Some(at) = started_us(&mut conn, &parts, &lone.facts.task_id).await {
            break at;
        }
        assert!(Instant::now() < deadline, "the lone job never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut before = 0;
    for task in &backlog {
        if started_us(&mut conn, &parts, &task.facts.task_id)
            .await
            .is_some_and(|at| at < lone_started)
        {
            before += 1;
        }
    }
    kill_9(&mut process);
    eprintln!(
        "fairness: {before} of 300 backlog jobs in partition 0 started before the lone job in partition 3"
    );
    // Partitions taken in turn: the lone job waits a round or two of two jobs, not the backlog.
    assert!(
        before <= 8,
        "{before} of the 300 backlog jobs started before the lone job of another partition"
    );
}
