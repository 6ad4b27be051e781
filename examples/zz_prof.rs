use axum::body::Body;
use axum::http::{header, Request};
use axum::routing::{get, post};
use axum::Router;
use tower::ServiceExt;
use tower_session_lifetime::{MemoryStore, SessionLifetimeLayer};
use tower_sessions::cookie::time;
use tower_sessions::{Expiry, Session, SessionManagerLayer};

async fn ts_login(session: Session) -> &'static str {
    session.insert("k", 1usize).await.unwrap();
    "ok"
}
async fn ts_me(session: Session) -> String {
    session
        .get::<usize>("k")
        .await
        .unwrap()
        .unwrap_or(0)
        .to_string()
}

fn main() {
    let follow = std::env::args().nth(1).as_deref() == Some("follow");
    let n: usize = std::env::args()
        .nth(2)
        .map(|s| s.parse().unwrap())
        .unwrap_or(2000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ts_layer = SessionManagerLayer::new(tower_sessions::MemoryStore::default())
        .with_secure(false)
        .with_expiry(Expiry::OnInactivity(time::Duration::minutes(15)))
        .with_always_save(true);
    let mut router: Router = Router::new()
        .route("/", get(ts_me))
        .route("/login", post(ts_login))
        .layer(ts_layer);
    if follow {
        router =
            router.layer(SessionLifetimeLayer::new(MemoryStore::new()).follow_tower_sessions());
    }
    let router = router.with_state(());
    rt.block_on(async {
        let r = router
            .clone()
            .oneshot(Request::post("/login").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let sc = r
            .headers()
            .get(header::SET_COOKIE)
            .unwrap()
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        for _ in 0..n {
            let r = router
                .clone()
                .oneshot(
                    Request::get("/")
                        .header(header::COOKIE, sc.clone())
                        .body(Body::empty())
                        .unwrap(),
                )
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            std::hint::black_box(r);
        }
    });
}
