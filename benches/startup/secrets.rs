//! Section `secrets`: what the change check of a rotating secret costs
//! (issue 28). Before each new connection, `readygate::secrets::Watched::refresh`
//! reads every watched file and compares its content with the last read;
//! this times that call when nothing changed (the common case), in process,
//! for the files a PostgreSQL URL with TLS watches, plain and behind a
//! Kubernetes-style `..data` symlink. A request that reuses a pooled
//! connection never calls it, so the request-path figures do not include it.

use std::time::Instant;

use readygate::secrets::{Source, Watched};

use crate::plan::Report;
use crate::spawn::Deps;
use crate::stats::{max, median, min};
use crate::support::{MountedSecret, Pki};

/// Calls per sample, samples per case (fewer with `READYGATE_BENCH_QUICK`).
fn sizes() -> (usize, usize) {
    if crate::plan::quick() {
        (1000, 5)
    } else {
        (10_000, 21)
    }
}

/// Microseconds per `refresh()` of `sources`, nothing having changed: the
/// median of the samples, with their min and max.
fn time(sources: Vec<Source>) -> (f64, f64, f64) {
    let watched = Watched::new("DB", (), sources, Box::new(|| Err(String::new())));
    let (calls, samples) = sizes();
    let mut per_call = Vec::new();
    for _ in 0..samples {
        let began = Instant::now();
        for _ in 0..calls {
            std::hint::black_box(watched.refresh());
        }
        per_call.push(began.elapsed().as_secs_f64() * 1e6 / calls as f64);
    }
    (min(&per_call), median(&per_call), max(&per_call))
}

/// Milliseconds to make one PostgreSQL connection (TCP, startup,
/// authentication, `SELECT 1`) to `url`, over loopback: the reference a
/// check is made beside. Median, min, max of the samples.
fn connection_ms(url: &str) -> (f64, f64, f64) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (_, samples) = sizes();
    let mut times = Vec::new();
    for _ in 0..samples {
        let began = Instant::now();
        runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .unwrap();
            let driver = tokio::spawn(connection);
            client.simple_query("SELECT 1").await.unwrap();
            drop(client);
            let _ = driver.await;
        });
        times.push(began.elapsed().as_secs_f64() * 1000.0);
    }
    (min(&times), median(&times), max(&times))
}

pub fn secrets(deps: &Deps, report: &mut Report) {
    println!("\n[secrets] the change check of rotating secrets, per new connection");
    let (c_lo, c_mid, c_hi) = connection_ms(&deps.db_url);
    let connection =
        format!("a PostgreSQL connection + `SELECT 1`: {c_mid:.2} ms ({c_lo:.2} / {c_hi:.2})");
    println!("  {connection}");
    let pki = Pki::generate();
    let url = b"postgres://app:s3cr3t-rotated@db.example:5432/app?sslmode=verify-full";
    let read = |p: &std::path::Path| std::fs::read(p).unwrap();
    let mount = MountedSecret::new(&[
        ("url", url.as_slice()),
        ("ca.crt", &read(&pki.ca)),
        ("tls.crt", &read(&pki.client.cert)),
        ("tls.key", &read(&pki.client.key)),
    ]);
    let plain = pki.dir().join("url");
    std::fs::write(&plain, url).unwrap();
    let src = |var: &str, path: std::path::PathBuf| Source::new(var, "credentials", path);
    let cases = [
        (
            "`DATABASE_URL_FILE`, a plain file",
            vec![src("DATABASE_URL_FILE", plain)],
        ),
        (
            "`DATABASE_URL_FILE` in a Kubernetes-style mount (`..data` symlink)",
            vec![src("DATABASE_URL_FILE", mount.path("url"))],
        ),
        (
            "the URL, `sslrootcert`, `sslcert` and `sslkey` in the mount (4 files)",
            ["url", "ca.crt", "tls.crt", "tls.key"]
                .iter()
                .map(|k| src(k, mount.path(k)))
                .collect(),
        ),
    ];
    let mut table = String::from(
        "| Files checked before a new connection (nothing changed) | µs per check, median (min / max) |\n|---|---|\n",
    );
    for (what, sources) in cases {
        let (lo, mid, hi) = time(sources);
        println!("  {what}: {mid:.1} µs ({lo:.1} / {hi:.1})");
        table.push_str(&format!(
            "| {what} | **{mid:.1} µs** ({lo:.1} / {hi:.1}) |\n"
        ));
        report.check(
            &format!("Secret change check, {what}"),
            format!("**{mid:.1} µs** per new connection"),
            connection.clone(),
            "(none: not on the request path)",
            None,
        );
    }
    table.push_str(&format!(
        "\nFor scale, in the same run: {connection} (median (min / max), over loopback, no TLS).\n"
    ));
    report.block("secrets", table);
}
