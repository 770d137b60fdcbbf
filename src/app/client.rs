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
        if let Some(direct) = req.conn_data::<Direct>() {
            return Self {
                ip: direct.peer.map(|a| a.ip()),
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
        let ip = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|s| s.trim().parse::<IpAddr>().ok())
            .next_back()
            .or(peer);
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
