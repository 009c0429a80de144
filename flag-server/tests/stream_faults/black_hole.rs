//! A TCP proxy for the network-cut test: forwards between an SDK client and the server until
//! it is cut, then behaves like a path that drops every packet (no FIN, no RST, nothing).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};

/// A TCP proxy on a thread of its own (dropping it closes every connection). While cut it
/// forwards nothing in either direction, new connections included, not even a close, and
/// closes nothing. Healed, everything held flows again, as after a real outage.
pub struct Proxy {
    pub addr: SocketAddr,
    cut: watch::Sender<bool>,
    accepted: Arc<AtomicUsize>,
    _stop: oneshot::Sender<()>,
}

impl Proxy {
    pub fn start(upstream: SocketAddr) -> Proxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (cut, _) = watch::channel(false);
        let accepted = Arc::new(AtomicUsize::new(0));
        let (stop, stopped) = oneshot::channel::<()>();
        let (cuts, count) = (cut.clone(), accepted.clone());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        std::thread::spawn(move || {
            runtime.block_on(async move {
                let listener = TcpListener::from_std(listener).unwrap();
                let accepting = async {
                    while let Ok((client, _)) = listener.accept().await {
                        count.fetch_add(1, Ordering::SeqCst);
                        tokio::spawn(forward(client, upstream, cuts.subscribe()));
                    }
                };
                tokio::select! {
                    _ = stopped => {}
                    () = accepting => {}
                }
            });
            // Dropping the runtime closes every connection.
        });
        Proxy {
            addr,
            cut,
            accepted,
            _stop: stop,
        }
    }

    pub fn set_cut(&self, cut: bool) {
        self.cut.send_replace(cut);
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// One proxied connection; either direction ending closes both sockets.
async fn forward(client: TcpStream, upstream: SocketAddr, cut: watch::Receiver<bool>) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::select! {
        () = pump(client_read, server_write, cut.clone()) => {}
        () = pump(server_read, client_write, cut) => {}
    }
}

/// Copies `from` to `to`; what is read while the path is cut (bytes or the end of the
/// stream) is held until it heals.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut cut: watch::Receiver<bool>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let read = from.read(&mut buf).await;
        if cut.wait_for(|c| !*c).await.is_err() {
            return;
        }
        match read {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if to.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}
