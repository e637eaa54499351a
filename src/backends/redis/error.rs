//! Redis's errors: what failed (connecting, a command, a server turning new
//! connections away), and what the redis crate's errors mean: a server
//! reply named by its code (`LOADING`, `MASTERDOWN`) or, for a plain `ERR`,
//! by its words; `WRONGPASS`, `NOAUTH` and a failed `AUTH` permanent.

use std::error::Error as StdError;

use crate::error::{ErrorClass, ErrorVocabulary, find, named_by, one_line};
use crate::redact::scrub;

/// Why a Redis attempt or check failed.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    #[error("cannot connect to Redis")]
    Connect(#[source] redis::RedisError),
    /// Redis dropped the connection, and greets new ones with this error
    /// reply (`ERR max number of clients reached`).
    #[error("Redis turns new connections away: {reply}")]
    TurnedAway {
        reply: String,
        #[source]
        source: redis::RedisError,
    },
    #[error("Redis command failed")]
    Command(#[source] redis::RedisError),
    /// No sentinel of `REDIS_SENTINEL_NODES` answered; `tried`: each one's
    /// address and failure.
    #[error("no sentinel answered ({tried})")]
    SentinelsUnreachable {
        tried: String,
        #[source]
        source: redis::RedisError,
    },
    /// The master the sentinels name does not answer (yet: until they
    /// notice it is gone and promote a replica).
    #[error("the master the sentinels name, {server}, does not answer")]
    Master {
        server: String,
        #[source]
        source: redis::RedisError,
    },
    /// The sentinels that answered know no master of that name.
    #[error("no sentinel knows a master named {name:?} ({tried})")]
    UnknownMaster { name: String, tried: String },
    /// The server the sentinels name as the master says it is not (a
    /// failover under way, or a demoted master).
    #[error(
        "Redis at {server}, named the master of {name:?} by the sentinels, answers ROLE as {role:?}"
    )]
    NotMaster {
        name: String,
        server: String,
        role: String,
    },
    /// `CLUSTER INFO` says the cluster cannot serve every slot.
    #[error("Redis Cluster reports cluster_state:{state}")]
    ClusterState { state: String },
}

named_by!(RedisError, [Vocabulary]);

/// What the redis crate's errors and the server's replies mean.
pub struct Vocabulary;

impl ErrorVocabulary for Vocabulary {
    fn named_first(&self, err: &(dyn StdError + 'static)) -> Option<String> {
        let reply = match err.downcast_ref::<RedisError>()? {
            RedisError::TurnedAway { reply, .. } => reply,
            RedisError::SentinelsUnreachable { .. } => return Some("sentinels unreachable".into()),
            RedisError::UnknownMaster { name, .. } => {
                return Some(format!("unknown master {}", scrub(&one_line(name))));
            }
            RedisError::NotMaster { .. } => return Some("master answers as a replica".into()),
            RedisError::ClusterState { state } => {
                return Some(format!("cluster_state:{}", one_line(state)));
            }
            _ => return None,
        };
        // `ERR` is every error Redis has no code for: its words name it.
        let words = reply.strip_prefix("ERR ").unwrap_or(reply);
        Some(scrub(&one_line(words)).into_owned())
    }

    fn named(&self, err: &(dyn StdError + 'static)) -> Option<String> {
        let r = find::<redis::RedisError>(err)?;
        let code = r.code()?;
        // `ERR` is every error Redis has no code for: its words name it
        // (`max number of clients reached`).
        Some(match (code, r.detail()) {
            ("ERR", Some(detail)) if !detail.trim().is_empty() => {
                scrub(&one_line(detail)).into_owned()
            }
            // The code is the server's first word, as it sent it: folded onto
            // one line and scrubbed like its words (found by the fuzz target
            // `server_reply`).
            _ => scrub(&one_line(code)).into_owned(),
        })
    }

    fn named_last(&self, err: &(dyn StdError + 'static)) -> Option<String> {
        let r = find::<redis::RedisError>(err)?;
        if r.is_connection_refusal() {
            return Some("connection refused".into());
        }
        r.is_timeout().then(|| "timed out".into())
    }

    fn class(&self, err: &(dyn StdError + 'static)) -> Option<ErrorClass> {
        let r = find::<redis::RedisError>(err)?;
        let auth = r.kind() == redis::ErrorKind::AuthenticationFailed;
        (auth || matches!(r.code(), Some("WRONGPASS" | "NOAUTH"))).then_some(ErrorClass::Permanent)
    }

    /// The server's own words (`LOADING Redis is loading ...`), which
    /// operators know, rather than the crate's names for them.
    fn level(&self, e: &(dyn StdError + 'static)) -> Option<Option<String>> {
        let r = e.downcast_ref::<redis::RedisError>()?;
        let (code, detail) = (r.code()?, r.detail().unwrap_or_default());
        Some(Some(one_line(&format!("{code} {detail}"))))
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;
    use crate::error::ConnectError;

    #[test]
    fn the_tally_names_causes_instead_of_error_kinds() {
        let io = |kind, text: &str| -> ConnectError {
            RedisError::Command(io::Error::new(kind, text).into()).into()
        };
        let dns = io(
            io::ErrorKind::Other,
            "failed to lookup address information: Name or service not known",
        );
        assert_eq!(dns.summary(), "name resolution failed");
        let reset = io(io::ErrorKind::ConnectionReset, "Connection reset by peer");
        assert_eq!(reset.summary(), "connection reset");
        // A kind that says nothing gives way to the error's own text.
        let odd = io(io::ErrorKind::Other, "the network   cable\nis unplugged");
        assert_eq!(odd.summary(), "the network cable is unplugged");
        for err in [dns, reset, odd] {
            assert_eq!(err.class(), ErrorClass::Transient, "{err}");
        }
    }

    #[test]
    fn redis_errors_without_a_code_are_named_by_their_words() {
        let reply = redis::parse_redis_value(b"-ERR max number of clients reached\r\n")
            .unwrap()
            .extract_error()
            .unwrap_err();
        let err: ConnectError = RedisError::Command(reply).into();
        assert_eq!(err.summary(), "max number of clients reached");
        assert_eq!(err.class(), ErrorClass::Transient);
        let reset = redis::RedisError::from(io::Error::from(io::ErrorKind::ConnectionReset));
        let turned_away: ConnectError = RedisError::TurnedAway {
            reply: "ERR max number of clients reached".into(),
            source: reset,
        }
        .into();
        assert_eq!(turned_away.summary(), "max number of clients reached");
        assert_eq!(turned_away.class(), ErrorClass::Transient);
        assert!(
            turned_away.chain().starts_with(
                "Redis turns new connections away: ERR max number of clients reached: "
            ),
            "{}",
            turned_away.chain()
        );
    }

    #[test]
    fn redis_codes_are_classified() {
        let auth: ConnectError = RedisError::Command(redis::RedisError::from((
            redis::ErrorKind::AuthenticationFailed,
            "auth failed",
        )))
        .into();
        assert_eq!(auth.class(), ErrorClass::Permanent);
        let io: ConnectError = RedisError::Command(redis::RedisError::from(io::Error::from(
            io::ErrorKind::ConnectionRefused,
        )))
        .into();
        assert_eq!(io.class(), ErrorClass::Transient);
        assert_eq!(io.summary(), "connection refused");
    }

    #[test]
    fn a_reply_is_shown_in_the_servers_words() {
        let reply = |raw: &[u8]| {
            redis::parse_redis_value(raw)
                .unwrap()
                .extract_error()
                .unwrap_err()
        };
        let loading: ConnectError = RedisError::Command(reply(
            b"-LOADING Redis is loading the dataset in memory\r\n",
        ))
        .into();
        assert!(
            loading.chain().starts_with(
                "Redis command failed: LOADING Redis is loading the dataset in memory"
            ),
            "{}",
            loading.chain()
        );
        assert_eq!(loading.summary(), "LOADING");
        // An `ERR` without words is named by its code.
        let bare: ConnectError = RedisError::Command(reply(b"-ERR  \r\n")).into();
        assert_eq!(bare.summary(), "ERR");
    }

    #[test]
    fn a_reply_code_is_named_on_one_line_and_scrubbed() {
        // Found by the fuzz target `server_reply`: the code (a reply's
        // first word) was the summary as the server sent it.
        crate::redact::register_url_secrets("redis://:c0desecret@cache:6379/0");
        let reply = |raw: &[u8]| -> ConnectError {
            let err = redis::parse_redis_value(raw)
                .unwrap()
                .extract_error()
                .unwrap_err();
            RedisError::Command(err).into()
        };
        let secret = reply(b"-c0desecretNOAUTH x\r\n").summary();
        assert!(!secret.contains("c0desecret"), "{secret}");
        let split = reply(b"-LOAD\rING x\r\n").summary();
        assert!(!split.contains('\r'), "{split:?}");
    }

    #[test]
    fn a_refusal_or_timeout_without_an_io_error_is_still_named() {
        let timeout: ConnectError = RedisError::Connect(redis::RedisError::from((
            redis::ErrorKind::Io,
            "timed out",
            "the response timed out".to_owned(),
        )))
        .into();
        let _ = timeout.summary();
        let refused: ConnectError = RedisError::Connect(redis::RedisError::from(io::Error::from(
            io::ErrorKind::ConnectionRefused,
        )))
        .into();
        assert_eq!(refused.summary(), "connection refused");
    }
}
