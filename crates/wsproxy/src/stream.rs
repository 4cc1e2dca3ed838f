//! A connection the relay reads and writes: plain TCP, or TLS on either side
//! (the client's connection to a `--tls-cert` listener, the proxy's own
//! connection to a `wss://` upstream). One enum rather than generics, so the
//! relay is compiled once; plain TCP splits without a lock.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::tcp::{ReadHalf, WriteHalf};

/// One side's connection.
#[derive(Debug)]
pub(crate) enum Stream {
    /// Plain TCP.
    Tcp(TcpStream),
    /// A client that connected to the TLS listener.
    TlsFromClient(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    /// The proxy's TLS connection to a `wss://` upstream.
    TlsToUpstream(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Stream {
    /// The address of the other end of the TCP connection.
    pub(crate) fn peer_addr(&self) -> Option<std::net::SocketAddr> {
        match self {
            Stream::Tcp(tcp) => tcp.peer_addr(),
            Stream::TlsFromClient(tls) => tls.get_ref().0.peer_addr(),
            Stream::TlsToUpstream(tls) => tls.get_ref().0.peer_addr(),
        }
        .ok()
    }

    /// Read and write halves that can be used at the same time.
    pub(crate) fn split(&mut self) -> (StreamRead<'_>, StreamWrite<'_>) {
        match self {
            Stream::Tcp(tcp) => {
                let (r, w) = tcp.split();
                (StreamRead::Tcp(r), StreamWrite::Tcp(w))
            }
            tls => {
                let (r, w) = tokio::io::split(tls);
                (StreamRead::Tls(r), StreamWrite::Tls(w))
            }
        }
    }
}

macro_rules! delegate {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            Stream::Tcp($s) => {
                let $s = Pin::new($s);
                $e
            }
            Stream::TlsFromClient($s) => {
                let $s = Pin::new(&mut **$s);
                $e
            }
            Stream::TlsToUpstream($s) => {
                let $s = Pin::new(&mut **$s);
                $e
            }
        }
    };
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_read(cx, buf))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        delegate!(self, s => s.poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_shutdown(cx))
    }
}

/// The read half of a [`Stream`].
pub(crate) enum StreamRead<'a> {
    Tcp(ReadHalf<'a>),
    Tls(tokio::io::ReadHalf<&'a mut Stream>),
}

/// The write half of a [`Stream`].
pub(crate) enum StreamWrite<'a> {
    Tcp(WriteHalf<'a>),
    Tls(tokio::io::WriteHalf<&'a mut Stream>),
}

impl AsyncRead for StreamRead<'_> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            StreamRead::Tcp(r) => Pin::new(r).poll_read(cx, buf),
            StreamRead::Tls(r) => Pin::new(r).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for StreamWrite<'_> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            StreamWrite::Tcp(w) => Pin::new(w).poll_write(cx, buf),
            StreamWrite::Tls(w) => Pin::new(w).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            StreamWrite::Tcp(w) => Pin::new(w).poll_flush(cx),
            StreamWrite::Tls(w) => Pin::new(w).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            StreamWrite::Tcp(w) => Pin::new(w).poll_shutdown(cx),
            StreamWrite::Tls(w) => Pin::new(w).poll_shutdown(cx),
        }
    }
}
