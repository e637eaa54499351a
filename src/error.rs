//! The error of one connection attempt, how it prints (the whole cause
//! chain, since the client crates hide the cause behind their top-level
//! message) and whether retrying can help. The core knows a backend's error
//! only as a [`BackendError`]: something that names its cause and its class.
//! What each client crate's errors mean lives with its backend
//! (`src/backends/<name>/error.rs`), as an [`ErrorVocabulary`] listed once in
//! [`crate::backends::VOCABULARIES`].

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::time::Duration;

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
    /// The backend's own error: it prints, names and classifies itself.
    #[error(transparent)]
    Backend(Failure),
}

/// Whether retrying can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    Transient,
    Permanent,
}

/// A backend's error as the core sees it: an error (with its `source()`
/// chain) that can say the short name of its cause and its class.
pub trait BackendError: StdError + 'static {
    /// A short name for the cause, used to count causes over many attempts
    /// (`connection refused`, `LOADING`, a SQLSTATE message).
    fn summary(&self) -> String;

    /// Transient errors are retried; permanent ones (wrong credentials,
    /// unknown database) cannot be fixed by waiting.
    fn class(&self) -> ErrorClass;
}

/// Implements [`BackendError`] for a backend's error type whose causes its
/// vocabularies name and classify: `named_by!(PostgresError, [Vocabulary])`.
macro_rules! named_by {
    ($error:ty, [$($vocabulary:expr),*]) => {
        impl $crate::error::BackendError for $error {
            fn summary(&self) -> String {
                $crate::error::summary(self, &[$(&$vocabulary),*])
            }

            fn class(&self) -> $crate::error::ErrorClass {
                $crate::error::class(self, &[$(&$vocabulary),*])
            }
        }
    };
}
pub(crate) use named_by;

/// A [`BackendError`] in a [`ConnectError`]: prints as the backend's error
/// and has its sources, so the chain reads as the backend wrote it.
pub struct Failure(Box<dyn BackendError>);

impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl StdError for Failure {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.0.source()
    }
}

impl<E: BackendError> From<E> for ConnectError {
    fn from(e: E) -> Self {
        ConnectError::Backend(Failure(Box::new(e)))
    }
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
        match self {
            ConnectError::TimedOut(_) => "timed out".into(),
            ConnectError::Deadline(_) => "stopped at the deadline".into(),
            ConnectError::Backend(Failure(e)) => e.summary(),
        }
    }

    /// Transient errors are retried; permanent ones (wrong credentials,
    /// unknown database) cannot be fixed by waiting.
    pub fn class(&self) -> ErrorClass {
        match self {
            ConnectError::TimedOut(_) | ConnectError::Deadline(_) => ErrorClass::Transient,
            ConnectError::Backend(Failure(e)) => e.class(),
        }
    }
}

/// What a backend knows of its client crate's errors, found anywhere in a
/// cause chain. The shared rules ([`summary`], [`class`], [`cause_chain`])
/// ask each vocabulary they are given at fixed points, so that the order in
/// which causes are named is one, whatever the backend. Every method
/// answers `None` ("not mine") by default.
pub trait ErrorVocabulary: Sync {
    /// A name that wins over every shared rule (a pool's wait that ran
    /// out, a server error with a code of its own).
    fn named_first(&self, _err: &(dyn StdError + 'static)) -> Option<String> {
        None
    }

    /// A TLS failure that retrying cannot fix, in the client's own words,
    /// where rustls's error is not in the chain (a server without TLS).
    fn tls_refusal(&self, _err: &(dyn StdError + 'static)) -> Option<String> {
        None
    }

    /// A name tried after TLS refusals, before the I/O error's kind.
    fn named(&self, _err: &(dyn StdError + 'static)) -> Option<String> {
        None
    }

    /// A name tried after the I/O error's kind, before the innermost text.
    fn named_last(&self, _err: &(dyn StdError + 'static)) -> Option<String> {
        None
    }

    /// The class, where the backend knows it (after TLS refusals, which are
    /// permanent for every backend).
    fn class(&self, _err: &(dyn StdError + 'static)) -> Option<ErrorClass> {
        None
    }

    /// How one level of a cause chain prints, where the client words it
    /// in a way of its own: `Some(None)` leaves the level out.
    fn level(&self, _e: &(dyn StdError + 'static)) -> Option<Option<String>> {
        None
    }
}

/// The short name of `err`'s cause, asking `vocabularies` at each step:
/// their first names, TLS refusals, their names, the I/O error's kind,
/// their last names, and finally the innermost error's words.
pub fn summary(err: &(dyn StdError + 'static), vocabularies: &[&dyn ErrorVocabulary]) -> String {
    let ask = |f: fn(&dyn ErrorVocabulary, &(dyn StdError + 'static)) -> Option<String>| {
        vocabularies.iter().find_map(|v| f(*v, err))
    };
    if let Some(name) = ask(|v, e| v.named_first(e)) {
        return name;
    }
    if let Some(refusal) = tls_refusal(err, vocabularies) {
        return refusal;
    }
    if let Some(name) = ask(|v, e| v.named(e)) {
        return name;
    }
    if let Some(io) = sources(err).find_map(as_io_error) {
        return io_summary(io);
    }
    if let Some(name) = ask(|v, e| v.named_last(e)) {
        return name;
    }
    let last = sources(err)
        .last()
        .map(ToString::to_string)
        .unwrap_or_default();
    if is_name_resolution(&last) {
        return NAME_RESOLUTION.into();
    }
    scrub(&one_line(&last)).into_owned()
}

/// The class of `err`: a TLS refusal is permanent; then the first
/// vocabulary that knows; everything else is transient.
pub fn class(err: &(dyn StdError + 'static), vocabularies: &[&dyn ErrorVocabulary]) -> ErrorClass {
    if tls_refusal(err, vocabularies).is_some() {
        return ErrorClass::Permanent;
    }
    vocabularies
        .iter()
        .find_map(|v| v.class(err))
        .unwrap_or(ErrorClass::Transient)
}

/// A TLS failure that retrying cannot fix, named: the server's certificate
/// rejected (unknown issuer, wrong name, expired...), ours rejected by the
/// server, or a server that does not speak TLS when TLS is required. A
/// handshake that times out or is reset is not one.
fn tls_refusal(
    err: &(dyn StdError + 'static),
    vocabularies: &[&dyn ErrorVocabulary],
) -> Option<String> {
    use rustls::AlertDescription as Alert;
    if let Some(tls) = sources(err).find_map(as_rustls_error) {
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
    vocabularies.iter().find_map(|v| v.tls_refusal(err))
}

/// The error and its sources, outermost first.
pub fn sources<'a>(
    err: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(err), |e| (*e).source())
}

/// The first error of type `T` in `err`'s chain.
pub fn find<'a, T: StdError + 'static>(err: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    sources(err).find_map(|e| e.downcast_ref::<T>())
}

/// `e` as an I/O error: itself, or behind the `Arc` in which some clients
/// (the redis crate) keep it, whose `source()` skips it.
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

/// `text` on one line, runs of white space folded into one space.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Every level of `err`'s chain joined by `: `, skipping a level whose text
/// the previous one already printed; on one line, with secrets scrubbed.
/// Each backend's vocabulary may word a level of its client's its own way.
pub fn cause_chain(err: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    for e in sources(err) {
        let worded = crate::backends::VOCABULARIES
            .iter()
            .find_map(|v| v.level(e));
        let text = match worded {
            Some(None) => continue,
            Some(Some(text)) => text,
            None => one_line(&e.to_string()),
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
    fn io_errors_are_named_by_kind_or_words() {
        let io = |kind, text: &str| io::Error::new(kind, text);
        let dns = io(
            io::ErrorKind::Other,
            "failed to lookup address information: Name or service not known",
        );
        assert_eq!(summary(&dns, &[]), "name resolution failed");
        let reset = io(io::ErrorKind::ConnectionReset, "Connection reset by peer");
        assert_eq!(summary(&reset, &[]), "connection reset");
        // A kind that says nothing gives way to the error's own text.
        let odd = io(io::ErrorKind::Other, "the network   cable\nis unplugged");
        assert_eq!(summary(&odd, &[]), "the network cable is unplugged");
        for err in [dns, reset, odd] {
            assert_eq!(class(&err, &[]), ErrorClass::Transient, "{err}");
        }
    }

    /// A vocabulary that knows nothing: the shared rules alone.
    struct Mute;
    impl ErrorVocabulary for Mute {}

    #[test]
    fn a_vocabulary_that_knows_nothing_leaves_the_shared_rules() {
        let refused = io::Error::new(io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(summary(&refused, &[&Mute]), "connection refused");
        assert_eq!(class(&refused, &[&Mute]), ErrorClass::Transient);
        let odd = io::Error::other("a  cause\nof its own");
        assert_eq!(summary(&Outer(Middle(odd)), &[&Mute]), "a cause of its own");
        assert_eq!(
            cause_chain(&Outer(Middle(io::Error::other("x")))),
            "outer: middle: x"
        );
    }

    #[test]
    fn a_rejected_certificate_is_permanent_and_named_by_rustls() {
        use rustls::{AlertDescription, CertificateError};
        let unknown = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
        );
        assert_eq!(class(&unknown, &[]), ErrorClass::Permanent);
        assert_eq!(
            summary(&unknown, &[]),
            "invalid peer certificate: UnknownIssuer"
        );
        let ours = rustls::Error::AlertReceived(AlertDescription::CertificateRequired);
        assert_eq!(class(&ours, &[]), ErrorClass::Permanent);
        assert_eq!(
            summary(&ours, &[]),
            "received fatal alert: CertificateRequired"
        );
        // A handshake cut short is not a refusal: retrying can help.
        let cut = rustls::Error::AlertReceived(AlertDescription::InternalError);
        assert_eq!(class(&cut, &[]), ErrorClass::Transient);
    }

    #[test]
    fn a_failure_debugs_as_the_backends_error() {
        let err: ConnectError = Probe.into();
        assert_eq!(format!("{err:?}"), "Backend(Probe)");
    }

    #[derive(Debug, thiserror::Error)]
    #[error("probe")]
    struct Probe;
    named_by!(Probe, []);
}
