//! The host names the app answers for. A browser tricked by DNS rebinding (a name the
//! attacker controls, pointed at this server) sends that name as `Host`; refusing names
//! that are not ours keeps such a page from reading our answers with the visitor's network
//! position. IP addresses are always accepted (rebinding needs a name), and so is
//! `localhost`.

use std::net::IpAddr;

#[derive(Debug, Clone)]
pub struct KnownHosts {
    names: Vec<String>,
}

impl KnownHosts {
    /// The configured domain and the public URL's host.
    pub fn new(domain: &str, public_url: Option<&str>) -> Self {
        let mut names = vec![domain.to_ascii_lowercase()];
        if let Some(host) = public_url
            .and_then(|u| url::Url::parse(u).ok())
            .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        {
            names.push(host);
        }
        names.retain(|n| !n.is_empty());
        names.dedup();
        Self { names }
    }

    /// Whether a request naming `host` (a `Host` header value, port allowed) is for us.
    pub fn accepts(&self, host: &str) -> bool {
        let name = strip_port(host).trim_end_matches('.').to_ascii_lowercase();
        if name.is_empty() || name == "localhost" || name.ends_with(".localhost") {
            return true;
        }
        if name.trim_matches(['[', ']']).parse::<IpAddr>().is_ok() {
            return true;
        }
        self.names.contains(&name)
    }
}

/// `host:port` or `[v6]:port` without the port.
fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split_once(']').map_or(host, |(ip, _)| ip);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !name.contains(':') => {
            name
        }
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ours_ips_and_localhost_pass_other_names_do_not() {
        let h = KnownHosts::new("example.com", Some("https://work.example.com/"));
        for ok in [
            "example.com",
            "EXAMPLE.com:8443",
            "work.example.com",
            "example.com.",
            "localhost:8080",
            "127.0.0.1:80",
            "[::1]:8080",
            "10.0.0.5",
            "",
        ] {
            assert!(h.accepts(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "example.com.evil.example",
            "localhost.evil.example",
        ] {
            assert!(!h.accepts(bad), "{bad}");
        }
    }
}
