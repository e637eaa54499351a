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

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio_postgres::SimpleQueryMessage;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::error::{PostgresError, Vocabulary};
use super::options::{PostgresOptions, Role, SessionAttrs};
use crate::connector::ServerInfo;
use crate::error::{ConnectError, ErrorClass};

/// The servers of one URL, and the one chosen.
pub struct Servers {
    /// `host:port` and the configuration of each, in the URL's order.
    list: Vec<(String, tokio_postgres::Config)>,
    attrs: SessionAttrs,
    chosen: Mutex<Chosen>,
    /// A check failed since the last choice: choose again first.
    suspect: AtomicBool,
}

#[derive(Clone, Copy, Default)]
struct Chosen {
    index: usize,
    /// As the server last said.
    role: Option<Role>,
}

/// What the server is asked about itself.
const ROLE_QUERY: &str = "SELECT pg_is_in_recovery(), current_setting('transaction_read_only')";

impl Servers {
    /// The servers of `options`, each configuration finished by `finish`
    /// (the connector's timeouts and keepalives).
    pub fn new(options: &PostgresOptions, finish: impl Fn(&mut tokio_postgres::Config)) -> Self {
        let list = options
            .servers
            .iter()
            .map(|server| {
                let mut config = server.config.clone();
                finish(&mut config);
                (server.shown.clone(), config)
            })
            .collect();
        Servers {
            list,
            attrs: options.attrs.unwrap_or(SessionAttrs::Any),
            chosen: Mutex::default(),
            suspect: AtomicBool::new(false),
        }
    }

    fn chosen(&self) -> Chosen {
        self.chosen.lock().map(|c| *c).unwrap_or_default()
    }

    /// The configuration of the chosen server (the first until a choice).
    pub fn config(&self) -> Option<tokio_postgres::Config> {
        self.list.get(self.chosen().index).map(|(_, c)| c.clone())
    }

    /// The chosen server and its role, as `/ready` shows them.
    pub fn info(&self) -> Option<ServerInfo> {
        let chosen = self.chosen();
        let (shown, _) = self.list.get(chosen.index)?;
        Some(ServerInfo {
            server: shown.clone(),
            role: chosen.role.map(Role::name),
        })
    }

    /// A check failed: the next one chooses again.
    pub fn suspect(&self) {
        self.suspect.store(true, Ordering::Relaxed);
    }

    /// Whether to choose before the next attempt or check: there is a
    /// choice to make, and none was made, or a check failed since.
    pub fn must_choose(&self, attempt: bool) -> bool {
        self.list.len() > 1 && (attempt || self.suspect.swap(false, Ordering::Relaxed))
    }

    /// `role`, as the chosen server just said it, if it will do (a
    /// runtime check: `prefer-standby` keeps any server it has).
    pub fn accept(&self, role: Role) -> Result<(), ConnectError> {
        if let Ok(mut chosen) = self.chosen.lock() {
            chosen.role = Some(role);
        }
        let attrs = match self.attrs {
            SessionAttrs::PreferStandby => SessionAttrs::Any,
            attrs => attrs,
        };
        match attrs.refusal(role) {
            None => Ok(()),
            Some(why) => Err(PostgresError::Unsuitable {
                why,
                attrs: self.attrs.name(),
            }
            .into()),
        }
    }

    /// Tries each server in order (see the module's documentation) within
    /// `timeout` in all; `Ok(true)` when the choice changed.
    pub async fn choose(
        &self,
        tls: MakeRustlsConnect,
        timeout: Duration,
    ) -> Result<bool, ConnectError> {
        let count = u32::try_from(self.list.len()).unwrap_or(u32::MAX).max(1);
        let share = timeout / count;
        let first_pass = match self.attrs {
            SessionAttrs::PreferStandby => SessionAttrs::Standby,
            attrs => attrs,
        };
        let (mut tried, mut permanent, mut fallback) = (Vec::new(), true, None);
        for (index, (shown, config)) in self.list.iter().enumerate() {
            match tokio::time::timeout(share, role_of(config, tls.clone())).await {
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
                    None => return Ok(self.set(index, role)),
                    Some(why) => {
                        if self.attrs == SessionAttrs::PreferStandby && fallback.is_none() {
                            fallback = Some((index, role));
                        }
                        tried.push(format!("{shown} {why}"));
                        permanent = false;
                    }
                },
            }
        }
        if let Some((index, role)) = fallback {
            return Ok(self.set(index, role));
        }
        Err(PostgresError::NoSuitableServer {
            attrs: self.attrs.name(),
            tried,
            permanent,
        }
        .into())
    }

    /// Choose `index`; whether that changed the choice.
    fn set(&self, index: usize, role: Role) -> bool {
        let Ok(mut chosen) = self.chosen.lock() else {
            return false;
        };
        let changed = chosen.index != index;
        *chosen = Chosen {
            index,
            role: Some(role),
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
