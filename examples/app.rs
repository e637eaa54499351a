//! An application embedding readygate: its own routes next to `/health`,
//! `/ready` and `/metrics`, using the connected database pool and cache.
//!
//! Run it like the binary (same settings, same `.env`):
//! `cargo run --example app`, then `curl localhost:4444/app/db-time`.

use std::process::ExitCode;

use actix_web::{HttpResponse, get, web};
// The client crates in the versions readygate hands over.
use readygate::export::mysql_async::prelude::Queryable;
use readygate::export::redis;
use readygate::{Cache, Database, Dependencies, Gateway, Settings};
use serde_json::json;

/// The application's routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(hello).service(db_time).service(visits);
}

/// The simplest route: a constant answer. The benchmarks compare it with the
/// same handler in a bare actix-web app (what readygate costs an
/// application's own traffic).
#[get("/app/hello")]
async fn hello() -> &'static str {
    "Hello from the application\n"
}

/// The database's clock: proves the route got a working pool. Any failure
/// (no free connection within `DB_POOL_TIMEOUT_MS`, a server found down, a
/// query error) is a 503 the client may retry.
#[get("/app/db-time")]
async fn db_time(deps: web::Data<Dependencies>) -> HttpResponse {
    match database_time(&deps.database).await {
        Ok(now) => HttpResponse::Ok().json(json!({ "now": now })),
        Err(error) => HttpResponse::ServiceUnavailable().json(json!({ "error": error })),
    }
}

async fn database_time(db: &Database) -> Result<String, String> {
    match db {
        Database::Postgres(pool) => {
            let client = pool.get().await.map_err(chain)?;
            let row = client
                .query_one("SELECT now()::text", &[])
                .await
                .map_err(chain)?;
            row.try_get(0).map_err(chain)
        }
        Database::Mysql(pool) => {
            let mut conn = pool.get().await.map_err(chain)?;
            let now: Option<String> = conn
                .run(async |c| c.query_first("SELECT CAST(NOW(6) AS CHAR)").await)
                .await
                .map_err(chain)?;
            now.ok_or_else(|| "no row".to_owned())
        }
        Database::Sqlite(pool) => {
            let conn = pool.get().await.map_err(chain)?;
            conn.interact(|c| {
                c.query_row("SELECT datetime('now')", [], |row| row.get::<_, String>(0))
            })
            .await
            .map_err(chain)?
            .map_err(chain)
        }
        _ => Err("this example does not know the configured database".to_owned()),
    }
}

/// An error as the route answers it: its whole cause chain, since the
/// client crates' top-level texts (tokio-postgres' `db error`) say little;
/// no password (`readygate::error::cause_chain` scrubs them).
fn chain(e: impl std::error::Error + 'static) -> String {
    readygate::error::cause_chain(&e)
}

/// `INCR key` on any Redis handle (one server, Sentinel's master, a cluster).
async fn incr(conn: &mut impl redis::aio::ConnectionLike, key: &str) -> Result<i64, String> {
    redis::cmd("INCR")
        .arg(key)
        .query_async::<i64>(conn)
        .await
        .map_err(chain)
}

/// A visit counter in the cache (Redis `INCR`, or the in-memory cache).
#[get("/app/visits")]
async fn visits(deps: web::Data<Dependencies>) -> HttpResponse {
    const KEY: &str = "readygate:example:visits";
    let count = match &deps.cache {
        Cache::Redis(manager) => incr(&mut manager.clone(), KEY).await,
        // The master the sentinels name, followed through a failover.
        Cache::RedisSentinel(master) => incr(&mut master.clone(), KEY).await,
        // The cluster client sends the key to its slot's owner.
        Cache::RedisCluster(cluster) => incr(&mut cluster.clone(), KEY).await,
        Cache::Memory(cache) => {
            let next = cache
                .get(KEY)
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(0)
                + 1;
            cache.set(KEY, next.to_string());
            Ok(next)
        }
        Cache::None => Err("no cache configured (CACHE_TYPE=none)".to_owned()),
        _ => Err("this example does not know the configured cache".to_owned()),
    };
    match count {
        Ok(visits) => HttpResponse::Ok().json(json!({ "visits": visits })),
        Err(error) => HttpResponse::ServiceUnavailable().json(json!({ "error": error })),
    }
}

pub fn main() -> ExitCode {
    // First, so that a stop signal at any moment exits 0 (see
    // `readygate::signals`).
    if let Err(e) = readygate::signals::install() {
        eprintln!("cannot catch stop signals yet: {e}");
    }
    let settings = readygate::config::load_dotenv().and_then(|()| Settings::from_env());
    let settings = match settings {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(78);
        }
    };
    readygate::telemetry::init(settings.log);
    let code = Gateway::new(settings).routes(routes).run();
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
