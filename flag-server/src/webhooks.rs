//! Webhooks (contract section 7): signing, the SSRF rules, and delivery.
//!
//! A change that notifies writes its deliveries into the `webhook_deliveries` outbox in the
//! same transaction as the change, so a notification is never lost and never delays the
//! write. The delivery task (on the leading replica) claims due deliveries in a write before
//! it sends them, so no delivery is sent twice even when the lead moves; one whose sender
//! died mid-attempt is given up with a message saying so. It sends them in the background, signed with HMAC-SHA256, retried
//! with exponential backoff, and records every attempt for `GET /api/v1/webhooks/{id}/deliveries`.
//!
//! SSRF: link-local and cloud metadata addresses are always refused; loopback and private
//! ranges only when the operator allows them. The URL is checked when it is saved and again
//! before every send, on the addresses it resolves to then, and the request goes to exactly
//! the address that was checked. Redirects are not followed (a 3xx is a failed attempt).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::Notify;

use crate::store::webhooks::{self as store, Delivery};
use crate::store::{Leadership, Store};

/// The header carrying the signature: `sha256=<hex HMAC-SHA256 of the body>`.
pub const SIGNATURE_HEADER: &str = "X-Flag-Signature";
/// Attempts per delivery before it is given up.
pub const MAX_ATTEMPTS: u32 = 6;
/// The first retry's delay; each next one doubles it (1 s, 2 s, 4 s, ...).
pub const FIRST_RETRY: Duration = Duration::from_secs(1);
/// The longest the delivery task sleeps between looks at the outbox.
const OUTBOX_POLL: Duration = Duration::from_secs(1);
/// How long one attempt may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// The value of [`SIGNATURE_HEADER`] for `body`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Why an address may not receive webhooks, or `None` when it may.
pub fn refused(ip: IpAddr, allow_private: bool) -> Option<&'static str> {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    let (always, private) = match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    };
    if let Some(why) = always {
        return Some(why);
    }
    match private {
        Some(why) if !allow_private => Some(why),
        _ => None,
    }
}

/// (always refused, refused unless private addresses are allowed)
fn classify_v4(ip: Ipv4Addr) -> (Option<&'static str>, Option<&'static str>) {
    let o = ip.octets();
    let always = if ip.is_link_local() {
        Some("a link-local or cloud metadata address")
    } else if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || o[0] == 0 {
        Some("not a unicast address")
    } else {
        None
    };
    let private = if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_private() || (o[0] == 100 && (64..128).contains(&o[1])) {
        Some("a private address")
    } else {
        None
    };
    (always, private)
}

fn classify_v6(ip: Ipv6Addr) -> (Option<&'static str>, Option<&'static str>) {
    let first = ip.segments()[0];
    let always = if (first & 0xffc0) == 0xfe80 {
        Some("a link-local address")
    } else if ip.segments()[..4] == [0xfd00, 0x0ec2, 0, 0] {
        Some("a cloud metadata address")
    } else if ip.is_unspecified() || ip.is_multicast() {
        Some("not a unicast address")
    } else {
        None
    };
    let private = if ip.is_loopback() {
        Some("a loopback address")
    } else if (first & 0xfe00) == 0xfc00 {
        Some("a private address")
    } else {
        None
    };
    (always, private)
}

/// Checks a webhook URL: http(s), a host, and every address it resolves to allowed.
/// Returns the first allowed address to send to.
pub async fn check_url(
    url: &str,
    allow_private: bool,
) -> Result<(reqwest::Url, SocketAddr), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("must be an http or https URL".into());
    }
    let host = parsed.host_str().ok_or("must name a host")?.to_owned();
    let port = parsed.port_or_known_default().unwrap_or(443);
    let host_for_lookup = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host_for_lookup.as_str(), port))
        .await
        .map_err(|e| format!("cannot resolve `{host}`: {e}"))?
        .collect();
    if addrs.is_empty() {
        return Err(format!("`{host}` resolves to no address"));
    }
    for addr in &addrs {
        if let Some(why) = refused(addr.ip(), allow_private) {
            let hint = if why.contains("private") || why.contains("loopback") {
                " (the operator can allow it with --webhook-allow-private)"
            } else {
                ""
            };
            return Err(format!("`{host}` resolves to {}, {why}{hint}", addr.ip()));
        }
    }
    Ok((parsed, addrs[0]))
}

/// Wakes the delivery task when new deliveries are queued.
#[derive(Debug, Default)]
pub struct Outbox {
    wake: Notify,
}

impl Outbox {
    /// Tells the delivery task to look at the outbox now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

/// Runs until the process ends: sends due deliveries, sleeps until the next retry is due.
pub async fn run(
    store: Store,
    mut leadership: Leadership,
    outbox: Arc<Outbox>,
    allow_private: bool,
) {
    let client = match reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(ATTEMPT_TIMEOUT)
        .build()
    {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "webhooks disabled: cannot build the HTTP client");
            return;
        }
    };
    let mut leading = false;
    loop {
        // One replica sends (see `store::Leadership`); the others wait their turn.
        leading &= leadership.leads();
        leadership.acquired().await;
        if !leading {
            // What the last sender took and never finished is not sent again.
            match store.write(store::give_up_interrupted).await {
                Ok(0) => leading = true,
                Ok(n) => {
                    tracing::warn!(deliveries = n, "webhooks: interrupted deliveries given up");
                    leading = true;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "webhooks: cannot settle interrupted deliveries")
                }
            }
        }
        let now = crate::clock::now_millis();
        let due = store.read(move |conn| store::due(conn, now)).await;
        let wait = match due {
            Ok((due, next)) => {
                if due && leading {
                    let claimed = store.write(move |ctx| store::claim(ctx, now)).await;
                    for delivery in claimed.unwrap_or_else(|e| {
                        tracing::warn!(error = %e, "webhooks: cannot claim deliveries");
                        Vec::new()
                    }) {
                        attempt(&store, &client, delivery, allow_private).await;
                    }
                }
                // Changes made outside the API handlers (none wake us) are picked up
                // within OUTBOX_POLL; a queued retry is picked up when due.
                next.map_or(OUTBOX_POLL, |at| {
                    Duration::from_millis(at.saturating_sub(now).max(0) as u64).min(OUTBOX_POLL)
                })
            }
            Err(e) => {
                tracing::warn!(error = %e, "webhooks: cannot read the outbox");
                FIRST_RETRY
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = outbox.wake.notified() => {}
        }
    }
}

async fn attempt(store: &Store, client: &reqwest::Client, d: Delivery, allow_private: bool) {
    let outcome = send(client, &d, allow_private).await;
    let attempts = d.attempts + 1;
    match &outcome {
        Ok(status) => tracing::info!(
            webhook = d.webhook_id,
            event = d.event,
            status,
            "webhook delivered"
        ),
        Err(e) => {
            tracing::warn!(webhook = d.webhook_id, event = d.event, attempts, error = %e, "webhook attempt failed")
        }
    }
    let retry_at = (outcome.is_err() && attempts < MAX_ATTEMPTS).then(|| {
        crate::clock::now_millis()
            + (FIRST_RETRY.as_millis() as i64) * (1i64 << (attempts - 1).min(20))
    });
    let (id, result) = (d.id, outcome.map_err(|e| e.to_string()));
    if let Err(e) = store
        .write(move |ctx| store::record_attempt(ctx, id, attempts, result, retry_at))
        .await
    {
        tracing::warn!(error = %e, "webhooks: cannot record an attempt");
    }
}

/// One attempt: check the address again, sign, POST to the checked address.
async fn send(client: &reqwest::Client, d: &Delivery, allow_private: bool) -> Result<u16, String> {
    let (url, addr) = check_url(&d.url, allow_private).await?;
    let host = url.host_str().unwrap_or_default().to_owned();
    // Send to the address just checked, whatever DNS answers next (no rebinding).
    let pinned = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(ATTEMPT_TIMEOUT)
        .resolve(&host, addr)
        .build()
        .unwrap_or_else(|_| client.clone());
    let response = pinned
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(SIGNATURE_HEADER, signature(&d.secret, d.payload.as_bytes()))
        .header("X-Flag-Event", &d.event)
        .body(d.payload.clone())
        .send()
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    let status = response.status();
    if status.is_success() {
        Ok(status.as_u16())
    } else if status.is_redirection() {
        Err(format!("answered {status}; redirects are not followed"))
    } else {
        Err(format!("answered {status}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn link_local_and_metadata_are_always_refused() {
        for ip in [
            "169.254.169.254",
            "169.254.1.1",
            "fe80::1",
            "fd00:ec2::254",
            "0.0.0.0",
            "::ffff:169.254.169.254",
        ] {
            assert!(refused(ip.parse().unwrap(), true).is_some(), "{ip}");
        }
    }

    #[test]
    fn private_and_loopback_need_the_operator() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "::1",
            "fd12::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(refused(ip.parse().unwrap(), false).is_some(), "{ip}");
            assert!(refused(ip.parse().unwrap(), true).is_none(), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:4700::1111"] {
            assert!(refused(ip.parse().unwrap(), false).is_none(), "{ip}");
        }
    }

    #[tokio::test]
    async fn urls_are_checked_on_their_resolved_addresses() {
        assert!(check_url("ftp://example.com/", true)
            .await
            .unwrap_err()
            .contains("http"));
        assert!(check_url("not a url", true).await.is_err());
        let err = check_url("http://169.254.169.254/latest/meta-data", true)
            .await
            .unwrap_err();
        assert!(err.contains("metadata"), "{err}");
        let err = check_url("http://127.0.0.1:9/hook", false)
            .await
            .unwrap_err();
        assert!(err.contains("--webhook-allow-private"), "{err}");
        let (_, addr) = check_url("http://127.0.0.1:9/hook", true).await.unwrap();
        assert_eq!(addr, "127.0.0.1:9".parse().unwrap());
        let err = check_url("http://localhost:9/", false).await.unwrap_err();
        assert!(err.contains("loopback"), "{err}");
    }
}
