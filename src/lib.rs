//! tutorq: the AI engine of a Turkish student-coaching platform.
//!
//! Layers, top to bottom (DESIGN.md §2): `api` → `service` → `prompts` / `providers` /
//! `batches` / `webhooks` → `tasks` → `storage`. `api` never talks to Redis or a provider
//! directly. The engine (`tasks`) knows queues, attempts and records only: job kinds describe
//! themselves and are listed in `service::jobs`, and what follows a task's end is the finish
//! hooks `service::hooks` installs.

pub mod api;
pub mod app;
pub mod audit;
pub mod auth;
pub mod batch_cli;
pub mod batches;
pub mod bench;
pub mod cache;
pub mod cli;
pub mod config;
pub mod feature;
pub mod guard;
pub mod http_server;
pub mod limits;
pub mod metrics;
pub mod prompts;
pub mod providers;
pub mod service;
pub mod shutdown;
pub mod storage;
pub mod tasks;
pub mod telemetry;
pub mod webhooks;
