//! Load from `wrk` (an external load generator, C and epoll, as a user
//! would measure), and the server's CPU time over the load, from
//! `/proc/PID/stat`.

use std::process::Command;

/// What one `wrk` run reported.
#[derive(Clone, Copy, Debug)]
pub struct Wrk {
    pub requests: u64,
    pub rps: f64,
    /// Latency percentiles (`--latency`), ms.
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Non-2xx/3xx answers plus socket errors (connect, read, write,
    /// timeout).
    pub errors: u64,
}

/// Whether `wrk` can be run at all.
pub fn installed() -> bool {
    Command::new("wrk")
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("wrk"))
}

/// `wrk -t2 -cCONNS -dSECSs --latency http://127.0.0.1:PORT/PATH`; `None`
/// when it cannot be run or its output has no request count.
pub fn wrk(port: u16, path: &str, conns: usize, secs: u64) -> Option<Wrk> {
    let out = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{conns}"),
            &format!("-d{secs}s"),
            "--latency",
        ])
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .ok()?;
    parse(&String::from_utf8_lossy(&out.stdout))
}

fn parse(text: &str) -> Option<Wrk> {
    let field = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .map(str::trim)
    };
    let requests = text
        .lines()
        .find(|l| l.contains(" requests in "))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())?;
    let rps = field("Requests/sec:")?.parse().ok()?;
    let non_2xx: u64 = field("Non-2xx or 3xx responses:")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let socket_errors: u64 = field("Socket errors:").map_or(0, |v| {
        v.split(',')
            .filter_map(|kv| kv.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum()
    });
    let percentile = |p: &str| field(p).and_then(duration_ms).unwrap_or(f64::NAN);
    Some(Wrk {
        requests,
        rps,
        p50_ms: percentile("50%"),
        p99_ms: percentile("99%"),
        errors: non_2xx + socket_errors,
    })
}

/// `734.00us`, `1.20ms`, `2.00s`, `1.00m` in ms.
fn duration_ms(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (value, unit) = text.split_at(split);
    let value: f64 = value.parse().ok()?;
    let scale = match unit {
        "us" => 0.001,
        "ms" => 1.0,
        "s" => 1000.0,
        "m" => 60_000.0,
        _ => return None,
    };
    Some(value * scale)
}

/// The process's CPU time so far, user + system, all threads (fields 14
/// and 15 of `/proc/PID/stat`, in clock ticks of `sysconf(_SC_CLK_TCK)`),
/// in seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command name, which may hold spaces and parentheses.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // fields[0] is field 3 (state): utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()?;
    Some((utime + stime) as f64 / ticks as f64)
}
