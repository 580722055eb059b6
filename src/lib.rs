//! tutorq: the AI engine of a Turkish student-coaching platform.
//!
//! Layers, top to bottom (DESIGN.md §2): `api` (handlers, extractors, problem answers; its
//! `AppState` holds settings, the service and the credentials) → `service` (the one facade:
//! intake, execution, tasks, batches, limits, reports, API keys, dashboard, health) →
//! `limits`, `cache`, `capacity`, `prompts`, `guard`, `providers`, `batches`, `webhooks`,
//! `audit` →
//! `tasks` (queues, attempts, records) → `storage` → `config`. `api` names only the service
//! (and `auth`, `config`, `feature`, `metrics`), never a store; `tests/api/layers.rs` checks
//! every module's `crate::` references against the table and that none forms a cycle. `app`
//! builds everything once; `cli` and `bench` are the entry points. The engine knows no job
//! kind: kinds describe themselves (`tasks::Job`) and are listed in `service::jobs`, and what
//! follows a task's end is the finish hooks `service::hooks` installs. Underneath every layer
//! lie the values they pass: `feature`, `facts` (a task's ids, user, role, feature) and
//! `outcome` (what an attempt produced), serialised only at a store's edge.

pub mod api;
pub mod app;
pub mod audit;
pub mod auth;
pub mod batch_cli;
pub mod batches;
pub mod bench;
pub mod cache;
pub mod capacity;
pub mod cli;
pub mod config;
pub mod facts;
pub mod feature;
pub mod guard;
pub mod http_server;
pub mod limits;
pub mod metrics;
pub mod outcome;
pub mod prompts;
pub mod providers;
pub mod service;
pub mod shutdown;
pub mod storage;
pub mod tasks;
pub mod telemetry;
pub mod webhooks;
