//! MySQL's and MariaDB's errors: what failed (the pool, making the checks'
//! connection, a query), and what mysql_async's and the server's errors
//! mean: server codes named and classified as the docs' errors table says,
//! the client's own refusals of an authentication plugin, TLS refusals, and
//! the client's wrappers that repeat their source's words.

use std::error::Error as StdError;

use super::pool::MysqlError;
use crate::error::{ErrorClass, ErrorVocabulary, find, named_by, one_line};
use crate::redact::scrub;

/// Why a MySQL attempt or check failed.
#[derive(Debug, thiserror::Error)]
pub enum MysqlAttemptError {
    #[error("cannot get a MySQL connection")]
    Pool(#[source] MysqlError),
    #[error("cannot connect to MySQL")]
    Connect(#[source] mysql_async::Error),
    #[error("MySQL query failed")]
    Query(#[source] mysql_async::Error),
}

named_by!(MysqlAttemptError, [Vocabulary]);

/// What mysql_async's errors and the server's codes mean.
pub struct Vocabulary;

impl ErrorVocabulary for Vocabulary {
    fn named_first(&self, err: &(dyn StdError + 'static)) -> Option<String> {
        match err.downcast_ref::<MysqlAttemptError>() {
            Some(MysqlAttemptError::Pool(e)) if e.is_timeout() => Some("timed out".into()),
            _ => None,
        }
    }

    fn tls_refusal(&self, err: &(dyn StdError + 'static)) -> Option<String> {
        if let Some(mysql_async::DriverError::NoClientSslFlagFromServer) = find(err) {
            return Some("the server does not support TLS".to_owned());
        }
        find::<mysql_async::TlsError>(err).map(|tls| one_line(&tls.to_string()))
    }

    fn named(&self, err: &(dyn StdError + 'static)) -> Option<String> {
        if let Some(server) = find::<mysql_async::ServerError>(err) {
            let name = match code(server.code) {
                Some((name, _)) => name.to_owned(),
                None => one_line(&server.message),
            };
            return Some(scrub(&format!("{name} ({})", server.code)).into_owned());
        }
        match find::<mysql_async::DriverError>(err)? {
            driver if is_auth_plugin_error(driver) => Some(AUTH_PLUGIN.into()),
            mysql_async::DriverError::ConnectionClosed => Some("connection closed".into()),
            _ => None,
        }
    }

    fn class(&self, err: &(dyn StdError + 'static)) -> Option<ErrorClass> {
        if let Some(server) = find::<mysql_async::ServerError>(err) {
            return Some(code(server.code).map_or(ErrorClass::Transient, |(_, class)| class));
        }
        find::<mysql_async::DriverError>(err)
            .filter(|driver| is_auth_plugin_error(driver))
            .map(|_| ErrorClass::Permanent)
    }

    /// mysql_async's wrappers (`Server error: `ERROR 1045 ...'`,
    /// `Input/output error: ...`) repeat their source's text in words of
    /// their own: the chain shows the source alone.
    fn level(&self, e: &(dyn StdError + 'static)) -> Option<Option<String>> {
        let wrapper = e.source().is_some()
            && (e.is::<mysql_async::Error>() || e.is::<mysql_async::IoError>());
        wrapper.then_some(None)
    }
}

/// How a MySQL/MariaDB server error is named in the give-up tally and
/// whether retrying can help; codes not listed are transient and named by
/// the server's message. The docs' errors table lists the same.
fn code(code: u16) -> Option<(&'static str, ErrorClass)> {
    use ErrorClass::{Permanent, Transient};
    Some(match code {
        // ER_DBACCESS_DENIED_ERROR: the user may not use that database.
        1044 => ("access denied to the database", Permanent),
        // ER_ACCESS_DENIED_ERROR, ER_ACCESS_DENIED_NO_PASSWORD_ERROR.
        1045 | 1698 => ("access denied", Permanent),
        // ER_BAD_DB_ERROR.
        1049 => ("unknown database", Permanent),
        // ER_NOT_SUPPORTED_AUTH_MODE, ER_PLUGIN_IS_NOT_LOADED.
        1251 | 1524 => (AUTH_PLUGIN, Permanent),
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
const AUTH_PLUGIN: &str = "authentication plugin not supported";

/// mysql_async's own refusals of the authentication the server asks for.
fn is_auth_plugin_error(e: &mysql_async::DriverError) -> bool {
    matches!(
        e,
        mysql_async::DriverError::UnknownAuthPlugin { .. }
            | mysql_async::DriverError::MysqlOldPasswordDisabled
            | mysql_async::DriverError::CleartextPluginDisabled
    )
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::time::Duration;

    use super::*;
    use crate::error::ConnectError;

    fn server(code: u16, message: &str) -> ConnectError {
        MysqlAttemptError::Pool(MysqlError::Connect(mysql_async::Error::Server(
            mysql_async::ServerError {
                code,
                message: message.into(),
                state: "HY000".into(),
            },
        )))
        .into()
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
            let err = server(code, "something   odd\nhappened");
            let want = summary.replace("   odd\n", " odd ");
            assert_eq!((err.summary(), err.class()), (want, class), "{code}");
        }
    }

    #[test]
    fn mysql_client_side_errors_are_classified() {
        let plugin: ConnectError = MysqlAttemptError::Connect(mysql_async::Error::Driver(
            mysql_async::DriverError::UnknownAuthPlugin {
                name: "auth_gssapi_client".into(),
            },
        ))
        .into();
        assert_eq!(plugin.class(), ErrorClass::Permanent);
        assert_eq!(plugin.summary(), "authentication plugin not supported");
        let lost: ConnectError = MysqlAttemptError::Query(mysql_async::Error::Driver(
            mysql_async::DriverError::ConnectionClosed,
        ))
        .into();
        assert_eq!(
            (lost.summary(), lost.class()),
            ("connection closed".into(), ErrorClass::Transient)
        );
        let refused: ConnectError = MysqlAttemptError::Connect(mysql_async::Error::from(
            io::Error::from(io::ErrorKind::ConnectionRefused),
        ))
        .into();
        assert_eq!(refused.summary(), "connection refused");
        assert_eq!(refused.class(), ErrorClass::Transient);
        // mysql_async's wrappers repeat their source: the chain shows it once.
        assert_eq!(
            server(1045, "Access denied").chain(),
            "cannot get a MySQL connection: cannot make a connection: \
             ERROR 1045 (HY000): Access denied"
        );
        for wait in [
            MysqlError::Timeout(Duration::from_millis(300)),
            MysqlError::ConnectTimeout(Duration::from_millis(300)),
        ] {
            let err: ConnectError = MysqlAttemptError::Pool(wait).into();
            assert_eq!(
                (err.summary(), err.class()),
                ("timed out".into(), ErrorClass::Transient)
            );
        }
    }

    #[test]
    fn a_server_without_tls_when_tls_is_required_is_permanent() {
        let err: ConnectError = MysqlAttemptError::Connect(mysql_async::Error::Driver(
            mysql_async::DriverError::NoClientSslFlagFromServer,
        ))
        .into();
        assert_eq!(
            (err.summary(), err.class()),
            (
                "the server does not support TLS".into(),
                ErrorClass::Permanent
            )
        );
    }
}
