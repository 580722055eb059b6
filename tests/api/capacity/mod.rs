//! Provider capacity shared by the fleet (`src/capacity`): several ledgers on the test's Redis
//! (one server or the cluster) stand for several processes; the schedule, the pause after a 429
//! and the vendor's reported limits are theirs together. End to end: an inline request whose
//! provider has no capacity answers 202 and waits in the queue, never degraded.

mod fleet;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tutorq::capacity::Ledger;
use tutorq::providers::gate::{CapacityGate, Demand, Gate, Report};
use tutorq::providers::{Class, Patience, VendorLimits};

use crate::helpers::{TestApp, sample_input, spawn_app_with, spawn_app_with_workers};

/// `processes` ledgers over the app's Redis, for an OpenAI entry with `rpm` and a bucket one
/// second deep.
async fn ledgers(app: &TestApp, rpm: u64, processes: usize) -> Vec<Ledger> {
    let mut settings = app.settings.providers.clone();
    settings.openai.rpm = rpm;
    settings.capacity.burst_ms = 1000;
    settings.capacity.interactive_headroom = 2;
    let mut out = Vec::new();
    for _ in 0..processes {
        out.push(Ledger::new(app.redis().await, &settings));
    }
    out
}

fn patience(class: Class) -> Patience {
    Patience {
        task_id: String::new(),
        owner: "u1".into(),
        class,
        hold: None,
    }
}

async fn reserve(ledger: &Ledger, class: Class, hold: Duration) -> Gate {
    let patience = patience(class);
    ledger
        .reserve(
            "openai",
            Demand {
                patience: &patience,
                hold,
                input_tokens: 10,
                output_tokens: 10,
            },
        )
        .await
}

/// Books one call at `provider` through `ledger` and settles it with `report`: a call that went
/// out and came back the way `report` says.
async fn one_call(ledger: &Ledger, provider: &'static str, report: Report) {
    let patience = patience(Class::Interactive);
    let demand = Demand {
        patience: &patience,
        hold: Duration::ZERO,
        input_tokens: 1,
        output_tokens: 1,
    };
    let Gate::Booked(booking) = ledger.reserve(provider, demand).await else {
        panic!("the first call to {provider} is booked");
    };
    ledger.settle(booking, report).await;
}

#[tokio::test]
async fn processes_book_one_schedule_at_the_providers_rate() {
    let app = spawn_app_with(|_| {}).await;
    // 600 a minute: one every 100 ms, ten at once.
    let fleet = ledgers(&app, 600, 3).await;
    let started = Instant::now();
    let calls = (0..45).map(|i| {
        let ledger = fleet[i % fleet.len()].clone();
        async move {
            match reserve(&ledger, Class::Interactive, Duration::from_secs(30)).await {
                Gate::Booked(booking) => (Instant::now() + booking.wait) - started,
                other => panic!("every call is booked within its hold: {other:?}"),
            }
        }
    });
    let mut due: Vec<Duration> = futures_util::future::join_all(calls).await;
    due.sort();
    let span = *due.last().unwrap() - due[0];
    // 45 calls, 10 at once, then one per 100 ms: the last is due 3.5 s after the first.
    assert!(
        span >= Duration::from_millis(3000),
        "the calls are spread at the rate: {span:?}"
    );
    // No second holds more than the bucket (10) plus what refills in it (10).
    for (i, first) in due.iter().enumerate() {
        let within = due[i..]
            .iter()
            .take_while(|d| **d - *first < Duration::from_secs(1))
            .count();
        assert!(
            within <= 21,
            "{within} calls due within a second of {first:?}"
        );
    }
}

#[tokio::test]
async fn a_429_pauses_the_provider_for_every_process() {
    let app = spawn_app_with(|_| {}).await;
    let fleet = ledgers(&app, 6000, 2).await;
    let paused = Report {
        rate_limited: Some(Some(Duration::from_secs(2))),
        ..Report::default()
    };
    one_call(&fleet[0], "openai", paused).await;
    // The other process has not seen the 429: it waits all the same.
    match reserve(&fleet[1], Class::Interactive, Duration::from_millis(100)).await {
        Gate::Busy(busy) => {
            assert_eq!(busy.reason, "paused");
            assert!(
                busy.ready_in > Duration::from_millis(1000)
                    && busy.ready_in <= Duration::from_secs(2),
                "{busy:?}"
            );
        }
        other => panic!("a paused provider books nothing: {other:?}"),
    }
    let status = fleet[1].status(&["openai"]).await.unwrap();
    assert!(status[0].paused_until.is_some(), "{status:?}");
    assert_eq!(status[0].rate_limited, 1);
}

#[tokio::test]
async fn the_vendors_limits_win_over_the_configured_ones_while_fresh() {
    let app = spawn_app_with(|_| {}).await;
    let fleet = ledgers(&app, 6000, 2).await;
    // The vendor says: 60 a minute, none left.
    let mut vendor = VendorLimits::default();
    vendor.requests.limit = Some(60);
    vendor.requests.remaining = Some(0);
    let reported = Report {
        vendor: Some(vendor),
        ..Report::default()
    };
    one_call(&fleet[0], "openai", reported).await;
    match reserve(&fleet[1], Class::Interactive, Duration::from_millis(100)).await {
        Gate::Busy(busy) => {
            assert_eq!(busy.reason, "requests");
            // One request a second at the vendor's rate.
            assert!(
                busy.ready_in > Duration::from_millis(500)
                    && busy.ready_in <= Duration::from_millis(1100),
                "{busy:?}"
            );
        }
        other => panic!("nothing is left at the vendor: {other:?}"),
    }
    let status = fleet[1].status(&["openai"]).await.unwrap();
    let requests = &status[0].limits[0];
    assert_eq!((requests.limit, requests.source), (60, "vendor"));
}

#[tokio::test]
async fn batch_calls_leave_the_headroom_to_interactive_ones() {
    let app = spawn_app_with(|_| {}).await;
    let fleet = ledgers(&app, 600, 1).await;
    let ledger = &fleet[0];
    let mut batch = 0;
    while let Gate::Booked(_) = reserve(ledger, Class::Batch, Duration::ZERO).await {
        batch += 1;
        assert!(batch <= 10, "batch calls never take the whole bucket");
    }
    // Ten at once, two left to interactive calls (a refill may add one meanwhile).
    assert!((8..=9).contains(&batch), "{batch}");
    for _ in 0..2 {
        match reserve(ledger, Class::Interactive, Duration::ZERO).await {
            Gate::Booked(booking) => assert!(booking.wait.is_zero(), "{booking:?}"),
            other => panic!("the headroom is the interactive calls': {other:?}"),
        }
    }
}

#[tokio::test]
async fn refused_calls_come_back_one_after_another() {
    let app = spawn_app_with(|_| {}).await;
    let fleet = ledgers(&app, 600, 1).await;
    let mut turns = Vec::new();
    for i in 0..30 {
        let patience = Patience {
            task_id: format!("task-{i}"),
            owner: "u1".into(),
            class: Class::Interactive,
            hold: None,
        };
        let gate = fleet[0]
            .reserve(
                "openai",
                Demand {
                    patience: &patience,
                    hold: Duration::ZERO,
                    input_tokens: 1,
                    output_tokens: 1,
                },
            )
            .await;
        if let Gate::Busy(busy) = gate {
            turns.push(busy.ready_in);
        }
    }
    assert!(turns.len() >= 19, "the bucket holds ten: {}", turns.len());
    // Each refused call is given its own turn, one interval (100 ms) after the one before.
    for pair in turns.windows(2) {
        assert!(pair[1] >= pair[0] + Duration::from_millis(90), "{turns:?}");
    }
    let status = fleet[0].status(&["openai"]).await.unwrap();
    assert_eq!(status[0].waiting_interactive, turns.len() as u64);
}

/// An inline hint whose provider is paused is not answered degraded: it is a 202 task that
/// waits in the queue, and a worker answers it once the pause is over.
#[tokio::test]
async fn an_inline_request_without_capacity_waits_in_the_queue_instead_of_degrading() {
    let app = spawn_app_with_workers(|s| {
        s.providers.mock.rpm = 6000;
        s.providers.degraded_fallback = true;
    })
    .await;
    let mut settings = app.settings.providers.clone();
    settings.mock.rpm = 6000;
    let ledger = Ledger::new(app.redis().await, &settings);
    let paused = Report {
        rate_limited: Some(Some(Duration::from_secs(4))),
        ..Report::default()
    };
    one_call(&ledger, "mock", paused).await;
    let response = app
        .post_ai_as(
            "u1",
            "hint",
            &json!({ "input": sample_input("hint"), "mode": "sync" }),
            &[],
        )
        .await;
    assert_eq!(response.status(), 202, "{:?}", response.text().await);
    let task: Value = response.json().await.unwrap();
    let id = task["task_id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    let done = loop {
        let task: Value = app.task_as("u1", &id, 0).await.json().await.unwrap();
        if task["finished_at"].is_string() {
            break task;
        }
        assert!(Instant::now() < deadline, "never finished: {task}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(done["status"], "succeeded", "{done:#}");
    assert_eq!(done["degraded"], false, "{done:#}");
    let events: Vec<String> = app.events(&id).await.into_iter().map(|(e, _)| e).collect();
    assert!(events.contains(&"waiting".to_owned()), "{events:?}");
    // The wait did not count as an attempt.
    assert_eq!(done["attempts"], 1, "{done:#}");
}

/// Refused calls of one user, then one of another: the second user's turn comes at once, not
/// behind the first user's line (`reserve.lua`: turns shared by the users that wait).
#[tokio::test]
async fn a_user_with_many_waiting_calls_does_not_delay_anothers_first() {
    let app = spawn_app_with(|_| {}).await;
    let fleet = ledgers(&app, 600, 2).await;
    let refused = |ledger: Ledger, owner: &'static str, task: String| async move {
        let patience = Patience {
            task_id: task,
            owner: owner.into(),
            class: Class::Interactive,
            hold: None,
        };
        let demand = Demand {
            patience: &patience,
            hold: Duration::ZERO,
            input_tokens: 1,
            output_tokens: 1,
        };
        match ledger.reserve("openai", demand).await {
            Gate::Busy(busy) => Some(busy.ready_in),
            _ => None,
        }
    };
    let mut heavy = Vec::new();
    for i in 0..200 {
        let ledger = fleet[i % 2].clone();
        if let Some(turn) = refused(ledger, "student-a", format!("a-{i}")).await {
            heavy.push(turn);
        }
    }
    let last = *heavy.last().expect("the bucket holds ten; the rest wait");
    assert!(last > Duration::from_secs(15), "one every 100 ms: {last:?}");
    let lone = refused(fleet[1].clone(), "student-b", "b-0".into())
        .await
        .expect("no capacity now for anyone");
    assert!(
        lone <= Duration::from_millis(300),
        "the other user's first call waits a turn or two, not {lone:?} behind 190 calls"
    );
}

/// A token's `tenant` claim is checked like an id; a queued job keeps it, so the tenant's users
/// share their turns.
#[tokio::test]
async fn a_tokens_tenant_is_checked_and_travels_with_its_jobs() {
    let app = spawn_app_with(|_| {}).await;
    let claims = |tenant: &str| tutorq::auth::Claims {
        sub: "student-okul".into(),
        role: tutorq::auth::Role::Student,
        exp: jiff::Timestamp::now().as_second() as u64 + 600,
        iat: None,
        tenant: Some(tenant.into()),
    };
    let ask = |token: String| {
        app.client
            .post(app.url("/v1/ai/hint"))
            .bearer_auth(token)
            .json(&json!({ "input": sample_input("hint"), "mode": "async" }))
            .send()
    };
    let refused = ask(app.token_with(&claims("okul 1"))).await.unwrap();
    let problem = crate::helpers::assert_problem(refused, 401, "unauthorized").await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("`tenant` claim"),
        "{problem}"
    );
    let accepted = ask(app.token_with(&claims("okul-1"))).await.unwrap();
    assert_eq!(accepted.status(), 202);
    let task: Value = accepted.json().await.unwrap();
    let job: String = redis::cmd("HGET")
        .arg(app.partitions().task(task["task_id"].as_str().unwrap()))
        .arg("job")
        .query_async(&mut app.redis().await)
        .await
        .unwrap();
    let job: Value = serde_json::from_str(&job).unwrap();
    assert_eq!(job["tenant"], "okul-1");
}

/// What the fleet's ledger holds is shown to admins and scraped as gauges.
#[tokio::test]
async fn admins_and_metrics_see_each_providers_capacity() {
    let app = spawn_app_with(|s| s.providers.mock.rpm = 1200).await;
    let response = app
        .post_ai_as(
            "u1",
            "hint",
            &json!({ "input": sample_input("hint"), "mode": "sync" }),
            &[],
        )
        .await;
    assert_eq!(response.status(), 200);
    let admin = app.auth_token("ops", tutorq::auth::Role::Admin);
    let providers = app.get_json("/v1/admin/providers", Some(&admin)).await;
    let mock = &providers["capacity"][0];
    assert_eq!(mock["provider"], "mock", "{providers:#}");
    assert_eq!(mock["limits"][0]["kind"], "requests");
    assert_eq!(mock["limits"][0]["limit"], 1200);
    assert_eq!(mock["limits"][0]["source"], "config");
    assert_eq!(mock["limits"][0]["used_this_minute"], 1, "{mock:#}");
    assert!(
        mock["limits"][0]["left_now"].as_u64().unwrap() >= 18,
        "{mock:#}"
    );
    let snapshot = app.get_json("/v1/admin/dashboard", Some(&admin)).await;
    assert_eq!(snapshot["capacity"][0]["provider"], "mock", "{snapshot:#}");
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        r#"tutorq_provider_capacity_limit{provider="mock",kind="requests"} 1200"#,
        r#"tutorq_provider_capacity_used{provider="mock",kind="requests"} 1"#,
        r#"tutorq_provider_waiting_tasks{provider="mock",class="interactive"} 0"#,
    ] {
        assert!(metrics.contains(line), "no `{line}` in /metrics");
    }
}

/// `max_in_flight`: a booked call holds its place until it settles; Anthropic's output-token
/// limit refuses a call whose `max_tokens` the bucket cannot hold.
#[tokio::test]
async fn calls_in_flight_and_output_tokens_are_limited_too() {
    let app = spawn_app_with(|_| {}).await;
    let mut settings = app.settings.providers.clone();
    settings.anthropic.max_in_flight = 2;
    settings.anthropic.otpm = 60_000;
    settings.capacity.burst_ms = 1000;
    let ledger = Ledger::new(app.redis().await, &settings);
    let patience = patience(Class::Interactive);
    let demand = |output_tokens| Demand {
        patience: &patience,
        hold: Duration::ZERO,
        input_tokens: 10,
        output_tokens,
    };
    let mut booked = Vec::new();
    for _ in 0..2 {
        match ledger.reserve("anthropic", demand(10)).await {
            Gate::Booked(booking) => booked.push(booking),
            other => panic!("two calls may be in flight: {other:?}"),
        }
    }
    match ledger.reserve("anthropic", demand(10)).await {
        Gate::Busy(busy) => assert_eq!(busy.reason, "in_flight"),
        other => panic!("a third call waits for a place: {other:?}"),
    }
    ledger
        .settle(booked.pop().unwrap(), Report::default())
        .await;
    let Gate::Booked(third) = ledger.reserve("anthropic", demand(10)).await else {
        panic!("a settled call frees its place");
    };
    ledger.settle(third, Report::default()).await;
    ledger
        .settle(booked.pop().unwrap(), Report::default())
        .await;
    // 1,000 output tokens a second, a bucket of one second: a call asking for 1,000 takes it
    // whole, and the next must wait for it to refill.
    let Gate::Booked(big) = ledger.reserve("anthropic", demand(1000)).await else {
        panic!("a full bucket holds one large call");
    };
    match ledger.reserve("anthropic", demand(1000)).await {
        Gate::Busy(busy) => {
            assert_eq!(busy.reason, "output_tokens");
            assert!(busy.ready_in > Duration::from_millis(500), "{busy:?}");
        }
        other => panic!("the output-token bucket is empty: {other:?}"),
    }
    // What the call did not use goes back: it answered 100 of its 1,000.
    ledger
        .settle(
            big,
            Report {
                usage: Some(tutorq::providers::Usage::new(10, 100)),
                ..Report::default()
            },
        )
        .await;
    let status = ledger.status(&["anthropic"]).await.unwrap();
    let output = status[0]
        .limits
        .iter()
        .find(|k| k.kind == "output_tokens")
        .unwrap();
    assert!(output.left_now >= 850, "{output:?}");
}
