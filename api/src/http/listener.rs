//! The listening socket, with one guarantee the HTTP stack does not give: every answer is a JSON
//! object with `status`, even those hyper writes itself before a request reaches the server (a
//! request line or header it cannot parse: 400; a URI too long: 414; headers too many or too large:
//! 431). Hyper writes those as a bare head with no body and then closes the connection; this
//! module's connections recognise such a head on its way out and write the JSON envelope instead.
//! It also holds each client address to [`MAX_CONNECTIONS_PER_ADDRESS`] open connections.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use poem::listener::Acceptor;
use poem::web::{LocalAddr, RemoteAddr};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::http::limits::{address_key, Limits};

/// Accepts connections (TCP, or TLS over TCP) whose automatic error answers carry the JSON
/// envelope, at most [`MAX_CONNECTIONS_PER_ADDRESS`] open at once from one client address.
pub struct EnvelopeAcceptor<A> {
    inner: A,
    guard: ConnectionGuard,
}

impl<A> EnvelopeAcceptor<A> {
    pub fn new(inner: A, guard: ConnectionGuard) -> Self {
        EnvelopeAcceptor { inner, guard }
    }
}

/// Connections one client address may hold open at once (a trusted proxy's are not counted: it
/// carries many clients). Beyond it a new connection is closed at once: one client holding
/// thousands of idle sockets would otherwise use up the server's file descriptors.
pub const MAX_CONNECTIONS_PER_ADDRESS: usize = 256;

/// The open connections per client address (an IPv6 client by its /64).
#[derive(Clone)]
pub struct ConnectionGuard {
    limits: Arc<Limits>,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl ConnectionGuard {
    pub fn new(limits: Arc<Limits>) -> Self {
        ConnectionGuard {
            limits,
            open: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// A place for a connection from `peer`, or none if the address holds too many.
    fn admit(&self, peer: Option<IpAddr>) -> Option<Option<OpenConnection>> {
        let Some(peer) = peer.filter(|p| !self.limits.trusted(*p)) else {
            return Some(None);
        };
        let key = address_key(peer);
        let Ok(mut open) = self.open.lock() else {
            // A poisoned count (a panic while it was held) counts nothing rather than refusing all.
            return Some(None);
        };
        let count = open.entry(key).or_insert(0);
        if *count >= MAX_CONNECTIONS_PER_ADDRESS {
            return None;
        }
        *count += 1;
        Some(Some(OpenConnection {
            open: self.open.clone(),
            key,
        }))
    }
}

/// One counted connection; uncounted when dropped.
pub struct OpenConnection {
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
    key: IpAddr,
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        if let Ok(mut open) = self.open.lock() {
            if let Some(count) = open.get_mut(&self.key) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    open.remove(&self.key);
                }
            }
        }
    }
}

impl<A: Acceptor> Acceptor for EnvelopeAcceptor<A> {
    type Io = EnvelopeStream<A::Io>;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.inner.local_addr()
    }

    async fn accept(
        &mut self,
    ) -> io::Result<(Self::Io, LocalAddr, RemoteAddr, poem::http::uri::Scheme)> {
        loop {
            let (stream, local, remote, scheme) = self.inner.accept().await?;
            let peer = remote.as_socket_addr().map(|a| a.ip());
            let Some(counted) = self.guard.admit(peer) else {
                // Closed unanswered: the address holds its share of sockets already.
                drop(stream);
                continue;
            };
            return Ok((
                EnvelopeStream {
                    inner: stream,
                    pending: Vec::new(),
                    _counted: counted,
                },
                local,
                remote,
                scheme,
            ));
        }
    }
}

/// A connection that rewrites hyper's bodiless automatic error answers (see the module).
pub struct EnvelopeStream<S> {
    inner: S,
    /// The rewritten answer still to be written.
    pending: Vec<u8>,
    /// Its place among its address's connections.
    _counted: Option<OpenConnection>,
}

/// The JSON answer in place of hyper's automatic one, if `head` is one: a 400, 414 or 431 with an
/// empty body (Bunker's own answers to these always have a JSON body).
fn rewrite(head: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(head).ok()?;
    let rest = text
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| text.strip_prefix("HTTP/1.0 "))?;
    let message = match rest.get(..4)? {
        "400 " => "Bad request: the HTTP request could not be parsed",
        "414 " => "The request URI is too long",
        "431 " => "The request headers are too many or too large",
        _ => return None,
    };
    let lower = text.to_ascii_lowercase();
    if !lower.contains("\r\ncontent-length: 0\r\n") || lower.contains("\r\ncontent-type:") {
        return None;
    }
    let status_line = text.split("\r\n").next()?;
    let body = format!(r#"{{"status":"error","message":"{message}"}}"#);
    Some(
        format!(
            "{status_line}\r\ncontent-type: application/json; charset=utf-8\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

impl<S: AsyncWrite + Unpin> EnvelopeStream<S> {
    /// Writes what is pending; ready once nothing is.
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.pending.is_empty() {
            let written = match Pin::new(&mut self.inner).poll_write(cx, &self.pending) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                Poll::Pending => return Poll::Pending,
            };
            self.pending.drain(..written);
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for EnvelopeStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for EnvelopeStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.drain(cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
            Poll::Pending => return Poll::Pending,
        }
        if let Some(answer) = rewrite(buf) {
            self.pending = answer;
            // Taken whole: what hyper wrote is replaced, and goes out on the next flush.
            return match self.drain(cx) {
                Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
                _ => Poll::Ready(Ok(buf.len())),
            };
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.drain(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut self.inner).poll_flush(cx),
            other => other,
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.drain(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut self.inner).poll_shutdown(cx),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypers_bare_error_heads_become_json_answers() {
        let head = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Tue, 01 Dec 2026 12:00:00 GMT\r\n\r\n";
        let answer = String::from_utf8(rewrite(head).unwrap()).unwrap();
        assert!(answer.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        let body = answer.split("\r\n\r\n").nth(1).unwrap();
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["status"], "error");
        assert!(answer.contains(&format!("content-length: {}\r\n", body.len())));
        for ours in [
            &b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 0\r\n\r\n"[..],
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 57\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            b"{\"status\":\"ok\"}",
        ] {
            assert!(rewrite(ours).is_none());
        }
    }
}
