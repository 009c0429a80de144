//! A scripted SSE server on loopback for the streaming client's tests: each connection gets
//! the next scripted [`Reply`]; `push` writes to every open stream. Also the stream's events
//! as text (`put`, `patch`) and a URL on which nothing listens.

use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;

/// What the scripted server answers to its n-th connection.
#[derive(Clone)]
pub enum Reply {
    /// 200 with this body, then whatever is pushed, until the test ends.
    Stream(String),
    /// 200 with this body, then close.
    StreamThenClose(String),
    /// An empty response with this status.
    Status(u16),
}

pub struct Fake {
    pub url: String,
    requests: Arc<Mutex<Vec<String>>>,
    push: broadcast::Sender<String>,
}

impl Fake {
    pub async fn start(replies: Vec<Reply>) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (push, _) = broadcast::channel(64);
        let (log, pusher) = (requests.clone(), push.clone());
        tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                let n = log.lock().unwrap().len();
                let reply = replies[n.min(replies.len() - 1)].clone();
                let (log, rx) = (log.clone(), pusher.subscribe());
                log.lock().unwrap().push(String::new());
                tokio::spawn(serve(socket, reply, log, n, rx));
            }
        });
        Fake {
            url,
            requests,
            push,
        }
    }

    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }

    pub fn push(&self, text: String) {
        let _ = self.push.send(text);
    }
}

async fn serve(
    mut socket: TcpStream,
    reply: Reply,
    log: Arc<Mutex<Vec<String>>>,
    n: usize,
    mut pushed: broadcast::Receiver<String>,
) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match socket.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(k) => head.extend_from_slice(&buf[..k]),
        }
    }
    log.lock().unwrap()[n] = String::from_utf8_lossy(&head).into_owned();
    let (status, body, keep) = match reply {
        Reply::Stream(body) => (200, body, true),
        Reply::StreamThenClose(body) => (200, body, false),
        Reply::Status(status) => (status, String::new(), false),
    };
    let head = if status == 200 {
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n".to_owned()
    } else {
        format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
    };
    if socket.write_all(head.as_bytes()).await.is_err()
        || socket.write_all(body.as_bytes()).await.is_err()
    {
        return;
    }
    if keep {
        while let Ok(text) = pushed.recv().await {
            if socket.write_all(text.as_bytes()).await.is_err() {
                return;
            }
        }
    }
}

fn flag(key: &str, enabled: bool, version: u64) -> Value {
    json!({"key": key, "kind": "boolean", "version": version, "enabled": enabled,
        "variations": [{"key": "on", "value": true}, {"key": "off", "value": false}],
        "off_variation": "off", "fallthrough": {"variation": "on"}})
}

pub fn snapshot(revision: u64, enabled: bool) -> Value {
    json!({"environment": "production", "revision": revision,
        "flags": {"checkout": flag("checkout", enabled, revision)}})
}

pub fn put(revision: u64, enabled: bool) -> String {
    format!(
        "event: put\nid: {revision}\ndata: {}\n\n",
        snapshot(revision, enabled)
    )
}

pub fn patch(revision: u64, enabled: bool) -> String {
    let data = json!({"revision": revision, "kind": "flag", "key": "checkout",
        "data": flag("checkout", enabled, revision)});
    format!("event: patch\nid: {revision}\ndata: {data}\n\n")
}

/// A URL on which nothing listens.
pub async fn closed_port() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    url
}
