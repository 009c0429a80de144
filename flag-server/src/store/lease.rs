//! Which replica runs the background work that must run once (the release scheduler and the
//! webhook sender): on PostgreSQL, the one whose dedicated session holds an advisory lock. The
//! lock dies with the session, so when a leader's process dies its PostgreSQL backend ends, the
//! lock is free, and another replica's next try (every [`TRY_EVERY`]) takes it. On SQLite the
//! process lock already makes this server the only one: it always leads.

use std::time::Duration;

use tokio::sync::watch;

/// The advisory lock's key ("flag" 2).
const LEADER_LOCK: i64 = 0x666c_6167_0002;
/// How often a follower tries to take the lock, and a leader checks its session.
pub const TRY_EVERY: Duration = Duration::from_secs(2);

/// Whether this replica leads now; cheap to clone.
#[derive(Clone, Debug)]
pub struct Leadership {
    leads: watch::Receiver<bool>,
    /// Other replicas may write: what they plan (a schedule, a release) is not announced to
    /// this one's background tasks.
    shared: bool,
}

impl Leadership {
    /// Leads for the life of the process (SQLite).
    pub fn always() -> Leadership {
        let (tx, leads) = watch::channel(true);
        // Never dropped: the receiver keeps seeing `true`.
        std::mem::forget(tx);
        Leadership {
            leads,
            shared: false,
        }
    }

    /// Campaigns on the PostgreSQL database at `url` from a thread of its own.
    pub fn campaign(url: String) -> std::io::Result<Leadership> {
        let (tx, leads) = watch::channel(false);
        std::thread::Builder::new()
            .name("leader-lease".into())
            .spawn(move || hold(&url, &tx))?;
        Ok(Leadership {
            leads,
            shared: true,
        })
    }

    /// Whether other replicas share the database (PostgreSQL): the leader then looks for
    /// work they planned every [`TRY_EVERY`] instead of waiting to be woken.
    pub fn shared(&self) -> bool {
        self.shared
    }

    /// Whether this replica leads now.
    pub fn leads(&self) -> bool {
        *self.leads.borrow()
    }

    /// Resolves once this replica leads (at once when it does).
    pub async fn acquired(&mut self) {
        let _ = self.leads.wait_for(|l| *l).await;
    }
}

/// Tries for the lock, holds it while the session lives, says so through `tx`; returns when
/// nobody listens any more.
fn hold(url: &str, tx: &watch::Sender<bool>) {
    while !tx.is_closed() {
        let mut client = match postgres::Client::connect(url, postgres::NoTls) {
            Ok(c) => c,
            Err(error) => {
                tracing::warn!(%error, "leader lease: cannot connect to PostgreSQL");
                std::thread::sleep(TRY_EVERY);
                continue;
            }
        };
        loop {
            let held = if *tx.borrow() {
                client.simple_query("SELECT 1").map(|_| true)
            } else {
                client
                    .query_one("SELECT pg_try_advisory_lock($1)", &[&LEADER_LOCK])
                    .map(|r| r.get::<_, bool>(0))
            };
            match held {
                Ok(leads) => {
                    if leads != *tx.borrow() {
                        tracing::info!(leads, "leader lease");
                        let _ = tx.send(leads);
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "leader lease: the session ended");
                    let _ = tx.send(false);
                    break;
                }
            }
            if tx.is_closed() {
                return;
            }
            std::thread::sleep(TRY_EVERY);
        }
    }
}
