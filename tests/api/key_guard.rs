//! The key guard (`src/storage/lua/key_guard.lua`): with `TUTORQ_SCRIPT_KEY_GUARD=1`, which
//! `script/test` sets for the whole suite, every script of the service fails when it touches a
//! key it was not given in `KEYS` (or derives one outside its first key's slot). Here it is shown
//! to catch exactly that, on the test run's Redis.

use tutorq::storage::script::GUARD;

async fn eval(body: &str, keys: &[&str]) -> redis::RedisResult<redis::Value> {
    let url = crate::servers::servers().fresh_redis_url();
    let mut conn = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    redis::cmd("EVAL")
        .arg(format!("{GUARD}{body}"))
        .arg(keys.len())
        .arg(keys)
        .query_async(&mut conn)
        .await
}

#[tokio::test]
async fn a_script_touching_a_key_it_was_not_given_fails() {
    let keys = ["ai:{p1}:task:1"];
    eval("redis.call('HSET', KEYS[1], 'a', 1) return 1", &keys)
        .await
        .expect("a declared key passes");
    let err = eval(
        "redis.call('HSET', 'ai:{p1}:task:2', 'a', 1) return 1",
        &keys,
    )
    .await
    .expect_err("an undeclared key fails");
    assert!(
        err.to_string()
            .contains("HSET touched ai:{p1}:task:2, not given in KEYS"),
        "{err}"
    );
    // Derived keys: in the first key's slot, and only there.
    eval(
        "redis.call('HSET', derived('ai:{p1}:batch:9'), 'a', 1) return 1",
        &keys,
    )
    .await
    .expect("a derived key of the same slot passes");
    let err = eval(
        "redis.call('HSET', derived('ai:{p2}:batch:9'), 'a', 1) return 1",
        &keys,
    )
    .await
    .expect_err("a derived key of another slot fails");
    assert!(err.to_string().contains("outside the slot"), "{err}");
    // Every key of a multi-key command, and the streams of a read.
    let err = eval("return redis.call('EXISTS', KEYS[1], 'other')", &keys)
        .await
        .expect_err("the second key of EXISTS is checked");
    assert!(err.to_string().contains("touched other"), "{err}");
    let err = eval(
        "return redis.call('XREADGROUP', 'GROUP', 'g', 'c', 'STREAMS', 'elsewhere', '>')",
        &keys,
    )
    .await
    .expect_err("a read's stream is checked");
    assert!(err.to_string().contains("touched elsewhere"), "{err}");
    let err = eval("return redis.call('OBJECT', 'ENCODING', KEYS[1])", &keys)
        .await
        .expect_err("a command the guard does not know fails");
    assert!(err.to_string().contains("not known to the guard"), "{err}");
}

/// The suite runs with the guard on (`script/test`), so every script the tests drive was
/// checked; this says so when it is off.
#[test]
fn the_suite_runs_under_the_guard() {
    if std::env::var("TUTORQ_SCRIPT_KEY_GUARD").as_deref() != Ok("1") {
        eprintln!("TUTORQ_SCRIPT_KEY_GUARD is not 1: scripts ran unguarded in this run");
        return;
    }
    assert!(tutorq::storage::script::header().contains("key guard"));
}
