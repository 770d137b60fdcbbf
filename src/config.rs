//! Typed configuration: TOML file, then `DEMIURGE_<SECTION>__<KEY>` environment overrides.
//!
//! Unknown keys and bad values are errors that name the key. Every key has a default, so
//! `demiurge serve` with no configuration at all runs on loopback with SQLite in `./data`.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use ipnet::Ipv4Net;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Prefix of environment overrides: `DEMIURGE_EDGE__HTTP=127.0.0.1:9000`.
pub const ENV_PREFIX: &str = "DEMIURGE_";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("configuration: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub edge: EdgeConfig,
    pub dns: DnsConfig,
    pub vpn: VpnConfig,
    pub acme: AcmeConfig,
    pub backup: BackupConfig,
    pub containers: ContainersConfig,
    pub auth: AuthConfig,
    pub mail: MailConfig,
    pub gateway: GatewayConfig,
    pub log: LogConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// The public domain name; container services live under `containers.<domain>`.
    pub domain: String,
    /// Where the database file (SQLite), keys and certificates are kept.
    pub data_dir: PathBuf,
    /// The instance name shown in the UI.
    pub name: String,
    /// The address people open, used in emailed links, provider redirects and passkeys
    /// ("https://demiurge.example.com/"). Empty: derived from the edge listeners and `domain`.
    /// Set it when a proxy or port mapping sits in front.
    pub public_url: String,
    /// Reverse proxies in front of this server ("10.0.0.0/8", "192.0.2.7/32"): a connection
    /// from one of these has its `X-Forwarded-For` (the last address that is not a trusted
    /// proxy), `X-Forwarded-Proto` and `X-Forwarded-Host` believed. Empty: no one's are.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            domain: "localhost".into(),
            data_dir: PathBuf::from("./data"),
            name: "Demiurge".into(),
            public_url: String::new(),
            trusted_proxies: Vec::new(),
        }
    }
}

/// `[gateway]`: the collaboration gateways and their project documents.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// An organization's gateway stops after this long with no project loaded.
    #[serde(with = "humantime_serde")]
    pub idle_stop: std::time::Duration,
    /// A project's document unloads (snapshot written, memory freed) after this long with no
    /// client and no event.
    #[serde(with = "humantime_serde")]
    pub project_idle_unload: std::time::Duration,
    /// Clients one project accepts; the next is closed with code 4429.
    pub max_clients_per_project: usize,
    /// Collaboration sockets one user (one account, whatever token) may hold open at once,
    /// over every project; the next is refused with 429 `too_many_sockets`.
    pub max_sockets_per_user: usize,
    /// Frames a slow client may fall behind by before it is closed (1013).
    pub client_buffer: usize,
    /// Largest a project's document may grow (bytes of stored updates since its snapshot
    /// included); past it, writes are refused (a client is closed with 4413, an event gets
    /// 409 `document_full`) and reading goes on.
    pub max_document_bytes: i64,
    /// How often module ticks run in a loaded project.
    #[serde(with = "humantime_serde")]
    pub tick: std::time::Duration,
    /// How often an idle client is pinged; one silent for two of these is closed.
    #[serde(with = "humantime_serde")]
    pub keepalive: std::time::Duration,
    /// A change waits at least this long for others to go out with it, as one merged frame per
    /// client (0: no minimum; `broadcast_budget` sets the wait in a busy room).
    #[serde(with = "humantime_serde")]
    pub broadcast_delay: std::time::Duration,
    /// Client frames per second one project aims to stay under: in a project with many clients
    /// a change waits `clients / broadcast_budget` for others to merge with (200 clients at
    /// 13,000: 15 ms), so a busy room gets bigger merged frames rather than more of them, and a
    /// small one waits for next to nothing.
    pub broadcast_budget: usize,
    /// The longest a change waits to be merged, whatever the room's size (the budget gives way).
    #[serde(with = "humantime_serde")]
    pub broadcast_max_delay: std::time::Duration,
    /// Log entries after which the log is folded into a snapshot.
    pub compact_after: usize,
    /// An automatic history point is saved after this long of activity.
    #[serde(with = "humantime_serde")]
    pub history_interval: std::time::Duration,
    /// Automatic history points kept per project (named ones are kept until deleted).
    pub history_keep: usize,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            idle_stop: std::time::Duration::from_secs(30 * 60),
            project_idle_unload: std::time::Duration::from_secs(5 * 60),
            max_clients_per_project: 500,
            max_sockets_per_user: 64,
            client_buffer: 1024,
            max_document_bytes: 256 * 1024 * 1024,
            tick: std::time::Duration::from_secs(1),
            keepalive: std::time::Duration::from_secs(30),
            broadcast_delay: std::time::Duration::ZERO,
            broadcast_budget: 13_000,
            broadcast_max_delay: std::time::Duration::from_millis(25),
            compact_after: 1000,
            history_interval: std::time::Duration::from_secs(10 * 60),
            history_keep: 50,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// Empty: SQLite file `demiurge.db` in data_dir. `sqlite://PATH` or `postgres://...`.
    pub url: String,
    /// Largest number of pooled connections.
    pub max_connections: Option<usize>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EdgeConfig {
    /// Plain HTTP listener of the front door.
    pub http: Listen,
    /// HTTPS listener; empty = off.
    pub https: Listen,
    /// Threads the edge runs on (accepting and routing connections, TLS handshakes, the
    /// proxy); 0 = one per core.
    pub threads: usize,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        Self {
            http: Listen::on(SocketAddr::from(([127, 0, 0, 1], 8080))),
            https: Listen::off(),
            threads: 0,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsConfig {
    /// UDP and TCP listener of the authoritative DNS server; empty = off.
    pub listen: Listen,
    /// The address the apex and `*.containers.<domain>` point at.
    pub public_ipv4: Ipv4Addr,
}

impl Default for DnsConfig {
    fn default() -> Self {
        Self {
            listen: Listen::on(SocketAddr::from(([127, 0, 0, 1], 5353))),
            public_ipv4: Ipv4Addr::LOCALHOST,
        }
    }
}

/// `[acme]`: certificates from an ACME certificate authority (Let's Encrypt by default).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AcmeConfig {
    /// The contact address given to the CA (expiry and policy notices). Empty: ACME is off
    /// and HTTPS serves the self-signed certificate. Setting it agrees to the CA's terms.
    pub email: String,
    /// The CA's directory URL, or `letsencrypt` / `letsencrypt-staging`.
    pub directory: String,
    /// A PEM file with the root certificate the directory's HTTPS is checked against, for a
    /// private CA; empty: the system's roots.
    pub ca_root: String,
    /// Also get `*.containers.<domain>` by DNS-01, answered from our own zone (the zone
    /// must be delegated to this server's DNS).
    pub wildcard: bool,
    /// The first retry after a failed order; each further failure doubles it, up to 6 hours.
    #[serde(with = "humantime_serde")]
    pub retry_after: std::time::Duration,
}

impl Default for AcmeConfig {
    fn default() -> Self {
        Self {
            email: String::new(),
            directory: "letsencrypt".into(),
            ca_root: String::new(),
            wildcard: true,
            retry_after: std::time::Duration::from_secs(60),
        }
    }
}

impl AcmeConfig {
    pub fn enabled(&self) -> bool {
        !self.email.trim().is_empty()
    }

    /// The directory URL, with the named CAs spelled out.
    pub fn directory_url(&self) -> String {
        match self.directory.trim() {
            "letsencrypt" | "" => "https://acme-v02.api.letsencrypt.org/directory".into(),
            "letsencrypt-staging" => {
                "https://acme-staging-v02.api.letsencrypt.org/directory".into()
            }
            other => other.to_string(),
        }
    }
}

/// `[containers]`: user containers and their agents.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContainersConfig {
    /// How long the one-time token of a `docker run` line works.
    #[serde(with = "humantime_serde")]
    pub enrollment_lifetime: std::time::Duration,
    /// How often agents report; three missed reports make a container stale.
    #[serde(with = "humantime_serde")]
    pub heartbeat: std::time::Duration,
}

impl Default for ContainersConfig {
    fn default() -> Self {
        Self {
            enrollment_lifetime: std::time::Duration::from_secs(15 * 60),
            heartbeat: std::time::Duration::from_secs(5),
        }
    }
}

/// `[backup]`: backups the server takes by itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackupConfig {
    /// How often; "0s" (the default) takes none.
    #[serde(with = "humantime_serde")]
    pub every: std::time::Duration,
    /// How many to keep; older ones are deleted after each new one.
    pub keep: usize,
    /// Where; empty: `<data_dir>/backups`.
    pub dir: String,
}

impl Default for BackupConfig {
    fn default() -> Self {
        Self {
            every: std::time::Duration::ZERO,
            keep: 7,
            dir: String::new(),
        }
    }
}

impl BackupConfig {
    pub fn dir(&self, data_dir: &Path) -> PathBuf {
        if self.dir.trim().is_empty() {
            data_dir.join("backups")
        } else {
            PathBuf::from(self.dir.trim())
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VpnConfig {
    /// UDP listener of the WireGuard endpoint; empty = off.
    pub listen: Listen,
    /// The tunnel network; the server takes its first address.
    #[serde(serialize_with = "ser_display", deserialize_with = "de_from_str")]
    pub subnet: Ipv4Net,
    /// `host:port` written into peer configurations; empty = derived from `listen`
    /// (with `server.domain` when `listen` is a wildcard address).
    pub endpoint: String,
}

impl Default for VpnConfig {
    fn default() -> Self {
        Self {
            listen: Listen::on(SocketAddr::from(([127, 0, 0, 1], 51820))),
            subnet: Ipv4Net::new(Ipv4Addr::new(10, 88, 0, 0), 16).unwrap_or_default(),
            endpoint: String::new(),
        }
    }
}

impl VpnConfig {
    /// The server's own address inside the tunnel: the first host of the subnet.
    pub fn server_address(&self) -> Ipv4Addr {
        let base = u32::from(self.subnet.network());
        Ipv4Addr::from(base.wrapping_add(1))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Anyone may create an account. When false, only the first account (the instance admin)
    /// can be made by sign-up; others come from an admin.
    pub open_signup: bool,
    /// A session unused this long ends ("14d", "12h").
    #[serde(with = "humantime_serde")]
    pub session_idle: std::time::Duration,
    /// A session ends this long after sign-in, used or not.
    #[serde(with = "humantime_serde")]
    pub session_lifetime: std::time::Duration,
    /// Sign-in attempts allowed per client address and per account: "10/1m" is a burst of 10,
    /// refilled over a minute.
    pub login_rate: Rate,
    /// A sign-in waiting for its second step (TOTP, a recovery code or a passkey) ends after
    /// this long; an account has at most a few such sign-ins at once.
    #[serde(with = "humantime_serde")]
    pub second_factor_window: std::time::Duration,
    /// After 5 wrong second-factor codes in a row an account's second step is locked this
    /// long, doubling with each further wrong code (up to 64 times this); a right code clears
    /// the count. Counted per account, across every pending sign-in.
    #[serde(with = "humantime_serde")]
    pub second_factor_lockout: std::time::Duration,
    /// A sensitive change (a new personal access token, passkey or provider link, turning
    /// TOTP on) needs a sign-in, or a confirmation with the password or a code, this recent.
    #[serde(with = "humantime_serde")]
    pub reauthentication_window: std::time::Duration,
    /// Password hashes (sign-ins, sign-ups, changes) run at once, each holding 19 MiB; four
    /// times as many may wait, and past them a request gets 503. 0: two per core.
    pub password_hashes_at_once: usize,
    /// Sign-ups allowed per client address.
    pub signup_rate: Rate,
    /// Password changes allowed per account.
    pub password_rate: Rate,
    /// Email-link requests allowed per client address and per address asked for.
    pub email_link_rate: Rate,
    /// Invitations allowed per inviting person and per organization.
    pub invitation_rate: Rate,
    /// An emailed link (sign-in, password reset, verification) works once, for this long.
    #[serde(with = "humantime_serde")]
    pub email_link_lifetime: std::time::Duration,
    /// A first sign-in through a provider that vouches for an email address (verified) is
    /// linked to the existing account with that address. Off: such a sign-in is refused, and
    /// the person links the provider from their account settings instead.
    pub link_by_verified_email: bool,
    /// External sign-in providers, each a `[[auth.providers]]` table.
    pub providers: Vec<ProviderConfig>,
}

/// An external sign-in provider.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Short name used in URLs and stored with linked accounts ("company", "github").
    pub id: String,
    pub kind: ProviderKind,
    /// The button label; defaults to the kind ("GitHub") or the id.
    #[serde(default)]
    pub name: String,
    /// OIDC issuer URL (discovery at `<issuer>/.well-known/openid-configuration`). Required
    /// for `oidc`; `gitlab` defaults to https://gitlab.com (set it for a self-hosted GitLab).
    #[serde(default)]
    pub issuer: String,
    pub client_id: String,
    #[serde(default)]
    pub client_secret: String,
    /// Extra scopes beyond what the kind needs.
    #[serde(default)]
    pub scopes: Vec<String>,
}

impl fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// Any OpenID Connect provider, by issuer URL.
    Oidc,
    /// GitHub OAuth app (OAuth2; profile and verified emails from the GitHub API).
    Github,
    /// GitLab (OpenID Connect).
    Gitlab,
    /// Discord (OAuth2; profile from the Discord API).
    Discord,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailConfig {
    /// Empty: mail is not sent, and each message (with its link) is written to the log, for
    /// development. Otherwise an SMTP URL: `smtp://user:password@host:587?tls=required`
    /// (STARTTLS), `smtps://user:password@host:465` (TLS), `smtp://host:25` (no TLS).
    pub url: String,
    /// The sender: `Name <address>`.
    pub from: String,
}

impl Default for MailConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            from: "Demiurge <demiurge@localhost>".into(),
        }
    }
}

impl fmt::Debug for MailConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MailConfig")
            .field("url", &redact_url(&self.url))
            .field("from", &self.from)
            .finish()
    }
}

/// A rate limit written "BURST/PERIOD", such as "10/1m": up to BURST at once, refilled evenly
/// over PERIOD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub burst: u32,
    pub period: std::time::Duration,
}

impl Rate {
    pub const fn new(burst: u32, period_secs: u64) -> Self {
        Self {
            burst,
            period: std::time::Duration::from_secs(period_secs),
        }
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}",
            self.burst,
            humantime::format_duration(self.period)
        )
    }
}

impl FromStr for Rate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (n, d) = s
            .split_once('/')
            .ok_or("expected BURST/PERIOD such as 10/1m")?;
        let burst: u32 = n
            .trim()
            .parse()
            .map_err(|_| format!("`{n}` is not a whole number"))?;
        let period = humantime::parse_duration(d.trim()).map_err(|e| format!("`{d}`: {e}"))?;
        if burst == 0 || period.is_zero() {
            return Err("burst and period must be above zero".into());
        }
        Ok(Self { burst, period })
    }
}

impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ser_display(self, s)
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        de_from_str(d)
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            open_signup: true,
            session_idle: std::time::Duration::from_secs(14 * 24 * 3600),
            session_lifetime: std::time::Duration::from_secs(30 * 24 * 3600),
            login_rate: Rate::new(10, 60),
            second_factor_window: std::time::Duration::from_secs(5 * 60),
            second_factor_lockout: std::time::Duration::from_secs(60),
            reauthentication_window: std::time::Duration::from_secs(10 * 60),
            password_hashes_at_once: 0,
            signup_rate: Rate::new(10, 3600),
            password_rate: Rate::new(5, 60),
            email_link_rate: Rate::new(5, 900),
            email_link_lifetime: std::time::Duration::from_secs(15 * 60),
            invitation_rate: Rate::new(20, 3600),
            link_by_verified_email: false,
            providers: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A tracing filter such as `info` or `demiurge=debug,info`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// A listener address, or off (written as an empty string).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listen(pub Option<SocketAddr>);

impl Listen {
    pub fn on(addr: SocketAddr) -> Self {
        Self(Some(addr))
    }
    pub fn off() -> Self {
        Self(None)
    }
}

impl Serialize for Listen {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Some(a) => s.serialize_str(&a.to_string()),
            None => s.serialize_str(""),
        }
    }
}

impl<'de> Deserialize<'de> for Listen {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let s = s.trim();
        if s.is_empty() {
            return Ok(Self(None));
        }
        SocketAddr::from_str(s).map(|a| Self(Some(a))).map_err(|_| {
            serde::de::Error::custom(format!(
                "`{s}` is not an address such as 127.0.0.1:8080 (or \"\" for off)"
            ))
        })
    }
}

fn ser_display<T: fmt::Display, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&v.to_string())
}

fn de_from_str<'de, T, D>(d: D) -> Result<T, D::Error>
where
    T: FromStr,
    T::Err: fmt::Display,
    D: Deserializer<'de>,
{
    let s = String::deserialize(d)?;
    T::from_str(s.trim()).map_err(|e| serde::de::Error::custom(format!("`{s}`: {e}")))
}

/// Which database the configuration selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Config {
    /// Loads the file (if any) and the environment, then validates the result.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(file, std::env::vars())
    }

    /// Like [`Config::load`], with the environment given explicitly (for tests).
    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError::File {
                    path: path.to_path_buf(),
                    message: "no such file".into(),
                });
            }
            fig = fig.merge(Toml::file_exact(path));
        }
        // Only `DEMIURGE_<SECTION>__<KEY>` variables are configuration; others with the
        // prefix (DEMIURGE_TEST_..., say) are not ours to judge.
        let vars: Vec<(String, String)> = env
            .into_iter()
            .filter_map(|(k, v)| {
                let rest = k.strip_prefix(ENV_PREFIX)?;
                rest.contains("__").then(|| (rest.to_ascii_lowercase(), v))
            })
            .collect();
        let mut dict = figment::value::Dict::new();
        for (k, v) in vars {
            let mut parts = k.splitn(2, "__");
            let (Some(section), Some(key)) = (parts.next(), parts.next()) else {
                continue;
            };
            let entry = dict
                .entry(section.to_string())
                .or_insert_with(|| figment::value::Value::from(figment::value::Dict::new()));
            if let figment::value::Value::Dict(_, d) = entry {
                let value = v
                    .parse::<figment::value::Value>()
                    .unwrap_or_else(|never| match never {});
                d.insert(key.to_string(), value);
            }
        }
        fig = fig.merge(Serialized::defaults(dict));
        let cfg: Config = fig.extract().map_err(|e| match file {
            Some(path) => ConfigError::File {
                path: path.to_path_buf(),
                message: describe_figment_error(e),
            },
            None => ConfigError::Invalid(describe_figment_error(e)),
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let d = &self.server.domain;
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if d.is_empty() || d.len() > 200 || !d.split('.').all(label_ok) {
            return Err(ConfigError::Invalid(format!(
                "server.domain: `{d}` is not a domain name such as example.com"
            )));
        }
        if self.vpn.subnet.prefix_len() > 30 {
            return Err(ConfigError::Invalid(format!(
                "vpn.subnet: `{}` is too small; use a prefix of /30 or shorter",
                self.vpn.subnet
            )));
        }
        self.database_url()?;
        if self.auth.session_idle.is_zero() || self.auth.session_lifetime.is_zero() {
            return Err(ConfigError::Invalid(
                "auth.session_idle and auth.session_lifetime must be longer than 0".into(),
            ));
        }
        let g = &self.gateway;
        if g.idle_stop.is_zero()
            || g.project_idle_unload.is_zero()
            || g.tick.is_zero()
            || g.keepalive.is_zero()
            || g.history_interval.is_zero()
        {
            return Err(ConfigError::Invalid(
                "gateway: idle_stop, project_idle_unload, tick, keepalive and history_interval must be longer than 0".into(),
            ));
        }
        if g.broadcast_max_delay < g.broadcast_delay {
            return Err(ConfigError::Invalid(
                "gateway: broadcast_max_delay must not be shorter than broadcast_delay".into(),
            ));
        }
        if g.max_clients_per_project == 0
            || g.client_buffer < 16
            || g.compact_after == 0
            || g.broadcast_budget == 0
        {
            return Err(ConfigError::Invalid(
                "gateway: max_clients_per_project, compact_after and broadcast_budget must be at least 1, client_buffer at least 16".into(),
            ));
        }
        if self.log.level.trim().is_empty() {
            return Err(ConfigError::Invalid("log.level: must not be empty".into()));
        }
        let public = self.server.public_url.trim();
        if !public.is_empty() {
            match url::Url::parse(public) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {}
                _ => {
                    return Err(ConfigError::Invalid(format!(
                        "server.public_url: `{public}` is not an http(s) URL such as https://demiurge.example.com/"
                    )));
                }
            }
        }
        self.validate_mail()?;
        self.validate_acme()?;
        if !self.backup.every.is_zero() && self.backup.keep == 0 {
            return Err(ConfigError::Invalid(
                "backup.keep: keep at least 1 backup (or set every = \"0s\")".into(),
            ));
        }
        let c = &self.containers;
        if c.enrollment_lifetime < std::time::Duration::from_secs(1)
            || c.enrollment_lifetime > std::time::Duration::from_secs(24 * 3600)
        {
            return Err(ConfigError::Invalid(
                "containers.enrollment_lifetime: 1s to 24h".into(),
            ));
        }
        if c.heartbeat < std::time::Duration::from_secs(1)
            || c.heartbeat > std::time::Duration::from_secs(300)
        {
            return Err(ConfigError::Invalid(
                "containers.heartbeat: 1s to 5m".into(),
            ));
        }
        self.validate_providers()
    }

    fn validate_acme(&self) -> Result<(), ConfigError> {
        let a = &self.acme;
        if !a.enabled() {
            return Ok(());
        }
        let bad = |m: String| Err(ConfigError::Invalid(format!("acme: {m}")));
        if !crate::auth::is_email_address(a.email.trim()) {
            return bad(format!("email `{}` is not an email address", a.email));
        }
        let domain = self.server.domain.trim_end_matches('.');
        if domain == "localhost"
            || domain.parse::<std::net::IpAddr>().is_ok()
            || !domain.contains('.')
        {
            return bad(format!(
                "a certificate authority issues for a public domain name; set [server] domain (now `{domain}`)"
            ));
        }
        match url::Url::parse(&a.directory_url()) {
            Ok(u) if u.scheme() == "https" && u.host_str().is_some() => {}
            _ => {
                return bad(format!(
                    "directory `{}` is not an https URL (or `letsencrypt`, `letsencrypt-staging`)",
                    a.directory
                ));
            }
        }
        if !a.ca_root.trim().is_empty() && !Path::new(a.ca_root.trim()).is_file() {
            return bad(format!("ca_root `{}` is not a file", a.ca_root));
        }
        if self.edge.http.0.is_none() || self.edge.https.0.is_none() {
            return bad(
                "needs both [edge] http (the HTTP-01 challenge, port 80 from outside) and [edge] https".into(),
            );
        }
        if a.wildcard && self.dns.listen.0.is_none() {
            return bad(
                "wildcard = true answers DNS-01 from our own zone, so [dns] listen must be set (or set wildcard = false)".into(),
            );
        }
        if a.retry_after.is_zero() {
            return bad("retry_after must be longer than 0".into());
        }
        Ok(())
    }

    fn validate_mail(&self) -> Result<(), ConfigError> {
        let url = self.mail.url.trim();
        if !url.is_empty() {
            match url::Url::parse(url) {
                Ok(u) if matches!(u.scheme(), "smtp" | "smtps") && u.host_str().is_some() => {}
                _ => {
                    return Err(ConfigError::Invalid(format!(
                        "mail.url: `{}` is not an SMTP URL such as smtp://user:password@host:587?tls=required",
                        redact_url(url)
                    )));
                }
            }
        }
        if self.mail.from.parse::<lettre::message::Mailbox>().is_err() {
            return Err(ConfigError::Invalid(format!(
                "mail.from: `{}` is not a sender such as `Demiurge <demiurge@example.com>`",
                self.mail.from
            )));
        }
        Ok(())
    }

    fn validate_providers(&self) -> Result<(), ConfigError> {
        let mut seen = std::collections::HashSet::new();
        for p in &self.auth.providers {
            let bad = |m: String| ConfigError::Invalid(format!("auth.providers `{}`: {m}", p.id));
            let id_ok = (1..=32).contains(&p.id.len())
                && p.id
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !id_ok {
                return Err(bad(
                    "id must be 1 to 32 lowercase letters, digits or `-`".into()
                ));
            }
            if !seen.insert(p.id.as_str()) {
                return Err(bad("two providers have this id".into()));
            }
            if p.client_id.trim().is_empty() {
                return Err(bad("client_id is missing".into()));
            }
            if p.kind == ProviderKind::Oidc && p.issuer.trim().is_empty() {
                return Err(bad("kind = \"oidc\" needs issuer".into()));
            }
            if !p.issuer.trim().is_empty() && url::Url::parse(p.issuer.trim()).is_err() {
                return Err(bad(format!("issuer `{}` is not a URL", p.issuer)));
            }
        }
        Ok(())
    }

    /// The URL a person should open: `server.public_url`, else derived from the listeners.
    /// Always ends in `/`.
    /// The base of emailed links and redirect URIs: [`Self::public_url`], or the domain.
    pub fn link_base(&self) -> String {
        self.public_url()
            .unwrap_or_else(|| format!("http://{}/", self.server.domain))
    }

    pub fn public_url(&self) -> Option<String> {
        let set = self.server.public_url.trim();
        if !set.is_empty() {
            return Some(if set.ends_with('/') {
                set.to_string()
            } else {
                format!("{set}/")
            });
        }
        let (scheme, addr, default_port) = match (self.edge.https.0, self.edge.http.0) {
            (Some(a), _) => ("https", a, 443),
            (None, Some(a)) => ("http", a, 80),
            (None, None) => return None,
        };
        let host = if addr.ip().is_unspecified() {
            self.server.domain.clone()
        } else if addr.ip().is_loopback() && self.server.domain == "localhost" {
            "localhost".to_string()
        } else {
            addr.ip().to_string()
        };
        Some(if addr.port() == default_port {
            format!("{scheme}://{host}/")
        } else {
            format!("{scheme}://{host}:{}/", addr.port())
        })
    }

    /// The port people reach HTTPS on: `public_url`'s when it is an https URL (a port
    /// mapping or proxy in front, as in the Docker image), else the HTTPS listener's; `None`
    /// when HTTPS is off.
    pub fn public_https_port(&self) -> Option<u16> {
        let listener = self.edge.https.0?;
        let public = self.server.public_url.trim();
        match url::Url::parse(public) {
            Ok(u) if u.scheme() == "https" => u.port_or_known_default(),
            _ => Some(listener.port()),
        }
    }

    /// The database this configuration selects.
    pub fn database_url(&self) -> Result<DatabaseUrl, ConfigError> {
        let url = self.database.url.trim();
        if url.is_empty() {
            return Ok(DatabaseUrl::Sqlite(
                self.server.data_dir.join("demiurge.db"),
            ));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(DatabaseUrl::Postgres(url.to_string()));
        }
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            if path.is_empty() {
                return Err(ConfigError::Invalid(
                    "database.url: `sqlite://` needs a file path".into(),
                ));
            }
            return Ok(DatabaseUrl::Sqlite(PathBuf::from(path)));
        }
        Err(ConfigError::Invalid(format!(
            "database.url: expected sqlite://PATH or postgres://..., got `{}`",
            redact_url(url)
        )))
    }

    /// The `host:port` that peers should send WireGuard packets to.
    pub fn vpn_endpoint(&self) -> Option<String> {
        if !self.vpn.endpoint.trim().is_empty() {
            return Some(self.vpn.endpoint.trim().to_string());
        }
        let addr = self.vpn.listen.0?;
        if addr.ip().is_unspecified() {
            Some(format!("{}:{}", self.server.domain, addr.port()))
        } else {
            Some(addr.to_string())
        }
    }
}

fn describe_figment_error(e: figment::Error) -> String {
    e.into_iter()
        .map(|e| {
            let key = e.path.join(".");
            let kind = e.kind.to_string();
            if key.is_empty() {
                kind
            } else {
                format!("{key}: {kind}")
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Hides the password of a URL such as `postgres://user:secret@host/db`.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "<unparsable url>".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn redirects_go_to_the_public_https_port() {
        // No HTTPS: nothing to redirect to.
        let c = Config::load_from(None, env(&[])).unwrap();
        assert_eq!(c.public_https_port(), None);
        // The listener's port when people reach it directly.
        let c = Config::load_from(None, env(&[("DEMIURGE_EDGE__HTTPS", "0.0.0.0:8443")])).unwrap();
        assert_eq!(c.public_https_port(), Some(8443));
        // A port mapping in front (the Docker image): the public URL's.
        let c = Config::load_from(
            None,
            env(&[
                ("DEMIURGE_EDGE__HTTPS", "0.0.0.0:8443"),
                (
                    "DEMIURGE_SERVER__PUBLIC_URL",
                    "https://demiurge.example.com/",
                ),
            ]),
        )
        .unwrap();
        assert_eq!(c.public_https_port(), Some(443));
    }

    #[test]
    fn acme_needs_a_public_name_and_both_listeners() {
        let with = |extra: &[(&str, &str)]| {
            let mut e = vec![
                ("DEMIURGE_ACME__EMAIL", "ops@example.com"),
                ("DEMIURGE_SERVER__DOMAIN", "demiurge.example.com"),
                ("DEMIURGE_EDGE__HTTPS", "0.0.0.0:8443"),
            ];
            e.extend_from_slice(extra);
            Config::load_from(None, env(&e))
        };
        assert!(with(&[]).is_ok());
        let err = with(&[("DEMIURGE_SERVER__DOMAIN", "localhost")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("public domain name"), "{err}");
        let err = with(&[("DEMIURGE_EDGE__HTTPS", "")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("[edge] https"), "{err}");
        let err = with(&[("DEMIURGE_DNS__LISTEN", "")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("wildcard"), "{err}");
        let err = with(&[("DEMIURGE_ACME__EMAIL", "not-an-address")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("email"), "{err}");
        let err = with(&[("DEMIURGE_ACME__DIRECTORY", "http://ca.example/dir")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("https URL"), "{err}");
    }

    #[test]
    fn defaults_need_no_file() {
        let c = Config::load_from(None, env(&[])).expect("defaults");
        assert_eq!(c.server.domain, "localhost");
        assert_eq!(c.edge.http.0, Some("127.0.0.1:8080".parse().unwrap()));
        assert_eq!(c.edge.https.0, None);
        assert_eq!(c.vpn.server_address(), Ipv4Addr::new(10, 88, 0, 1));
        assert_eq!(
            c.database_url().unwrap(),
            DatabaseUrl::Sqlite(PathBuf::from("./data/demiurge.db"))
        );
    }

    #[test]
    fn env_overrides_and_off() {
        let c = Config::load_from(
            None,
            env(&[
                ("DEMIURGE_EDGE__HTTP", "127.0.0.1:9999"),
                ("DEMIURGE_DNS__LISTEN", ""),
                ("DEMIURGE_SERVER__DOMAIN", "example.test"),
                ("DEMIURGE_TEST_DATABASE_URL", "postgres://ignored"),
            ]),
        )
        .expect("env");
        assert_eq!(c.edge.http.0, Some("127.0.0.1:9999".parse().unwrap()));
        assert_eq!(c.dns.listen.0, None);
        assert_eq!(c.server.domain, "example.test");
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let e = Config::load_from(None, env(&[("DEMIURGE_EDGE__HTTPZ", "x")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("httpz"), "{e}");
        let e = Config::load_from(None, env(&[("DEMIURGE_EDGE__HTTP", "nope")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("edge.http"), "{e}");
        let e = Config::load_from(None, env(&[("DEMIURGE_VPN__SUBNET", "10.0.0.0/31")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("vpn.subnet"), "{e}");
        let e = Config::load_from(None, env(&[("DEMIURGE_LOG__FORMAT", "xml")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("log.format"), "{e}");
    }

    #[test]
    fn file_is_read_and_unknown_sections_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "[server]\ndomain = \"a.test\"\n[dns]\nlisten = \"\"\n").unwrap();
        let c = Config::load_from(Some(&p), env(&[])).unwrap();
        assert_eq!(c.server.domain, "a.test");
        assert_eq!(c.dns.listen.0, None);
        std::fs::write(&p, "[nope]\nx = 1\n").unwrap();
        let e = Config::load_from(Some(&p), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("nope"), "{e}");
    }

    #[test]
    fn rates_parse() {
        assert_eq!("10/1m".parse::<Rate>().unwrap(), Rate::new(10, 60));
        assert_eq!("3/2s".parse::<Rate>().unwrap(), Rate::new(3, 2));
        assert!("0/1m".parse::<Rate>().is_err());
        assert!("10".parse::<Rate>().is_err());
        assert_eq!(
            Rate::new(10, 3600).to_string().parse::<Rate>().unwrap(),
            Rate::new(10, 3600)
        );
        let e = Config::load_from(None, env(&[("DEMIURGE_AUTH__LOGIN_RATE", "lots")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("auth.login_rate"), "{e}");
    }

    #[test]
    fn password_is_redacted() {
        let r = redact_url("postgres://u:secret@h:5432/db");
        assert!(!r.contains("secret"));
    }
}
