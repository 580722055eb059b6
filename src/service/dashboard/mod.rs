//! The operators' dashboard as the service gathers it: the whole state in one document, from
//! Redis, PostgreSQL and this process's provider chains at once (a part whose store fails or is
//! slow is left empty and named in `errors`, so one failing store never blanks the page), and
//! any user's task with its events.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value as Json, json};

pub use crate::tasks::history_rows::TaskRow;
pub use crate::tasks::{QueueFigures, TaskView, WorkerView};

use crate::tasks::history_rows as tasks;

use super::{AiService, ServiceError};
use crate::audit::reports::{self, GroupBy, Range, UsageRow};
use crate::providers::ProviderStatus;

/// Rows of the recent and dead task tables.
const RECENT: usize = 50;
/// Users in the "top users today" table.
const TOP_USERS: usize = 10;
/// Longest any one part may take; the snapshot goes out without it.
const PART_LIMIT: Duration = Duration::from_secs(2);
/// How often today's usage (an aggregate over the day's audit events) is read again.
const USAGE_EVERY: Duration = Duration::from_secs(10);
/// The throughput window.
const WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Snapshot {
    /// Server time of the snapshot (open tasks' ages are measured against it).
    pub at: String,
    pub queues: Vec<QueueFigures>,
    pub dead_total: u64,
    pub workers: Vec<WorkerView>,
    /// The most recent tasks of every user, newest first.
    pub recent: Vec<TaskRow>,
    /// Dead tasks, most recently dead first.
    pub dead: Vec<TaskRow>,
    /// This process's view of the providers: calls, breaker, last health check.
    #[schema(value_type = Vec<Object>)]
    pub providers: Vec<ProviderStatus>,
    /// The providers that book capacity, across the fleet: limits, what is left and used, the
    /// pause after a 429, calls in flight, tasks waiting.
    pub capacity: Vec<crate::capacity::CapacityStatus>,
    pub usage_today: Option<UsageToday>,
    #[schema(value_type = Vec<Object>)]
    pub blocks: Vec<Json>,
    /// Parts that could not be read, with the reason: `queues`, `recent`, `history`, `dead`,
    /// `usage`, `blocks`, `capacity`.
    pub errors: BTreeMap<&'static str, String>,
}

/// Requests since local midnight (`limits.timezone`), by user and by feature, most first.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UsageToday {
    /// Local midnight, RFC 3339 with the offset.
    pub since: String,
    pub timezone: String,
    pub users: Vec<UsageRow>,
    pub features: Vec<UsageRow>,
}

/// Builds snapshots; kept for the life of one live stream so that throughput can be measured
/// between snapshots and today's usage is not aggregated every second.
pub struct Collector {
    service: AiService,
    samples: VecDeque<(Instant, BTreeMap<String, u64>)>,
    usage: Option<(Instant, UsageToday)>,
}

/// Runs `part` with the time limit, recording its failure under `name`.
async fn bounded<T, E: std::fmt::Display>(
    name: &'static str,
    part: impl Future<Output = Result<T, E>>,
) -> Result<T, (&'static str, String)> {
    match tokio::time::timeout(PART_LIMIT, part).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err((name, err.to_string())),
        Err(_) => Err((name, format!("no answer within {PART_LIMIT:?}"))),
    }
}

impl Collector {
    pub fn new(service: AiService) -> Self {
        Self {
            service,
            samples: VecDeque::new(),
            usage: None,
        }
    }

    pub async fn collect(&mut self) -> Snapshot {
        let service = self.service.clone();
        let engine = service.engine();
        let db = &service.stores.db;
        let usage_due = self
            .usage
            .as_ref()
            .is_none_or(|(at, _)| at.elapsed() >= USAGE_EVERY);

        let figures = bounded("queues", engine.store.figures());
        let open = bounded("recent", async {
            let ids = engine.store.open_task_ids(RECENT).await?;
            engine.store.get_many(&ids).await
        });
        let finished = bounded("history", tasks::recent_finished(db, RECENT as i64));
        let dead = bounded("dead", service.dead_tasks(RECENT));
        let blocks = bounded("blocks", service.limits.blocks());
        let capacity = bounded("capacity", service.capacity());
        let usage = async {
            if usage_due {
                Some(bounded("usage", usage_today(&service)).await)
            } else {
                None
            }
        };
        let (figures, open, finished, dead, blocks, usage, capacity) =
            tokio::join!(figures, open, finished, dead, blocks, usage, capacity);

        let mut errors = BTreeMap::new();
        let mut note = |failure: (&'static str, String)| {
            errors.insert(failure.0, failure.1);
        };
        let (mut queues, workers, dead_total) = match figures {
            Ok(f) => (f.queues, f.workers, f.dead),
            Err(failure) => {
                note(failure);
                (Vec::new(), Vec::new(), 0)
            }
        };
        self.measure_throughput(&mut queues);
        let open: Vec<TaskRow> = open
            .map_err(&mut note)
            .unwrap_or_default()
            .iter()
            .map(TaskRow::from_record)
            .collect();
        let finished = finished.map_err(&mut note).unwrap_or_default();
        let dead = dead
            .map_err(&mut note)
            .unwrap_or_default()
            .iter()
            .map(TaskRow::from_record)
            .collect();
        let capacity = capacity.map_err(&mut note).unwrap_or_default();
        let blocks = blocks
            .map_err(&mut note)
            .unwrap_or_default()
            .into_iter()
            .map(|(user, until)| json!({ "user_id": user, "blocked_until": until.to_string() }))
            .collect();
        match usage {
            Some(Ok(today)) => self.usage = Some((Instant::now(), today)),
            Some(Err(failure)) => note(failure),
            None => {}
        }
        Snapshot {
            at: jiff::Timestamp::now().to_string(),
            queues,
            dead_total,
            workers,
            recent: tasks::merge_recent(open, finished, RECENT),
            dead,
            providers: service.providers().status(),
            capacity,
            usage_today: self.usage.as_ref().map(|(_, today)| today.clone()),
            blocks,
            errors,
        }
    }

    /// Fills `finished_per_sec` from the counters seen over the last minute. A counter that went
    /// down (the stream was deleted) starts the window again.
    fn measure_throughput(&mut self, queues: &mut [QueueFigures]) {
        if queues.is_empty() {
            return;
        }
        let now = Instant::now();
        let totals: BTreeMap<String, u64> = queues
            .iter()
            .map(|q| (q.kind.clone(), q.finished_total))
            .collect();
        let went_down = self.samples.back().is_some_and(|(_, last)| {
            totals
                .iter()
                .any(|(kind, total)| last.get(kind).is_some_and(|before| before > total))
        });
        if went_down {
            self.samples.clear();
        }
        while self
            .samples
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > WINDOW)
        {
            self.samples.pop_front();
        }
        if let Some((first_at, first)) = self.samples.front() {
            let seconds = now.duration_since(*first_at).as_secs_f64();
            if seconds >= 0.5 {
                for queue in queues.iter_mut() {
                    let before = first.get(&queue.kind).copied().unwrap_or(0);
                    let rate = queue.finished_total.saturating_sub(before) as f64 / seconds;
                    queue.finished_per_sec = Some((rate * 100.0).round() / 100.0);
                }
            }
        }
        self.samples.push_back((now, totals));
    }
}

/// Today's requests by user (the top ones) and by feature, from the audit trail.
async fn usage_today(service: &AiService) -> Result<UsageToday, anyhow::Error> {
    let zone = jiff::tz::TimeZone::get(&service.settings.limits.timezone)?;
    let now = jiff::Timestamp::now();
    let midnight = now.to_zoned(zone).start_of_day()?;
    let range = Range {
        from: midnight.timestamp().to_string(),
        to: (now + jiff::SignedDuration::from_secs(1)).to_string(),
    };
    let db = &service.stores.db;
    let (users, features) = tokio::try_join!(
        reports::usage(db, &range, GroupBy::User),
        reports::usage(db, &range, GroupBy::Feature),
    )?;
    let most_first = |mut rows: Vec<UsageRow>| {
        rows.sort_by(|a, b| {
            b.requests
                .cmp(&a.requests)
                .then(b.prompt_tokens.cmp(&a.prompt_tokens))
                .then(a.group.cmp(&b.group))
        });
        rows
    };
    let mut users = most_first(users);
    users.truncate(TOP_USERS);
    Ok(UsageToday {
        since: midnight.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string(),
        timezone: service.settings.limits.timezone.clone(),
        users,
        features: most_first(features),
    })
}

/// Any user's task as an admin sees it: its record while Redis holds it, else its history row,
/// with its events.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AdminTask {
    pub task: AdminTaskBody,
    /// `redis` or `history`.
    pub source: &'static str,
    /// Its events: id, event, data.
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<Json>,
}

/// The task (any user's), with its owner and durations.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum AdminTaskBody {
    /// While Redis holds its record: the task's view with its role, kind and request id.
    Live(Box<LiveTask>),
    /// After: its history row.
    History(Box<TaskRow>),
}

/// A task's view as its owner sees it, and what only an operator sees.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LiveTask {
    #[serde(flatten)]
    pub task: TaskView,
    pub user_id: String,
    pub role: crate::auth::Role,
    pub kind: String,
    pub request_id: String,
    /// Created → finished, for a finished task.
    pub duration_ms: Option<u64>,
    /// Started → finished: the last attempt's run.
    pub run_ms: Option<u64>,
}

impl AiService {
    /// Any user's task with its events; `None` when neither Redis nor the history knows it.
    pub async fn admin_task(&self, id: &str) -> Result<Option<AdminTask>, ServiceError> {
        let Ok(uuid) = uuid::Uuid::parse_str(id) else {
            return Ok(None);
        };
        let (task, source) = match self.engine.store.get(id).await? {
            Some(record) => {
                let row = TaskRow::from_record(&record);
                let live = LiveTask {
                    task: record.view(),
                    user_id: record.facts.user_id,
                    role: record.facts.role,
                    kind: record.kind,
                    request_id: record.facts.request_id,
                    duration_ms: row.duration_ms,
                    run_ms: row.run_ms,
                };
                (AdminTaskBody::Live(Box::new(live)), "redis")
            }
            None => match tasks::finished(&self.stores.db, uuid).await? {
                Some(row) => (AdminTaskBody::History(Box::new(row)), "history"),
                None => return Ok(None),
            },
        };
        let events = self.engine.store.events_of(id).await?;
        Ok(Some(AdminTask {
            task,
            source,
            events: tasks::events_json(events),
        }))
    }
}
