//! The API's protections, in the order a request meets them: bearer token
//! (401, compared in constant time; refusals count against the address's
//! rate; admin endpoints take only admin tokens, 403 when there are none),
//! rate limit per client (429 with
//! Retry-After), concurrency bound (503 at once rather than a queue), and a
//! timeout over the whole request, body upload included (503).
//!
//! The limiter's memory is bounded: idle clients are forgotten every
//! [`CLEAN_EVERY`], and past `max_clients` new clients share one bucket.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

use super::client::{client_addr, limiter_addr, ClientKey, IpNet};
use super::endpoint::Access;
use super::error::ApiError;
use crate::config::{split_list, HttpArgs};

pub const CLEAN_EVERY: Duration = Duration::from_secs(10);

pub struct Guard {
    /// SHA-256 of each token: equal lengths, so comparing leaks nothing, and
    /// the tokens themselves are not kept.
    token_digests: Vec<[u8; 32]>,
    admin_digests: Vec<[u8; 32]>,
    limiter: Option<DefaultKeyedRateLimiter<ClientKey>>,
    max_clients: usize,
    proxies: Vec<IpNet>,
    concurrency: Arc<Semaphore>,
    timeout: Duration,
    born: Instant,
    last_clean_ms: AtomicU64,
}

impl Guard {
    pub fn new(args: &HttpArgs) -> anyhow::Result<Self> {
        let proxies = split_list(&args.trusted_proxies)
            .iter()
            .map(|p| p.parse::<IpNet>().map_err(|e| anyhow::anyhow!("TRUSTED_PROXIES: {e}")))
            .collect::<anyhow::Result<_>>()?;
        let limiter = NonZeroU32::new(args.rate_limit_per_sec).map(|rate| {
            let burst = NonZeroU32::new(args.rate_limit_burst).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        anyhow::ensure!(args.max_concurrent_requests > 0, "MAX_CONCURRENT_REQUESTS must be at least 1");
        Ok(Self {
            token_digests: args.tokens().iter().map(|t| digest(t.as_bytes())).collect(),
            admin_digests: args.admin_tokens().iter().map(|t| digest(t.as_bytes())).collect(),
            limiter,
            max_clients: args.rate_limit_max_clients.max(1),
            proxies,
            concurrency: Arc::new(Semaphore::new(args.max_concurrent_requests)),
            timeout: args.request_timeout(),
            born: Instant::now(),
            last_clean_ms: AtomicU64::new(0),
        })
    }

    /// The index of the presented token, `None` if API tokens are off; 401 if
    /// wrong or missing. Admin endpoints need an admin token (403 when none is set).
    fn authenticate(&self, req: &Request, access: Access) -> Result<Option<usize>, ApiError> {
        let digests = match access {
            Access::Admin if self.admin_digests.is_empty() => return Err(ApiError::AdminDisabled),
            Access::Admin => &self.admin_digests,
            Access::Api | Access::Public => &self.token_digests,
        };
        if digests.is_empty() {
            return Ok(None);
        }
        let presented = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .ok_or(ApiError::Unauthorized)?;
        let presented = digest(presented.trim().as_bytes());
        // Look at every token, whatever matches, so timing says nothing.
        let mut found = None;
        for (i, d) in digests.iter().enumerate() {
            if bool::from(d.ct_eq(&presented)) {
                found = Some(i);
            }
        }
        found.map(Some).ok_or(ApiError::Unauthorized)
    }

    fn check_rate(&self, key: ClientKey) -> Result<(), ApiError> {
        let Some(limiter) = &self.limiter else { return Ok(()) };
        self.clean_if_due(limiter);
        let key = if limiter.len() >= self.max_clients { ClientKey::Overflow } else { key };
        limiter
            .check_key(&key)
            .map_err(|not_until| ApiError::RateLimited(not_until.wait_time_from(DefaultClock::default().now())))
    }

    /// Forgets clients whose bucket is full again, at most once per CLEAN_EVERY
    /// (or sooner when the limiter is at its bound).
    fn clean_if_due(&self, limiter: &DefaultKeyedRateLimiter<ClientKey>) {
        let now = self.born.elapsed().as_millis() as u64;
        let last = self.last_clean_ms.load(Ordering::Relaxed);
        let every = if limiter.len() >= self.max_clients { 1000 } else { CLEAN_EVERY.as_millis() as u64 };
        if now.saturating_sub(last) >= every
            && self.last_clean_ms.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
        {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    /// Clients the limiter remembers now.
    pub fn tracked_clients(&self) -> usize {
        self.limiter.as_ref().map_or(0, |l| l.len())
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// The middleware around every API route.
pub async fn protect(State(guard): State<Arc<Guard>>, req: Request, next: Next) -> Response {
    guarded(guard, Access::Api, req, next).await
}

/// The middleware around every admin route.
pub async fn protect_admin(State(guard): State<Arc<Guard>>, req: Request, next: Next) -> Response {
    guarded(guard, Access::Admin, req, next).await
}

async fn guarded(guard: Arc<Guard>, access: Access, req: Request, next: Next) -> Response {
    let addr = ClientKey::Addr(limiter_addr(client_addr(&req, &guard.proxies)));
    let token = match guard.authenticate(&req, access) {
        Ok(t) => t,
        // A refused token counts against the address too, so guessing tokens is rate limited.
        Err(e) => return guard.check_rate(addr).err().unwrap_or(e).into_response(),
    };
    // Admin tokens are few and trusted: their callers are limited by address.
    let key = match (access, token) {
        (Access::Api, Some(index)) => ClientKey::Token(index),
        _ => addr,
    };
    if let Err(e) = guard.check_rate(key) {
        return e.into_response();
    }
    let Ok(_permit) = guard.concurrency.clone().try_acquire_owned() else {
        return ApiError::Unavailable("too many requests in progress; retry shortly").into_response();
    };
    match tokio::time::timeout(guard.timeout, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::Timeout.into_response(),
    }
}
