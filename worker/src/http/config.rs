//! HTTP settings: every one a flag with an environment variable.

use std::time::Duration;

use clap::Args;

use crate::config::Secret;

#[derive(Args, Debug, Clone)]
pub struct HttpArgs {
    /// Requests per second each client may make to the API (sustained rate);
    /// 0 turns rate limiting off. A client is its bearer token when API_TOKENS
    /// is set, else its address (an IPv6 client by its /64).
    #[arg(long, env = "RATE_LIMIT_PER_SEC", default_value_t = 20)]
    pub rate_limit_per_sec: u32,
    /// Requests a client may make at once above the sustained rate.
    #[arg(long, env = "RATE_LIMIT_BURST", default_value_t = 40)]
    pub rate_limit_burst: u32,
    /// Clients the rate limiter remembers at most; past it, new clients share
    /// one bucket until idle ones are forgotten (memory stays bounded).
    #[arg(long, env = "RATE_LIMIT_MAX_CLIENTS", default_value_t = 100_000)]
    pub rate_limit_max_clients: usize,
    /// Bearer tokens accepted by the API, comma-separated (never logged). When
    /// empty the API is open; the page, health checks and metrics always are.
    #[arg(long, env = "API_TOKENS", default_value = "", hide_env_values = true)]
    pub api_tokens: Secret,
    /// Proxies whose X-Forwarded-For is believed, comma-separated IPs or CIDRs
    /// (e.g. `10.0.0.0/8,127.0.0.1`). Empty: the peer address is the client.
    #[arg(long, env = "TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: String,
    /// Origins allowed to call the API from a browser (CORS), comma-separated,
    /// e.g. `https://app.example.com`. Empty: same-origin only.
    #[arg(long, env = "CORS_ORIGINS", default_value = "")]
    pub cors_origins: String,
    /// Largest request body in bytes; bigger ones get 413 before being read whole.
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 256 * 1024)]
    pub max_body_bytes: usize,
    /// Most texts in one request (413 above).
    #[arg(long, env = "MAX_TEXTS_PER_REQUEST", default_value_t = 64)]
    pub max_texts_per_request: usize,
    /// Longest text in characters (413 above); the model reads only its first
    /// MAX_SEQ_LEN tokens anyway.
    #[arg(long, env = "MAX_TEXT_CHARS", default_value_t = 10_000)]
    pub max_text_chars: usize,
    /// Longest an API request may take, body upload included, in milliseconds (then 503).
    #[arg(long, env = "REQUEST_TIMEOUT_MS", default_value_t = 10_000)]
    pub request_timeout_ms: u64,
    /// Longest a client may take to send a request's headers, in milliseconds;
    /// then its connection is closed (an idle keep-alive connection's too).
    #[arg(long, env = "HEADER_TIMEOUT_MS", default_value_t = 30_000)]
    pub header_timeout_ms: u64,
    /// API requests served at once; more get 503 at once instead of queueing.
    #[arg(long, env = "MAX_CONCURRENT_REQUESTS", default_value_t = 128)]
    pub max_concurrent_requests: usize,
}

impl HttpArgs {
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    pub fn header_timeout(&self) -> Duration {
        Duration::from_millis(self.header_timeout_ms)
    }

    /// The configured tokens, blanks dropped.
    pub fn tokens(&self) -> Vec<String> {
        split_list(self.api_tokens.expose())
    }

    pub fn origins(&self) -> Vec<String> {
        split_list(&self.cors_origins)
    }
}

pub fn split_list(s: &str) -> Vec<String> {
    s.split(',').map(str::trim).filter(|t| !t.is_empty()).map(String::from).collect()
}

impl Default for HttpArgs {
    /// The documented defaults (tests and embedders start from these).
    fn default() -> Self {
        Self {
            rate_limit_per_sec: 20,
            rate_limit_burst: 40,
            rate_limit_max_clients: 100_000,
            api_tokens: "".parse().unwrap_or_else(|e: std::convert::Infallible| match e {}),
            trusted_proxies: String::new(),
            cors_origins: String::new(),
            max_body_bytes: 256 * 1024,
            max_texts_per_request: 64,
            max_text_chars: 10_000,
            request_timeout_ms: 10_000,
            header_timeout_ms: 30_000,
            max_concurrent_requests: 128,
        }
    }
}
