//! Rate limits on the entry points anyone can reach without signing in
//! (DESIGN §8, §9 "rate limits on every entry point"): sign-in attempts, and
//! starting chats or offline questions. Per client address, a token bucket
//! per minute; over it, `429` with the API's error shape and `Retry-After`.
//! Signed-in traffic and the socket have their own limits elsewhere.

use crate::error::ApiError;
use crate::AppState;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header::RETRY_AFTER, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Instant;

/// Addresses tracked at most; beyond it the oldest-refilled are forgotten
/// (a flood of addresses cannot grow memory without bound).
const MAX_TRACKED: usize = 50_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Kind {
    Login,
    Start,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The buckets of every tracked address.
#[derive(Default)]
pub struct Limiter(Mutex<HashMap<(Kind, IpAddr), Bucket>>);

impl Limiter {
    /// Takes one token for `ip`; `Err(seconds to wait)` when there is none.
    fn take(&self, kind: Kind, ip: IpAddr, per_minute: u32) -> Result<(), u64> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_TRACKED {
            let now = Instant::now();
            map.retain(|_, b| now.duration_since(b.at).as_secs() < 60);
        }
        let rate = per_minute as f64 / 60.0;
        let now = Instant::now();
        let b = map.entry((kind, ip)).or_insert(Bucket { tokens: per_minute as f64, at: now });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * rate).min(per_minute as f64);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - b.tokens) / rate).ceil() as u64)
        }
    }
}

fn kind_of(method: &Method, path: &str) -> Option<Kind> {
    if method != Method::POST {
        return None;
    }
    if path == "/api/login" {
        return Some(Kind::Login);
    }
    let rest = path.strip_prefix("/api/libraries/")?;
    (rest.ends_with("/chats") || rest.ends_with("/questions")).then_some(Kind::Start)
}

/// The client's address: the peer, or behind a trusted proxy the last
/// address that proxy appended to `X-Forwarded-For`.
fn client_ip(req: &Request, trusted: &[IpAddr]) -> Option<IpAddr> {
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())?;
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    let forwarded = req
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .and_then(|v| v.trim().parse::<IpAddr>().ok());
    Some(forwarded.unwrap_or(peer))
}

/// The middleware.
pub async fn limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(kind) = kind_of(req.method(), req.uri().path()) else {
        return next.run(req).await;
    };
    let ip = client_ip(&req, &state.trusted_proxies);
    if let Some(ip) = ip {
        let per_minute = match kind {
            Kind::Login => state.app.limits.logins_per_minute,
            Kind::Start => state.app.limits.starts_per_minute,
        };
        if let Err(wait) = state.limiter.take(kind, ip, per_minute) {
            let err = ApiError {
                status: StatusCode::TOO_MANY_REQUESTS,
                code: "rate_limited",
                message: format!("too many attempts from your address; try again in {wait} s"),
            };
            return ([(RETRY_AFTER, wait.to_string())], err).into_response();
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_refuses_with_a_wait() {
        let l = Limiter::default();
        let ip: IpAddr = [127, 0, 0, 1].into();
        for _ in 0..3 {
            assert!(l.take(Kind::Login, ip, 3).is_ok());
        }
        let wait = l.take(Kind::Login, ip, 3).unwrap_err();
        assert!((1..=20).contains(&wait));
        assert!(l.take(Kind::Start, ip, 3).is_ok(), "each kind has its own bucket");
        assert!(l.take(Kind::Login, [10, 0, 0, 1].into(), 3).is_ok(), "and each address");
    }

    #[test]
    fn only_the_open_entry_points_are_limited() {
        assert_eq!(kind_of(&Method::POST, "/api/login"), Some(Kind::Login));
        assert_eq!(kind_of(&Method::POST, "/api/libraries/main/chats"), Some(Kind::Start));
        assert_eq!(kind_of(&Method::POST, "/api/libraries/main/questions"), Some(Kind::Start));
        assert_eq!(kind_of(&Method::GET, "/api/libraries/main/status"), None);
        assert_eq!(kind_of(&Method::POST, "/api/sessions/1/messages"), None);
    }
}
