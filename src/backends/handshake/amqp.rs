//! `amqp://[user:password@]host[:port][/vhost]` (and `amqps://`, TLS, port
//! 5671): up when an AMQP 0-9-1 connection opens on the vhost, as RabbitMQ
//! opens it for a client: protocol header, `Connection.Start`/`StartOk`
//! (PLAIN, `guest`/`guest` when the URL names no user), `Tune`/`TuneOk`,
//! `Open`/`OpenOk`, then `Close`. The vhost is the path, percent-decoded;
//! none (or `/` alone) is `/`. A refused login (`403 ACCESS_REFUSED`) is
//! permanent; a vhost the server does not open (`530 NOT_ALLOWED`, as while
//! RabbitMQ imports its definitions at boot) is transient.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::{Endpoint, HandshakeError, Io, open, read_n};

const WHAT: &str = "AMQP";
/// The largest frame read: the server's `Connection.Start` is about 500 bytes.
const FRAME_LIMIT: usize = 1 << 20;
const FRAME_METHOD: u8 = 1;
const FRAME_HEARTBEAT: u8 = 8;
const FRAME_END: u8 = 0xCE;
const CONNECTION: u16 = 10;
const START: u16 = 10;
const START_OK: u16 = 11;
const TUNE: u16 = 30;
const TUNE_OK: u16 = 31;
const OPEN: u16 = 40;
const OPEN_OK: u16 = 41;
const CLOSE: u16 = 50;
const CLOSE_OK: u16 = 51;
/// The reply code of a refused login.
const ACCESS_REFUSED: u16 = 403;

pub(crate) async fn handshake(ep: &Endpoint) -> Result<(), HandshakeError> {
    let mut io = open(WHAT, ep).await?;
    write(&mut io, b"AMQP\x00\x00\x09\x01").await?;
    let start = read_method(&mut io).await?;
    if start.id() != (CONNECTION, START) {
        return Err(unexpected(&start, "Connection.Start"));
    }
    let mechanisms = start_mechanisms(&start.args)?;
    if !mechanisms.split(' ').any(|m| m == "PLAIN") {
        return Err(HandshakeError::Refused(
            WHAT,
            format!("the server offers no PLAIN login (it offers {mechanisms:?})"),
        ));
    }
    let user = ep.user.as_deref().unwrap_or("guest");
    let password = ep.password.as_deref().unwrap_or("guest");
    write_method(&mut io, START_OK, &start_ok(user, password)).await?;
    let tune = read_method(&mut io).await?;
    match tune.id() {
        (CONNECTION, TUNE) => {}
        (CONNECTION, CLOSE) => return Err(refusal(&tune.args)),
        _ => return Err(unexpected(&tune, "Connection.Tune")),
    }
    // channel-max (2), frame-max (4), heartbeat (2): ours are the server's,
    // without heartbeats (the connection lives for one exchange).
    let (channel_max, frame_max) = match tune.args.get(..6) {
        Some(a) => ([a[0], a[1]], [a[2], a[3], a[4], a[5]]),
        None => {
            return Err(HandshakeError::Protocol(
                WHAT,
                "a short Connection.Tune".into(),
            ));
        }
    };
    let mut tune_ok = Vec::with_capacity(8);
    tune_ok.extend_from_slice(&channel_max);
    tune_ok.extend_from_slice(&frame_max);
    tune_ok.extend_from_slice(&[0, 0]);
    write_method(&mut io, TUNE_OK, &tune_ok).await?;
    let vhost = if ep.path.is_empty() { "/" } else { &ep.path };
    let mut open_args = Vec::new();
    short_str(&mut open_args, vhost)?;
    open_args.extend_from_slice(&[0, 0]); // reserved shortstr, reserved bit
    write_method(&mut io, OPEN, &open_args).await?;
    let opened = read_method(&mut io).await?;
    match opened.id() {
        (CONNECTION, OPEN_OK) => {}
        (CONNECTION, CLOSE) => return Err(refusal(&opened.args)),
        _ => return Err(unexpected(&opened, "Connection.OpenOk")),
    }
    // reply-code 200, an empty reply-text, no failing class or method.
    write_method(&mut io, CLOSE, &[0, 200, 0, 0, 0, 0, 0]).await?;
    // The server's CloseOk, if it comes: the check has passed either way.
    let _ = read_method(&mut io)
        .await
        .map(|m| m.id() == (CONNECTION, CLOSE_OK));
    Ok(())
}

/// One method frame's class, method and arguments.
struct Method {
    class: u16,
    method: u16,
    args: Vec<u8>,
}

impl Method {
    fn id(&self) -> (u16, u16) {
        (self.class, self.method)
    }
}

fn unexpected(m: &Method, expected: &str) -> HandshakeError {
    HandshakeError::Protocol(
        WHAT,
        format!(
            "answered method {}.{} where {expected} was due",
            m.class, m.method
        ),
    )
}

/// A `Connection.Close` from the server: a refused login is permanent, the
/// rest transient.
fn refusal(args: &[u8]) -> HandshakeError {
    let code = args
        .get(..2)
        .map_or(0, |c| u16::from_be_bytes([c[0], c[1]]));
    let text = args
        .get(2)
        .and_then(|&n| args.get(3..3 + usize::from(n)))
        .map(|t| String::from_utf8_lossy(t).into_owned())
        .unwrap_or_default();
    let why = format!("{code} {text}");
    if code == ACCESS_REFUSED {
        HandshakeError::Auth(WHAT, why)
    } else {
        HandshakeError::Refused(WHAT, why)
    }
}

async fn write(io: &mut Box<dyn Io>, bytes: &[u8]) -> Result<(), HandshakeError> {
    io.write_all(bytes)
        .await
        .map_err(|e| HandshakeError::Io(WHAT, e))?;
    io.flush().await.map_err(|e| HandshakeError::Io(WHAT, e))
}

/// A method frame on channel 0 of class Connection.
async fn write_method(
    io: &mut Box<dyn Io>,
    method: u16,
    args: &[u8],
) -> Result<(), HandshakeError> {
    let size = u32::try_from(4 + args.len())
        .map_err(|_| HandshakeError::Protocol(WHAT, "a frame too large".into()))?;
    let mut frame = Vec::with_capacity(12 + args.len());
    frame.push(FRAME_METHOD);
    frame.extend_from_slice(&[0, 0]);
    frame.extend_from_slice(&size.to_be_bytes());
    frame.extend_from_slice(&CONNECTION.to_be_bytes());
    frame.extend_from_slice(&method.to_be_bytes());
    frame.extend_from_slice(args);
    frame.push(FRAME_END);
    write(io, &frame).await
}

/// The next method frame, heartbeats skipped. A peer that is not an AMQP
/// server (or an AMQP server of another version, which answers with its own
/// protocol header) is named as such.
async fn read_method(io: &mut (impl AsyncRead + Unpin + ?Sized)) -> Result<Method, HandshakeError> {
    loop {
        let mut head = [0u8; 7];
        io.read_exact(&mut head)
            .await
            .map_err(|e| HandshakeError::Io(WHAT, e))?;
        if head.starts_with(b"AMQP") {
            return Err(HandshakeError::Protocol(
                WHAT,
                "the server answered with its protocol header: not AMQP 0-9-1".into(),
            ));
        }
        let size = u32::from_be_bytes([head[3], head[4], head[5], head[6]]) as usize;
        if !matches!(head[0], FRAME_METHOD | FRAME_HEARTBEAT) {
            return Err(HandshakeError::Protocol(
                WHAT,
                format!("the first bytes are not an AMQP frame ({:02x?})", &head[..]),
            ));
        }
        let body = read_n(WHAT, io, size.saturating_add(1), FRAME_LIMIT).await?;
        if body.last() != Some(&FRAME_END) {
            return Err(HandshakeError::Protocol(
                WHAT,
                "a frame without its end byte".into(),
            ));
        }
        if head[0] == FRAME_HEARTBEAT {
            continue;
        }
        let Some(ids) = body.get(..4) else {
            return Err(HandshakeError::Protocol(
                WHAT,
                "a short method frame".into(),
            ));
        };
        return Ok(Method {
            class: u16::from_be_bytes([ids[0], ids[1]]),
            method: u16::from_be_bytes([ids[2], ids[3]]),
            args: body[4..body.len() - 1].to_vec(),
        });
    }
}

/// `Connection.Start`'s mechanisms: after the version (2 bytes) and the
/// server's properties (a table), a long string.
fn start_mechanisms(args: &[u8]) -> Result<String, HandshakeError> {
    let short = || HandshakeError::Protocol(WHAT, "a short Connection.Start".into());
    let table_len = args.get(2..6).ok_or_else(short)?;
    let table_len = u32::from_be_bytes([table_len[0], table_len[1], table_len[2], table_len[3]]);
    let at = 6usize.saturating_add(table_len as usize);
    let len = args.get(at..at + 4).ok_or_else(short)?;
    let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
    let text = args
        .get(at + 4..(at + 4).saturating_add(len))
        .ok_or_else(short)?;
    Ok(String::from_utf8_lossy(text).into_owned())
}

/// `Connection.StartOk`: client properties (the product, and that a refused
/// login is to be answered with a `Connection.Close`), PLAIN, the
/// credentials, the locale.
fn start_ok(user: &str, password: &str) -> Vec<u8> {
    let mut capabilities = Vec::new();
    let _ = table_bool(&mut capabilities, "authentication_failure_close", true);
    let mut props = Vec::new();
    let _ = table_str(&mut props, "product", "readygate");
    let _ = table_str(&mut props, "version", env!("CARGO_PKG_VERSION"));
    let _ = short_str(&mut props, "capabilities");
    props.push(b'F');
    long_bytes(&mut props, &capabilities);
    let mut args = Vec::new();
    long_bytes(&mut args, &props);
    let _ = short_str(&mut args, "PLAIN");
    let response = [b"\0", user.as_bytes(), b"\0", password.as_bytes()].concat();
    long_bytes(&mut args, &response);
    let _ = short_str(&mut args, "en_US");
    args
}

fn short_str(out: &mut Vec<u8>, s: &str) -> Result<(), HandshakeError> {
    let len = u8::try_from(s.len())
        .map_err(|_| HandshakeError::Refused(WHAT, format!("{s:?} is longer than 255 bytes")))?;
    out.push(len);
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

fn long_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&u32::try_from(b.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(b);
}

fn table_str(out: &mut Vec<u8>, key: &str, value: &str) -> Result<(), HandshakeError> {
    short_str(out, key)?;
    out.push(b'S');
    long_bytes(out, value.as_bytes());
    Ok(())
}

fn table_bool(out: &mut Vec<u8>, key: &str, value: bool) -> Result<(), HandshakeError> {
    short_str(out, key)?;
    out.push(b't');
    out.push(u8::from(value));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_login_is_permanent_and_a_closed_vhost_transient() {
        use crate::error::{BackendError, ErrorClass};
        let close = |code: u16, text: &str| {
            let mut a = code.to_be_bytes().to_vec();
            a.push(text.len() as u8);
            a.extend_from_slice(text.as_bytes());
            a.extend_from_slice(&[0, 10, 0, 11]);
            refusal(&a)
        };
        let login = close(403, "ACCESS_REFUSED - Login was refused");
        assert_eq!(login.class(), ErrorClass::Permanent);
        assert_eq!(login.summary(), "authentication failed");
        let vhost = close(530, "NOT_ALLOWED - vhost x not found");
        assert_eq!(vhost.class(), ErrorClass::Transient);
        assert_eq!(vhost.summary(), "530 NOT_ALLOWED - vhost x not found");
        // A truncated Close names no text, and panics on nothing.
        assert!(matches!(refusal(&[1]), HandshakeError::Refused(_, _)));
    }

    /// What a peer that is not an AMQP server may send: each is an error
    /// naming it, never a panic or a large allocation.
    #[tokio::test(flavor = "current_thread")]
    async fn bytes_that_are_not_amqp_frames_are_refused() {
        let huge = [1u8, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF];
        for (bytes, words) in [
            (&b"-ERR unknown command\r\n"[..], "not an AMQP frame"),
            (&b"AMQP\x00\x00\x09\x01"[..], "protocol header"),
            (&huge[..], "more than"),
            (&[1u8, 0, 0, 0, 0, 0, 4, 0, 10][..], "early eof"),
            (
                &[1u8, 0, 0, 0, 0, 0, 2, 0, 10, 0xCE][..],
                "a short method frame",
            ),
            (&[1u8, 0, 0, 0, 0, 0, 1, 7, 0][..], "without its end byte"),
        ] {
            let err = read_method(&mut &bytes[..])
                .await
                .err()
                .map(|e| crate::error::cause_chain(&e));
            assert!(
                err.as_deref().is_some_and(|e| e.contains(words)),
                "{bytes:?}: {err:?}"
            );
        }
        // A heartbeat is skipped; the method after it is read.
        let mut frames = vec![8u8, 0, 0, 0, 0, 0, 0, 0xCE];
        frames.extend_from_slice(&[1, 0, 0, 0, 0, 0, 4, 0, 10, 0, 41, 0xCE]);
        let m = read_method(&mut &frames[..]).await.unwrap();
        assert_eq!(m.id(), (CONNECTION, OPEN_OK));
    }

    #[test]
    fn start_ok_carries_plain_credentials() {
        let args = start_ok("u", "p");
        let needle = b"\x00\x00\x00\x04\0u\0p";
        assert!(args.windows(needle.len()).any(|w| w == needle));
        // The mechanisms of a Start: version, an empty table, "PLAIN AMQPLAIN".
        let mut start = vec![0, 9, 0, 0, 0, 0];
        long_bytes(&mut start, b"PLAIN AMQPLAIN");
        assert_eq!(start_mechanisms(&start).unwrap(), "PLAIN AMQPLAIN");
        assert!(start_mechanisms(&start[..7]).is_err());
    }
}
