//! The dependencies a gateway waits for, as the supervisor starts them: the
//! database, the cache, `WAIT_FOR`'s entries and the application's own
//! ([`crate::Gateway::dependency`]). Each is a [`DependencySpec`]: who it is
//! ([`Identity`]), its retry policy, and how to start its actor, which is
//! always the one [`DependencyActor`] with a connector.

use std::time::Duration;

use actix::prelude::*;

use crate::backends;
use crate::backends::probe::{Probe, ProbeConnector};
use crate::config::Settings;
use crate::connector::Connector;
use crate::dependency::{Abort, DependencyActor, DependencyReport, Identity};
use crate::error::ConnectError;
use crate::handles::Connected;
use crate::retry::RetryPolicy;
use crate::status::{Dependency, Health};

/// What a dependency's actor needs from the supervisor to start.
pub struct StartArgs {
    pub health: Health,
    pub check_interval: Duration,
    pub supervisor: Recipient<DependencyReport>,
}

/// An actor just started: whom to tell to stop, and a handle the
/// application may use before the first connection (an optional Redis: a
/// lazy connection manager).
pub struct Started {
    pub actor: Recipient<Abort>,
    pub early: Option<Connected>,
}

type StartFn =
    Box<dyn FnOnce(&Identity, RetryPolicy, StartArgs) -> Result<Started, ConnectError> + Send>;

/// One dependency: who it is, its policy, how to start its actor.
pub struct DependencySpec {
    pub id: Identity,
    pub policy: RetryPolicy,
    /// How the `Starting:` line shows where it is (a URL without its
    /// password).
    pub shown: String,
    start: StartFn,
}

impl DependencySpec {
    /// A dependency whose connector `make` builds (in the actor system, when
    /// the supervisor starts); `early` gives the application a handle before
    /// the first connection, if the connector can.
    pub fn new<C: Connector>(
        id: Identity,
        policy: RetryPolicy,
        shown: String,
        make: impl FnOnce() -> Result<C, ConnectError> + Send + 'static,
        early: impl FnOnce(&C) -> Option<Connected> + Send + 'static,
    ) -> Self {
        DependencySpec {
            id,
            policy,
            shown,
            start: Box::new(move |id, policy, args| {
                let connector = make()?;
                let early = early(&connector);
                let actor = DependencyActor::new(
                    id.clone(),
                    connector,
                    policy,
                    args.check_interval,
                    args.health,
                    args.supervisor,
                )
                .start();
                Ok(Started {
                    actor: actor.recipient(),
                    early,
                })
            }),
        }
    }

    /// A dependency whose connector hands the application nothing before
    /// its first connection.
    pub fn plain<C: Connector>(
        id: Identity,
        policy: RetryPolicy,
        shown: String,
        make: impl FnOnce() -> Result<C, ConnectError> + Send + 'static,
    ) -> Self {
        Self::new(id, policy, shown, make, |_| None)
    }

    /// Start its actor (in the supervisor's context).
    pub fn start(self, args: StartArgs) -> Result<Started, ConnectError> {
        (self.start)(&self.id, self.policy, args)
    }
}

/// How an application adds a dependency of its own
/// ([`crate::Gateway::dependency`]).
#[derive(Clone, Copy, Debug)]
pub struct DependencyOptions {
    /// Attempts, waits and timeouts, at start-up and when reconnecting.
    pub policy: RetryPolicy,
    /// Whether start-up and `/ready` wait for it (`false`: optional).
    pub required: bool,
}

impl Default for DependencyOptions {
    /// Required, with the defaults of `DB_*`: 3 attempts 2 s apart, 5 s each.
    fn default() -> Self {
        DependencyOptions {
            policy: RetryPolicy::fixed(3, Duration::from_secs(2), Duration::from_secs(5)),
            required: true,
        }
    }
}

/// The application's own dependency: a [`Probe`] under `name`.
pub fn custom<P: Probe>(name: &str, probe: P, options: DependencyOptions) -> DependencySpec {
    let backend = probe.backend();
    DependencySpec::plain(
        Identity {
            dependency: Dependency::named(name),
            label: name.to_owned(),
            what: format!("{name} ({backend})"),
            required: options.required,
            settings: None,
        },
        options.policy,
        backend.to_owned(),
        move || Ok(ProbeConnector::new(probe)),
    )
}

/// The database, the cache (unless there is none or it is in memory) and
/// `WAIT_FOR`'s entries, in that order, from the settings.
pub fn from_settings(settings: &Settings) -> Vec<DependencySpec> {
    let mut specs = vec![backends::database(&settings.database)];
    specs.extend(backends::cache(&settings.cache));
    for wait in &settings.wait_for {
        specs.push(backends::wait_for(wait));
    }
    specs
}
