//! Real Redis and PostgreSQL servers for the test run, started once per test process on free
//! loopback ports, in a temporary directory, and stopped by a watchdog when the process exits.
//!
//! PostgreSQL refuses to run as root, so as root the cluster runs as the `postgres` account.
//! `TUTORQ_TEST_REDIS_URL` / `TUTORQ_TEST_POSTGRES_URL` point the tests at servers you run
//! yourself instead (the PostgreSQL URL must be a superuser's).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub struct Servers {
    redis_base: String,
    pub postgres_admin_url: String,
    next_redis_db: AtomicU32,
}

/// How many logical Redis databases the test server has: one per test.
const REDIS_DATABASES: u32 = 10_000;

static SERVERS: OnceLock<Servers> = OnceLock::new();

pub fn servers() -> &'static Servers {
    SERVERS.get_or_init(start)
}

impl Servers {
    /// A Redis URL with a database no other test uses.
    pub fn fresh_redis_url(&self) -> String {
        let db = self.next_redis_db.fetch_add(1, Ordering::Relaxed);
        assert!(db < REDIS_DATABASES, "more tests than Redis databases");
        format!("{}/{db}", self.redis_base)
    }

    /// A URL for a PostgreSQL database of its own with this name on the test cluster.
    pub fn database_url(&self, name: &str) -> String {
        let (base, _) = self
            .postgres_admin_url
            .rsplit_once('/')
            .expect("a URL with a database");
        format!("{base}/{name}")
    }
}

fn start() -> Servers {
    let root = std::env::temp_dir().join(format!(
        "tutorq-test-{}-{}",
        std::process::id(),
        fastrand_suffix()
    ));
    std::fs::create_dir_all(&root).expect("create the test server directory");
    let redis_base = match std::env::var("TUTORQ_TEST_REDIS_URL") {
        Ok(url) => url.trim_end_matches('/').to_owned(),
        Err(_) => start_redis(&root.join("redis")),
    };
    let postgres_admin_url = match std::env::var("TUTORQ_TEST_POSTGRES_URL") {
        Ok(url) => url,
        Err(_) => start_postgres(&root.join("postgres")),
    };
    Servers {
        redis_base,
        postgres_admin_url,
        next_redis_db: AtomicU32::new(1),
    }
}

pub fn fastrand_suffix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn find_binary(name: &str, extra_dirs: &[PathBuf]) -> PathBuf {
    let path_dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    extra_dirs
        .iter()
        .chain(path_dirs.iter())
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!("`{name}` was not found; run script/bootstrap to install Redis and PostgreSQL")
        })
}

/// Newest `/usr/lib/postgresql/<version>/bin` (Debian's layout), if any.
fn postgres_bin_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    dirs.sort();
    dirs.into_iter().rev().map(|(_, dir)| dir).collect()
}

/// Runs `command` under a shell watchdog: when this test process goes away (however it ends)
/// the server gets `signal` and its directory is removed. When the server exits on its own while
/// this process lives, the watchdog writes its exit status to `dir/exit-status` (128 + N for
/// signal N, as the shell reports it) and keeps `dir`, its log included, for [`exit_report`].
#[expect(
    clippy::zombie_processes,
    reason = "the watchdog outlives this process by design; init reaps it"
)]
pub fn spawn_watched(command: &[&str], signal: &str, dir: &Path, log: &Path) {
    const WATCHDOG: &str = r#"parent=$1; sig=$2; dir=$3; shift 3
"$@" &
child=$!
while kill -0 "$parent" 2>/dev/null && kill -0 "$child" 2>/dev/null; do sleep 0.5; done
if kill -0 "$parent" 2>/dev/null; then
  wait "$child"
  echo "$?" >"$dir/exit-status"
  while kill -0 "$parent" 2>/dev/null; do sleep 0.5; done
else
  kill -"$sig" "$child" 2>/dev/null
  wait "$child"
fi
rm -rf "$dir"
rmdir "$(dirname "$dir")" 2>/dev/null
exit 0"#;
    let log = std::fs::File::create(log).expect("create a server log");
    Command::new("sh")
        .arg("-c")
        .arg(WATCHDOG)
        .arg("sh")
        .arg(std::process::id().to_string())
        .arg(signal)
        .arg(dir)
        .args(command)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start a server under its watchdog");
}

/// What became of a server started by [`spawn_watched`] in `dir`: `None` while it runs; once it
/// has exited, how (its exit status, or the signal that killed it) and the end of its log.
pub fn exit_report(dir: &Path, log: &Path) -> Option<String> {
    let status = std::fs::read_to_string(dir.join("exit-status")).ok()?;
    let status = status.trim();
    let how = match status.parse::<i32>() {
        Ok(code) if code > 128 => format!(
            "was killed by signal {} ({})",
            code - 128,
            signal_name(code - 128)
        ),
        Ok(code) => format!("exited with status {code}"),
        Err(_) => format!("exited ({status})"),
    };
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(40)..].join("\n");
    Some(format!(
        "the server {how}; the last lines of its log ({}):\n{tail}",
        log.display()
    ))
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        4 => "SIGILL: an instruction this CPU does not execute",
        6 => "SIGABRT",
        7 => "SIGBUS",
        9 => "SIGKILL",
        11 => "SIGSEGV: a general protection fault or a bad address",
        15 => "SIGTERM",
        _ => "see `kill -l`",
    }
}

pub fn wait_until(what: &str, log: &Path, mut ready: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ready() {
        if started.elapsed() > Duration::from_secs(60) {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            panic!("{what} did not become ready within 60 s; its log:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn start_redis(dir: &Path) -> String {
    std::fs::create_dir_all(dir).unwrap();
    let binary = find_binary(
        "redis-server",
        &[PathBuf::from("/usr/bin"), PathBuf::from("/usr/local/bin")],
    );
    let port = free_port().to_string();
    let databases = REDIS_DATABASES.to_string();
    let log = dir.join("server.log");
    spawn_watched(
        &[
            binary.to_str().unwrap(),
            "--port",
            &port,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--databases",
            &databases,
            "--dir",
            dir.to_str().unwrap(),
        ],
        "TERM",
        dir,
        &log,
    );
    wait_until("redis-server", &log, || {
        let Ok(mut stream) = TcpStream::connect(format!("127.0.0.1:{port}")) else {
            return false;
        };
        let mut reply = [0u8; 7];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read_exact(&mut reply).is_ok()
            && &reply == b"+PONG\r\n"
    });
    format!("redis://127.0.0.1:{port}")
}

fn start_postgres(dir: &Path) -> String {
    let bin_dirs = postgres_bin_dirs();
    let initdb = find_binary("initdb", &bin_dirs);
    let postgres = find_binary("postgres", &bin_dirs);
    let pg_isready = find_binary("pg_isready", &bin_dirs);
    std::fs::create_dir_all(dir).unwrap();
    let as_postgres: Vec<&str> = if is_root() {
        let status = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir)
            .status()
            .expect("chown");
        assert!(
            status.success(),
            "chown of the PostgreSQL directory failed (is the `postgres` account there?)"
        );
        vec![
            "setpriv",
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
        ]
    } else {
        Vec::new()
    };
    let data = dir.join("data");
    let mut init = Command::new(
        as_postgres
            .first()
            .copied()
            .unwrap_or(initdb.to_str().unwrap()),
    );
    if !as_postgres.is_empty() {
        init.args(&as_postgres[1..]).arg(&initdb);
    }
    let output = init
        .arg("-D")
        .arg(&data)
        .args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
        ])
        .output()
        .expect("run initdb");
    assert!(
        output.status.success(),
        "initdb failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );

    let port = free_port().to_string();
    let log = dir.join("server.log");
    let mut command: Vec<&str> = as_postgres.clone();
    command.extend([
        postgres.to_str().unwrap(),
        "-D",
        data.to_str().unwrap(),
        "-p",
        &port,
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
    ]);
    let socket_dir = format!("unix_socket_directories={}", dir.display());
    command.extend([
        socket_dir.as_str(),
        "-c",
        "fsync=off",
        "-c",
        "synchronous_commit=off",
        "-c",
        "full_page_writes=off",
        "-c",
        "max_connections=500",
    ]);
    spawn_watched(&command, "INT", dir, &log);
    wait_until("postgres", &log, || {
        Command::new(&pg_isready)
            .args(["-h", "127.0.0.1", "-p", &port, "-U", "postgres", "-q"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    });
    format!("postgres://postgres@127.0.0.1:{port}/postgres")
}

/// A local Redis Cluster started by [`start_cluster`]: its nodes' ports, masters first.
pub struct LocalCluster {
    pub ports: Vec<u16>,
    pub masters: usize,
    /// Shut the nodes down when this is dropped (a test app's own cluster).
    pub stop_on_drop: bool,
}

impl LocalCluster {
    pub fn url(&self, node: usize) -> String {
        format!("redis://127.0.0.1:{}", self.ports[node])
    }

    /// Every node's URL: the seeds of `redis.cluster`.
    pub fn urls(&self) -> Vec<String> {
        (0..self.ports.len()).map(|node| self.url(node)).collect()
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        if !self.stop_on_drop {
            return;
        }
        for port in &self.ports {
            let _ = Command::new("redis-cli")
                .args(["-p", &port.to_string(), "shutdown", "nosave"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Whether this run puts every test app on a Redis Cluster of its own
/// (`TUTORQ_TEST_REDIS_CLUSTER=1`) instead of a database of the shared Redis server.
pub fn cluster_mode() -> bool {
    std::env::var("TUTORQ_TEST_REDIS_CLUSTER").is_ok_and(|v| v == "1")
}

/// A port below 55536 that is free, and whose cluster bus port (port + 10000) is free too.
fn free_cluster_port() -> u16 {
    loop {
        // Below the kernel's ephemeral range (32768 and up), bus port included, so outgoing
        // connections do not take them.
        let port = 10_000 + (fastrand_suffix() % 12_000) as u16;
        let free = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
        if free(port) && free(port + 10_000) {
            return port;
        }
    }
}

/// Starts one cluster node in `dir` on a free port not in `taken`, and waits until it accepts
/// connections. A port can be taken by another process between the check and the node's bind
/// (its client port or its bus port, port + 10000); the node then exits, and another port is
/// tried.
fn start_cluster_node(binary: &Path, dir: &Path, taken: &[u16]) -> (u16, PathBuf) {
    for attempt in 0.. {
        let dir = dir.with_file_name(format!(
            "{}-{attempt}",
            dir.file_name().unwrap().to_string_lossy()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let port = loop {
            let port = free_cluster_port();
            if !taken.contains(&port) {
                break port;
            }
        };
        let log = dir.join("server.log");
        let port_text = port.to_string();
        let config = dir.join("nodes.conf");
        spawn_watched(
            &[
                binary.to_str().unwrap(),
                "--port",
                &port_text,
                "--bind",
                "127.0.0.1",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                config.to_str().unwrap(),
                "--cluster-node-timeout",
                "2000",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                dir.to_str().unwrap(),
            ],
            "TERM",
            &dir,
            &log,
        );
        let mut exited = false;
        wait_until("a cluster node", &log, || {
            exited = dir.join("exit-status").exists();
            exited || TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        if !exited {
            return (port, log);
        }
        assert!(
            attempt < 5,
            "a cluster node exited five times; its last log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
    unreachable!()
}

/// Starts `masters` cluster-enabled `redis-server`s with `replicas` replicas each, under the
/// watchdog (stopped with this process), joins them with `redis-cli --cluster create` and waits
/// until every node reports `cluster_state:ok`.
pub fn start_cluster(masters: usize, replicas: usize) -> LocalCluster {
    let root = std::env::temp_dir().join(format!(
        "tutorq-cluster-{}-{}",
        std::process::id(),
        fastrand_suffix()
    ));
    let binary = find_binary(
        "redis-server",
        &[PathBuf::from("/usr/bin"), PathBuf::from("/usr/local/bin")],
    );
    let mut ports = Vec::new();
    let mut first_log = None;
    for node in 0..masters * (1 + replicas) {
        let (port, log) = start_cluster_node(&binary, &root.join(format!("node-{node}")), &ports);
        first_log.get_or_insert(log);
        ports.push(port);
    }
    let cli = find_binary(
        "redis-cli",
        &[PathBuf::from("/usr/bin"), PathBuf::from("/usr/local/bin")],
    );
    let nodes: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let created = Command::new(&cli)
        .arg("--cluster")
        .arg("create")
        .args(&nodes)
        .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
        .output()
        .expect("run redis-cli --cluster create");
    assert!(
        created.status.success(),
        "redis-cli --cluster create failed:\n{}{}",
        String::from_utf8_lossy(&created.stdout),
        String::from_utf8_lossy(&created.stderr)
    );
    let log = first_log.expect("a cluster has nodes");
    for port in &ports {
        wait_until("the cluster", &log, || {
            Command::new(&cli)
                .args(["-p", &port.to_string(), "cluster", "info"])
                .output()
                .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains("cluster_state:ok"))
        });
    }
    LocalCluster {
        ports,
        masters,
        stop_on_drop: false,
    }
}
