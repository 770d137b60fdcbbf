//! Who is on the other end of a request.
//!
//! Most connections are the client's own, handed over by the edge: the app knows the client's
//! address and whether it came over TLS ([`Direct`]), and ignores every `X-Forwarded-*` header
//! on them. Requests the edge proxies arrive on the internal loopback address: there the edge
//! *appends* the client's address to `X-Forwarded-For` and *sets* `X-Forwarded-Proto` and
//! `X-Forwarded-Host`, so the last `X-Forwarded-For` entry is the one to trust: anything before
//! it came from the client and may be forged.

use std::net::IpAddr;

use actix_web::HttpRequest;

use super::workers::Direct;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ClientInfo {
    /// The client's address as the edge saw it.
    #[schema(value_type = Option<String>)]
    pub ip: Option<IpAddr>,
    /// `http` or `https`: how the client reached the edge.
    pub scheme: &'static str,
    /// The host name the client asked for.
    pub host: Option<String>,
}

impl ClientInfo {
    pub fn of(req: &HttpRequest) -> Self {
        let header = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let trusted = req.app_data::<TrustedProxies>();
        if let Some(direct) = req.conn_data::<Direct>() {
            let peer = direct.peer.map(|a| a.ip());
            if let (Some(p), Some(t)) = (peer, trusted)
                && t.trusts(p)
            {
                // A proxy the operator named: its forwarding headers say who is behind it.
                return Self {
                    ip: t.client_behind(req, p),
                    scheme: match header("x-forwarded-proto") {
                        Some(v) if v.eq_ignore_ascii_case("https") => "https",
                        Some(_) => "http",
                        None if direct.tls => "https",
                        None => "http",
                    },
                    host: header("x-forwarded-host")
                        .or_else(|| header("host"))
                        .map(str::to_string),
                };
            }
            return Self {
                ip: peer,
                scheme: if direct.tls { "https" } else { "http" },
                host: header("host").map(str::to_string),
            };
        }
        let peer = req.peer_addr().map(|a| a.ip());
        let from_edge = peer.is_some_and(|ip| ip.is_loopback());
        if !from_edge {
            return Self {
                ip: peer,
                scheme: if req.connection_info().scheme() == "https" {
                    "https"
                } else {
                    "http"
                },
                host: header("host").map(str::to_string),
            };
        }
        // The edge appended its client last; if that is a trusted proxy, look behind it.
        let ip = match (forwarded_for(req).next_back(), trusted) {
            (Some(last), Some(t)) => t.client_behind(req, last),
            (Some(last), None) => Some(last),
            (None, _) => peer,
        };
        let scheme = match header("x-forwarded-proto") {
            Some(p) if p.eq_ignore_ascii_case("https") => "https",
            _ => "http",
        };
        let host = header("x-forwarded-host")
            .or_else(|| header("host"))
            .map(str::to_string);
        Self { ip, scheme, host }
    }
}

/// The addresses of `X-Forwarded-For`, in order.
fn forwarded_for(req: &HttpRequest) -> impl DoubleEndedIterator<Item = IpAddr> + '_ {
    req.headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse::<IpAddr>().ok())
}

/// `[server] trusted_proxies`: reverse proxies whose forwarding headers are believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(std::sync::Arc<Vec<ipnet::IpNet>>);

impl TrustedProxies {
    pub fn new(nets: &[ipnet::IpNet]) -> Self {
        Self(std::sync::Arc::new(nets.to_vec()))
    }

    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// The client behind `peer`: walking `X-Forwarded-For` from its end, the first address
    /// that is not a trusted proxy (what a trusted proxy appended is true; what came before
    /// it from the client may be forged). `peer` itself if it is not trusted.
    fn client_behind(&self, req: &HttpRequest, peer: IpAddr) -> Option<IpAddr> {
        if !self.trusts(peer) {
            return Some(peer);
        }
        let mut last = peer;
        for ip in forwarded_for(req).rev() {
            if !self.trusts(ip) {
                return Some(ip);
            }
            last = ip;
        }
        Some(last)
    }
}
