//! Who pays for a load: CPU seconds (user + system, all threads) of the web process, Redis,
//! PostgreSQL (the postmaster and its children) and the load client itself, read from `/proc`
//! before and after. On a shared 2-core machine the throughput figure alone cannot say which
//! part is the limit; CPU per request can, and it says what one more machine would buy.

use crate::app::AppState;

/// Linux reports process times in clock ticks of 1/100 s (USER_HZ) on every architecture
/// the service targets.
const TICKS_PER_SEC: f64 = 100.0;

/// Masters of a Redis Cluster measured one by one at most.
pub const MAX_SHARDS: usize = 8;

/// The processes a load is measured on.
#[derive(Debug, Clone)]
pub struct Processes {
    web: u32,
    redis: Option<u32>,
    postmaster: Option<u32>,
    /// On a Redis Cluster: each master's address (`host:port`), read through `INFO cpu`.
    shards: Vec<String>,
}

/// CPU seconds each side had used at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Snapshot {
    web: f64,
    redis: f64,
    postgres: f64,
    client: f64,
    shards: [f64; MAX_SHARDS],
}

/// CPU microseconds per request, by process; on a cluster, Redis is the sum of the masters'.
#[derive(Debug, Clone, Copy, Default)]
pub struct PerRequest {
    pub web_us: f64,
    pub redis_us: f64,
    pub postgres_us: f64,
    pub client_us: f64,
    /// Each master's share, in the order of [`Processes::shards`] (cluster only).
    pub shards_us: [f64; MAX_SHARDS],
    pub shard_count: usize,
}

impl Processes {
    /// Finds Redis (`INFO server`) and the postmaster (the parent of this connection's backend)
    /// of the stores `state` uses; either is left out when it runs elsewhere.
    pub async fn find(state: &AppState, web: u32) -> Self {
        let mut redis = state.service.stores().redis.clone();
        let info: Option<String> = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut redis)
            .await
            .ok();
        let redis = info.and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("process_id:"))
                .and_then(|pid| pid.trim().parse().ok())
        });
        let backend: Option<i32> = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&state.service.stores().db)
            .await
            .ok();
        let postmaster = backend.and_then(|pid| stat(pid as u32)).map(|s| s.ppid);
        let shards = cluster_masters(&state.settings.redis);
        Self {
            web,
            redis: redis.filter(|&pid| shards.is_empty() && stat(pid).is_some()),
            postmaster: postmaster.filter(|&pid| stat(pid).is_some()),
            shards,
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        let mut shards = [0.0; MAX_SHARDS];
        for (slot, address) in shards.iter_mut().zip(&self.shards) {
            *slot = server_cpu_secs(address).unwrap_or(0.0);
        }
        Snapshot {
            web: stat(self.web).map_or(0.0, |s| s.cpu_secs),
            redis: if self.shards.is_empty() {
                self.redis.and_then(stat).map_or(0.0, |s| s.cpu_secs)
            } else {
                shards.iter().sum()
            },
            postgres: self.postmaster.map_or(0.0, tree_secs),
            client: stat(std::process::id()).map_or(0.0, |s| s.cpu_secs),
            shards,
        }
    }
}

/// The masters of the cluster in `settings` (`CLUSTER NODES` from the first seed that
/// answers), ordered by their first slot; empty for one server.
fn cluster_masters(settings: &crate::config::RedisSettings) -> Vec<String> {
    for seed in &settings.cluster {
        let Ok(mut conn) = redis::Client::open(seed.expose()).and_then(|c| c.get_connection())
        else {
            continue;
        };
        let Ok(nodes) = redis::cmd("CLUSTER")
            .arg("NODES")
            .query::<String>(&mut conn)
        else {
            continue;
        };
        let mut masters: Vec<(u32, String)> = nodes
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split(' ').collect();
                let flags = fields.get(2)?;
                if !flags.contains("master") || flags.contains("fail") {
                    return None;
                }
                let address = fields.get(1)?.split('@').next()?.to_owned();
                let first: u32 = fields.get(8)?.split('-').next()?.parse().ok()?;
                Some((first, address))
            })
            .collect();
        masters.sort();
        masters.truncate(MAX_SHARDS);
        return masters.into_iter().map(|(_, address)| address).collect();
    }
    Vec::new()
}

/// A server's own CPU accounting: `used_cpu_user` + `used_cpu_sys` of `INFO cpu`.
fn server_cpu_secs(address: &str) -> Option<f64> {
    let mut conn = redis::Client::open(format!("redis://{address}"))
        .ok()?
        .get_connection()
        .ok()?;
    let info: String = redis::cmd("INFO").arg("cpu").query(&mut conn).ok()?;
    let value = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    Some(value("used_cpu_user:")? + value("used_cpu_sys:")?)
}

impl Snapshot {
    /// What each side used from `self` to `later`, per request.
    pub fn per_request(&self, later: &Snapshot, requests: usize) -> PerRequest {
        let per = |before: f64, after: f64| (after - before).max(0.0) * 1e6 / requests as f64;
        PerRequest {
            web_us: per(self.web, later.web),
            redis_us: per(self.redis, later.redis),
            postgres_us: per(self.postgres, later.postgres),
            client_us: per(self.client, later.client),
            shards_us: std::array::from_fn(|i| per(self.shards[i], later.shards[i])),
            shard_count: self.shards.iter().filter(|s| **s > 0.0).count(),
        }
    }
}

struct Stat {
    ppid: u32,
    cpu_secs: f64,
}

/// `/proc/<pid>/stat`: the parent and utime + stime of a live process.
fn stat(pid: u32) -> Option<Stat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

fn parse_stat(text: &str) -> Option<Stat> {
    // The command name (field 2) may hold spaces and parentheses: fields start after the last ')'.
    let fields: Vec<&str> = text.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    Some(Stat {
        ppid: fields.get(1)?.parse().ok()?,
        cpu_secs: (ticks(11)? + ticks(12)?) / TICKS_PER_SEC,
    })
}

/// CPU seconds of `root` and its live children (PostgreSQL's backends and helpers).
fn tree_secs(root: u32) -> f64 {
    let children: f64 = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(stat)
        .filter(|s| s.ppid == root)
        .map(|s| s.cpu_secs)
        .sum();
    stat(root).map_or(0.0, |s| s.cpu_secs) + children
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_parse_past_a_command_name_with_spaces_and_parentheses() {
        // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime ...
        let line =
            "4242 (tokio (rt) worker) S 17 4242 4242 0 -1 4194560 900 0 0 0 250 75 3 1 20 0 9 0";
        let stat = parse_stat(line).expect("parses");
        assert_eq!(stat.ppid, 17);
        assert!((stat.cpu_secs - 3.25).abs() < 1e-9, "{}", stat.cpu_secs);
        assert!(parse_stat("4242 (cut short) S").is_none());
    }

    #[test]
    fn this_process_is_found_under_its_parent() {
        let me = stat(std::process::id()).expect("our own /proc entry");
        assert!(me.ppid > 0);
        assert!(tree_secs(me.ppid) >= me.cpu_secs);
    }
}
