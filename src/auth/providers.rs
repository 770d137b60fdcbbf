//! Sign-in through external providers: any OpenID Connect issuer (discovery, code flow with
//! PKCE, state and nonce, ID token checked against the issuer's keys), GitLab (OIDC), and the
//! GitHub and Discord OAuth2 presets (profile read from their APIs).
//!
//! A flow spans two requests. Its state (PKCE verifier, nonce, what it is for) is kept
//! server-side as a ceremony; the browser holds the handle both in the `state` parameter and
//! in a cookie, and the callback needs both to match.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreProviderMetadata, CoreUserInfoClaims,
};
use openidconnect::{
    AccessToken, AsyncHttpClient, AuthorizationCode, ClientId, ClientSecret, CsrfToken,
    HttpRequest, HttpResponse, IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;

use super::{Auth, AuthError, ClientMeta, Opened, add, now, tokens};
use crate::config::{ProviderConfig, ProviderKind};
use crate::db::DbError;
use crate::db::accounts::User;
use crate::db::signin::{Ceremony, Identity};

/// How long a person has at the provider before the flow expires.
const FLOW_LIFETIME: Duration = Duration::from_secs(10 * 60);
/// Discovery documents (and the keys in them) are fetched again after this.
const METADATA_TTL: Duration = Duration::from_secs(10 * 60);
const CEREMONY_KIND: &str = "provider";

/// What the sign-in page shows: one button per provider.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ProviderInfo {
    pub id: String,
    pub name: String,
    /// `oidc`, `github`, `gitlab` or `discord`.
    pub kind: String,
}

/// Who the provider says the person is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalProfile {
    /// The provider's stable id of the person.
    pub subject: String,
    pub email: Option<String>,
    /// The provider vouches that the person owns `email`.
    pub email_verified: bool,
    /// A username to start from when an account is created.
    pub username_hint: Option<String>,
    pub display: String,
}

/// Why a flow was started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intent {
    /// Sign in (or create an account).
    SignIn,
    /// Link the provider account to this signed-in user.
    Link { user_id: String },
}

#[derive(Debug, Serialize, Deserialize)]
struct FlowState {
    provider: String,
    pkce_verifier: String,
    nonce: String,
    link_user: Option<String>,
    return_to: String,
}

/// A flow just started: send the browser to `redirect`, and keep `handle` in a cookie.
#[derive(Debug)]
pub struct Started {
    pub redirect: String,
    pub handle: String,
}

/// How a flow ended.
#[derive(Debug)]
pub enum Finished {
    SignedIn {
        opened: Box<Opened>,
        return_to: String,
    },
    Linked {
        return_to: String,
    },
}

struct Provider {
    cfg: ProviderConfig,
    name: String,
    redirect: RedirectUrl,
    metadata: RwLock<Option<(Instant, Arc<CoreProviderMetadata>)>>,
}

/// The configured providers.
pub struct Providers {
    list: Vec<Provider>,
    http: std::sync::OnceLock<Http>,
}

impl Providers {
    pub fn new(cfgs: &[ProviderConfig], public_url: &str) -> Result<Self, AuthError> {
        let mut list = Vec::new();
        for cfg in cfgs {
            let redirect = RedirectUrl::new(format!(
                "{public_url}api/v1/auth/providers/{}/callback",
                cfg.id
            ))
            .map_err(|e| AuthError::Internal(format!("provider {}: {e}", cfg.id)))?;
            let name = if cfg.name.trim().is_empty() {
                match cfg.kind {
                    ProviderKind::Github => "GitHub".to_string(),
                    ProviderKind::Gitlab => "GitLab".to_string(),
                    ProviderKind::Discord => "Discord".to_string(),
                    ProviderKind::Oidc => cfg.id.clone(),
                }
            } else {
                cfg.name.trim().to_string()
            };
            list.push(Provider {
                cfg: cfg.clone(),
                name,
                redirect,
                metadata: RwLock::new(None),
            });
        }
        Ok(Self {
            list,
            http: std::sync::OnceLock::new(),
        })
    }

    fn get(&self, id: &str) -> Result<&Provider, AuthError> {
        self.list
            .iter()
            .find(|p| p.cfg.id == id)
            .ok_or_else(|| AuthError::NoSuchProvider(id.chars().take(40).collect()))
    }

    fn http(&self) -> Result<&Http, AuthError> {
        if let Some(h) = self.http.get() {
            return Ok(h);
        }
        // Built on first need: loading the system's CA roots costs start-up time.
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(15))
            .user_agent(concat!("demiurge/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| AuthError::Internal(format!("http client: {e}")))?;
        Ok(self.http.get_or_init(|| Http(client)))
    }
}

/// Issuer of a kind that uses OpenID Connect, if it does.
fn oidc_issuer(cfg: &ProviderConfig) -> Option<String> {
    match cfg.kind {
        ProviderKind::Oidc => Some(cfg.issuer.trim().to_string()),
        ProviderKind::Gitlab if cfg.issuer.trim().is_empty() => Some("https://gitlab.com".into()),
        ProviderKind::Gitlab => Some(cfg.issuer.trim().to_string()),
        ProviderKind::Github | ProviderKind::Discord => None,
    }
}

/// OAuth2 endpoints of the presets that are not OIDC: (authorize, token, scopes).
fn oauth2_endpoints(kind: ProviderKind) -> (&'static str, &'static str, &'static [&'static str]) {
    match kind {
        ProviderKind::Discord => (
            "https://discord.com/oauth2/authorize",
            "https://discord.com/api/oauth2/token",
            &["identify", "email"],
        ),
        _ => (
            "https://github.com/login/oauth/authorize",
            "https://github.com/login/oauth/access_token",
            &["read:user", "user:email"],
        ),
    }
}

impl Provider {
    async fn metadata(&self, http: &Http) -> Result<Arc<CoreProviderMetadata>, AuthError> {
        if let Some((at, m)) = self.metadata.read().await.as_ref()
            && at.elapsed() < METADATA_TTL
        {
            return Ok(m.clone());
        }
        let issuer = oidc_issuer(&self.cfg)
            .ok_or_else(|| AuthError::Internal("not an OIDC provider".into()))?;
        let issuer = IssuerUrl::new(issuer).map_err(|e| AuthError::Internal(e.to_string()))?;
        let m = CoreProviderMetadata::discover_async(issuer, http)
            .await
            .map_err(|e| {
                tracing::warn!(provider = %self.cfg.id, error = %e, "OIDC discovery failed");
                AuthError::Unavailable(format!(
                    "the sign-in provider `{}` cannot be reached; try again later",
                    self.name
                ))
            })?;
        let m = Arc::new(m);
        *self.metadata.write().await = Some((Instant::now(), m.clone()));
        Ok(m)
    }

    fn secret(&self) -> Option<ClientSecret> {
        (!self.cfg.client_secret.is_empty())
            .then(|| ClientSecret::new(self.cfg.client_secret.clone()))
    }

    fn scopes(&self, base: &[&str]) -> Vec<Scope> {
        base.iter()
            .map(|s| s.to_string())
            .chain(self.cfg.scopes.iter().cloned())
            .map(Scope::new)
            .collect()
    }

    /// The provider's authorization URL for a new flow.
    async fn authorize_url(
        &self,
        http: &Http,
        handle: &str,
        challenge: PkceCodeChallenge,
        nonce: &str,
    ) -> Result<String, AuthError> {
        let state = handle.to_string();
        let nonce = nonce.to_string();
        if oidc_issuer(&self.cfg).is_some() {
            let m = self.metadata(http).await?;
            let client = CoreClient::from_provider_metadata(
                (*m).clone(),
                ClientId::new(self.cfg.client_id.clone()),
                self.secret(),
            )
            .set_redirect_uri(self.redirect.clone());
            let (url, _, _) = client
                .authorize_url(
                    CoreAuthenticationFlow::AuthorizationCode,
                    move || CsrfToken::new(state),
                    move || Nonce::new(nonce),
                )
                .add_scopes(self.scopes(&["email", "profile"]))
                .set_pkce_challenge(challenge)
                .url();
            return Ok(url.to_string());
        }
        let client = self.oauth2_client()?;
        let (_, _, scopes) = oauth2_endpoints(self.cfg.kind);
        let (url, _) = client
            .authorize_url(move || CsrfToken::new(state))
            .add_scopes(self.scopes(scopes))
            .set_pkce_challenge(challenge)
            .url();
        Ok(url.to_string())
    }

    fn oauth2_client(
        &self,
    ) -> Result<
        oauth2::basic::BasicClient<
            oauth2::EndpointSet,
            oauth2::EndpointNotSet,
            oauth2::EndpointNotSet,
            oauth2::EndpointNotSet,
            oauth2::EndpointSet,
        >,
        AuthError,
    > {
        let (auth, token, _) = oauth2_endpoints(self.cfg.kind);
        let bad = |e: oauth2::url::ParseError| AuthError::Internal(e.to_string());
        let mut c =
            oauth2::basic::BasicClient::new(oauth2::ClientId::new(self.cfg.client_id.clone()))
                .set_auth_uri(oauth2::AuthUrl::new(auth.into()).map_err(bad)?)
                .set_token_uri(oauth2::TokenUrl::new(token.into()).map_err(bad)?)
                .set_redirect_uri(
                    oauth2::RedirectUrl::new(self.redirect.to_string()).map_err(bad)?,
                );
        if !self.cfg.client_secret.is_empty() {
            c = c.set_client_secret(oauth2::ClientSecret::new(self.cfg.client_secret.clone()));
        }
        Ok(c)
    }

    /// Exchanges the code and reads the person's profile.
    async fn finish(
        &self,
        http: &Http,
        code: &str,
        verifier: &str,
        nonce: &str,
    ) -> Result<ExternalProfile, AuthError> {
        let failed = |what: &str, e: &dyn std::fmt::Display| {
            tracing::warn!(provider = %self.cfg.id, error = %e, "{what} failed");
            AuthError::ProviderFailed(format!("{what} failed"))
        };
        if oidc_issuer(&self.cfg).is_some() {
            let m = self.metadata(http).await?;
            let client = CoreClient::from_provider_metadata(
                (*m).clone(),
                ClientId::new(self.cfg.client_id.clone()),
                self.secret(),
            )
            .set_redirect_uri(self.redirect.clone());
            let token = client
                .exchange_code(AuthorizationCode::new(code.to_string()))
                .map_err(|e| failed("the code exchange", &e))?
                .set_pkce_verifier(PkceCodeVerifier::new(verifier.to_string()))
                .request_async(http)
                .await
                .map_err(|e| failed("the code exchange", &e))?;
            let id_token = token
                .id_token()
                .ok_or_else(|| AuthError::ProviderFailed("no ID token in the answer".into()))?;
            let claims = id_token
                .claims(&client.id_token_verifier(), &Nonce::new(nonce.to_string()))
                .map_err(|e| failed("the ID token check", &e))?;
            let mut profile = ExternalProfile {
                subject: claims.subject().to_string(),
                email: claims.email().map(|e| e.to_string()),
                email_verified: claims.email_verified().unwrap_or(false),
                username_hint: claims.preferred_username().map(|u| u.to_string()),
                display: claims
                    .name()
                    .and_then(|n| n.get(None))
                    .map(|n| n.to_string())
                    .unwrap_or_default(),
            };
            // Many providers put only `sub` in the ID token; the rest is in userinfo.
            if let Ok(req) =
                client.user_info(token.access_token().clone(), Some(claims.subject().clone()))
            {
                let info: CoreUserInfoClaims = req
                    .request_async(http)
                    .await
                    .map_err(|e| failed("reading the profile", &e))?;
                if profile.email.is_none() {
                    profile.email = info.email().map(|e| e.to_string());
                    profile.email_verified = info.email_verified().unwrap_or(false);
                }
                if profile.username_hint.is_none() {
                    profile.username_hint = info.preferred_username().map(|u| u.to_string());
                }
                if profile.display.is_empty() {
                    profile.display = info
                        .name()
                        .and_then(|n| n.get(None))
                        .map(|n| n.to_string())
                        .unwrap_or_default();
                }
            }
            if profile.display.is_empty() {
                profile.display = profile
                    .username_hint
                    .clone()
                    .or_else(|| profile.email.clone())
                    .unwrap_or_else(|| profile.subject.clone());
            }
            return Ok(profile);
        }
        let token = self
            .oauth2_client()?
            .exchange_code(oauth2::AuthorizationCode::new(code.to_string()))
            .set_pkce_verifier(oauth2::PkceCodeVerifier::new(verifier.to_string()))
            .request_async(http)
            .await
            .map_err(|e| failed("the code exchange", &e))?;
        let access = token.access_token();
        match self.cfg.kind {
            ProviderKind::Discord => {
                let me = http
                    .get_json("https://discord.com/api/users/@me", access)
                    .await
                    .map_err(|e| failed("reading the profile", &e))?;
                discord_profile(&me)
            }
            _ => {
                let me = http
                    .get_json("https://api.github.com/user", access)
                    .await
                    .map_err(|e| failed("reading the profile", &e))?;
                let emails = http
                    .get_json("https://api.github.com/user/emails", access)
                    .await
                    .map_err(|e| failed("reading the email addresses", &e))?;
                github_profile(&me, &emails)
            }
        }
    }
}

/// Maps GitHub's `/user` and `/user/emails` answers: the primary verified address.
pub fn github_profile(
    me: &serde_json::Value,
    emails: &serde_json::Value,
) -> Result<ExternalProfile, AuthError> {
    let id = me
        .get("id")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| AuthError::ProviderFailed("GitHub sent no user id".into()))?;
    let login = me.get("login").and_then(|v| v.as_str()).map(str::to_string);
    let primary = emails.as_array().and_then(|list| {
        list.iter()
            .find(|e| e.get("primary").and_then(|v| v.as_bool()) == Some(true))
            .or_else(|| list.first())
    });
    let email = primary
        .and_then(|e| e.get("email"))
        .and_then(|v| v.as_str())
        .map(str::to_string);
    let verified = primary
        .and_then(|e| e.get("verified"))
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    let display = me
        .get("name")
        .and_then(|v| v.as_str())
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .or_else(|| login.clone())
        .unwrap_or_else(|| id.to_string());
    Ok(ExternalProfile {
        subject: id.to_string(),
        email,
        email_verified: verified,
        username_hint: login,
        display,
    })
}

/// Maps Discord's `/users/@me` answer.
pub fn discord_profile(me: &serde_json::Value) -> Result<ExternalProfile, AuthError> {
    let id = me
        .get("id")
        .and_then(|v| v.as_str())
        .ok_or_else(|| AuthError::ProviderFailed("Discord sent no user id".into()))?;
    let username = me
        .get("username")
        .and_then(|v| v.as_str())
        .map(str::to_string);
    let display = me
        .get("global_name")
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .or_else(|| username.clone())
        .unwrap_or_else(|| id.to_string());
    Ok(ExternalProfile {
        subject: id.to_string(),
        email: me.get("email").and_then(|v| v.as_str()).map(str::to_string),
        email_verified: me
            .get("verified")
            .and_then(|v| v.as_bool())
            .unwrap_or(false),
        username_hint: username,
        display,
    })
}

/// A username made from a provider's hint: allowed characters only, 3 to 32 long.
pub fn username_from_hint(hint: &str) -> String {
    let mut u: String = hint
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        .skip_while(|c| !c.is_ascii_alphanumeric())
        .take(28)
        .collect();
    while u.len() < 3 {
        u.push('0');
    }
    u
}

/// Only a path on this site: never another origin (no open redirect).
pub fn safe_return_to(r: Option<&str>) -> String {
    match r {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p.contains('\\')
                && p.len() <= 512
                && !p.chars().any(char::is_control) =>
        {
            p.to_string()
        }
        _ => "/".to_string(),
    }
}

impl Auth {
    pub fn providers(&self) -> Vec<ProviderInfo> {
        self.providers
            .list
            .iter()
            .map(|p| ProviderInfo {
                id: p.cfg.id.clone(),
                name: p.name.clone(),
                kind: format!("{:?}", p.cfg.kind).to_lowercase(),
            })
            .collect()
    }

    /// Starts a flow at provider `id`.
    pub async fn provider_start(
        &self,
        id: &str,
        intent: Intent,
        return_to: Option<&str>,
    ) -> Result<Started, AuthError> {
        let p = self.providers.get(id)?;
        let http = self.providers.http()?;
        let (handle, handle_hash) = tokens::new_token();
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (nonce, _) = tokens::new_token();
        let redirect = p.authorize_url(http, &handle, challenge, &nonce).await?;
        let link_user = match intent {
            Intent::SignIn => None,
            Intent::Link { user_id } => Some(user_id),
        };
        let state = FlowState {
            provider: id.to_string(),
            pkce_verifier: verifier.secret().clone(),
            nonce,
            link_user: link_user.clone(),
            return_to: safe_return_to(return_to),
        };
        let t = now();
        self.db
            .insert_ceremony(
                &Ceremony {
                    handle_hash,
                    kind: CEREMONY_KIND.into(),
                    user_id: link_user,
                    state: serde_json::to_string(&state)
                        .map_err(|e| AuthError::Internal(e.to_string()))?,
                    expires_at: add(t, FLOW_LIFETIME),
                },
                t,
            )
            .await?;
        Ok(Started { redirect, handle })
    }

    /// Ends a flow: `state` from the callback URL must equal `cookie_handle`.
    pub async fn provider_finish(
        &self,
        id: &str,
        state: &str,
        cookie_handle: Option<&str>,
        code: &str,
        meta: &ClientMeta,
    ) -> Result<Finished, AuthError> {
        let expired = || {
            AuthError::ProviderFailed(
                "the sign-in took too long or was started in another browser; start again".into(),
            )
        };
        if state.is_empty() || state.len() > 128 || cookie_handle != Some(state) {
            return Err(expired());
        }
        let t = now();
        let ceremony = self
            .db
            .take_ceremony(&tokens::hash(state), CEREMONY_KIND, t)
            .await?
            .ok_or_else(expired)?;
        let flow: FlowState = serde_json::from_str(&ceremony.state).map_err(|_| expired())?;
        if flow.provider != id {
            return Err(expired());
        }
        let p = self.providers.get(id)?;
        let http = self.providers.http()?;
        let profile = p
            .finish(http, code, &flow.pkce_verifier, &flow.nonce)
            .await?;
        let existing = self.db.identity_with_user(id, &profile.subject).await?;
        if let Some(user_id) = flow.link_user {
            return match existing {
                Some((_, u)) if u.id == user_id => Ok(Finished::Linked {
                    return_to: flow.return_to,
                }),
                Some(_) => Err(AuthError::AlreadyLinked(p.name.clone())),
                None => {
                    self.insert_identity(id, &user_id, &profile).await?;
                    tracing::info!(user = %user_id, provider = id, "provider account linked");
                    if let Some(owner) = self.db.user_by_id(&user_id).await? {
                        self.tell_owner(&owner, &format!("a {} account was linked", p.name));
                    }
                    Ok(Finished::Linked {
                        return_to: flow.return_to,
                    })
                }
            };
        }
        let user = match existing {
            Some((identity, user)) => {
                self.db.touch_identity(&identity.id, t).await?;
                user
            }
            None => self.first_provider_sign_in(p, &profile).await?,
        };
        let second = self.totp_enabled(&user.id).await?;
        tracing::info!(user = %user.id, provider = id, "signed in through a provider");
        Ok(Finished::SignedIn {
            opened: Box::new(self.open_session(user, meta, second).await?),
            return_to: flow.return_to,
        })
    }

    async fn insert_identity(
        &self,
        provider: &str,
        user_id: &str,
        profile: &ExternalProfile,
    ) -> Result<(), AuthError> {
        let t = now();
        self.db
            .insert_identity(&Identity {
                id: tokens::public_id(),
                user_id: user_id.to_string(),
                provider: provider.to_string(),
                subject: profile.subject.clone(),
                email: profile.email.clone(),
                display: profile.display.chars().take(200).collect(),
                created_at: t,
                last_login_at: Some(t),
            })
            .await
            .map_err(|e| match e {
                DbError::Conflict(_) => AuthError::AlreadyLinked(provider.to_string()),
                other => other.into(),
            })
    }

    /// A provider account seen for the first time: link it by verified email (if allowed)
    /// or create an account.
    async fn first_provider_sign_in(
        &self,
        p: &Provider,
        profile: &ExternalProfile,
    ) -> Result<User, AuthError> {
        let email = profile.email.clone().ok_or_else(|| {
            AuthError::ProviderFailed(format!("{} did not share an email address", p.name))
        })?;
        if let Some(user) = self.db.user_by_email(&super::login_key(&email)).await? {
            // Both sides must vouch for the address: the provider, and the account itself
            // (an unverified local address may belong to someone who merely typed it).
            if profile.email_verified && user.email_verified && self.config.link_by_verified_email {
                self.insert_identity(&p.cfg.id, &user.id, profile).await?;
                tracing::info!(user = %user.id, provider = %p.cfg.id, "provider account linked by verified email");
                return Ok(user);
            }
            return Err(AuthError::NotLinked(p.name.clone()));
        }
        let users = self.db.count_users().await?;
        if users == 0 {
            // The first account is made with the setup code, on the sign-up page.
            return Err(AuthError::SetupCodeRequired);
        }
        if !self.instance.open_signup() {
            return Err(AuthError::SignupClosed);
        }
        let base = username_from_hint(
            profile
                .username_hint
                .as_deref()
                .or_else(|| email.split('@').next())
                .unwrap_or("user"),
        );
        let display = Some(profile.display.as_str());
        let mut attempt = 0u32;
        let user = loop {
            let username = if attempt == 0 {
                base.clone()
            } else {
                format!("{base}-{}", tokens::public_id().get(..4).unwrap_or("x"))
            };
            match self
                .insert_account(&username, &email, display, None, profile.email_verified)
                .await
            {
                Ok(u) => break u,
                Err(AuthError::AccountExists) if attempt < 5 => attempt += 1,
                Err(e) => return Err(e),
            }
        };
        self.insert_identity(&p.cfg.id, &user.id, profile).await?;
        Ok(user)
    }

    pub async fn identities(&self, user_id: &str) -> Result<Vec<Identity>, AuthError> {
        Ok(self.db.identities_of(user_id).await?)
    }

    /// Unlinks a provider account, if another way to sign in remains (a password, a passkey
    /// or another linked provider).
    pub async fn unlink_identity(&self, user: &User, id: &str) -> Result<(), AuthError> {
        let mine = self.db.identities_of(&user.id).await?;
        if !mine.iter().any(|i| i.id == id) {
            return Err(AuthError::NoSuchIdentity);
        }
        let others = mine.len() - 1;
        let passkeys = self.db.passkeys_of(&user.id).await?.len();
        if user.password_hash.is_none() && others == 0 && passkeys == 0 {
            return Err(AuthError::LastSignInMethod);
        }
        match self.db.delete_identity(&user.id, id).await {
            Ok(()) => Ok(()),
            Err(DbError::NotFound) => Err(AuthError::NoSuchIdentity),
            Err(e) => Err(e.into()),
        }
    }
}

/// The HTTP client the OIDC and OAuth2 libraries use: no redirects followed (a token
/// endpoint that redirects is refused), bounded time.
pub struct Http(reqwest::Client);

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpError(String);

impl Http {
    async fn get_json(
        &self,
        url: &str,
        token: &AccessToken,
    ) -> Result<serde_json::Value, HttpError> {
        let resp = self
            .0
            .get(url)
            .bearer_auth(token.secret())
            .header("Accept", "application/json")
            .send()
            .await
            .map_err(|e| HttpError(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(HttpError(format!("{url} answered {}", resp.status())));
        }
        resp.json().await.map_err(|e| HttpError(e.to_string()))
    }
}

impl<'c> AsyncHttpClient<'c> for Http {
    type Error = HttpError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let req = reqwest::Request::try_from(request).map_err(|e| HttpError(e.to_string()))?;
            let resp = self
                .0
                .execute(req)
                .await
                .map_err(|e| HttpError(e.to_string()))?;
            let mut builder = http::Response::builder().status(resp.status());
            for (k, v) in resp.headers() {
                builder = builder.header(k, v);
            }
            const MAX: usize = 1024 * 1024;
            if resp.content_length().is_some_and(|l| l as usize > MAX) {
                return Err(HttpError("answer too large".into()));
            }
            let body = resp.bytes().await.map_err(|e| HttpError(e.to_string()))?;
            if body.len() > MAX {
                return Err(HttpError("answer too large".into()));
            }
            builder
                .body(body.to_vec())
                .map_err(|e| HttpError(e.to_string()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_primary_verified_email() {
        let me = serde_json::json!({"id": 583231, "login": "octocat", "name": "The Octocat"});
        let emails = serde_json::json!([
            {"email": "old@example.com", "primary": false, "verified": true},
            {"email": "octocat@github.com", "primary": true, "verified": true}
        ]);
        let p = github_profile(&me, &emails).unwrap();
        assert_eq!(p.subject, "583231");
        assert_eq!(p.email.as_deref(), Some("octocat@github.com"));
        assert!(p.email_verified);
        assert_eq!(p.username_hint.as_deref(), Some("octocat"));
        assert_eq!(p.display, "The Octocat");
        let unverified =
            serde_json::json!([{"email": "x@y.z", "primary": true, "verified": false}]);
        assert!(!github_profile(&me, &unverified).unwrap().email_verified);
        assert!(github_profile(&serde_json::json!({}), &emails).is_err());
    }

    #[test]
    fn discord_profile_fields() {
        let me = serde_json::json!({"id": "80351110224678912", "username": "nelly",
            "global_name": "Nelly", "email": "nelly@discord.com", "verified": true});
        let p = discord_profile(&me).unwrap();
        assert_eq!(p.subject, "80351110224678912");
        assert_eq!(p.display, "Nelly");
        assert!(p.email_verified);
        assert!(discord_profile(&serde_json::json!({"username": "x"})).is_err());
    }

    #[test]
    fn usernames_from_hints() {
        assert_eq!(username_from_hint("Octo Cat!"), "octocat");
        assert_eq!(username_from_hint("__x"), "x00");
        assert_eq!(username_from_hint("é"), "000");
        assert_eq!(username_from_hint(&"a".repeat(50)).len(), 28);
    }

    #[test]
    fn return_to_stays_on_site() {
        assert_eq!(safe_return_to(Some("/settings?x=1")), "/settings?x=1");
        for bad in [
            "//evil.example",
            "https://evil.example/",
            "/\\evil",
            "/\t/evil.example",
            "/\r\n/evil.example",
            "",
            "x",
        ] {
            assert_eq!(safe_return_to(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_return_to(None), "/");
    }
}
