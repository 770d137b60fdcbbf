//! The guard in front of every container service, in the edge (issue 15, item 7).
//!
//! A container host (`<label>.containers.<domain>`) never sees the main domain's session
//! cookie (it is host-only). A request without a valid ticket for its host is sent through a
//! short authorization-code flow with PKCE: the edge starts a flow (a random `state` in a
//! host-only cookie, a verifier it keeps), the main domain's [`AUTHORIZE_PATH`] checks the
//! session and the project permission and sends the browser back to the host's
//! [`CALLBACK_PATH`] with a one-time code, which the edge redeems with the verifier for a
//! ticket in a host-only cookie (`__Host-` over HTTPS). Tickets, codes and flows live in
//! this process's memory only (a restart means one more silent round trip).
//!
//! Every request and upgrade is checked: the ticket, its session still alive and the
//! permission (`open`, and `terminal` for a terminal), re-checked after [`RECHECK`]; a
//! WebSocket's `Origin` must be the host itself. The edge removes the gate's cookies and any
//! client-sent identity header and adds `X-Forwarded-User`, `-Email`,
//! `-Preferred-Username` and `-Groups`. Open connections under a ticket whose access is
//! lost are closed by the sweeper within [`RECHECK`] and a bit.

use std::collections::HashMap;
use std::net::{SocketAddr, SocketAddrV4};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::{Containers, Route};
use crate::auth::Auth;
use crate::auth::tokens;
use crate::db::Db;
use crate::edge::{
    ContainerGate, Forward, GateDecision, GateRequest, GateResponse, ServiceDial, ServiceIo,
};
use crate::gateway::modules::user_containers::{OPEN, TERMINAL};
use crate::orgs::Orgs;
use crate::vpn::TunnelDialer;

/// On the main domain: where a container host sends a person to be let in.
pub const AUTHORIZE_PATH: &str = "/containers/authorize";
/// On every container host: where the main domain sends the person back with a code.
pub const CALLBACK_PATH: &str = "/.demiurge/callback";
/// Access (session, membership, permission) is decided again this often.
pub const RECHECK: Duration = Duration::from_secs(5);
/// A ticket's life; within it, access is re-checked every [`RECHECK`].
const TICKET_LIFETIME: Duration = Duration::from_secs(12 * 3600);
const CODE_LIFETIME: Duration = Duration::from_secs(60);
const FLOW_LIFETIME: Duration = Duration::from_secs(600);
/// Bounds on what the stores hold (each entry is small; a flood of flows evicts the oldest).
const MAX_FLOWS: usize = 10_000;
const MAX_TICKETS: usize = 50_000;

fn ticket_cookie(tls: bool) -> &'static str {
    if tls {
        "__Host-demiurge_ticket"
    } else {
        "demiurge_ticket"
    }
}

fn flow_cookie(tls: bool) -> &'static str {
    if tls {
        "__Host-demiurge_flow"
    } else {
        "demiurge_flow"
    }
}

/// Who a ticket's holder is, as the container's apps are told.
#[derive(Debug, Clone, PartialEq)]
struct Identity {
    username: String,
    email: String,
    groups: String,
}

/// Why a person who may not see the project is refused.
const NOT_IN_PROJECT: &str = "not in the project";

#[derive(Debug, Clone, PartialEq)]
enum Verdict {
    Allowed(Identity),
    /// Signed out, removed from the project, or without the permission.
    Denied(&'static str),
}

struct Flow {
    label: String,
    verifier: String,
    return_to: String,
    expires: Instant,
}

struct Code {
    label: String,
    user_id: String,
    session_id: String,
    challenge: String,
    expires: Instant,
}

struct Ticket {
    label: String,
    user_id: String,
    session_id: String,
    expires: Instant,
    /// The last decision, when, and at which container generation.
    checked: Option<(Instant, u64, Verdict)>,
    /// Cancelled when access is lost: the connections opened under it close.
    revoked: CancellationToken,
    /// Connections were opened under it (the sweeper re-checks those).
    in_use: bool,
}

/// A route as last read, when, and at which container generation.
type CachedRoute = (Instant, u64, Option<Route>);

#[derive(Default)]
struct Stores {
    /// By label: every request looks its route up, the database only after [`RECHECK`] or a
    /// container change.
    routes: HashMap<String, CachedRoute>,
    flows: HashMap<String, Flow>,
    codes: HashMap<String, Code>,
    /// By the SHA-256 of the cookie's value.
    tickets: HashMap<String, Ticket>,
}

/// The guard (one per server), shared by the edge (as its [`ContainerGate`]) and the app
/// (the authorize page).
pub struct Guard {
    auth: Auth,
    orgs: Orgs,
    db: Db,
    containers: Containers,
    /// `.containers.<domain>`.
    suffix: String,
    /// The main domain's base URL (`https://example.com/`), its scheme and port.
    main: String,
    scheme: String,
    port: Option<u16>,
    dialer: OnceLock<TunnelDialer>,
    stores: Mutex<Stores>,
}

fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn random() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// A cookie's value from a `Cookie` header.
fn cookie<'a>(header: Option<&'a str>, name: &str) -> Option<&'a str> {
    header?.split(';').find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name).then_some(v.trim())
    })
}

fn query_param(pq: &str, name: &str) -> Option<String> {
    let q = pq.split_once('?')?.1;
    url::form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// A page of the guard's own, with its stable code in `X-Demiurge-Error`.
fn page(status: u16, code: &'static str, title: &str, text: &str) -> GateResponse {
    let body = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\
<style>body{{font:16px system-ui,sans-serif;margin:4rem auto;max-width:36rem;color:#1d2330}}</style>\
</head><body><h1>{title}</h1><p>{text}</p></body></html>\n"
    );
    GateResponse {
        status,
        headers: vec![
            ("content-type", "text/html; charset=utf-8".into()),
            ("cache-control", "no-store".into()),
            ("x-demiurge-error", code.into()),
        ],
        body,
    }
}

fn redirect(to: String, cookies: Vec<String>) -> GateResponse {
    let mut headers = vec![("location", to), ("cache-control", "no-store".into())];
    headers.extend(cookies.into_iter().map(|c| ("set-cookie", c)));
    GateResponse {
        status: 302,
        headers,
        body: String::new(),
    }
}

fn set_cookie(name: &str, value: &str, tls: bool, max_age: Duration) -> String {
    let secure = if tls { "; Secure" } else { "" };
    format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
        max_age.as_secs()
    )
}

/// Whether `return_to` is a path on the same host (never another origin).
fn local_path(p: &str) -> bool {
    p.starts_with('/') && !p.starts_with("//") && !p.starts_with("/\\")
}

impl Guard {
    pub fn new(
        auth: Auth,
        orgs: Orgs,
        db: Db,
        containers: Containers,
        cfg: &crate::config::Config,
    ) -> Guard {
        let base = cfg.link_base();
        let parsed = url::Url::parse(&base).ok();
        Guard {
            auth,
            orgs,
            db,
            containers,
            suffix: format!(".containers.{}", cfg.server.domain.to_ascii_lowercase()),
            main: base,
            scheme: parsed
                .as_ref()
                .map_or_else(|| "http".to_string(), |u| u.scheme().to_string()),
            port: parsed.as_ref().and_then(url::Url::port),
            dialer: OnceLock::new(),
            stores: Mutex::new(Stores::default()),
        }
    }

    /// The VPN's dialer, once the VPN runs (it starts after the edge).
    pub fn set_dialer(&self, dialer: TunnelDialer) {
        let _ = self.dialer.set(dialer);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Stores> {
        self.stores
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Where `label` goes (`None`: nowhere), from the cache while it is fresh.
    async fn route(&self, label: &str) -> Result<Option<Route>, super::ContainersError> {
        let generation = self.containers.generation();
        if let Some((at, g, r)) = self.lock().routes.get(label)
            && at.elapsed() < RECHECK
            && *g == generation
        {
            return Ok(r.clone());
        }
        let r = self.containers.route(label).await?;
        let mut s = self.lock();
        if s.routes.len() >= MAX_TICKETS {
            s.routes.clear();
        }
        s.routes
            .insert(label.to_string(), (Instant::now(), generation, r.clone()));
        Ok(r)
    }

    /// `scheme://<label>.containers.<domain>[:port]` (the main URL's scheme and port): where
    /// people open the service with this label.
    pub fn service_url(&self, label: &str) -> String {
        self.host_base(label)
    }

    /// `scheme://<label>.containers.<domain>[:port]` (the main URL's scheme and port).
    fn host_base(&self, label: &str) -> String {
        let scheme = &self.scheme;
        let host = format!("{label}{}", self.suffix);
        match self.port {
            Some(p) => format!("{scheme}://{host}:{p}"),
            None => format!("{scheme}://{host}"),
        }
    }

    /// Who `user_id` (signed in with `session_id`) is to `route`'s container, decided now.
    async fn decide_access(&self, user_id: &str, session_id: &str, route: &Route) -> Verdict {
        let alive = match self.auth.sessions(user_id).await {
            Ok(list) => {
                let now = chrono::Utc::now().naive_utc();
                list.iter()
                    .any(|s| s.id == session_id && s.expires_at > now)
            }
            Err(e) => {
                tracing::warn!(error = %e, "guard: cannot read sessions");
                false
            }
        };
        if !alive {
            return Verdict::Denied("signed out");
        }
        let user = match self.db.user_by_id(user_id).await {
            Ok(Some(u)) => u,
            _ => return Verdict::Denied("no such account"),
        };
        let access = match self.orgs.project_access(&user, &route.project_id).await {
            Ok((_, a)) => a,
            Err(_) => return Verdict::Denied(NOT_IN_PROJECT),
        };
        if !access.may(OPEN) {
            return Verdict::Denied("needs user-containers:container:open");
        }
        if route.terminal && !access.may(TERMINAL) {
            return Verdict::Denied("needs user-containers:container:terminal");
        }
        Verdict::Allowed(Identity {
            username: user.username.clone(),
            email: user.email.clone(),
            groups: format!("org:{},project:{}", route.org_id, route.project_id),
        })
    }

    /// The main domain's half: the person signed in as `user_id` asks to open the service
    /// at `label`. Returns where to send the browser (the callback with a code), or why not.
    pub async fn authorize(
        &self,
        user_id: &str,
        session_id: &str,
        label: &str,
        state: &str,
        challenge: &str,
    ) -> Result<String, AuthorizeError> {
        if state.is_empty() || state.len() > 128 || challenge.len() != 43 {
            return Err(AuthorizeError::BadRequest);
        }
        let route = self
            .containers
            .route(label)
            .await
            .map_err(|_| AuthorizeError::NotFound)?
            .ok_or(AuthorizeError::NotFound)?;
        match self.decide_access(user_id, session_id, &route).await {
            Verdict::Allowed(_) => {}
            // The main domain does not tell who is in a project the person cannot see.
            Verdict::Denied(NOT_IN_PROJECT) => return Err(AuthorizeError::NotFound),
            Verdict::Denied(why) => return Err(AuthorizeError::Forbidden(why)),
        }
        let code = random();
        {
            let mut s = self.lock();
            let now = Instant::now();
            s.codes.retain(|_, c| c.expires > now);
            s.codes.insert(
                code.clone(),
                Code {
                    label: route.label.clone(),
                    user_id: user_id.to_string(),
                    session_id: session_id.to_string(),
                    challenge: challenge.to_string(),
                    expires: now + CODE_LIFETIME,
                },
            );
        }
        let q: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("code", &code)
            .append_pair("state", state)
            .finish();
        Ok(format!(
            "{}{CALLBACK_PATH}?{q}",
            self.host_base(&route.label)
        ))
    }

    /// Starts a flow for a request without a valid ticket.
    fn start_flow(&self, req: &GateRequest) -> GateResponse {
        let state = random();
        let verifier = random();
        let challenge = s256(&verifier);
        {
            let mut s = self.lock();
            let now = Instant::now();
            s.flows.retain(|_, f| f.expires > now);
            if s.flows.len() >= MAX_FLOWS {
                let oldest = s
                    .flows
                    .iter()
                    .min_by_key(|(_, f)| f.expires)
                    .map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    s.flows.remove(&k);
                }
            }
            s.flows.insert(
                state.clone(),
                Flow {
                    label: req.label.clone(),
                    verifier,
                    return_to: if local_path(&req.path_and_query) {
                        req.path_and_query.clone()
                    } else {
                        "/".into()
                    },
                    expires: now + FLOW_LIFETIME,
                },
            );
        }
        let q: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("label", &req.label)
            .append_pair("state", &state)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256")
            .finish();
        let to = format!("{}{}?{q}", self.main.trim_end_matches('/'), AUTHORIZE_PATH);
        redirect(
            to,
            vec![set_cookie(
                flow_cookie(req.tls),
                &state,
                req.tls,
                FLOW_LIFETIME,
            )],
        )
    }

    /// The callback: the code is redeemed with the flow's verifier for a ticket.
    fn callback(&self, req: &GateRequest) -> GateResponse {
        let refused = || {
            page(
                400,
                "invalid_callback",
                "Sign-in did not complete",
                "This sign-in link is not valid any more. Open the container's address again.",
            )
        };
        let (Some(code), Some(state)) = (
            query_param(&req.path_and_query, "code"),
            query_param(&req.path_and_query, "state"),
        ) else {
            return refused();
        };
        // The flow must be this browser's own (its cookie), so nobody can slip a code of
        // theirs into someone else's browser.
        if cookie(req.cookies.as_deref(), flow_cookie(req.tls)) != Some(state.as_str()) {
            return refused();
        }
        let mut s = self.lock();
        let now = Instant::now();
        let (Some(flow), Some(code)) = (s.flows.remove(&state), s.codes.remove(&code)) else {
            return refused();
        };
        if flow.expires < now
            || code.expires < now
            || flow.label != req.label
            || code.label != req.label
            || s256(&flow.verifier) != code.challenge
        {
            return refused();
        }
        let ticket = random();
        s.tickets.retain(|_, t| t.expires > now);
        if s.tickets.len() >= MAX_TICKETS {
            return page(
                503,
                "busy",
                "Busy",
                "Too many open sign-ins; try again in a minute.",
            );
        }
        s.tickets.insert(
            tokens::hash(&ticket),
            Ticket {
                label: req.label.clone(),
                user_id: code.user_id,
                session_id: code.session_id,
                expires: now + TICKET_LIFETIME,
                checked: None,
                revoked: CancellationToken::new(),
                in_use: false,
            },
        );
        redirect(
            flow.return_to,
            vec![
                set_cookie(ticket_cookie(req.tls), &ticket, req.tls, TICKET_LIFETIME),
                set_cookie(flow_cookie(req.tls), "", req.tls, Duration::ZERO),
            ],
        )
    }

    /// The ticket's verdict for `route`, from the cache when fresh.
    async fn verdict(&self, key: &str, route: &Route) -> Option<(Verdict, CancellationToken)> {
        let generation = self.containers.generation();
        let (user_id, session_id) = {
            let mut s = self.lock();
            let t = s.tickets.get_mut(key)?;
            if t.expires < Instant::now() || t.label != route.label {
                return None;
            }
            if let Some((at, g, v)) = &t.checked
                && at.elapsed() < RECHECK
                && *g == generation
            {
                t.in_use = true;
                return Some((v.clone(), t.revoked.clone()));
            }
            (t.user_id.clone(), t.session_id.clone())
        };
        let v = self.decide_access(&user_id, &session_id, route).await;
        let mut s = self.lock();
        let t = s.tickets.get_mut(key)?;
        t.checked = Some((Instant::now(), generation, v.clone()));
        t.in_use = true;
        if let Verdict::Denied(why) = &v {
            tracing::info!(label = %route.label, user = %user_id, why, "guard: access lost; closing");
            t.revoked.cancel();
            t.revoked = CancellationToken::new();
        }
        Some((v, t.revoked.clone()))
    }

    /// Re-decides the tickets in use whose decision is older than [`RECHECK`], closing the
    /// connections of those that lost access. Runs until `shutdown`.
    pub async fn sweep(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let due: Vec<(String, String)> = {
                let mut s = self.lock();
                let now = Instant::now();
                s.tickets.retain(|_, t| t.expires > now);
                s.tickets
                    .iter()
                    .filter(|(_, t)| {
                        t.in_use
                            && t.checked
                                .as_ref()
                                .is_none_or(|(at, _, _)| at.elapsed() >= RECHECK)
                    })
                    .map(|(k, t)| (k.clone(), t.label.clone()))
                    .collect()
            };
            for (key, label) in due {
                match self.route(&label).await {
                    Ok(Some(route)) => {
                        let _ = self.verdict(&key, &route).await;
                    }
                    Ok(None) => {
                        // The container went: its connections go with it.
                        let mut s = self.lock();
                        if let Some(t) = s.tickets.remove(&key) {
                            t.revoked.cancel();
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "guard: cannot read a route"),
                }
            }
        }
    }
}

/// Why the main domain refuses to let someone into a container service.
#[derive(Debug, thiserror::Error)]
pub enum AuthorizeError {
    #[error("the request is not a container sign-in")]
    BadRequest,
    #[error("no such container service, or not one of your projects")]
    NotFound,
    #[error("you may not open this container service ({0})")]
    Forbidden(&'static str),
}

/// Connections into the tunnel for the edge.
#[derive(Debug)]
struct TunnelDial(TunnelDialer);

#[async_trait]
impl ServiceDial for TunnelDial {
    async fn dial(&self, to: SocketAddr) -> std::io::Result<Box<dyn ServiceIo>> {
        let SocketAddr::V4(v4) = to else {
            return Err(std::io::Error::other("the tunnel carries IPv4 only"));
        };
        Ok(Box::new(self.0.connect(v4).await?))
    }
}

#[async_trait]
impl ContainerGate for Guard {
    async fn decide(&self, req: GateRequest) -> GateDecision {
        let respond = GateDecision::Respond;
        let route = match self.route(&req.label).await {
            Ok(Some(r)) => r,
            Ok(None) => {
                return respond(page(
                    404,
                    "no_such_service",
                    "No such container service",
                    "Nothing is registered at this address. A container's services appear here once it is created in a project.",
                ));
            }
            Err(e) => {
                tracing::warn!(error = %e, "guard: cannot read a route");
                return respond(page(
                    503,
                    "unavailable",
                    "Try again",
                    "The server could not look this address up.",
                ));
            }
        };
        let path = req.path_and_query.split('?').next().unwrap_or("/");
        if path == CALLBACK_PATH {
            return respond(self.callback(&req));
        }
        let ticket = cookie(req.cookies.as_deref(), ticket_cookie(req.tls)).map(tokens::hash);
        let verdict = match &ticket {
            Some(key) => self.verdict(key, &route).await,
            None => None,
        };
        let (identity, revoked) = match verdict {
            Some((Verdict::Allowed(id), revoked)) => (id, revoked),
            Some((Verdict::Denied(why), _)) => {
                return respond(page(
                    403,
                    "forbidden",
                    "Not allowed",
                    &format!("You may not open this container service ({why})."),
                ));
            }
            None if req.method == http::Method::GET && !req.upgrade => {
                return respond(self.start_flow(&req));
            }
            None => {
                return respond(page(
                    401,
                    "not_authenticated",
                    "Sign in first",
                    "Open this container's address in your browser to sign in.",
                ));
            }
        };
        if req.upgrade {
            let own = self.host_base(&route.label);
            if req.origin.as_deref() != Some(own.as_str()) {
                return respond(page(
                    403,
                    "forbidden",
                    "Not allowed",
                    "A connection from another site may not open this container's sockets.",
                ));
            }
        }
        let (Some(ip), true) = (
            route.tunnel,
            self.containers.is_running(&route.container_id),
        ) else {
            return respond(page(
                503,
                "container_offline",
                "This container is offline",
                "Its agent is not connected: the machine it runs on may be off, or the container stopped. It comes back by itself when the agent reconnects.",
            ));
        };
        let Some(dialer) = self.dialer.get() else {
            return respond(page(
                503,
                "container_offline",
                "This container is offline",
                "The server's VPN is not running.",
            ));
        };
        let mut h = std::collections::hash_map::DefaultHasher::new();
        std::hash::Hash::hash(&(ticket.as_deref(), &route.label), &mut h);
        GateDecision::Forward(Forward {
            to: SocketAddr::V4(SocketAddrV4::new(ip, route.port)),
            dial: Arc::new(TunnelDial(dialer.clone())),
            group: std::hash::Hasher::finish(&h),
            headers: vec![
                ("x-forwarded-user", identity.username.clone()),
                ("x-forwarded-preferred-username", identity.username),
                ("x-forwarded-email", identity.email),
                ("x-forwarded-groups", identity.groups),
            ],
            strip_cookies: vec![ticket_cookie(req.tls), flow_cookie(req.tls)],
            revoked,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_and_parameters_are_read_exactly() {
        let h = Some("a=1; demiurge_ticket=abc; __Host-demiurge_ticket=def");
        assert_eq!(cookie(h, "demiurge_ticket"), Some("abc"));
        assert_eq!(cookie(h, "__Host-demiurge_ticket"), Some("def"));
        assert_eq!(cookie(h, "ticket"), None);
        assert_eq!(
            query_param("/.demiurge/callback?code=x%2By&state=s", "code").as_deref(),
            Some("x+y")
        );
        assert!(local_path("/lab?x=1"));
        assert!(!local_path("//evil.example/"));
        assert!(!local_path("https://evil.example/"));
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
