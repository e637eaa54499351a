//! Several PostgreSQL servers (a primary and its standbys, libpq's
//! multi-host URL), or one whose role matters (`target_session_attrs`):
//! which server the pools connect to, and whether it is what the URL asks
//! for.
//!
//! * Choosing ([`Servers::choose`]): the hosts are tried in the URL's order,
//!   each given an equal share of the attempt's time (so that a frozen
//!   first host cannot use up the attempt), each asked
//!   `pg_is_in_recovery()` and `transaction_read_only` on a connection of
//!   its own; the first that will do wins (with `prefer-standby`, the first
//!   standby, else the first that answered). When the choice changes, the
//!   connector severs the pools' connections, so that they are made again to
//!   the new server.
//! * Checking: every attempt and runtime check asks the connection it uses
//!   for its role and refuses a server that is no longer what the URL asks
//!   for (a primary turned read-only, a standby promoted), a transient
//!   error like any other. After a failed check the next one chooses again,
//!   which is how a promoted standby is found.
//! * Rotation: the hosts, their configurations (user, password, ...), the
//!   TLS and `target_session_attrs` are those of the connector's current
//!   value ([`Current`]), rebuilt when `DATABASE_URL_FILE` or a TLS file
//!   changes; [`Servers`] keeps only the choice. A rotated URL naming
//!   other hosts is taken: until the next check chooses among them, new
//!   connections go to the chosen server if it is still named, else to the
//!   first host; that check chooses again, and the pools' connections are
//!   severed if the server changed.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio_postgres::SimpleQueryMessage;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::connector::Current;
use super::error::{PostgresError, Vocabulary};
use super::options::{Role, SessionAttrs};
use crate::connector::ServerInfo;
use crate::error::{ConnectError, ErrorClass};

/// Which of the current URL's servers the pools connect to. The servers
/// themselves (each host's configuration, the TLS, `target_session_attrs`)
/// are read from the [`Current`] value each time, so that a rotated
/// password, certificate or URL is used for choosing and connecting alike.
#[derive(Default)]
pub struct Servers {
    chosen: Mutex<Chosen>,
    /// A check failed since the last choice: choose again first.
    suspect: AtomicBool,
}

#[derive(Clone, Default)]
struct Chosen {
    /// The hosts (`host:port`) of the URL the choice was made among, in
    /// its order; empty before the first choice. Another list in the
    /// current value (a rotated URL naming other hosts) means choosing
    /// again.
    hosts: Vec<String>,
    /// The server chosen (`host:port`); `None` before the first choice.
    server: Option<String>,
    /// The role a server last said it has, and that server (`host:port`).
    role: Option<(String, Role)>,
}

/// What the server is asked about itself.
const ROLE_QUERY: &str = "SELECT pg_is_in_recovery(), current_setting('transaction_read_only')";

impl Servers {
    fn chosen(&self) -> Chosen {
        self.chosen
            .lock()
            .map(|c| c.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    /// The index in `current` of the server new connections go to: the
    /// chosen one, or the first when none was chosen or the chosen one is
    /// no longer in the URL (until the next check chooses again).
    fn target<'a>(
        chosen: &Chosen,
        current: &'a Current,
    ) -> Option<&'a (String, tokio_postgres::Config)> {
        chosen
            .server
            .as_ref()
            .and_then(|server| current.servers.iter().find(|(s, _)| s == server))
            .or_else(|| current.servers.first())
    }

    /// The configuration, in `current`, of the server new connections go
    /// to (see [`Servers::target`]).
    pub fn config(&self, current: &Current) -> Option<tokio_postgres::Config> {
        Self::target(&self.chosen(), current).map(|(_, c)| c.clone())
    }

    /// The server new connections go to and its role, as `/ready` shows
    /// them (no role until that server said it).
    pub fn info(&self, current: &Current) -> Option<ServerInfo> {
        let chosen = self.chosen();
        let (shown, _) = Self::target(&chosen, current)?;
        let role = chosen
            .role
            .filter(|(server, _)| server == shown)
            .map(|(_, role)| role.name());
        Some(ServerInfo {
            server: shown.clone(),
            role,
        })
    }

    /// A check failed: the next one chooses again.
    pub fn suspect(&self) {
        self.suspect.store(true, Ordering::Relaxed);
    }

    /// Whether to choose before the next attempt or check: `current`
    /// names several hosts, and none was chosen among them (at an attempt,
    /// or since their list changed), or a check failed since.
    pub fn must_choose(&self, attempt: bool, current: &Current) -> bool {
        current.servers.len() > 1
            && (attempt || self.suspect.swap(false, Ordering::Relaxed) || self.stale(current))
    }

    /// Whether the choice was made among other hosts than `current`'s.
    fn stale(&self, current: &Current) -> bool {
        let chosen = self.chosen();
        !chosen
            .hosts
            .iter()
            .eq(current.servers.iter().map(|(s, _)| s))
    }

    /// `role`, as the server of a pooled connection just said it, if it
    /// will do under `current`'s `target_session_attrs` (a runtime check:
    /// `prefer-standby` keeps any server it has).
    pub fn accept(&self, current: &Current, role: Role) -> Result<(), ConnectError> {
        if let Ok(mut chosen) = self.chosen.lock()
            && let Some((server, _)) = Self::target(&chosen, current)
        {
            chosen.role = Some((server.clone(), role));
        }
        let wanted = current.attrs.unwrap_or(SessionAttrs::Any);
        let attrs = match wanted {
            SessionAttrs::PreferStandby => SessionAttrs::Any,
            attrs => attrs,
        };
        match attrs.refusal(role) {
            None => Ok(()),
            Some(why) => Err(PostgresError::Unsuitable {
                why,
                attrs: wanted.name(),
            }
            .into()),
        }
    }

    /// Tries each of `current`'s servers in order (see the module's
    /// documentation), with its configuration and TLS, within `timeout` in
    /// all; `Ok(true)` when the choice changed.
    pub async fn choose(&self, current: &Current, timeout: Duration) -> Result<bool, ConnectError> {
        let wanted = current.attrs.unwrap_or(SessionAttrs::Any);
        let count = u32::try_from(current.servers.len())
            .unwrap_or(u32::MAX)
            .max(1);
        let share = timeout / count;
        let first_pass = match wanted {
            SessionAttrs::PreferStandby => SessionAttrs::Standby,
            attrs => attrs,
        };
        let (mut tried, mut permanent, mut fallback) = (Vec::new(), true, None);
        for (index, (shown, config)) in current.servers.iter().enumerate() {
            match tokio::time::timeout(share, role_of(config, current.tls.clone())).await {
                Err(_) => {
                    tried.push(format!("{shown} timed out"));
                    permanent = false;
                }
                Ok(Err(e)) => {
                    tried.push(format!(
                        "{shown} {}",
                        crate::error::summary(&e, &[&Vocabulary])
                    ));
                    permanent &= crate::error::class(&e, &[&Vocabulary]) == ErrorClass::Permanent;
                }
                Ok(Ok(role)) => match first_pass.refusal(role) {
                    None => return Ok(self.set(current, index, role)),
                    Some(why) => {
                        if wanted == SessionAttrs::PreferStandby && fallback.is_none() {
                            fallback = Some((index, role));
                        }
                        tried.push(format!("{shown} {why}"));
                        permanent = false;
                    }
                },
            }
        }
        if let Some((index, role)) = fallback {
            return Ok(self.set(current, index, role));
        }
        Err(PostgresError::NoSuitableServer {
            attrs: wanted.name(),
            tried,
            permanent,
        }
        .into())
    }

    /// Choose `current`'s server `index`; whether that changed the server
    /// the pools connect to (before the first choice, they connect to the
    /// first host).
    fn set(&self, current: &Current, index: usize, role: Role) -> bool {
        let Ok(mut chosen) = self.chosen.lock() else {
            return false;
        };
        let hosts: Vec<String> = current.servers.iter().map(|(s, _)| s.clone()).collect();
        let Some(server) = hosts.get(index).cloned() else {
            return false;
        };
        let before = chosen.server.as_ref().or(hosts.first());
        let changed = before != Some(&server);
        *chosen = Chosen {
            hosts,
            role: Some((server.clone(), role)),
            server: Some(server),
        };
        changed
    }
}

/// The role of the server `config` names, asked on a connection of its own
/// that ends right after.
async fn role_of(
    config: &tokio_postgres::Config,
    tls: MakeRustlsConnect,
) -> Result<Role, tokio_postgres::Error> {
    let (client, connection) = config.connect(tls).await?;
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    let role = role(&client).await;
    drop(client);
    driver.abort();
    role
}

/// What the server of `client` says it is.
pub async fn role(client: &tokio_postgres::Client) -> Result<Role, tokio_postgres::Error> {
    let messages = client.simple_query(ROLE_QUERY).await?;
    let row = messages.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(row) => Some(row),
        _ => None,
    });
    Ok(Role {
        standby: row.and_then(|r| r.get(0)) == Some("t"),
        read_only: row.and_then(|r| r.get(1)) == Some("on"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::DatabaseUrl;

    /// The connector's value for `url`.
    fn current(url: &str) -> Current {
        let s = crate::config::tests::raw(&["--database-url", url])
            .validate()
            .unwrap();
        let DatabaseUrl::Postgres(options) = s.database.url else {
            panic!("not PostgreSQL: {url}");
        };
        Current::of(&options, Duration::from_secs(1))
    }

    fn url(hosts: &str, password: &str) -> String {
        format!("postgres://app:{password}@{hosts}/db?target_session_attrs=read-write")
    }

    const PRIMARY: Role = Role {
        standby: false,
        read_only: false,
    };

    /// The host, port and password of a configuration.
    fn target(config: Option<tokio_postgres::Config>) -> (String, u16, Vec<u8>) {
        let config = config.unwrap();
        let host = match config.get_hosts() {
            [tokio_postgres::config::Host::Tcp(host)] => host.clone(),
            hosts => panic!("{hosts:?}"),
        };
        let password = config.get_password().unwrap_or_default().to_vec();
        (host, config.get_ports()[0], password)
    }

    fn shown(servers: &Servers, current: &Current) -> (String, Option<&'static str>) {
        let info = servers.info(current).unwrap();
        (info.server, info.role)
    }

    #[test]
    fn connections_use_the_current_values_configuration_of_the_chosen_host() {
        // Arrange: b chosen among a and b.
        let servers = Servers::default();
        let before = current(&url("a:1,b:2", "one"));
        assert_eq!(
            target(servers.config(&before)),
            ("a".into(), 1, b"one".to_vec())
        );
        assert!(servers.must_choose(true, &before));
        assert!(servers.set(&before, 1, PRIMARY), "from the first host");
        assert!(!servers.must_choose(false, &before));

        // Act: the password rotates, the hosts stay.
        let rotated = current(&url("a:1,b:2", "two"));

        // Assert: the chosen host, with the new password; no new choice.
        assert_eq!(
            target(servers.config(&rotated)),
            ("b".into(), 2, b"two".to_vec())
        );
        assert_eq!(shown(&servers, &rotated), ("b:2".into(), Some("primary")));
        assert!(!servers.must_choose(false, &rotated));
    }

    #[test]
    fn a_rotated_url_naming_other_hosts_is_chosen_among_again() {
        // Arrange: b chosen among a and b.
        let servers = Servers::default();
        assert!(servers.set(&current(&url("a:1,b:2", "one")), 1, PRIMARY));

        // Act 1: b stays, at another place, beside a new host c.
        let moved = current(&url("c:3,b:2", "two"));

        // Assert 1: still b until the next check chooses again; choosing b
        // again changes nothing (no connection severed).
        assert_eq!(
            target(servers.config(&moved)),
            ("b".into(), 2, b"two".to_vec())
        );
        assert_eq!(shown(&servers, &moved), ("b:2".into(), Some("primary")));
        assert!(servers.must_choose(false, &moved));
        assert!(!servers.set(&moved, 1, PRIMARY));
        assert!(!servers.must_choose(false, &moved));

        // Act 2: b is gone.
        let gone = current(&url("c:3,d:4", "two"));

        // Assert 2: the first host until the next check, which chooses
        // again; another server is a change (the pools are severed).
        assert_eq!(
            target(servers.config(&gone)),
            ("c".into(), 3, b"two".to_vec())
        );
        assert_eq!(shown(&servers, &gone), ("c:3".into(), None));
        assert!(servers.must_choose(false, &gone));
        assert!(servers.set(&gone, 1, PRIMARY));
        assert_eq!(shown(&servers, &gone), ("d:4".into(), Some("primary")));
        assert!(!servers.must_choose(false, &gone));

        // Act 3: one host left, and another target_session_attrs.
        let one = current("postgres://app:two@e:5/db?target_session_attrs=read-only");

        // Assert 3: nothing to choose; the check refuses by the new value.
        assert!(!servers.must_choose(false, &one));
        assert_eq!(
            target(servers.config(&one)),
            ("e".into(), 5, b"two".to_vec())
        );
        assert!(servers.accept(&one, PRIMARY).is_err());
        assert_eq!(shown(&servers, &one), ("e:5".into(), Some("primary")));
        assert!(servers.accept(&gone, PRIMARY).is_ok());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn choosing_asks_the_current_values_hosts_with_its_settings() {
        // Arrange: a closed port, and a listener that keeps what a client
        // sends first (the startup message: user and database) and hangs
        // up.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let closed_port = closed.local_addr().unwrap().port();
        drop(closed);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let heard = tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut startup = vec![0; 1024];
            let n = socket.read(&mut startup).await.unwrap();
            startup.truncate(n);
            startup
        });
        let hosts = format!("127.0.0.1:{closed_port},127.0.0.1:{port}");
        let rotated = current(&format!(
            "postgres://rotated:two@{hosts}/db?sslmode=disable&target_session_attrs=read-write"
        ));

        // Act
        let err = Servers::default()
            .choose(&rotated, Duration::from_secs(4))
            .await
            .unwrap_err();

        // Assert: both hosts tried, in order, the second as the new user.
        let summary = err.summary();
        assert!(
            summary.starts_with(&format!(
                "127.0.0.1:{closed_port} connection refused, 127.0.0.1:{port} "
            )),
            "{summary}"
        );
        let startup = heard.await.unwrap();
        let user = b"user\0rotated\0";
        assert!(
            startup.windows(user.len()).any(|w| w == user),
            "{:?}",
            String::from_utf8_lossy(&startup)
        );
    }
}
