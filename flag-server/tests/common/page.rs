//! A loopback web server for a browser test page: the page at `/`, npm packages' files under
//! `/modules/`, and the page's JSON reports at `POST /report`. Used by the browser test and,
//! through `#[path]`, by the browser harness in `benches/` (it needs only tokio and serde_json).

use std::path::PathBuf;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Serves `page` at `/`, the npm modules under `/modules/`, and takes the page's reports
/// at `POST /report` (sent on `reports`). One request per connection.
pub async fn page_server(page: PathBuf, modules: PathBuf) -> (String, mpsc::Receiver<Value>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(answer(socket, page.clone(), modules.clone(), tx.clone()));
        }
    });
    (origin, rx)
}

async fn answer(
    mut socket: TcpStream,
    page: PathBuf,
    modules: PathBuf,
    reports: mpsc::Sender<Value>,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let (head, body_start) = loop {
        let Ok(n) = socket.read(&mut chunk).await else {
            return;
        };
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break (String::from_utf8_lossy(&buf[..end]).to_string(), end + 4);
        }
    };
    let mut words = head.split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, content_type, body) = if method == "POST" && path == "/report" {
        let length: usize = head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < body_start + length {
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let end = (body_start + length).min(buf.len());
        if let Ok(report) = serde_json::from_slice(&buf[body_start..end]) {
            let _ = reports.send(report).await;
        }
        ("204 No Content", "text/plain", Vec::new())
    } else if path == "/" {
        (
            "200 OK",
            "text/html",
            std::fs::read(&page).unwrap_or_default(),
        )
    } else if let Some(file) = path.strip_prefix("/modules/").filter(|f| !f.contains("..")) {
        match std::fs::read(modules.join(file)) {
            Ok(bytes) => ("200 OK", "text/javascript", bytes),
            Err(_) => ("404 Not Found", "text/plain", Vec::new()),
        }
    } else {
        ("404 Not Found", "text/plain", Vec::new())
    };
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\
         cache-control: no-store\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let _ = socket.write_all(head.as_bytes()).await;
    let _ = socket.write_all(&body).await;
}
