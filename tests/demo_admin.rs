//! The demo's admin API (`examples/shared/admin.rs`), as an admin meets it:
//! the demo runs as its own process with `ADMIN_TOKEN` set, and this test
//! reads and changes the running policy over HTTP, then sees the change
//! bite on a signed-in session.
//!
//! `scripts/test` builds the demo and sets `TSL_DEMO_BIN`; without it the
//! test looks for that build under `target/`, and fails saying what to do.
#![cfg(feature = "axum")]

mod common;

use common::example_process::{example_binary, Answer, ExampleProcess};
use serde_json::json;

const TOKEN: &str = "s3cret-admin-token";

fn demo(env: &[(&str, &str)]) -> ExampleProcess {
    ExampleProcess::start(example_binary("demo", "TSL_DEMO_BIN"), env)
}

fn admin(demo: &ExampleProcess, method: &str, token: Option<&str>, body: &str) -> Answer {
    let bearer = token.map(|token| format!("Bearer {token}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(bearer) = &bearer {
        headers.push(("Authorization", bearer));
    }
    demo.send(method, "/admin/policy", &headers, body)
}

#[test]
fn the_admin_api_reads_and_changes_the_running_policy() {
    let demo = demo(&[
        ("ADMIN_TOKEN", TOKEN),
        ("IDLE_TIMEOUT", "600"),
        ("ABSOLUTE_TIMEOUT", "86400"),
        ("REMEMBER_ME_PERIOD", "1209600"),
    ]);
    let read = admin(&demo, "GET", Some(TOKEN), "");
    assert_eq!(read.status, 200, "{}", read.body);
    assert_eq!(
        read.json(),
        json!({"idle_timeout": 600, "absolute_timeout": 86400, "remember_me_period": 1209600})
    );

    let changed = admin(&demo, "PUT", Some(TOKEN), r#"{"idle_timeout": 300}"#);
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert_eq!(
        changed.json(),
        json!({"idle_timeout": 300, "absolute_timeout": 86400, "remember_me_period": 1209600})
    );
    assert_eq!(admin(&demo, "GET", Some(TOKEN), "").json(), changed.json());

    let changed = admin(
        &demo,
        "PUT",
        Some(TOKEN),
        r#"{"absolute_timeout": 2592000, "remember_me_period": 86400}"#,
    );
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert_eq!(
        changed.json(),
        json!({"idle_timeout": 300, "absolute_timeout": 2592000, "remember_me_period": 86400})
    );
}

#[test]
fn zero_values_and_values_above_the_caps_are_refused_naming_the_setting() {
    let demo = demo(&[("ADMIN_TOKEN", TOKEN), ("IDLE_TIMEOUT", "600")]);
    let before = admin(&demo, "GET", Some(TOKEN), "").json();
    for (body, setting) in [
        (r#"{"idle_timeout": 0}"#, "idle_timeout"),
        (r#"{"idle_timeout": 259201}"#, "idle_timeout"),
        (r#"{"absolute_timeout": 2592001}"#, "absolute_timeout"),
        (r#"{"absolute_timeout": null}"#, "absolute_timeout"),
        (r#"{"absolute_timeout": 0}"#, "absolute_timeout"),
        (r#"{"remember_me_period": 0}"#, "remember_me_period"),
        (r#"{"idle_timeout": -5}"#, "idle_timeout"),
        (r#"{"idle_timeout": "300"}"#, "idle_timeout"),
        (
            r#"{"idle_timeout": 300, "absolute_timeout": 2592001}"#,
            "absolute_timeout",
        ),
    ] {
        let refused = admin(&demo, "PUT", Some(TOKEN), body);
        assert_eq!(refused.status, 422, "{body}: {}", refused.body);
        assert_eq!(
            refused.json()["setting"],
            setting,
            "{body}: {}",
            refused.body
        );
        assert!(refused.json()["error"].is_string());
        assert_eq!(
            admin(&demo, "GET", Some(TOKEN), "").json(),
            before,
            "{body} changed nothing"
        );
    }
    for body in ["not json", "[1, 2]", r#"{"session_limit": 3}"#] {
        assert_eq!(admin(&demo, "PUT", Some(TOKEN), body).status, 400, "{body}");
    }
    // At the caps exactly: accepted.
    let at_caps = admin(
        &demo,
        "PUT",
        Some(TOKEN),
        r#"{"idle_timeout": 259200, "absolute_timeout": 2592000}"#,
    );
    assert_eq!(at_caps.status, 200, "{}", at_caps.body);
}

#[test]
fn the_api_needs_the_token_and_does_not_exist_without_one() {
    let demo = demo(&[("ADMIN_TOKEN", TOKEN)]);
    for token in [
        None,
        Some("wrong"),
        Some(""),
        Some("s3cret"),
        Some("s3cret-admin-tokenX"),
    ] {
        assert_eq!(admin(&demo, "GET", token, "").status, 401, "{token:?}");
        let put = admin(&demo, "PUT", token, r#"{"idle_timeout": 60}"#);
        assert_eq!(put.status, 401, "{token:?}");
    }
    let basic = demo.send(
        "GET",
        "/admin/policy",
        &[("Authorization", &format!("Basic {TOKEN}"))],
        "",
    );
    assert_eq!(basic.status, 401);
    drop(demo);

    let without = self::demo(&[]);
    assert_eq!(admin(&without, "GET", Some(TOKEN), "").status, 404);
    assert_eq!(admin(&without, "PUT", Some(TOKEN), "{}").status, 404);
}

#[test]
fn a_shorter_idle_timeout_set_through_the_api_bites_on_a_signed_in_session() {
    let demo = demo(&[("ADMIN_TOKEN", TOKEN), ("IDLE_TIMEOUT", "600")]);
    let login = demo.send(
        "POST",
        "/login",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        "username=alice",
    );
    let cookie = login
        .set_cookies
        .iter()
        .find_map(|set| {
            let pair = set.split(';').next()?.trim();
            pair.strip_prefix("session=")
                .filter(|value| !value.is_empty())
                .map(|_| pair.to_owned())
        })
        .expect("a session cookie");
    let me = demo.send("GET", "/api/me", &[("Cookie", &cookie)], "");
    assert_eq!(me.status, 200);
    let idle_before = me.json()["idle_expires_at"].as_u64().unwrap();

    assert_eq!(
        admin(&demo, "PUT", Some(TOKEN), r#"{"idle_timeout": 60}"#).status,
        200
    );
    let me = demo.send("GET", "/api/me", &[("Cookie", &cookie)], "");
    assert_eq!(me.status, 200);
    let idle_after = me.json()["idle_expires_at"].as_u64().unwrap();
    assert!(
        idle_after + 500 <= idle_before,
        "the idle deadline moved from {idle_before} to {idle_after}: 60 s from now, not 600"
    );
}

/// The `name=value` pair a `Set-Cookie` of `answer` sets for `name`.
fn cookie_set(answer: &Answer, name: &str) -> Option<String> {
    answer.set_cookies.iter().find_map(|set| {
        let pair = set.split(';').next()?.trim();
        pair.strip_prefix(&format!("{name}="))
            .filter(|value| !value.is_empty())
            .map(|_| pair.to_owned())
    })
}

const FORM: &str = "application/x-www-form-urlencoded";

#[test]
fn the_pages_admin_form_changes_the_policy_for_a_browser_holding_the_token() {
    let demo = demo(&[("ADMIN_TOKEN", TOKEN), ("IDLE_TIMEOUT", "600")]);
    let login = demo.send(
        "POST",
        "/login",
        &[("Content-Type", FORM)],
        "username=alice",
    );
    let session = cookie_set(&login, "session").expect("a session cookie");
    let page = demo.send("GET", "/", &[("Cookie", &session)], "");
    assert_eq!(page.status, 200);
    assert!(
        !page.body.contains("Session policy (admin)"),
        "no form without the token"
    );

    let wrong = demo.send("GET", "/?admin_token=s3cret", &[("Cookie", &session)], "");
    assert_eq!(wrong.status, 401);
    assert_eq!(cookie_set(&wrong, "demo_admin"), None);

    let given = demo.send(
        "GET",
        &format!("/?admin_token={TOKEN}"),
        &[("Cookie", &session)],
        "",
    );
    assert_eq!(given.status, 303, "the token leaves the address bar");
    let admin_cookie = cookie_set(&given, "demo_admin").expect("the admin cookie");
    let attributes = given
        .set_cookies
        .iter()
        .find(|set| set.starts_with("demo_admin="))
        .unwrap();
    assert!(
        attributes.contains("HttpOnly") && attributes.contains("SameSite=Strict"),
        "{attributes}"
    );
    let both = format!("{session}; {admin_cookie}");

    let page = demo.send("GET", "/", &[("Cookie", &both)], "");
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("Session policy (admin)"),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains(r#"name="idle_timeout" inputmode="numeric" value="600""#),
        "{}",
        page.body
    );

    let visitor = demo.send("GET", "/", &[("Cookie", &admin_cookie)], "");
    assert!(
        !visitor.body.contains("Session policy (admin)"),
        "signed-in users only"
    );

    let fields = "idle_timeout=300&absolute_timeout=86400&remember_me_period=604800";
    let changed = demo.send(
        "POST",
        "/admin/policy/form",
        &[("Cookie", &both), ("Content-Type", FORM)],
        fields,
    );
    assert_eq!(changed.status, 303, "{}", changed.body);
    assert_eq!(
        admin(&demo, "GET", Some(TOKEN), "").json(),
        json!({"idle_timeout": 300, "absolute_timeout": 86400, "remember_me_period": 604800})
    );
    let page = demo.send("GET", "/", &[("Cookie", &both)], "");
    assert!(
        page.body
            .contains(r#"name="idle_timeout" inputmode="numeric" value="300""#),
        "{}",
        page.body
    );

    for (fields, why) in [
        (
            "idle_timeout=0&absolute_timeout=86400&remember_me_period=604800",
            "zero",
        ),
        (
            "idle_timeout=259201&absolute_timeout=86400&remember_me_period=604800",
            "above the cap",
        ),
        (
            "idle_timeout=5m&absolute_timeout=86400&remember_me_period=604800",
            "not a number",
        ),
        (
            "idle_timeout=300&absolute_timeout=&remember_me_period=604800",
            "off",
        ),
    ] {
        let refused = demo.send(
            "POST",
            "/admin/policy/form",
            &[("Cookie", &both), ("Content-Type", FORM)],
            fields,
        );
        assert_eq!(refused.status, 422, "{why}: {}", refused.body);
        assert!(
            refused.body.contains(r#"class="notice""#),
            "{why}: the page says why"
        );
        assert_eq!(
            admin(&demo, "GET", Some(TOKEN), "").json()["idle_timeout"],
            300,
            "{why}: unchanged"
        );
    }

    let forged = "demo_admin=s3cret-admin-tokeX";
    for cookie in [session.clone(), format!("{session}; {forged}")] {
        let refused = demo.send(
            "POST",
            "/admin/policy/form",
            &[("Cookie", &cookie), ("Content-Type", FORM)],
            "idle_timeout=60&absolute_timeout=86400&remember_me_period=604800",
        );
        assert_eq!(refused.status, 401, "{cookie}");
    }
    assert_eq!(
        admin(&demo, "GET", Some(TOKEN), "").json()["idle_timeout"],
        300
    );
}

#[test]
fn without_an_admin_token_there_is_no_form_to_post_to() {
    let demo = demo(&[]);
    let answer = demo.send(
        "POST",
        "/admin/policy/form",
        &[("Content-Type", FORM)],
        "idle_timeout=60&absolute_timeout=86400&remember_me_period=604800",
    );
    assert_eq!(answer.status, 404);
    let page = demo.send("GET", &format!("/?admin_token={TOKEN}"), &[], "");
    assert_eq!(page.status, 200);
    assert_eq!(cookie_set(&page, "demo_admin"), None);
}

/// Two copies of the `redis` example over one Redis are one app, down to
/// the policy: a change through one copy's admin API bites on the other
/// within a second, and a copy started later takes it over its own
/// `IDLE_TIMEOUT`.
#[cfg(feature = "redis")]
#[test]
fn two_copies_of_the_redis_example_share_a_change_of_policy() {
    let url = std::env::var("TSL_REDIS_URL")
        .expect("TSL_REDIS_URL is not set: run the tests with scripts/test, which starts Redis");
    let prefix = format!(
        "tsl-demo-{}:",
        &tower_session_lifetime::store::conformance::fresh_key().to_hex()[..12]
    );
    let env = [
        ("ADMIN_TOKEN", TOKEN),
        ("IDLE_TIMEOUT", "600"),
        ("REDIS_URL", &url),
        ("REDIS_PREFIX", &prefix),
    ];
    let binary = || example_binary("redis", "TSL_REDIS_EXAMPLE_BIN");
    let a = ExampleProcess::start(binary(), &env);
    let b = ExampleProcess::start(binary(), &env);
    assert_eq!(
        admin(&b, "GET", Some(TOKEN), "").json()["idle_timeout"],
        600
    );

    let changed = admin(&a, "PUT", Some(TOKEN), r#"{"idle_timeout": 120}"#);
    assert_eq!(changed.status, 200, "{}", changed.body);
    let start = std::time::Instant::now();
    while admin(&b, "GET", Some(TOKEN), "").json()["idle_timeout"] != 120 {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(5),
            "the change did not reach the other copy"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    println!(
        "the change reached the other copy within {:?}",
        start.elapsed()
    );

    let later = ExampleProcess::start(
        binary(),
        &[env.as_slice(), &[("IDLE_TIMEOUT", "900")]].concat(),
    );
    assert_eq!(
        admin(&later, "GET", Some(TOKEN), "").json()["idle_timeout"],
        120,
        "the stored policy wins over a later copy's own"
    );
}
