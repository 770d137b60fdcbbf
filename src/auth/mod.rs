//! Who is this? Accounts, passwords and sign-in sessions.
//!
//! [`Auth`] is the one face: the HTTP layer calls it and maps [`AuthError`] to responses. It
//! holds no HTTP types; the database holds only hashes of secrets.

mod admin;
mod cache;
mod email_link;
pub mod lockout;
pub mod passkeys;
pub mod password;
pub mod providers;
pub mod setup;
pub use admin::{InstanceAdmin, MailTest, SignInReset};
pub mod tokens;
pub mod totp;

use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDateTime, Utc};

use crate::config::{AuthConfig, Config};
use crate::db::accounts::{ApiToken, NewUser, Session, User};
use crate::db::{Db, DbError};
use crate::mail::Mailer;

pub use self::email_link::{LinkPurpose, Redeemed};

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("sign-up is closed on this instance; ask an administrator for an account")]
    SignupClosed,
    /// The instance has no account yet: its first is made with the setup code.
    #[error(
        "this server has no accounts yet: its first account needs the setup code from the server's log (the command demiurge admin setup-code prints it again)"
    )]
    SetupCodeRequired,
    #[error(
        "that is not this server's setup code: it is in the server's log, and the command demiurge admin setup-code prints it again"
    )]
    InvalidSetupCode,
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("password: {0}")]
    WeakPassword(String),
    #[error("that username or email is already in use")]
    AccountExists,
    #[error("wrong username, email or password")]
    InvalidCredentials,
    #[error("not signed in, or the session has expired")]
    NotAuthenticated,
    #[error("no such session")]
    NoSuchSession,
    #[error("no such token")]
    NoSuchToken,
    #[error("this sign-in needs the second factor: POST /api/v1/auth/second-factor")]
    SecondFactorRequired,
    #[error("wrong or already used code")]
    InvalidCode,
    #[error(
        "too many wrong codes for this account; try again in {retry_after_secs} s (or sign in with a passkey)"
    )]
    SecondFactorLocked { retry_after_secs: u64 },
    #[error("two-factor authentication is already on; turn it off first")]
    TotpAlreadyEnabled,
    #[error("start the enrolment first (POST /api/v1/me/totp)")]
    TotpNotStarted,
    #[error("two-factor authentication is not on")]
    TotpNotEnabled,
    #[error("you already have a token with this name")]
    TokenNameTaken,
    #[error(
        "confirm it is you first: POST /api/v1/auth/reauthenticate with your password or a code (or sign in again)"
    )]
    ReauthenticationRequired,
    #[error("this needs a signed-in browser session, not a personal access token")]
    SessionRequired,
    #[error("this link is not valid: it was already used, has expired, or never existed")]
    InvalidLink,
    #[error("no sign-in provider `{0}`")]
    NoSuchProvider(String),
    #[error("the sign-in at the provider did not complete: {0}")]
    ProviderFailed(String),
    #[error(
        "no account is linked to this {0} account; sign in another way and link it from your account settings"
    )]
    NotLinked(String),
    #[error("this {0} account is already linked to an account")]
    AlreadyLinked(String),
    #[error("no such linked account")]
    NoSuchIdentity,
    #[error("keep at least one way to sign in: set a password or add a passkey first")]
    LastSignInMethod,
    #[error("the passkey ceremony failed: {0}")]
    PasskeyFailed(String),
    #[error("no such passkey")]
    NoSuchPasskey,
    #[error("you already have a passkey with this name")]
    PasskeyNameTaken,
    #[error("{0}")]
    Unavailable(String),
    #[error("this account is disabled; ask the instance's administrator")]
    AccountDisabled,
    #[error("no such route")]
    NotAdmin,
    #[error("no such account")]
    NoSuchUser,
    #[error("an instance keeps at least one administrator who is not disabled")]
    LastAdmin,
    #[error("too many sign-ins at once; try again in a moment")]
    Busy,
    #[error("{0}")]
    Internal(String),
}

impl From<DbError> for AuthError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Conflict(_) => Self::AccountExists,
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<password::HashError> for AuthError {
    fn from(e: password::HashError) -> Self {
        match e {
            password::HashError::Busy => Self::Busy,
            other => Self::Internal(other.to_string()),
        }
    }
}

/// What a sign-up asks for.
#[derive(Debug, Clone)]
pub struct SignUp {
    pub username: String,
    pub email: String,
    pub display_name: Option<String>,
    pub password: String,
    /// An invitation link's token: with sign-up closed, it still admits the person it
    /// invites (an address-bound invitation only for that address).
    pub invitation: Option<String>,
}

/// Where a request came from, kept with its session.
#[derive(Debug, Clone, Default)]
pub struct ClientMeta {
    pub user_agent: String,
    pub ip: String,
}

/// A session just opened: the secret token goes to the client once.
#[derive(Debug, Clone)]
pub struct Opened {
    pub token: String,
    pub session: Session,
    pub user: User,
}

/// What a person needs to add the account to an authenticator app.
#[derive(Debug, Clone)]
pub struct TotpEnrolment {
    pub secret: String,
    pub otpauth_url: String,
    pub qr_svg: String,
}

#[derive(Clone)]
pub struct Auth {
    db: Db,
    config: Arc<AuthConfig>,
    mailer: Mailer,
    /// The public base URL (ends in `/`): emailed links and provider redirects start with it.
    public_url: Arc<str>,
    providers: Arc<providers::Providers>,
    /// Every new account gets a personal organization.
    orgs: crate::orgs::Orgs,
    /// None when the public URL has no host name (passkeys are off then).
    webauthn: Arc<Option<webauthn_rs::Webauthn>>,
    /// Made on first need (or by [`Auth::warm_up`]), so start-up does not wait for a hash.
    dummy_hash: Arc<tokio::sync::OnceCell<String>>,
    /// The instance's name (shown in mails, authenticator apps and passkey prompts) and
    /// whether sign-up is open.
    instance: crate::instance::Instance,
    cache: Arc<cache::CredentialCache>,
    /// Wrong second-factor codes, counted per account.
    lockouts: lockout::Lockouts,
    /// Seals TOTP secrets at rest (a key in the data directory).
    sealer: Arc<crate::sealed::Sealer>,
    /// When each session last proved its user again (password or code), by session id.
    reauthenticated: Arc<std::sync::Mutex<std::collections::HashMap<String, NaiveDateTime>>>,
    /// Where the first run's setup code is kept ([`setup`]).
    data_dir: Arc<std::path::Path>,
    audit: crate::audit::Audit,
}

/// After a password reset: what can still sign in to the account, for its owner to review.
#[derive(Debug, Clone)]
pub struct SignInReview {
    pub asked_at: NaiveDateTime,
    /// `(id, name)` of each passkey.
    pub passkeys: Vec<(String, String)>,
    /// `(id, provider, how the provider names the person)` of each linked account.
    pub identities: Vec<(String, String, String)>,
}

fn now() -> NaiveDateTime {
    Utc::now().naive_utc()
}

fn add(t: NaiveDateTime, d: Duration) -> NaiveDateTime {
    t + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::days(30))
}

/// Personal access tokens start with this, so secret scanners can find leaked ones.
pub const TOKEN_PREFIX: &str = "dmg_pat_";

/// A token just created: the secret goes to the client once.
#[derive(Debug, Clone)]
pub struct CreatedToken {
    pub token: String,
    pub record: ApiToken,
}

/// Writes of `last_seen_at` are skipped when the last one is this recent.
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// The key an email address or a login is looked up by: trimmed, ASCII letters lowercased and
/// nothing else. Unicode lowercasing would fold distinct addresses together (the Kelvin sign
/// `K` lowercases to `k`), so a provider vouching for one could sign in to the other.
pub fn login_key(s: &str) -> String {
    s.trim().to_ascii_lowercase()
}

/// Sign-ins waiting for their second step, per account, at most.
const MAX_PENDING: usize = 5;

fn locked(l: lockout::Locked) -> AuthError {
    AuthError::SecondFactorLocked {
        retry_after_secs: l.retry_after.as_secs().max(1),
    }
}

fn validate_username(u: &str) -> Result<(), AuthError> {
    let ok = (3..=32).contains(&u.len())
        && u.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        && u.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(AuthError::Invalid {
            field: "username",
            message: "3 to 32 letters, digits, `_`, `.` or `-`, starting with a letter or digit"
                .into(),
        })
    }
}

/// Whether `e` is an email address as every part of the server takes one (and the API
/// document's pattern says): at most 254 bytes, no spaces or control characters, one `@` with
/// something on both sides, a domain that does not start with `.`.
pub fn is_email_address(e: &str) -> bool {
    e.len() <= 254
        && !e.chars().any(|c| c.is_whitespace() || c.is_control())
        && e.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !domain.starts_with('.')
        })
}

fn validate_email(e: &str) -> Result<(), AuthError> {
    if is_email_address(e) {
        Ok(())
    } else {
        Err(AuthError::Invalid {
            field: "email",
            message: "not an email address".into(),
        })
    }
}

impl Auth {
    /// `orgs` gets every new account's personal organization.
    pub fn new(
        db: Db,
        cfg: &Config,
        mailer: Mailer,
        orgs: crate::orgs::Orgs,
        instance: crate::instance::Instance,
    ) -> Result<Self, AuthError> {
        let public_url = cfg.link_base();
        let webauthn = passkeys::build(&public_url, &cfg.server.name)?;
        if cfg.auth.password_hashes_at_once > 0 {
            password::limit_concurrency(cfg.auth.password_hashes_at_once);
        }
        let db_for_audit = db.clone();
        Ok(Self {
            db,
            config: Arc::new(cfg.auth.clone()),
            mailer,
            orgs,
            providers: Arc::new(providers::Providers::new(&cfg.auth.providers, &public_url)?),
            public_url: Arc::from(public_url),
            webauthn: Arc::new(webauthn),
            dummy_hash: Arc::default(),
            instance,
            cache: Arc::default(),
            lockouts: lockout::Lockouts::new(cfg.auth.second_factor_lockout),
            reauthenticated: Arc::default(),
            sealer: Arc::new(
                crate::sealed::Sealer::load_or_create(&cfg.server.data_dir)
                    .map_err(|e| AuthError::Internal(e.to_string()))?,
            ),
            data_dir: Arc::from(cfg.server.data_dir.as_path()),
            audit: crate::audit::Audit::new(db_for_audit),
        })
    }

    /// Changes whenever someone's sessions or tokens are revoked or their password changes:
    /// long-lived connections authenticate again.
    pub fn watch_revocations(&self) -> tokio::sync::watch::Receiver<u64> {
        self.cache.watch()
    }

    async fn dummy_hash(&self) -> &str {
        self.dummy_hash
            .get_or_init(|| async {
                tokio::task::spawn_blocking(password::dummy_hash)
                    .await
                    .unwrap_or_default()
            })
            .await
    }

    /// Does the one-time work (the dummy hash) ahead of the first sign-in.
    pub async fn warm_up(&self) {
        self.dummy_hash().await;
        if let Err(e) = self.seal_old_totp_secrets().await {
            tracing::warn!(error = %e, "older TOTP secrets not sealed yet");
        }
    }

    /// Seals the TOTP secrets written before sealing existed (once; later starts find none).
    async fn seal_old_totp_secrets(&self) -> Result<(), AuthError> {
        let rows = self.db.unsealed_totp(crate::sealed::PREFIX).await?;
        for row in &rows {
            let sealed = self
                .sealer
                .seal(&row.secret, &row.user_id)
                .map_err(|e| AuthError::Internal(e.to_string()))?;
            self.db
                .reseal_totp(&row.user_id, &row.secret, &sealed)
                .await?;
        }
        if !rows.is_empty() {
            tracing::info!(count = rows.len(), "sealed older TOTP secrets");
        }
        Ok(())
    }

    /// Creates an account (the first one on an instance is its admin).
    pub async fn create_user(&self, req: &SignUp) -> Result<User, AuthError> {
        validate_username(req.username.trim())?;
        validate_email(req.email.trim())?;
        if let Some(why) =
            password::policy_violation(&req.password, req.username.trim(), req.email.trim())
        {
            return Err(AuthError::WeakPassword(why));
        }
        let hash = password::hash(&req.password).await?;
        self.insert_account(
            &req.username,
            &req.email,
            req.display_name.as_deref(),
            Some(&hash),
            false,
        )
        .await
    }

    /// Changes the name others see (1 to 100 characters after trimming, none of them control
    /// characters).
    pub async fn set_display_name(&self, user: &User, name: &str) -> Result<User, AuthError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(AuthError::Invalid {
                field: "display_name",
                message: "1 to 100 characters, no control characters".into(),
            });
        }
        self.db.set_display_name(&user.id, name).await?;
        self.cache.forget_user(&user.id);
        self.db
            .user_by_id(&user.id)
            .await?
            .ok_or(AuthError::NotAuthenticated)
    }

    /// Inserts an account after checking its names; `password_hash` None for accounts that
    /// sign in another way (a provider, a passkey, an email link).
    async fn insert_account(
        &self,
        username: &str,
        email: &str,
        display_name: Option<&str>,
        password_hash: Option<&str>,
        email_verified: bool,
    ) -> Result<User, AuthError> {
        let username = username.trim();
        let email = email.trim();
        validate_username(username)?;
        validate_email(email)?;
        let display_name = display_name
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .unwrap_or(username);
        if display_name.chars().count() > 100 || display_name.chars().any(char::is_control) {
            return Err(AuthError::Invalid {
                field: "display_name",
                message: "at most 100 characters, no control characters".into(),
            });
        }
        let id = uuid::Uuid::new_v4().to_string();
        let (username_lower, email_lower) = (login_key(username), login_key(email));
        let user = self
            .db
            .insert_user(&NewUser {
                id: &id,
                username,
                username_lower: &username_lower,
                email,
                email_lower: &email_lower,
                display_name,
                password_hash,
                is_admin: false,
                created_at: now(),
                email_verified,
            })
            .await?;
        tracing::info!(user = %user.id, admin = user.is_admin, "account created");
        if user.is_admin {
            // The instance is claimed: its setup code is spent.
            setup::spend(&self.data_dir);
        }
        if let Err(e) = self.orgs.create_personal(&user).await {
            tracing::warn!(user = %user.id, error = %e, "personal organization not created");
        }
        Ok(user)
    }

    /// Whether the instance has no account yet (its first needs the setup code).
    pub async fn setup_needed(&self) -> Result<bool, AuthError> {
        Ok(self.db.count_users().await? == 0)
    }

    /// The setup code of an instance with no account (made and stored if there is none), for
    /// the log and `demiurge admin setup-code`; `None` once it has accounts (and the code is
    /// gone).
    pub async fn setup_code(&self) -> Result<Option<String>, AuthError> {
        if !self.setup_needed().await? {
            setup::spend(&self.data_dir);
            return Ok(None);
        }
        setup::ensure(&self.data_dir)
            .map(Some)
            .map_err(|e| AuthError::Internal(format!("setup code: {e}")))
    }

    /// Public sign-up: creates the account and signs it in. On an instance with no account,
    /// only with its setup code.
    pub async fn sign_up(
        &self,
        req: &SignUp,
        setup_code: Option<&str>,
        meta: &ClientMeta,
    ) -> Result<Opened, AuthError> {
        let users = self.db.count_users().await?;
        if users == 0 {
            match setup_code {
                None => return Err(AuthError::SetupCodeRequired),
                Some(c) if !setup::matches(&self.data_dir, c) => {
                    return Err(AuthError::InvalidSetupCode);
                }
                Some(_) => {}
            }
        } else if !self.instance.open_signup() {
            let invited = match req.invitation.as_deref() {
                Some(secret) => self
                    .orgs
                    .invitation_admits(secret, &req.email)
                    .await
                    .map_err(|e| AuthError::Internal(e.to_string()))?,
                None => false,
            };
            if !invited {
                return Err(AuthError::SignupClosed);
            }
        }
        let user = self.create_user(req).await?;
        self.open_session(user, meta, false).await
    }

    /// Password sign-in by username or email. A missing account costs the same time as a
    /// wrong password.
    pub async fn log_in(
        &self,
        login: &str,
        password: &str,
        meta: &ClientMeta,
    ) -> Result<Opened, AuthError> {
        if password.len() > password::MAX_BYTES || login.len() > 254 {
            return Err(AuthError::InvalidCredentials);
        }
        let user = self.db.user_by_login(&login_key(login)).await?;
        let stored = user.as_ref().and_then(|u| u.password_hash.clone());
        let ok = match &stored {
            Some(h) => password::verify(password, h).await?,
            None => {
                let _ = password::verify(password, self.dummy_hash().await).await?;
                false
            }
        };
        match user {
            Some(u) if ok => {
                let pending = self.totp_enabled(&u.id).await?;
                self.open_session(u, meta, pending).await
            }
            // The login as typed is never kept (it may be a password typed in the wrong
            // field): an event names the account only when the login matched one.
            Some(u) => {
                self.audit
                    .record(
                        crate::audit::Kind::SignInFailed,
                        None,
                        Some(&u.id),
                        &meta.ip,
                        format!("wrong password for {}", u.username),
                    )
                    .await;
                Err(AuthError::InvalidCredentials)
            }
            None => {
                self.audit
                    .record(
                        crate::audit::Kind::SignInFailed,
                        None,
                        None,
                        &meta.ip,
                        "a login that matches no account".into(),
                    )
                    .await;
                Err(AuthError::InvalidCredentials)
            }
        }
    }

    /// What sign-in attempts with `login` are counted under: the account's id when one has
    /// that username or email (so its username and its address share one limit), otherwise
    /// the login as typed, folded.
    pub async fn attempt_key(&self, login: &str) -> Result<String, AuthError> {
        let key = login_key(login);
        if key.len() > 254 {
            return Ok(key);
        }
        Ok(match self.db.user_by_login(&key).await? {
            Some(u) => format!("user:{}", u.id),
            None => format!("login:{key}"),
        })
    }

    /// Finishes a two-step sign-in: the pending session behind `token` plus a TOTP code or a
    /// recovery code give a new, full session (the pending one ends).
    pub async fn complete_second_factor(
        &self,
        token: &str,
        code: &str,
        meta: &ClientMeta,
    ) -> Result<Opened, AuthError> {
        let (session, user) = self.pending_session(token).await?;
        if let Err(e) = self.check_second_factor(&user, code).await {
            if matches!(
                e,
                AuthError::InvalidCode | AuthError::SecondFactorLocked { .. }
            ) {
                self.audit
                    .record(
                        crate::audit::Kind::SecondFactorFailed,
                        None,
                        Some(&user.id),
                        &meta.ip,
                        format!("a wrong second-step code for {}", user.username),
                    )
                    .await;
            }
            return Err(e);
        }
        let _ = self.db.delete_session(&user.id, &session.id).await;
        self.cache.forget_user(&user.id);
        self.open_session(user, meta, false).await
    }

    /// The session behind `token` if it awaits its second factor, and its user.
    async fn pending_session(&self, token: &str) -> Result<(Session, User), AuthError> {
        if token.is_empty() || token.len() > 128 {
            return Err(AuthError::NotAuthenticated);
        }
        let Some((session, user)) = self
            .db
            .session_with_user(&tokens::hash(token), now())
            .await?
        else {
            return Err(AuthError::NotAuthenticated);
        };
        if !session.pending_second_factor {
            return Err(AuthError::Invalid {
                field: "session",
                message: "this session has no second step pending".into(),
            });
        }
        Ok((session, user))
    }

    async fn pending_user(&self, token: &str) -> Result<User, AuthError> {
        Ok(self.pending_session(token).await?.1)
    }

    async fn open_session(
        &self,
        user: User,
        meta: &ClientMeta,
        pending: bool,
    ) -> Result<Opened, AuthError> {
        // Every way of signing in ends here: a disabled account gets no session.
        if user.disabled_at.is_some() {
            return Err(AuthError::AccountDisabled);
        }
        let (token, token_hash) = tokens::new_token();
        let t = now();
        let lifetime = if pending {
            self.end_extra_pending(&user.id, t).await?;
            self.config.second_factor_window
        } else {
            self.config.session_lifetime
        };
        let session = Session {
            id: tokens::public_id(),
            token_hash,
            user_id: user.id.clone(),
            created_at: t,
            last_seen_at: t,
            expires_at: add(t, lifetime),
            user_agent: meta.user_agent.chars().take(300).collect(),
            ip: meta.ip.clone(),
            pending_second_factor: pending,
        };
        self.db.insert_session(&session).await?;
        if !pending {
            self.audit
                .record(
                    crate::audit::Kind::SignIn,
                    Some(&user.id),
                    Some(&user.id),
                    &meta.ip,
                    format!("{} signed in", user.username),
                )
                .await;
        }
        Ok(Opened {
            token,
            session,
            user,
        })
    }

    /// Makes room for one more sign-in waiting for its second step: ends the account's
    /// expired ones, and the oldest beyond the newest `MAX_PENDING - 1`.
    async fn end_extra_pending(&self, user_id: &str, t: NaiveDateTime) -> Result<(), AuthError> {
        let pending: Vec<Session> = self
            .db
            .sessions_of(user_id)
            .await?
            .into_iter()
            .filter(|s| s.pending_second_factor)
            .collect();
        // Newest first.
        for (i, s) in pending.iter().enumerate() {
            if s.expires_at <= t || i + 1 >= MAX_PENDING {
                let _ = self.db.delete_session(user_id, &s.id).await;
            }
        }
        Ok(())
    }

    /// The session and user behind a token, if the session is alive (absolute and idle expiry).
    pub async fn authenticate(&self, token: &str) -> Result<(Session, User), AuthError> {
        if token.is_empty() || token.len() > 128 {
            return Err(AuthError::NotAuthenticated);
        }
        let t = now();
        let hash = tokens::hash(token);
        let (mut session, user) = match self.cache.get(&hash) {
            Some((user, cache::Cred::Session(s))) => (s, user),
            _ => {
                let fetched = std::time::Instant::now();
                let Some((s, user)) = self.db.session_with_user(&hash, t).await? else {
                    return Err(AuthError::NotAuthenticated);
                };
                self.cache.put(
                    &hash,
                    user.clone(),
                    cache::Cred::Session(s.clone()),
                    fetched,
                );
                (s, user)
            }
        };
        if session.expires_at <= t || user.disabled_at.is_some() {
            return Err(AuthError::NotAuthenticated);
        }
        if session.pending_second_factor {
            return Err(AuthError::SecondFactorRequired);
        }
        if add(session.last_seen_at, self.config.session_idle) <= t {
            let _ = self.db.delete_session(&session.user_id, &session.id).await;
            self.cache.forget_user(&session.user_id);
            return Err(AuthError::NotAuthenticated);
        }
        if add(session.last_seen_at, TOUCH_EVERY) <= t {
            self.db.touch_session(&session.id, t).await?;
            session.last_seen_at = t;
            self.cache
                .update(&hash, cache::Cred::Session(session.clone()));
        }
        Ok((session, user))
    }

    pub async fn sessions(&self, user_id: &str) -> Result<Vec<Session>, AuthError> {
        Ok(self.db.sessions_of(user_id).await?)
    }

    /// Revokes one of the user's sessions (logout is revoking the current one).
    /// Ends a session: the database first, then the cache (forgetting first would let a
    /// request in between cache the row again).
    pub async fn revoke(&self, user_id: &str, session_id: &str) -> Result<(), AuthError> {
        let deleted = self.db.delete_session(user_id, session_id).await;
        self.cache.forget_user(user_id);
        match deleted {
            Ok(()) => Ok(()),
            Err(DbError::NotFound) => Err(AuthError::NoSuchSession),
            Err(e) => Err(e.into()),
        }
    }

    /// Sets a new password for the account named by `login` (username or email) and ends all
    /// its sessions. For the operator (`demiurge admin reset-password`).
    pub async fn reset_password(&self, login: &str, new_password: &str) -> Result<User, AuthError> {
        let user = self
            .db
            .user_by_login(&login_key(login))
            .await?
            .ok_or_else(|| AuthError::Invalid {
                field: "user",
                message: format!("no account `{login}`"),
            })?;
        self.replace_password(&user, new_password, None).await?;
        self.end_tokens_after_reset(&user).await?;
        self.tell_owner(&user, "an administrator reset your password");
        Ok(user)
    }

    /// A reset means someone else may have had the account: its personal access tokens end
    /// too (passkeys and provider links stay; the notice asks the owner to review them).
    pub(crate) async fn end_tokens_after_reset(&self, user: &User) -> Result<(), AuthError> {
        let n = self.db.delete_api_tokens_of(&user.id).await?;
        self.cache.forget_user(&user.id);
        tracing::info!(user = %user.id, tokens_ended = n, "password reset ended the tokens");
        // Passkeys and provider accounts still sign in: their owner is asked about them.
        let passkeys = self.db.passkeys_of(&user.id).await?;
        let identities = self.db.identities_of(&user.id).await?;
        if !passkeys.is_empty() || !identities.is_empty() {
            self.db.ask_sign_in_review(&user.id, now()).await?;
        }
        Ok(())
    }

    /// The review a password reset asked for, while its owner has not answered it: when it
    /// was asked, and what can still sign in (passkeys, provider accounts).
    pub async fn sign_in_review(&self, user: &User) -> Result<Option<SignInReview>, AuthError> {
        let Some(asked_at) = self.db.sign_in_review(&user.id).await? else {
            return Ok(None);
        };
        let passkeys = self
            .db
            .passkeys_of(&user.id)
            .await?
            .into_iter()
            .map(|p| (p.id, p.name))
            .collect();
        let identities = self
            .db
            .identities_of(&user.id)
            .await?
            .into_iter()
            .map(|i| (i.id, i.provider, i.display))
            .collect();
        Ok(Some(SignInReview {
            asked_at,
            passkeys,
            identities,
        }))
    }

    /// The owner has looked at what can sign in (and removed what they did not recognise).
    pub async fn end_sign_in_review(&self, user: &User) -> Result<bool, AuthError> {
        let ended = self.db.end_sign_in_review(&user.id).await?;
        if ended {
            tracing::info!(user = %user.id, "sign-in methods reviewed after a reset");
        }
        Ok(ended)
    }

    /// The signed-in user changes their password: the current one must be right. Every other
    /// session of theirs ends.
    pub async fn change_password(
        &self,
        user: &User,
        current_session: Option<&str>,
        current_password: &str,
        new_password: &str,
        second_factor: Option<&str>,
    ) -> Result<(), AuthError> {
        let ok = match &user.password_hash {
            Some(h) if current_password.len() <= password::MAX_BYTES => {
                password::verify(current_password, h).await?
            }
            _ => false,
        };
        if !ok {
            return Err(AuthError::InvalidCredentials);
        }
        if self.totp_enabled(&user.id).await? {
            let code = second_factor.ok_or(AuthError::SecondFactorRequired)?;
            self.check_second_factor(user, code).await?;
        }
        self.replace_password(user, new_password, current_session)
            .await?;
        self.tell_owner(user, "your password was changed");
        Ok(())
    }

    async fn replace_password(
        &self,
        user: &User,
        new_password: &str,
        keep: Option<&str>,
    ) -> Result<(), AuthError> {
        if let Some(why) = password::policy_violation(new_password, &user.username, &user.email) {
            return Err(AuthError::WeakPassword(why));
        }
        let hash = password::hash(new_password).await?;
        self.db.set_password_hash(&user.id, &hash).await?;
        let ended = self.db.delete_other_sessions(&user.id, keep).await?;
        self.cache.forget_user(&user.id);
        tracing::info!(user = %user.id, sessions_ended = ended, "password changed");
        Ok(())
    }

    /// Whether `session` proved its user recently enough for a sensitive change (a new
    /// token, passkey or provider link, TOTP on): signed in, or confirmed again with a
    /// password or code, within `[auth] reauthentication_window`.
    pub fn recently_authenticated(&self, session: &Session) -> bool {
        let t = now();
        let recent = |at: NaiveDateTime| add(at, self.config.reauthentication_window) > t;
        recent(session.created_at)
            || self
                .reauthenticated
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(&session.id)
                .is_some_and(|at| recent(*at))
    }

    /// Confirms the session's user again, with their password or a TOTP or recovery code
    /// (counted against the same limits as signing in).
    pub async fn reauthenticate(
        &self,
        session: &Session,
        user: &User,
        password: Option<&str>,
        code: Option<&str>,
    ) -> Result<(), AuthError> {
        match (password, code) {
            (Some(pw), None) => {
                let ok = match &user.password_hash {
                    Some(h) if pw.len() <= password::MAX_BYTES => password::verify(pw, h).await?,
                    _ => false,
                };
                if !ok {
                    return Err(AuthError::InvalidCredentials);
                }
            }
            (None, Some(code)) => self.check_second_factor(user, code).await?,
            _ => {
                return Err(AuthError::Invalid {
                    field: "password",
                    message: "give either `password` or `code`".into(),
                });
            }
        }
        let t = now();
        let mut map = self
            .reauthenticated
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() > 10_000 {
            map.retain(|_, at| add(*at, self.config.reauthentication_window) > t);
        }
        map.insert(session.id.clone(), t);
        tracing::info!(user = %user.id, "reauthenticated");
        Ok(())
    }

    /// Tells the account's owner, by mail, of a change to how their account is reached.
    pub(crate) fn tell_owner(&self, user: &User, what: &str) {
        let mail = crate::mail::Mail {
            to: user.email.clone(),
            subject: format!("Your {} account: {what}", self.instance.name()),
            body: format!(
                "Hello {name},\n\nOn your account at {instance}: {what}.\n\n\
                 If this was you, nothing more is needed. If not, sign in, change your \
                 password, and review your sessions, tokens, passkeys and linked accounts in \
                 Settings.\n",
                name = user.display_name,
                instance = self.public_url,
            ),
        };
        let mailer = self.mailer.clone();
        tokio::spawn(async move {
            if let Err(e) = mailer.send(&mail).await {
                tracing::warn!(error = %e, "account notice not sent");
            }
        });
    }

    /// Creates a personal access token for `user_id`, optionally expiring.
    pub async fn create_token(
        &self,
        user_id: &str,
        name: &str,
        expires_in: Option<Duration>,
        meta: &ClientMeta,
    ) -> Result<CreatedToken, AuthError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
            return Err(AuthError::Invalid {
                field: "name",
                message: "1 to 64 characters, no control characters".into(),
            });
        }
        let (secret, _) = tokens::new_token();
        let token = format!("{TOKEN_PREFIX}{secret}");
        let t = now();
        let record = ApiToken {
            id: tokens::public_id(),
            user_id: user_id.to_string(),
            name: name.to_string(),
            token_hash: tokens::hash(&token),
            created_at: t,
            expires_at: expires_in.map(|d| add(t, d)),
            last_used_at: None,
        };
        match self.db.insert_api_token(&record).await {
            Ok(()) => {
                self.audit
                    .record(
                        crate::audit::Kind::TokenCreated,
                        Some(user_id),
                        Some(user_id),
                        &meta.ip,
                        format!("personal access token “{name}” created"),
                    )
                    .await;
                if let Some(owner) = self.db.user_by_id(user_id).await? {
                    self.tell_owner(
                        &owner,
                        &format!("a personal access token \"{name}\" was created"),
                    );
                }
                Ok(CreatedToken { token, record })
            }
            Err(DbError::Conflict(_)) => Err(AuthError::TokenNameTaken),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn tokens(&self, user_id: &str) -> Result<Vec<ApiToken>, AuthError> {
        Ok(self.db.api_tokens_of(user_id).await?)
    }

    pub async fn revoke_token(&self, user_id: &str, id: &str) -> Result<(), AuthError> {
        let deleted = self.db.delete_api_token(user_id, id).await;
        self.cache.forget_user(user_id);
        match deleted {
            Ok(()) => Ok(()),
            Err(DbError::NotFound) => Err(AuthError::NoSuchToken),
            Err(e) => Err(e.into()),
        }
    }

    /// The token and user behind a bearer token, if it is valid and unexpired.
    pub async fn authenticate_token(&self, token: &str) -> Result<(ApiToken, User), AuthError> {
        if !token.starts_with(TOKEN_PREFIX) || token.len() > 128 {
            return Err(AuthError::NotAuthenticated);
        }
        let t = now();
        let hash = tokens::hash(token);
        let (mut record, user) = match self.cache.get(&hash) {
            Some((user, cache::Cred::Token(r))) => (r, user),
            _ => {
                let fetched = std::time::Instant::now();
                let Some((r, user)) = self.db.api_token_with_user(&hash, t).await? else {
                    return Err(AuthError::NotAuthenticated);
                };
                self.cache
                    .put(&hash, user.clone(), cache::Cred::Token(r.clone()), fetched);
                (r, user)
            }
        };
        if record.expires_at.is_some_and(|e| e <= t) || user.disabled_at.is_some() {
            return Err(AuthError::NotAuthenticated);
        }
        if record
            .last_used_at
            .is_none_or(|last| add(last, TOUCH_EVERY) <= t)
        {
            self.db.touch_api_token(&record.id, t).await?;
            record.last_used_at = Some(t);
            self.cache.update(&hash, cache::Cred::Token(record.clone()));
        }
        Ok((record, user))
    }

    pub async fn totp_enabled(&self, user_id: &str) -> Result<bool, AuthError> {
        Ok(self.db.totp_of(user_id).await?.is_some_and(|t| t.enabled))
    }

    /// How many unused recovery codes the user has left.
    pub async fn recovery_codes_left(&self, user_id: &str) -> Result<i64, AuthError> {
        Ok(self.db.unused_recovery_codes(user_id).await?)
    }

    /// Starts a TOTP enrolment (a new secret each time, until it is confirmed).
    pub async fn totp_begin(&self, user: &User) -> Result<TotpEnrolment, AuthError> {
        if self.totp_enabled(&user.id).await? {
            return Err(AuthError::TotpAlreadyEnabled);
        }
        let secret = totp::new_secret();
        let t = totp::totp(&secret, &self.instance.name(), &user.username)
            .ok_or_else(|| AuthError::Internal("cannot build a TOTP".into()))?;
        self.db
            .put_pending_totp(&crate::db::accounts::TotpRow {
                user_id: user.id.clone(),
                secret: self
                    .sealer
                    .seal(&secret, &user.id)
                    .map_err(|e| AuthError::Internal(e.to_string()))?,
                enabled: false,
                last_step: 0,
                created_at: now(),
            })
            .await
            .map_err(|e| match e {
                DbError::Conflict(_) => AuthError::TotpAlreadyEnabled,
                other => other.into(),
            })?;
        let otpauth_url = totp::otpauth_url(&t);
        let qr_svg = totp::qr_svg(&otpauth_url);
        Ok(TotpEnrolment {
            secret,
            otpauth_url,
            qr_svg,
        })
    }

    /// Confirms the enrolment with a first code; returns the recovery codes (shown once).
    pub async fn totp_confirm(&self, user: &User, code: &str) -> Result<Vec<String>, AuthError> {
        let row = self
            .db
            .totp_of(&user.id)
            .await?
            .ok_or(AuthError::TotpNotStarted)?;
        if row.enabled {
            return Err(AuthError::TotpAlreadyEnabled);
        }
        self.check_totp_code(&row, user, code).await?;
        let codes = totp::new_recovery_codes();
        let hashes: Vec<(String, String)> = codes
            .iter()
            .map(|c| {
                (
                    tokens::public_id(),
                    tokens::hash(&totp::normalize_recovery_code(c)),
                )
            })
            .collect();
        self.db.enable_totp(&user.id, &hashes).await?;
        tracing::info!(user = %user.id, "two-factor authentication turned on");
        self.tell_owner(user, "two-factor authentication (TOTP) was turned on");
        Ok(codes)
    }

    /// Turns TOTP off; needs a current code (or a recovery code).
    pub async fn totp_disable(&self, user: &User, code: &str) -> Result<(), AuthError> {
        if !self.totp_enabled(&user.id).await? {
            return Err(AuthError::TotpNotEnabled);
        }
        self.check_second_factor(user, code).await?;
        self.db.disable_totp(&user.id).await?;
        tracing::info!(user = %user.id, "two-factor authentication turned off");
        self.tell_owner(user, "two-factor authentication (TOTP) was turned off");
        Ok(())
    }

    async fn check_totp_code(
        &self,
        row: &crate::db::accounts::TotpRow,
        user: &User,
        code: &str,
    ) -> Result<(), AuthError> {
        let secret = self
            .sealer
            .open(&row.secret, &user.id)
            .map_err(|e| AuthError::Internal(e.to_string()))?;
        let t = totp::totp(&secret, &self.instance.name(), &user.username)
            .ok_or_else(|| AuthError::Internal("stored TOTP secret is unreadable".into()))?;
        let step = totp::matching_step(&t, code).ok_or(AuthError::InvalidCode)?;
        let step = i64::try_from(step).map_err(|_| AuthError::InvalidCode)?;
        if self.db.claim_totp_step(&user.id, step).await? {
            Ok(())
        } else {
            Err(AuthError::InvalidCode)
        }
    }

    /// A 6-digit TOTP code, or else a recovery code (used up by this).
    /// Checks a TOTP or recovery code for `user`, counted against the account's lockout
    /// (whichever sign-in or settings page it came from).
    async fn check_second_factor(&self, user: &User, code: &str) -> Result<(), AuthError> {
        let attempt = self.lockouts.begin(&user.id).map_err(locked)?;
        match self.check_code(user, code).await {
            Ok(()) => {
                attempt.succeeded();
                Ok(())
            }
            Err(AuthError::InvalidCode) => match attempt.failed() {
                Some(lock) => {
                    tracing::warn!(user = %user.id, secs = lock.retry_after.as_secs(), "second factor locked after wrong codes");
                    Err(locked(lock))
                }
                None => Err(AuthError::InvalidCode),
            },
            Err(other) => Err(other),
        }
    }

    async fn check_code(&self, user: &User, code: &str) -> Result<(), AuthError> {
        let row = self
            .db
            .totp_of(&user.id)
            .await?
            .filter(|r| r.enabled)
            .ok_or(AuthError::TotpNotEnabled)?;
        let digits: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        if digits.len() == 6 && digits.bytes().all(|b| b.is_ascii_digit()) {
            return self.check_totp_code(&row, user, &digits).await;
        }
        let normalized = totp::normalize_recovery_code(code);
        if normalized.len() != 10 {
            return Err(AuthError::InvalidCode);
        }
        if self
            .db
            .use_recovery_code(&user.id, &tokens::hash(&normalized), now())
            .await?
        {
            tracing::info!(user = %user.id, "recovery code used");
            Ok(())
        } else {
            Err(AuthError::InvalidCode)
        }
    }

    /// Session cookies live as long as the session may.
    pub fn session_lifetime(&self) -> Duration {
        self.config.session_lifetime
    }
}
