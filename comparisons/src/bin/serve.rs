//! Serves one variant's app on a loopback port, for a load generator:
//! `serve <variant> <port>`; variants: bare, lifetime-redis,
//! lifetime-postgres, tower-sessions-redis, tower-sessions-postgres.

use tower_session_lifetime::clock::SystemClock;
use tower_session_lifetime_comparisons::{app, Servers, Variant};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(variant), Some(port)) = (
        args.next().as_deref().and_then(Variant::parse),
        args.next().and_then(|port| port.parse::<u16>().ok()),
    ) else {
        eprintln!("usage: serve <variant> <port>");
        std::process::exit(2);
    };
    let (app, _) = app(variant, &Servers::from_env(), SystemClock).await;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("a free port");
    axum::serve(listener, app).await.expect("serving");
}
