//! A minimal keep-alive HTTP/1.1 client for the load harnesses.
//!
//! The load generator shares the two cores with the server it measures, so it must be cheap:
//! like `wrk`, it writes a request head by hand and reads the response by `Content-Length`,
//! with no connection pool, header map or body stream. reqwest stays the client for set-up
//! and for anything that needs real HTTP (redirects, chunked bodies, TLS); this one answers
//! an error for a chunked response rather than guess.

use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// One keep-alive connection to a server on loopback.
pub struct Connection {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    host: String,
    head: Vec<u8>,
    line: String,
}

/// A response: its status and body.
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The body, `Content-Length` bytes of it.
    pub body: Vec<u8>,
}

fn invalid(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

impl Connection {
    /// Connects to `addr`.
    pub async fn open(addr: SocketAddr) -> io::Result<Connection> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (read, write) = stream.into_split();
        Ok(Connection {
            reader: BufReader::new(read),
            writer: write,
            host: addr.to_string(),
            head: Vec::with_capacity(1024),
            line: String::new(),
        })
    }

    /// Sends one request and reads its response. `headers` are `(name, value)` pairs written
    /// as given; `Host` and `Content-Length` are added.
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<Response> {
        use std::io::Write as _;
        self.head.clear();
        write!(
            self.head,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n",
            self.host,
            body.len()
        )?;
        for (name, value) in headers {
            write!(self.head, "{name}: {value}\r\n")?;
        }
        self.head.extend_from_slice(b"\r\n");
        self.head.extend_from_slice(body);
        self.writer.write_all(&self.head).await?;

        let status = {
            self.read_line().await?;
            let mut parts = self.line.split_ascii_whitespace();
            match (parts.next(), parts.next().map(str::parse::<u16>)) {
                (Some(v), Some(Ok(status))) if v.starts_with("HTTP/1.") => status,
                _ => return Err(invalid(format!("bad status line {:?}", self.line))),
            }
        };
        let mut length = None;
        loop {
            self.read_line().await?;
            let line = self.line.trim_end();
            if line.is_empty() {
                break;
            }
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| invalid(format!("bad header {line:?}")))?;
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.trim().parse::<usize>().map_err(|_| invalid(line))?);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                return Err(invalid("chunked responses are not supported"));
            }
        }
        let mut body = vec![0; length.unwrap_or(0)];
        self.reader.read_exact(&mut body).await?;
        Ok(Response { status, body })
    }

    async fn read_line(&mut self) -> io::Result<()> {
        self.line.clear();
        if self.reader.read_line(&mut self.line).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }
}
