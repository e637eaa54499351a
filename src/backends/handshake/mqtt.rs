//! `mqtt://[user:password@]host[:port]`: up when an MQTT 3.1.1 `CONNECT`
//! (a clean session, a client id of its own) is answered by a `CONNACK`
//! that accepts it; then `DISCONNECT`. A `CONNACK` refusing the user name
//! or password (4) or the client (5, not authorized) is permanent; a server
//! unavailable (3) is transient.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Endpoint, HandshakeError, open};

const WHAT: &str = "MQTT";
const CONNECT: u8 = 0x10;
const CONNACK: u8 = 0x20;
const DISCONNECT: [u8; 2] = [0xE0, 0];
/// Seconds the server may keep the session without hearing from us.
const KEEP_ALIVE: u16 = 30;

pub(crate) async fn handshake(ep: &Endpoint) -> Result<(), HandshakeError> {
    let mut io = open(WHAT, ep).await?;
    let packet = connect_packet(ep)?;
    io.write_all(&packet)
        .await
        .map_err(|e| HandshakeError::Io(WHAT, e))?;
    io.flush().await.map_err(|e| HandshakeError::Io(WHAT, e))?;
    let mut ack = [0u8; 4];
    io.read_exact(&mut ack)
        .await
        .map_err(|e| HandshakeError::Io(WHAT, e))?;
    if ack[0] != CONNACK || ack[1] != 2 {
        return Err(HandshakeError::Protocol(
            WHAT,
            format!("answered CONNECT with {:02x?}, not a CONNACK", &ack[..]),
        ));
    }
    connack(ack[3])?;
    let _ = io.write_all(&DISCONNECT).await;
    let _ = io.flush().await;
    Ok(())
}

/// What a `CONNACK`'s return code means: 0 accepted; a refused user name
/// or password (4) or client (5) is permanent, the rest transient.
fn connack(code: u8) -> Result<(), HandshakeError> {
    match code {
        0 => Ok(()),
        1 => Err(HandshakeError::Protocol(
            WHAT,
            "the server refuses MQTT 3.1.1".into(),
        )),
        2 => Err(HandshakeError::Refused(WHAT, "identifier rejected".into())),
        3 => Err(HandshakeError::Refused(WHAT, "server unavailable".into())),
        4 => Err(HandshakeError::Auth(
            WHAT,
            "bad user name or password".into(),
        )),
        5 => Err(HandshakeError::Auth(WHAT, "not authorized".into())),
        code => Err(HandshakeError::Refused(
            WHAT,
            format!("CONNACK code {code}"),
        )),
    }
}

/// A `CONNECT`: "MQTT", level 4, a clean session, the URL's credentials,
/// a client id unique to this process and attempt.
fn connect_packet(ep: &Endpoint) -> Result<Vec<u8>, HandshakeError> {
    static ATTEMPT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = ATTEMPT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let client_id = format!("readygate-{}-{n}", std::process::id());
    let mut flags = 0x02;
    let mut body = Vec::new();
    string(&mut body, "MQTT")?;
    body.push(4);
    let flags_at = body.len();
    body.push(0);
    body.extend_from_slice(&KEEP_ALIVE.to_be_bytes());
    string(&mut body, &client_id)?;
    if let Some(user) = &ep.user {
        flags |= 0x80;
        string(&mut body, user)?;
        if let Some(password) = &ep.password {
            flags |= 0x40;
            string(&mut body, password)?;
        }
    }
    body[flags_at] = flags;
    let mut packet = vec![CONNECT];
    remaining_length(&mut packet, body.len());
    packet.extend_from_slice(&body);
    Ok(packet)
}

fn string(out: &mut Vec<u8>, s: &str) -> Result<(), HandshakeError> {
    let len = u16::try_from(s.len()).map_err(|_| {
        HandshakeError::Refused(WHAT, "a user name or password over 65535 bytes".into())
    })?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

/// MQTT's variable-length integer: 7 bits a byte, the high bit set while
/// more follow.
fn remaining_length(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let mut byte = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if n == 0 {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_remaining_length_is_mqtts_varint() {
        for (n, bytes) in [
            (0, vec![0]),
            (127, vec![0x7F]),
            (128, vec![0x80, 1]),
            (16_383, vec![0xFF, 0x7F]),
            (16_384, vec![0x80, 0x80, 1]),
        ] {
            let mut out = Vec::new();
            remaining_length(&mut out, n);
            assert_eq!(out, bytes, "{n}");
        }
    }

    #[test]
    fn a_refused_login_is_permanent_and_an_unavailable_server_transient() {
        use crate::error::{BackendError, ErrorClass};
        assert!(connack(0).is_ok());
        for (code, class) in [
            (1, ErrorClass::Transient),
            (2, ErrorClass::Transient),
            (3, ErrorClass::Transient),
            (4, ErrorClass::Permanent),
            (5, ErrorClass::Permanent),
            (9, ErrorClass::Transient),
        ] {
            let err = connack(code).unwrap_err();
            assert_eq!(err.class(), class, "{code}: {err}");
        }
        assert_eq!(connack(4).unwrap_err().summary(), "authentication failed");
    }

    #[test]
    fn connect_flags_name_the_credentials_given() {
        let ep = |user: Option<&str>, password: Option<&str>| Endpoint {
            host: "h".into(),
            port: 1883,
            user: user.map(Into::into),
            password: password.map(Into::into),
            tls: false,
            path: String::new(),
        };
        // fixed header (2), "MQTT" (6), level (1), then the flags.
        let flags = |e: &Endpoint| connect_packet(e).unwrap()[9];
        assert_eq!(flags(&ep(None, None)), 0x02);
        assert_eq!(flags(&ep(Some("u"), None)), 0x82);
        assert_eq!(flags(&ep(Some("u"), Some("p"))), 0xC2);
    }
}
