//! Integration tests: the whole app over HTTP against real Redis and PostgreSQL servers.

mod api_keys;
mod audit;
mod auth;
mod batches;
mod browser;
mod cli;
mod crash;
mod dashboard;
mod engine;
mod errors;
mod events;
mod features;
mod guard;
mod health;
mod helpers;
mod limits;
mod logs;
mod metrics;
mod openapi;
mod prompts;
mod providers;
mod real_model;
mod safety;
mod servers;
mod webhooks;
mod ws;
