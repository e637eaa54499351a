//! `nats://[user:password@]host[:port]` (or `nats://token@host`): up when
//! the server greets with `INFO`, then answers `CONNECT` and `PING` with
//! `PONG`, as a NATS client connects. `-ERR 'Authorization Violation'` is
//! permanent; a server that requires TLS is refused (`nats://` checks speak
//! none).

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use super::{Endpoint, HandshakeError, open};

const WHAT: &str = "NATS";
/// The longest line read: a server's `INFO` is about 500 bytes.
const LINE_LIMIT: u64 = 64 * 1024;

pub(crate) async fn handshake(ep: &Endpoint) -> Result<(), HandshakeError> {
    let io = open(WHAT, ep).await?;
    let mut io = BufReader::new(io);
    let info = read_line(&mut io).await?;
    let Some(json) = info.strip_prefix("INFO ") else {
        return Err(HandshakeError::Protocol(
            WHAT,
            format!("the greeting is not INFO ({:?})", clip(&info)),
        ));
    };
    let info: serde_json::Value = serde_json::from_str(json)
        .map_err(|e| HandshakeError::Protocol(WHAT, format!("INFO is not JSON ({e})")))?;
    if info.get("tls_required") == Some(&serde_json::Value::Bool(true)) {
        return Err(HandshakeError::Refused(
            WHAT,
            "the server requires TLS, which nats:// checks do not speak".into(),
        ));
    }
    let line = format!("CONNECT {}\r\nPING\r\n", connect(ep));
    io.write_all(line.as_bytes())
        .await
        .map_err(|e| HandshakeError::Io(WHAT, e))?;
    io.flush().await.map_err(|e| HandshakeError::Io(WHAT, e))?;
    loop {
        let line = read_line(&mut io).await?;
        match line.split(' ').next().unwrap_or_default() {
            "PONG" => return Ok(()),
            "+OK" | "INFO" => {}
            "PING" => {
                io.write_all(b"PONG\r\n")
                    .await
                    .map_err(|e| HandshakeError::Io(WHAT, e))?;
            }
            "-ERR" => {
                let why = line.trim_start_matches("-ERR").trim().trim_matches('\'');
                let why = clip(why);
                return Err(
                    if why.to_ascii_lowercase().contains("authorization")
                        || why.to_ascii_lowercase().contains("authentication")
                    {
                        HandshakeError::Auth(WHAT, why)
                    } else {
                        HandshakeError::Refused(WHAT, why)
                    },
                );
            }
            _ => {
                return Err(HandshakeError::Protocol(
                    WHAT,
                    format!("answered {:?} to PING", clip(&line)),
                ));
            }
        }
    }
}

/// `CONNECT`'s options: no `+OK` for each command, the credentials of the
/// URL (a user name alone is a token).
fn connect(ep: &Endpoint) -> serde_json::Value {
    let mut options = serde_json::json!({
        "verbose": false,
        "pedantic": false,
        "tls_required": false,
        "name": "readygate",
        "lang": "rust",
        "version": env!("CARGO_PKG_VERSION"),
        "protocol": 1,
    });
    match (&ep.user, &ep.password) {
        (Some(user), Some(pass)) => {
            options["user"] = user.as_str().into();
            options["pass"] = pass.as_str().into();
        }
        (Some(token), None) => options["auth_token"] = token.as_str().into(),
        _ => {}
    }
    options
}

/// One line, without its CR LF; the end of the stream is an error.
async fn read_line(
    io: &mut (impl tokio::io::AsyncBufRead + Unpin),
) -> Result<String, HandshakeError> {
    let mut buf = Vec::new();
    let read = AsyncReadExt::take(&mut *io, LINE_LIMIT)
        .read_until(b'\n', &mut buf)
        .await
        .map_err(|e| HandshakeError::Io(WHAT, e))?;
    if read == 0 {
        return Err(HandshakeError::Io(
            WHAT,
            std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            ),
        ));
    }
    if buf.last() != Some(&b'\n') {
        return Err(HandshakeError::Protocol(
            WHAT,
            format!("a line of more than {LINE_LIMIT} bytes"),
        ));
    }
    Ok(String::from_utf8_lossy(&buf).trim_end().to_owned())
}

/// At most 80 characters of what a server said, for a message.
fn clip(s: &str) -> String {
    s.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(user: Option<&str>, password: Option<&str>) -> Endpoint {
        Endpoint {
            host: "h".into(),
            port: 4222,
            user: user.map(Into::into),
            password: password.map(Into::into),
            tls: false,
            path: String::new(),
        }
    }

    #[test]
    fn connect_carries_a_user_and_password_or_a_token() {
        let both = connect(&endpoint(Some("u"), Some("p")));
        assert_eq!(
            (both["user"].as_str(), both["pass"].as_str()),
            (Some("u"), Some("p"))
        );
        let token = connect(&endpoint(Some("t0k"), None));
        assert_eq!(token["auth_token"].as_str(), Some("t0k"));
        assert_eq!(connect(&endpoint(None, None)).get("user"), None);
        assert_eq!(both["verbose"], serde_json::Value::Bool(false));
    }
}
