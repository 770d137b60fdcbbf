//! Rate limits on the credential endpoints, per client address and per account, kept in
//! memory (governor's GCRA). Past a limit the answer is 429 with `Retry-After`.

use crate::code::ErrorCode;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::ApiError;
use crate::config::{AuthConfig, Rate};

/// One keyed limit.
pub struct Limit {
    name: &'static str,
    limiter: DefaultKeyedRateLimiter<String>,
    checks: AtomicU64,
}

impl Limit {
    fn new(name: &'static str, rate: Rate) -> Self {
        let burst = NonZeroU32::new(rate.burst).unwrap_or(NonZeroU32::MIN);
        let per_cell = rate.period / burst.get();
        let quota = Quota::with_period(per_cell)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst);
        Self {
            name,
            limiter: RateLimiter::keyed(quota),
            checks: AtomicU64::new(0),
        }
    }

    /// Counts one attempt for `key`; Err(429) when the limit is spent.
    pub fn check(&self, key: &str) -> Result<(), ApiError> {
        // Forget idle keys now and then, so the table does not grow without bound.
        if self.checks.fetch_add(1, Ordering::Relaxed) % 4096 == 4095 {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        self.limiter
            .check_key(&key.to_string())
            .map_err(|not_until| {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                tracing::info!(limit = self.name, "rate limit reached");
                let retry_after_secs = wait.as_secs().max(1);
                ApiError::TooManyRequests {
                    code: ErrorCode::RateLimited,
                    message: format!("too many attempts; try again in {retry_after_secs} s"),
                    retry_after_secs,
                }
            })
    }
}

/// Every limit of the app.
pub struct RateLimits {
    pub login_ip: Limit,
    pub login_account: Limit,
    pub signup_ip: Limit,
    pub password_account: Limit,
    pub second_factor_account: Limit,
    pub email_link_ip: Limit,
    pub email_link_address: Limit,
    pub invite_user: Limit,
    pub invite_org: Limit,
}

impl RateLimits {
    pub fn new(cfg: &AuthConfig) -> Self {
        Self {
            login_ip: Limit::new("login per address", cfg.login_rate),
            login_account: Limit::new("login per account", cfg.login_rate),
            signup_ip: Limit::new("sign-up per address", cfg.signup_rate),
            password_account: Limit::new("password change per account", cfg.password_rate),
            second_factor_account: Limit::new("second factor per account", cfg.login_rate),
            email_link_ip: Limit::new("email link per address", cfg.email_link_rate),
            email_link_address: Limit::new("email link per email", cfg.email_link_rate),
            invite_user: Limit::new("invitations per person", cfg.invitation_rate),
            invite_org: Limit::new("invitations per organization", cfg.invitation_rate),
        }
    }
}
