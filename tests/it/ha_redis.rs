//! Issue 23 "Redis Sentinel and Redis Cluster": the cache behind Sentinel
//! (a master, a replica, three sentinels; a SIGKILLed master and the
//! sentinels' failover) and as a Redis Cluster of three masters (a seed
//! that does not own the key, a lost master), all real `redis-server`s.

use std::time::{Duration, Instant};

use crate::embedding::app;
use crate::startup::lines_with;
use crate::support::{
    Gateway, GatewayBuilder, InProcess, RedisClusterSet, SENTINEL_MASTER, SentinelSet, free_port,
    inprocess, start_sentinel, wait_until,
};

/// Runtime checks this far apart...
const CHECK_MS: u64 = 200;
/// ... reconnection attempts this far apart ...
const RETRY_MS: u64 = 200;
/// ... each bounded by this.
const CONNECT_TIMEOUT_MS: u64 = 1000;
/// Generous upper bound of any one reaction on a loaded 2-core machine.
const LIMIT: Duration = Duration::from_secs(20);
/// The key the example's `/app/visits` counts in (slot 3662: the first
/// cluster node's).
const VISITS: &str = "readygate:example:visits";

/// The example application in this process, with the short intervals above
/// and `cache` (command-line settings), once ready.
fn example(cache: &[String]) -> (InProcess, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec![
        format!("--database-url=sqlite://{}/db.sqlite", dir.path().display()),
        format!("--health-check-interval-ms={CHECK_MS}"),
        format!("--redis-retry-interval-ms={RETRY_MS}"),
        format!("--redis-connect-timeout-ms={CONNECT_TIMEOUT_MS}"),
        "--redis-max-retries=20".to_owned(),
    ];
    args.extend_from_slice(cache);
    (InProcess::spawn(&args, app::routes), dir)
}

fn sentinel_args(set: &SentinelSet) -> Vec<String> {
    vec![
        "--cache-type=redis-sentinel".into(),
        format!("--redis-sentinel-nodes={}", set.nodes()),
        format!("--redis-sentinel-master={SENTINEL_MASTER}"),
    ]
}

fn get(gw: &InProcess, path: &str) -> (u16, serde_json::Value) {
    let (status, body) = inprocess::get(&inprocess::agent(), &gw.url(path));
    (
        status,
        serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
    )
}

/// `/ready`'s `cache` object.
fn cache(gw: &InProcess) -> serde_json::Value {
    get(gw, "/ready").1["dependencies"]["cache"].clone()
}

/// A gateway process with the Redis cache as `cache_type`, few attempts.
fn gateway(cache_type: &str) -> GatewayBuilder {
    Gateway::builder()
        .env("CACHE_TYPE", cache_type)
        .env("REDIS_MAX_RETRIES", "2")
        .env("REDIS_RETRY_INTERVAL_MS", "100")
        .env("REDIS_CONNECT_TIMEOUT_MS", "500")
}

#[test]
fn through_sentinel_the_cache_is_the_master_and_writes_land_on_it() {
    // Arrange
    let set = SentinelSet::start();

    // Act
    let (gw, _dir) = example(&sentinel_args(&set));
    let (status, visits) = get(&gw, "/app/visits");

    // Assert
    let cache = cache(&gw);
    assert_eq!(cache["backend"], "redis-sentinel", "{cache}");
    assert_eq!(cache["state"], "up", "{cache}");
    assert_eq!(
        cache["server"],
        format!("127.0.0.1:{}", set.master.port()),
        "{cache}"
    );
    assert_eq!(
        (status, visits["visits"].as_i64()),
        (200, Some(1)),
        "{visits}"
    );
    assert_eq!(
        set.master.command(&["GET", VISITS]).unwrap(),
        "$1\r\n1\r\n",
        "the write is on the master"
    );
}

#[test]
fn a_killed_master_is_followed_to_the_promoted_replica_without_a_restart() {
    // Arrange
    let mut set = SentinelSet::start();
    let (gw, _dir) = example(&sentinel_args(&set));
    assert_eq!(get(&gw, "/app/visits").1["visits"], 1);
    let replica = set.replica.port();

    // Act
    let killed = Instant::now();
    set.master.kill();
    let mut saw_503 = false;
    let followed = wait_until(LIMIT, Duration::from_millis(50), || {
        saw_503 |= get(&gw, "/ready").0 == 503;
        saw_503 && get(&gw, "/ready").0 == 200 && get(&gw, "/app/visits").0 == 200
    });
    let elapsed = killed.elapsed();

    // Assert
    assert!(saw_503, "/ready never said 503 while the master was gone");
    assert!(followed, "not back within {LIMIT:?}: {}", cache(&gw));
    // The sentinels name the promoted replica before their failover ends
    // (which the gateway follows); `INFO sentinel`'s address changes at its
    // end, a moment later.
    assert!(
        wait_until(Duration::from_secs(5), Duration::from_millis(50), || set
            .master_port()
            == Some(replica)),
        "the sentinels did not promote the replica: {:?}",
        set.master_port()
    );
    let cache = cache(&gw);
    assert_eq!(cache["server"], format!("127.0.0.1:{replica}"), "{cache}");
    // The count went on where it was: 1 before, 2 in the check above, 3 now.
    assert_eq!(get(&gw, "/app/visits").1["visits"], 3);
    assert_eq!(
        set.replica.command(&["GET", VISITS]).unwrap(),
        "$1\r\n3\r\n",
        "the writes land on the promoted replica"
    );
    // At least the sentinels' down-after-milliseconds (500 ms).
    assert!(elapsed >= Duration::from_millis(500), "{elapsed:?}");
    eprintln!("master killed -> cache working again: {elapsed:?}");
}

#[test]
fn unreachable_sentinels_exit_69_naming_them() {
    // Arrange
    let nodes = format!("127.0.0.1:{},127.0.0.1:{}", free_port(), free_port());
    let gw = gateway("redis-sentinel")
        .env("REDIS_SENTINEL_NODES", &nodes)
        .env("REDIS_SENTINEL_MASTER", SENTINEL_MASTER)
        .spawn();

    // Act
    let code = gw.wait_exit(LIMIT);

    // Assert
    assert_eq!(code, Some(69), "{}", gw.output());
    let errors = lines_with(&gw, "ERROR");
    assert_eq!(errors.len(), 1, "{}", gw.output());
    assert!(
        errors[0].contains("(sentinels unreachable x2)"),
        "{}",
        errors[0]
    );
    let first = nodes.split(',').next().unwrap();
    assert!(
        lines_with(&gw, "no sentinel answered")[0].contains(first),
        "each sentinel is named: {}",
        gw.output()
    );
}

#[test]
fn a_frozen_sentinel_or_one_that_never_answers_does_not_hide_the_next_one() {
    // Arrange: the first sentinel listed is frozen (SIGSTOP: it accepts
    // through the kernel's backlog and never answers), the second accepts
    // and never answers; the third is healthy.
    let set = SentinelSet::start();
    let hole = crate::support::BlackHole::start();
    let pid = set.sentinels[0].pid().unwrap();
    let mut frozen = crate::support::process::freeze(pid);
    let nodes = format!(
        "127.0.0.1:{},127.0.0.1:{},127.0.0.1:{}",
        set.sentinels[0].port(),
        hole.port(),
        set.sentinels[2].port()
    );

    // Act
    let gw = gateway("redis-sentinel")
        .env("REDIS_SENTINEL_NODES", &nodes)
        .env("REDIS_SENTINEL_MASTER", SENTINEL_MASTER)
        .env("REDIS_MAX_RETRIES", "3")
        .env("REDIS_CONNECT_TIMEOUT_MS", "1500")
        .spawn();
    let ready = gw.wait_for_status("/ready", 200, LIMIT);
    crate::support::process::thaw(&mut frozen);

    // Assert: each sentinel gets its share of the attempt's time, so the
    // third one is asked within the first attempt.
    assert!(ready, "{}", gw.output());
    assert!(
        lines_with(&gw, "Redis connection failed").is_empty(),
        "{}",
        gw.output()
    );
}

#[test]
fn an_optional_sentinel_cache_is_handed_over_before_any_master_is_found() {
    // Arrange: no sentinel answers; the cache is optional.
    let nodes = format!("127.0.0.1:{}", free_port());

    // Act
    let (gw, _dir) = example(&[
        "--cache-type=redis-sentinel".into(),
        format!("--redis-sentinel-nodes={nodes}"),
        format!("--redis-sentinel-master={SENTINEL_MASTER}"),
        "--cache-required=false".into(),
    ]);
    let (status, visits) = get(&gw, "/app/visits");

    // Assert: serving, with a Sentinel handle that says why it cannot work
    // yet (not "no cache configured").
    assert_eq!(cache(&gw)["backend"], "redis-sentinel");
    assert_eq!(status, 503, "{visits}");
    assert!(
        visits["error"]
            .as_str()
            .is_some_and(|e| e.contains("no master found through the sentinels yet")),
        "{visits}"
    );
}

#[test]
fn an_unknown_master_name_exits_69_naming_it() {
    // Arrange: a real sentinel, which knows another master.
    let master = crate::support::Redis::start();
    let sentinel = start_sentinel(master.port());
    let gw = gateway("redis-sentinel")
        .env(
            "REDIS_SENTINEL_NODES",
            format!("127.0.0.1:{}", sentinel.port()),
        )
        .env("REDIS_SENTINEL_MASTER", "orders-cache")
        .spawn();

    // Act
    let code = gw.wait_exit(LIMIT);

    // Assert
    assert_eq!(code, Some(69), "{}", gw.output());
    let errors = lines_with(&gw, "ERROR");
    assert!(
        errors[0].contains("(unknown master orders-cache x2)"),
        "{}",
        errors[0]
    );
    assert!(
        lines_with(&gw, "no sentinel knows a master named \"orders-cache\"").len() == 2,
        "{}",
        gw.output()
    );
}

#[test]
fn a_named_master_that_answers_as_a_replica_is_not_ready() {
    // Arrange: the sentinel watches a server that is in fact a replica.
    let master = crate::support::Redis::start();
    let replica = crate::support::Redis::start_replica_of(master.port());
    let sentinel = start_sentinel(replica.port());
    let gw = gateway("redis-sentinel")
        .env(
            "REDIS_SENTINEL_NODES",
            format!("127.0.0.1:{}", sentinel.port()),
        )
        .env("REDIS_SENTINEL_MASTER", SENTINEL_MASTER)
        .spawn();

    // Act
    let code = gw.wait_exit(LIMIT);

    // Assert: transient (every attempt made), then exit 69.
    assert_eq!(code, Some(69), "{}", gw.output());
    let errors = lines_with(&gw, "ERROR");
    assert!(
        errors[0].contains("(master answers as a replica x2)"),
        "{}",
        errors[0]
    );
    let attempt = &lines_with(&gw, "Redis connection failed (attempt 1/2)")[0];
    assert!(
        attempt.contains(&format!(
            "Redis at 127.0.0.1:{}, named the master of \"{SENTINEL_MASTER}\" by the sentinels, answers ROLE as \"slave\"",
            replica.port()
        )),
        "{attempt}"
    );
}

#[test]
fn a_cluster_is_ready_from_a_seed_that_does_not_own_the_key_and_writes_land_on_the_owner() {
    // Arrange: the key's slot (3662) is the first node's; the only seed is
    // the second.
    let cluster = RedisClusterSet::start();
    let seed = format!("127.0.0.1:{}", cluster.nodes[1].port());

    // Act
    let (gw, _dir) = example(&[
        "--cache-type=redis-cluster".into(),
        format!("--redis-cluster-nodes={seed}"),
    ]);
    let (status, visits) = get(&gw, "/app/visits");

    // Assert
    let cache = cache(&gw);
    assert_eq!(cache["backend"], "redis-cluster", "{cache}");
    assert_eq!(cache["state"], "up", "{cache}");
    assert_eq!(
        (status, visits["visits"].as_i64()),
        (200, Some(1)),
        "{visits}"
    );
    assert_eq!(
        cluster.nodes[0].command(&["GET", VISITS]).unwrap(),
        "$1\r\n1\r\n",
        "the write is on the slot's owner"
    );
    assert!(
        cluster.nodes[1]
            .command(&["GET", VISITS])
            .unwrap()
            .starts_with("-MOVED 3662 "),
        "the seed does not hold the key"
    );
}

#[test]
fn a_cluster_that_lost_a_master_is_down_until_it_returns() {
    // Arrange
    let mut cluster = RedisClusterSet::start();
    let (gw, _dir) = example(&[
        "--cache-type=redis-cluster".into(),
        format!(
            "--redis-cluster-nodes=127.0.0.1:{},127.0.0.1:{}",
            cluster.nodes[0].port(),
            cluster.nodes[1].port()
        ),
    ]);

    // Act: the third master (slots 10923-16383) dies.
    cluster.nodes[2].kill();

    // Assert
    assert!(
        cluster.wait_state("fail", LIMIT),
        "the cluster never said cluster_state:fail"
    );
    assert!(
        wait_until(LIMIT, Duration::from_millis(50), || get(&gw, "/ready").0
            == 503),
        "/ready stayed 200 on a failed cluster: {}",
        cache(&gw)
    );

    // Act: it comes back (same port, same nodes.conf).
    cluster.nodes[2].start_server();

    // Assert
    assert!(
        cluster.wait_state("ok", LIMIT),
        "the cluster never recovered"
    );
    assert!(
        wait_until(LIMIT, Duration::from_millis(50), || get(&gw, "/ready").0
            == 200),
        "/ready never came back: {}",
        cache(&gw)
    );
    assert_eq!(get(&gw, "/app/visits").0, 200);
}

/// (CACHE_TYPE, settings, the variable named, words of the problem)
type BadSetting = (
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static str,
    &'static str,
);

#[test]
fn each_bad_sentinel_or_cluster_setting_exits_78_naming_its_variable() {
    let cases: &[BadSetting] = &[
        (
            "redis-sentinel",
            &[("REDIS_SENTINEL_NODES", "127.0.0.1:26379")],
            "REDIS_SENTINEL_MASTER",
            "is not set",
        ),
        (
            "redis-sentinel",
            &[
                ("REDIS_SENTINEL_NODES", "127.0.0.1:26379,sentinel-2"),
                ("REDIS_SENTINEL_MASTER", "m"),
            ],
            "REDIS_SENTINEL_NODES",
            "without a port",
        ),
        (
            "redis-sentinel",
            &[("REDIS_SENTINEL_MASTER", "m")],
            "REDIS_SENTINEL_NODES",
            "is not set",
        ),
        (
            "redis-sentinel",
            &[
                ("REDIS_SENTINEL_NODES", "127.0.0.1:26379"),
                ("REDIS_SENTINEL_MASTER", "m"),
                ("REDIS_SENTINEL_PASSWORD_FILE", "/no/such/secret"),
            ],
            "REDIS_SENTINEL_PASSWORD_FILE",
            "cannot be read",
        ),
        (
            "redis-cluster",
            &[("REDIS_CLUSTER_NODES", "")],
            "REDIS_CLUSTER_NODES",
            "is empty",
        ),
        (
            "redis-cluster",
            &[("REDIS_CLUSTER_NODES", "10.0.0.1:7000,,10.0.0.2:7000")],
            "REDIS_CLUSTER_NODES",
            "has an empty entry",
        ),
        (
            "redis-cluster",
            &[("REDIS_CLUSTER_NODES", "10.0.0.1")],
            "REDIS_CLUSTER_NODES",
            "without a port",
        ),
    ];
    for (cache_type, settings, variable, words) in cases {
        // Arrange
        let mut builder = gateway(cache_type);
        for (k, v) in *settings {
            builder = builder.env(*k, *v);
        }

        // Act
        let gw = builder.spawn();
        let code = gw.wait_exit(LIMIT);

        // Assert
        assert_eq!(code, Some(78), "{variable}: {}", gw.output());
        let line = gw.output();
        assert!(
            line.contains(&format!("{variable}=")) && line.contains(words),
            "{variable} {words}: {line}"
        );
    }
}

#[test]
fn a_cluster_outage_is_told_by_readygate_not_by_the_cluster_clients_recovery_loop() {
    // Arrange: a gateway on a ready cluster, at the default log level.
    let mut cluster = RedisClusterSet::start();
    let gw = gateway("redis-cluster")
        .env(
            "REDIS_CLUSTER_NODES",
            format!(
                "127.0.0.1:{},127.0.0.1:{}",
                cluster.nodes[0].port(),
                cluster.nodes[1].port()
            ),
        )
        .env("HEALTH_CHECK_INTERVAL_MS", CHECK_MS.to_string())
        .spawn();
    assert!(gw.wait_for_status("/ready", 200, LIMIT), "{}", gw.output());

    // Act: a master dies, the gateway retries a while, it comes back.
    cluster.nodes[2].kill();
    assert!(
        gw.wait_for_line("Redis connection lost", LIMIT).is_some(),
        "{}",
        gw.output()
    );
    std::thread::sleep(Duration::from_secs(1));
    cluster.nodes[2].start_server();
    assert!(
        gw.wait_for_line("Redis connection restored", LIMIT)
            .is_some(),
        "{}",
        gw.output()
    );

    // Assert: readygate's own lines tell the outage; the redis crate's
    // cluster client, which logs each failed reconnection of its recovery
    // loop (many a second, at ERROR), is quiet below LOG_LEVEL=debug.
    let out = gw.output();
    for noise in [
        "async cluster client",
        "ClusterConnInner",
        "Failed to connect to node",
    ] {
        assert!(!out.contains(noise), "{noise:?} in:\n{out}");
    }
}
