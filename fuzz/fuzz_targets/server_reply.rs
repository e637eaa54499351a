//! What servers write and readygate reads or repeats: the Redis greeting
//! that readygate reads itself after a refused connection
//! (`backends::redis::connector::parse_greeting`), and the server error
//! texts that become the give-up tally's name (`summary`) and the cause
//! chain of log lines and `/ready` (`chain`): a Redis reply (parsed by the
//! redis crate), a Redis greeting, a MySQL server error. Each comes out on
//! one line, without a configured password, and without a panic.
//!
//! Input: the first byte picks the server, the rest is what it wrote.

#![no_main]

use std::io;
use std::sync::Once;

use libfuzzer_sys::fuzz_target;
use readygate::backends::mysql::{MysqlAttemptError, MysqlError};
use readygate::backends::redis::connector::parse_greeting;
use readygate::backends::redis::error::RedisError;
use readygate::error::ConnectError;
use readygate::export::{mysql_async, redis};
use readygate::redact::register_url_secrets;
use readygate_fuzz::is_line_break;

/// A configured password, registered once: a server that echoes it must
/// not get it into a log line or `/ready`.
const PASSWORD: &str = "s3cr3tpw";

fn check(err: &ConnectError, what: &str) {
    let summary = err.summary();
    let chain = err.chain();
    for (name, text) in [("summary", &summary), ("chain", &chain)] {
        assert!(
            !text.chars().any(is_line_break),
            "{what}: the {name} {text:?} is not one line"
        );
        assert!(
            !text.contains(PASSWORD),
            "{what}: the {name} {text:?} shows the password"
        );
    }
    let _ = err.class();
}

fn dropped() -> redis::RedisError {
    io::Error::new(io::ErrorKind::ConnectionReset, "Connection reset by peer").into()
}

fuzz_target!(|data: &[u8]| {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| register_url_secrets(&format!("redis://:{PASSWORD}@cache:6379/0")));
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    match which % 3 {
        0 => {
            // The greeting of a server that turns clients away.
            let Some(reply) = parse_greeting(bytes) else {
                assert!(
                    !bytes.starts_with(b"-")
                        || String::from_utf8_lossy(&bytes[1..])
                            .split(['\r', '\n'])
                            .next()
                            .is_none_or(|l| l.trim().is_empty()),
                    "{bytes:?} is an error reply, yet no greeting"
                );
                return;
            };
            assert!(bytes.starts_with(b"-"), "{bytes:?} is no error reply");
            assert!(!reply.is_empty() && reply.trim() == reply, "{reply:?}");
            assert!(
                !reply.contains(['\n', '\r']),
                "{reply:?} is more than the first line"
            );
            let err: ConnectError = RedisError::TurnedAway {
                reply,
                source: dropped(),
            }
            .into();
            check(&err, "a Redis greeting");
        }
        1 => {
            // A reply to a command, as the redis crate parses it.
            let err = match redis::parse_redis_value(bytes) {
                Ok(redis::Value::ServerError(e)) => redis::RedisError::from(e),
                Ok(_) => return,
                Err(e) => e,
            };
            check(&RedisError::Command(err).into(), "a Redis reply");
        }
        _ => {
            // A MySQL server's error packet: code, then message.
            let (code, message) = match bytes {
                [a, b, rest @ ..] => (u16::from_le_bytes([*a, *b]), rest),
                _ => (0, bytes),
            };
            let server = mysql_async::ServerError {
                code,
                message: String::from_utf8_lossy(message).into_owned(),
                state: "HY000".into(),
            };
            let err: ConnectError =
                MysqlAttemptError::Pool(MysqlError::Connect(mysql_async::Error::Server(server)))
                    .into();
            check(&err, "a MySQL server error");
        }
    }
});
