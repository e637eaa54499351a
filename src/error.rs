//! Typed errors of one connection attempt, how they print (the whole cause
//! chain, since tokio-postgres and deadpool hide the cause behind their
//! top-level message) and whether retrying can help.

use std::error::Error as StdError;
use std::io;
use std::time::Duration;

use tokio_postgres::error::SqlState;

use crate::redact::scrub;
use crate::retry::Seconds;

/// Why one attempt (or one runtime check) of a dependency failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("timed out after {}", Seconds(*.0))]
    TimedOut(Duration),
    /// An attempt cut short by the start-up deadline, after this long.
    #[error("stopped at the start-up deadline after {}", Seconds(*.0))]
    Deadline(Duration),
    #[error("cannot get a PostgreSQL connection")]
    PostgresPool(#[source] deadpool_postgres::PoolError),
    #[error("PostgreSQL query failed")]
    Postgres(#[source] tokio_postgres::Error),
    #[error("cannot build the PostgreSQL pool")]
    PostgresBuild(#[source] deadpool_postgres::BuildError),
    #[error("cannot get a MySQL connection")]
    MysqlPool(#[source] crate::handles::MysqlError),
    #[error("cannot connect to MySQL")]
    MysqlConnect(#[source] mysql_async::Error),
    #[error("MySQL query failed")]
    Mysql(#[source] mysql_async::Error),
    #[error("cannot open the SQLite database")]
    SqlitePool(#[source] deadpool_sqlite::PoolError),
    #[error("cannot build the SQLite pool")]
    SqliteBuild(#[source] deadpool_sqlite::BuildError),
    #[error("SQLite query failed")]
    Sqlite(#[source] deadpool_sqlite::rusqlite::Error),
    #[error("SQLite worker failed: {0}")]
    SqliteInteract(String),
    #[error("cannot connect to Redis")]
    RedisConnect(#[source] redis::RedisError),
    /// Redis dropped the connection, and greets new ones with this error
    /// reply (`ERR max number of clients reached`).
    #[error("Redis turns new connections away: {reply}")]
    RedisTurnedAway {
        reply: String,
        #[source]
        source: redis::RedisError,
    },
    #[error("Redis command failed")]
    Redis(#[source] redis::RedisError),
    #[error("cannot open a TCP connection")]
    Tcp(#[source] std::io::Error),
    #[error("HTTP request failed: {0}")]
    Http(String),
    #[error("HTTP status {0}")]
    HttpStatus(u16),
    #[error("{0}")]
    Probe(#[source] crate::connector::custom::ProbeError),
}

/// Whether retrying can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    Transient,
    Permanent,
}

impl ConnectError {
    /// The whole chain on one line, each distinct level once, secrets
    /// scrubbed: `cannot get a PostgreSQL connection: error connecting to
    /// server: Connection refused (os error 111)`.
    pub fn chain(&self) -> String {
        cause_chain(self)
    }

    /// A short name for the cause, used to count causes over many attempts
    /// (`connection refused`, `timed out`, `LOADING`, a SQLSTATE message).
    pub fn summary(&self) -> String {
        if let ConnectError::TimedOut(_) = self {
            return "timed out".into();
        }
        if let ConnectError::HttpStatus(status) = self {
            return format!("HTTP {status}");
        }
        if let ConnectError::Deadline(_) = self {
            return "stopped at the deadline".into();
        }
        if let ConnectError::RedisTurnedAway { reply, .. } = self {
            // `ERR` is every error Redis has no code for: its words name it.
            let words = reply.strip_prefix("ERR ").unwrap_or(reply);
            return scrub(&one_line(words)).into_owned();
        }
        if let ConnectError::PostgresPool(deadpool_postgres::PoolError::Timeout(_))
        | ConnectError::SqlitePool(deadpool_sqlite::PoolError::Timeout(_)) = self
        {
            return "timed out".into();
        }
        if let ConnectError::MysqlPool(e) = self
            && e.is_timeout()
        {
            return "timed out".into();
        }
        if let Some(db) = self.db_error() {
            return scrub(&format!("{} (SQLSTATE {})", db.message(), db.code().code()))
                .into_owned();
        }
        if let Some(refusal) = self.tls_refusal() {
            return refusal;
        }
        if let Some(server) = self.mysql_server_error() {
            let name = match mysql_code(server.code) {
                Some((name, _)) => name.to_owned(),
                None => one_line(&server.message),
            };
            return scrub(&format!("{name} ({})", server.code)).into_owned();
        }
        if let Some(driver) = self.mysql_driver_error() {
            match driver {
                _ if is_mysql_auth_plugin_error(driver) => {
                    return MYSQL_AUTH_PLUGIN.into();
                }
                mysql_async::DriverError::ConnectionClosed => return "connection closed".into(),
                _ => {}
            }
        }
        if let Some(r) = self.redis_error()
            && let Some(code) = r.code()
        {
            // `ERR` is every error Redis has no code for: its words name it
            // (`max number of clients reached`).
            return match (code, r.detail()) {
                ("ERR", Some(detail)) if !detail.trim().is_empty() => {
                    scrub(&one_line(detail)).into_owned()
                }
                _ => code.to_owned(),
            };
        }
        if let Some(io) = sources(self).find_map(as_io_error) {
            return io_summary(io);
        }
        if let Some(r) = self.redis_error() {
            if r.is_connection_refusal() {
                return "connection refused".into();
            }
            if r.is_timeout() {
                return "timed out".into();
            }
        }
        let last = sources(self)
            .last()
            .map(ToString::to_string)
            .unwrap_or_default();
        if is_name_resolution(&last) {
            return NAME_RESOLUTION.into();
        }
        scrub(&one_line(&last)).into_owned()
    }

    /// Transient errors are retried; permanent ones (wrong credentials,
    /// unknown database) cannot be fixed by waiting.
    pub fn class(&self) -> ErrorClass {
        if let ConnectError::Probe(probe) = self {
            return if probe.is_permanent() {
                ErrorClass::Permanent
            } else {
                ErrorClass::Transient
            };
        }
        if self.tls_refusal().is_some() {
            return ErrorClass::Permanent;
        }
        if let Some(db) = self.db_error() {
            let code = db.code();
            if *code == SqlState::INVALID_PASSWORD
                || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
                || *code == SqlState::INVALID_CATALOG_NAME
            {
                return ErrorClass::Permanent;
            }
            return ErrorClass::Transient;
        }
        // tokio-postgres does not expose its error kinds: a configuration
        // error (such as "password missing" when the server asks for one)
        // is only recognisable by its text.
        if let Some(pg) = sources(self).find_map(|e| e.downcast_ref::<tokio_postgres::Error>())
            && pg.to_string().starts_with("invalid configuration")
        {
            return ErrorClass::Permanent;
        }
        if let Some(server) = self.mysql_server_error() {
            return mysql_code(server.code).map_or(ErrorClass::Transient, |(_, class)| class);
        }
        if self
            .mysql_driver_error()
            .is_some_and(is_mysql_auth_plugin_error)
        {
            return ErrorClass::Permanent;
        }
        if let Some(r) = self.redis_error() {
            let auth = r.kind() == redis::ErrorKind::AuthenticationFailed;
            if auth || matches!(r.code(), Some("WRONGPASS" | "NOAUTH")) {
                return ErrorClass::Permanent;
            }
        }
        ErrorClass::Transient
    }

    /// A TLS failure that retrying cannot fix, named: the server's
    /// certificate rejected (unknown issuer, wrong name, expired...), ours
    /// rejected by the server, or a server that does not speak TLS when TLS
    /// is required. A handshake that times out or is reset is not one.
    fn tls_refusal(&self) -> Option<String> {
        use rustls::AlertDescription as Alert;
        if let Some(tls) = sources(self).find_map(as_rustls_error) {
            let permanent = match tls {
                rustls::Error::InvalidCertificate(_)
                | rustls::Error::NoCertificatesPresented
                | rustls::Error::PeerIncompatible(_) => true,
                rustls::Error::AlertReceived(alert) => matches!(
                    alert,
                    Alert::BadCertificate
                        | Alert::UnsupportedCertificate
                        | Alert::CertificateRevoked
                        | Alert::CertificateExpired
                        | Alert::CertificateUnknown
                        | Alert::UnknownCA
                        | Alert::AccessDenied
                        | Alert::CertificateRequired
                        | Alert::HandshakeFailure
                        | Alert::ProtocolVersion
                ),
                _ => false,
            };
            return permanent.then(|| one_line(&tls.to_string()));
        }
        if let Some(mysql_async::DriverError::NoClientSslFlagFromServer) = self.mysql_driver_error()
        {
            return Some("the server does not support TLS".to_owned());
        }
        if let Some(tls) = sources(self).find_map(|e| e.downcast_ref::<mysql_async::TlsError>()) {
            return Some(one_line(&tls.to_string()));
        }
        // tokio-postgres words it only as text (sslmode=require and more).
        sources(self)
            .map(|e| e.to_string())
            .find(|text| text.contains("server does not support TLS"))
            .map(|_| "the server does not support TLS".to_owned())
    }

    fn db_error(&self) -> Option<&tokio_postgres::error::DbError> {
        sources(self).find_map(|e| e.downcast_ref::<tokio_postgres::error::DbError>())
    }

    fn redis_error(&self) -> Option<&redis::RedisError> {
        sources(self).find_map(|e| e.downcast_ref::<redis::RedisError>())
    }

    fn mysql_server_error(&self) -> Option<&mysql_async::ServerError> {
        sources(self).find_map(|e| e.downcast_ref::<mysql_async::ServerError>())
    }

    fn mysql_driver_error(&self) -> Option<&mysql_async::DriverError> {
        sources(self).find_map(|e| e.downcast_ref::<mysql_async::DriverError>())
    }
}

/// How a MySQL/MariaDB server error is named in the give-up tally and
/// whether retrying can help; codes not listed are transient and named by
/// the server's message. The README's error table lists the same.
fn mysql_code(code: u16) -> Option<(&'static str, ErrorClass)> {
    use ErrorClass::{Permanent, Transient};
    Some(match code {
        // ER_DBACCESS_DENIED_ERROR: the user may not use that database.
        1044 => ("access denied to the database", Permanent),
        // ER_ACCESS_DENIED_ERROR, ER_ACCESS_DENIED_NO_PASSWORD_ERROR.
        1045 | 1698 => ("access denied", Permanent),
        // ER_BAD_DB_ERROR.
        1049 => ("unknown database", Permanent),
        // ER_NOT_SUPPORTED_AUTH_MODE, ER_PLUGIN_IS_NOT_LOADED.
        1251 | 1524 => (MYSQL_AUTH_PLUGIN, Permanent),
        // ER_CON_COUNT_ERROR, ER_TOO_MANY_USER_CONNECTIONS.
        1040 => ("too many connections", Transient),
        1203 => ("too many connections for the user", Transient),
        // ER_SERVER_SHUTDOWN; MySQL's ER_SERVER_OFFLINE_MODE and
        // ER_SERVER_ISNT_AVAILABLE (not accepting clients yet).
        1053 => ("server shutting down", Transient),
        3032 | 3168 => ("server not accepting connections yet", Transient),
        // ER_LOCK_WAIT_TIMEOUT, ER_LOCK_DEADLOCK, MariaDB's
        // ER_STATEMENT_TIMEOUT, MySQL's ER_QUERY_TIMEOUT.
        1205 => ("lock wait timeout", Transient),
        1213 => ("deadlock", Transient),
        1969 | 3024 => ("statement timed out", Transient),
        // ER_CONNECTION_KILLED, ER_QUERY_INTERRUPTED.
        1927 => ("connection killed", Transient),
        1317 => ("query interrupted", Transient),
        _ => return None,
    })
}

/// How authentication-plugin problems are counted.
const MYSQL_AUTH_PLUGIN: &str = "authentication plugin not supported";

/// mysql_async's own refusals of the authentication the server asks for.
fn is_mysql_auth_plugin_error(e: &mysql_async::DriverError) -> bool {
    matches!(
        e,
        mysql_async::DriverError::UnknownAuthPlugin { .. }
            | mysql_async::DriverError::MysqlOldPasswordDisabled
            | mysql_async::DriverError::CleartextPluginDisabled
    )
}

/// mysql_async's wrappers (`Server error: `ERROR 1045 ...'`,
/// `Input/output error: ...`) repeat their source's text in words of their
/// own: the chain shows the source alone.
fn is_mysql_wrapper(e: &(dyn StdError + 'static)) -> bool {
    e.source().is_some() && (e.is::<mysql_async::Error>() || e.is::<mysql_async::IoError>())
}

/// The error and its sources, outermost first.
fn sources<'a>(
    err: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(err), |e| (*e).source())
}

/// `e` as an I/O error: itself, or behind the `Arc` in which the redis
/// crate keeps it (whose `source()` skips it).
fn as_io_error<'a>(e: &'a (dyn StdError + 'static)) -> Option<&'a io::Error> {
    e.downcast_ref::<io::Error>().or_else(|| {
        e.downcast_ref::<std::sync::Arc<dyn StdError + Send + Sync>>()
            .and_then(|inner| inner.downcast_ref::<io::Error>())
    })
}

/// `e` as a rustls error: itself, or inside the I/O error that tokio-rustls
/// returns (an `io::Error`'s `source()` skips what it carries).
fn as_rustls_error<'a>(e: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    e.downcast_ref::<rustls::Error>().or_else(|| {
        as_io_error(e)?
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    })
}

/// How a failed DNS look-up is counted, for every backend.
const NAME_RESOLUTION: &str = "name resolution failed";

/// Whether `text` is a resolver's failure (`failed to lookup address
/// information: Name or service not known`, as std and tokio print it).
fn is_name_resolution(text: &str) -> bool {
    [
        "lookup address",
        "Name or service not known",
        "name resolution",
    ]
    .iter()
    .any(|needle| text.contains(needle))
}

/// An I/O error's short name: its kind where the kind names the cause
/// (`connection refused`), else its text (kinds such as "uncategorized
/// error" or "other error" say nothing).
fn io_summary(io: &io::Error) -> String {
    use io::ErrorKind::*;
    let text = io.to_string();
    if is_name_resolution(&text) {
        return NAME_RESOLUTION.into();
    }
    match io.kind() {
        kind @ (ConnectionRefused | ConnectionReset | ConnectionAborted | NotConnected
        | TimedOut | BrokenPipe | UnexpectedEof | AddrNotAvailable | HostUnreachable
        | NetworkUnreachable | PermissionDenied | NotFound) => kind.to_string(),
        _ => scrub(&one_line(&text)).into_owned(),
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Every level of `err`'s chain joined by `: `, skipping a level whose text
/// the previous one already printed; on one line, with secrets scrubbed.
pub fn cause_chain(err: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    for e in sources(err) {
        if is_mysql_wrapper(e) {
            continue;
        }
        let redis_reply = e
            .downcast_ref::<redis::RedisError>()
            .and_then(|r| Some((r.code()?, r.detail().unwrap_or_default())));
        let text = if let Some(db) = e.downcast_ref::<tokio_postgres::error::DbError>() {
            format!(
                "{}: {} (SQLSTATE {})",
                db.severity(),
                db.message(),
                db.code().code()
            )
        } else if let Some((code, detail)) = redis_reply {
            // The server's own words (`LOADING Redis is loading ...`), which
            // operators know, rather than the crate's names for them.
            one_line(&format!("{code} {detail}"))
        } else {
            one_line(&e.to_string())
        };
        if text.is_empty() || parts.last().is_some_and(|prev| prev.contains(&text)) {
            continue;
        }
        parts.push(text);
    }
    scrub(&parts.join(": ")).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Middle);

    #[derive(Debug, thiserror::Error)]
    #[error("middle: {0}")]
    struct Middle(#[source] io::Error);

    #[test]
    fn chain_walks_sources_and_skips_repeats() {
        let err = Outer(Middle(io::Error::new(
            io::ErrorKind::ConnectionRefused,
            "refused",
        )));
        assert_eq!(cause_chain(&err), "outer: middle: refused");
    }

    #[test]
    fn timeouts_are_transient_and_summarised() {
        let err = ConnectError::TimedOut(Duration::from_millis(300));
        assert_eq!(err.to_string(), "timed out after 0.3 s");
        assert_eq!(err.summary(), "timed out");
        assert_eq!(err.class(), ErrorClass::Transient);
    }

    #[test]
    fn the_tally_names_causes_instead_of_error_kinds() {
        let io = |kind, text: &str| ConnectError::Redis(io::Error::new(kind, text).into());
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
        let wait = ConnectError::PostgresPool(deadpool_postgres::PoolError::Timeout(
            deadpool_postgres::TimeoutType::Wait,
        ));
        assert_eq!(wait.summary(), "timed out");
        for err in [dns, reset, odd, wait] {
            assert_eq!(err.class(), ErrorClass::Transient, "{err}");
        }
    }

    #[test]
    fn redis_errors_without_a_code_are_named_by_their_words() {
        let reply = redis::parse_redis_value(b"-ERR max number of clients reached\r\n")
            .unwrap()
            .extract_error()
            .unwrap_err();
        let err = ConnectError::Redis(reply);
        assert_eq!(err.summary(), "max number of clients reached");
        assert_eq!(err.class(), ErrorClass::Transient);
        let reset = redis::RedisError::from(io::Error::from(io::ErrorKind::ConnectionReset));
        let turned_away = ConnectError::RedisTurnedAway {
            reply: "ERR max number of clients reached".into(),
            source: reset,
        };
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
        let auth = ConnectError::Redis(redis::RedisError::from((
            redis::ErrorKind::AuthenticationFailed,
            "auth failed",
        )));
        assert_eq!(auth.class(), ErrorClass::Permanent);
        let io = ConnectError::Redis(redis::RedisError::from(io::Error::from(
            io::ErrorKind::ConnectionRefused,
        )));
        assert_eq!(io.class(), ErrorClass::Transient);
        assert_eq!(io.summary(), "connection refused");
    }

    fn mysql_server(code: u16, message: &str) -> ConnectError {
        ConnectError::MysqlPool(crate::handles::MysqlError::Connect(
            mysql_async::Error::Server(mysql_async::ServerError {
                code,
                message: message.into(),
                state: "HY000".into(),
            }),
        ))
    }

    #[test]
    fn mysql_server_errors_are_classified_and_named_as_the_readme_says() {
        use ErrorClass::{Permanent, Transient};
        for (code, summary, class) in [
            (1044, "access denied to the database (1044)", Permanent),
            (1045, "access denied (1045)", Permanent),
            (1698, "access denied (1698)", Permanent),
            (1049, "unknown database (1049)", Permanent),
            (
                1251,
                "authentication plugin not supported (1251)",
                Permanent,
            ),
            (
                1524,
                "authentication plugin not supported (1524)",
                Permanent,
            ),
            (1040, "too many connections (1040)", Transient),
            (1203, "too many connections for the user (1203)", Transient),
            (1053, "server shutting down (1053)", Transient),
            (
                3032,
                "server not accepting connections yet (3032)",
                Transient,
            ),
            (
                3168,
                "server not accepting connections yet (3168)",
                Transient,
            ),
            (1205, "lock wait timeout (1205)", Transient),
            (1213, "deadlock (1213)", Transient),
            (1969, "statement timed out (1969)", Transient),
            (3024, "statement timed out (3024)", Transient),
            (1927, "connection killed (1927)", Transient),
            (1317, "query interrupted (1317)", Transient),
            // Unknown codes: transient, named by the server's words.
            (1234, "something   odd\nhappened (1234)", Transient),
        ] {
            let err = mysql_server(code, "something   odd\nhappened");
            let want = summary.replace("   odd\n", " odd ");
            assert_eq!((err.summary(), err.class()), (want, class), "{code}");
        }
    }

    #[test]
    fn mysql_client_side_errors_are_classified() {
        let plugin = ConnectError::MysqlConnect(mysql_async::Error::Driver(
            mysql_async::DriverError::UnknownAuthPlugin {
                name: "auth_gssapi_client".into(),
            },
        ));
        assert_eq!(plugin.class(), ErrorClass::Permanent);
        assert_eq!(plugin.summary(), "authentication plugin not supported");
        let lost = ConnectError::Mysql(mysql_async::Error::Driver(
            mysql_async::DriverError::ConnectionClosed,
        ));
        assert_eq!(
            (lost.summary(), lost.class()),
            ("connection closed".into(), ErrorClass::Transient)
        );
        let refused = ConnectError::MysqlConnect(mysql_async::Error::from(io::Error::from(
            io::ErrorKind::ConnectionRefused,
        )));
        assert_eq!(refused.summary(), "connection refused");
        assert_eq!(refused.class(), ErrorClass::Transient);
        // mysql_async's wrappers repeat their source: the chain shows it once.
        assert_eq!(
            mysql_server(1045, "Access denied").chain(),
            "cannot get a MySQL connection: cannot make a connection: \
             ERROR 1045 (HY000): Access denied"
        );
        for wait in [
            crate::handles::MysqlError::Timeout(Duration::from_millis(300)),
            crate::handles::MysqlError::ConnectTimeout(Duration::from_millis(300)),
        ] {
            let err = ConnectError::MysqlPool(wait);
            assert_eq!(
                (err.summary(), err.class()),
                ("timed out".into(), ErrorClass::Transient)
            );
        }
    }
}
