//! Store round trips and writes per admitted request at steady traffic:
//! 100 sessions, each sending `GET /api/me` once a (simulated) second for
//! ten minutes, 60,000 requests, after their logins.
//!
//! Run by scripts/bench-stores; prints a Markdown table.

use std::time::Duration;

use tower_session_lifetime::clock::{Clock, ManualClock, SystemClock};
use tower_session_lifetime_comparisons::round_trips::{
    address_of, through, CountingProxy, PostgresStatements, RedisCommands,
};
use tower_session_lifetime_comparisons::{app, log_in, me, Servers, Variant};

const SESSIONS: usize = 100;
const SECONDS: usize = 600;

#[tokio::main]
async fn main() {
    let servers = Servers::from_env();
    println!(
        "| app | requests | round trips / request (wire) | commands / request (the server's count) | store writes / request |"
    );
    println!("|---|---:|---:|---|---:|");
    for variant in Variant::ALL.into_iter().filter(|v| !v.is_in_process()) {
        let url = if variant.is_redis() {
            &servers.redis_url
        } else {
            &servers.postgres_url
        };
        let proxy = CountingProxy::start(address_of(url)).await;
        let proxied = Servers {
            redis_url: through(&servers.redis_url, proxy.address()),
            postgres_url: through(&servers.postgres_url, proxy.address()),
        };
        let clock = ManualClock::new(SystemClock.now());
        let (app, writes) = app(variant, &proxied, clock.clone()).await;
        let mut cookies = Vec::with_capacity(SESSIONS);
        for _ in 0..SESSIONS {
            cookies.push(log_in(&app).await);
        }
        // Scripts loaded, prepared statements cached, connections open.
        for cookie in &cookies {
            me(&app, cookie).await;
        }
        let mut commands = RedisCommands::connect(&servers.redis_url).await;
        commands.reset().await;
        let statements = PostgresStatements::connect(&servers.postgres_url).await;
        let before = if variant.is_redis() {
            Default::default()
        } else {
            statements.now().await
        };
        proxy.take();
        writes.take();
        for _ in 0..SECONDS {
            clock.advance(Duration::from_secs(1));
            for cookie in &cookies {
                me(&app, cookie).await;
            }
        }
        let requests = (SESSIONS * SECONDS) as f64;
        let round_trips = proxy.take() as f64 / requests;
        let (server_count, stored_writes) = if variant.is_redis() {
            let calls = commands.calls().await;
            // The server counts the commands a script runs too. The
            // lifetime store sends a plain HGETALL or, when a touch may be
            // due, EVALSHA of a script that runs one HGETALL: what it sent
            // is the HGETALL count. tower-sessions sends plain commands.
            let sent: u64 = match variant {
                Variant::TowerSessionsRedis => ["get", "set", "pexpire", "pexpireat"]
                    .iter()
                    .filter_map(|name| calls.get(*name))
                    .sum(),
                _ => calls.get("hgetall").copied().unwrap_or(0),
            };
            let detail: Vec<String> = calls
                .iter()
                .map(|(name, calls)| {
                    format!("{} {:.3}", name.to_uppercase(), *calls as f64 / requests)
                })
                .collect();
            let writes = match variant {
                Variant::TowerSessionsRedis => calls.get("set").copied().unwrap_or(0) as f64,
                _ => writes.take() as f64,
            };
            (
                format!(
                    "{:.3} sent (INFO commandstats: {})",
                    sent as f64 / requests,
                    detail.join(", ")
                ),
                writes / requests,
            )
        } else {
            let after = statements.now().await;
            // The two snapshot queries of `now` count as two statements.
            let sent = after.statements - before.statements - 2;
            let row_writes = after.row_writes - before.row_writes;
            (
                format!(
                    "{:.3} statements (pg_stat_database)",
                    sent as f64 / requests
                ),
                row_writes as f64 / requests,
            )
        };
        let _ = writes.take();
        println!(
            "| {} | {} | {round_trips:.3} | {server_count} | {stored_writes:.4} |",
            variant.name(),
            requests
        );
    }
}
