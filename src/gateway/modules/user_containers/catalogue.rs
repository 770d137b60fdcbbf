//! The image catalogue: what a person picks when they make a container. The built-in entries
//! are stock images that have `sh` and `curl` or `wget` (the agent fetches itself from the
//! server) and an app the agent knows how to start; "custom" is any image, with the ports of
//! its services named by the person. An organization adds its own entries ([`OrgEntry`],
//! kept in the database by those with `org:containers:manage`); the server puts the entry
//! into a create event that names it, so the reducer needs no database.

use serde::{Deserialize, Serialize};

use super::{MAX_SERVICE_NAME, MAX_SERVICES, ServiceSpec};
use crate::code::ErrorCode;

/// One service a container offers: a web app on a loopback port inside the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuiltinService {
    /// The first part of its URL label (`lab-k3f9x2ab.containers.<domain>`).
    pub name: &'static str,
    pub port: u16,
    /// A terminal (opening it needs `user-containers:container:terminal`).
    pub terminal: bool,
}

/// A catalogue entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// What events name it by.
    pub key: &'static str,
    pub title: &'static str,
    pub description: &'static str,
    /// The image the command runs; none for `custom` (the person names it).
    pub image: Option<&'static str>,
    /// A shell step the command runs before it fetches the agent, for a stock image that
    /// lacks what the entry needs (it runs again on a restart and must then do nothing).
    pub prepare: Option<&'static str>,
    pub services: &'static [BuiltinService],
}

/// Any image; the person gives its reference and its services.
pub const CUSTOM: &str = "custom";

pub const BUILTIN: &[Entry] = &[
    Entry {
        key: "jupyterlab",
        title: "JupyterLab",
        description: "Notebooks, a file browser and Python kernels (the official Jupyter image)",
        image: Some("quay.io/jupyter/base-notebook:latest"),
        prepare: None,
        services: &[BuiltinService {
            name: "lab",
            port: 8888,
            terminal: false,
        }],
    },
    Entry {
        key: "terminal",
        title: "Terminal",
        description: "A shell in the browser (ttyd) on plain Ubuntu",
        // Ubuntu 24.04 packages ttyd (Debian 13 does not); the stock image has neither it
        // nor curl, so the first start installs both from the distribution.
        image: Some("ubuntu:24.04"),
        prepare: Some(
            "command -v ttyd >/dev/null && command -v curl >/dev/null || { apt-get update -qq && \
             DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
             ttyd curl ca-certificates >/dev/null; }",
        ),
        services: &[BuiltinService {
            name: "term",
            port: 7681,
            terminal: true,
        }],
    },
    Entry {
        key: "vscode",
        title: "VS Code",
        description: "Visual Studio Code in the browser (code-server's image)",
        image: Some("codercom/code-server:latest"),
        prepare: None,
        services: &[BuiltinService {
            name: "code",
            port: 8080,
            terminal: false,
        }],
    },
    Entry {
        key: CUSTOM,
        title: "Custom image",
        description: "Any image: name it and the ports of its web services",
        image: None,
        prepare: None,
        services: &[],
    },
];

impl Entry {
    /// Its services as an event or an answer names them.
    pub fn service_specs(&self) -> Vec<ServiceSpec> {
        self.services
            .iter()
            .map(|s| ServiceSpec {
                name: s.name.to_string(),
                port: s.port,
                terminal: s.terminal,
            })
            .collect()
    }
}

/// The entry with this key.
pub fn entry(key: &str) -> Option<&'static Entry> {
    BUILTIN.iter().find(|e| e.key == key)
}

/// Longest start command or preparing step.
pub const MAX_COMMAND: usize = 2000;
/// Longest organization entry key.
pub const MAX_KEY: usize = 32;
/// Most entries one organization keeps.
pub const MAX_ORG_ENTRIES: usize = 50;

/// One of an organization's own catalogue entries: an image its members pick by key, the
/// web services it offers, the command that starts its app (the agent runs it, as it runs
/// the built-in apps; without one the image's processes are its own) and a shell step the
/// `docker run` line runs before it fetches the agent (to install `curl`, say).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrgEntry {
    /// 1 to 32 lowercase letters, digits or `-`, starting with a letter; not a built-in key.
    #[schema(min_length = 1, max_length = 32, pattern = "^[a-z][a-z0-9-]*$")]
    pub key: String,
    /// 1 to 64 characters.
    #[schema(min_length = 1, max_length = 64)]
    pub title: String,
    /// Up to 200 characters.
    #[serde(default)]
    #[schema(max_length = 200)]
    pub description: String,
    /// `[registry/]name[:tag][@digest]`.
    #[schema(min_length = 1, max_length = 255)]
    pub image_ref: String,
    /// 1 to 8, distinct names and ports.
    pub services: Vec<ServiceSpec>,
    /// A shell command (`sh -c`) that starts the app, on one line.
    #[serde(default)]
    #[schema(max_length = 2000)]
    pub command: Option<String>,
    /// A shell step run before the agent is fetched, at every start (it must then do
    /// nothing the second time), on one line.
    #[serde(default)]
    #[schema(max_length = 2000)]
    pub prepare: Option<String>,
}

/// A refusal: the code and a message naming the field.
pub type Refusal = (ErrorCode, String);

impl OrgEntry {
    /// Checks every field (trimming the text ones, and making empty optional ones none).
    pub fn checked(mut self) -> Result<OrgEntry, Refusal> {
        self.key = self.key.trim().to_string();
        if !valid_key(&self.key) {
            return Err((
                ErrorCode::InvalidInput,
                format!(
                    "key: 1 to {MAX_KEY} lowercase letters, digits or `-`, starting with a letter"
                ),
            ));
        }
        if entry(&self.key).is_some() {
            return Err((
                ErrorCode::ImageExists,
                format!("key: `{}` is a built-in entry", self.key),
            ));
        }
        self.title = self.title.trim().to_string();
        if self.title.is_empty() || self.title.chars().count() > 64 || has_control(&self.title) {
            return Err((ErrorCode::InvalidInput, "title: 1 to 64 characters".into()));
        }
        self.description = self.description.trim().to_string();
        if self.description.chars().count() > 200 || has_control(&self.description) {
            return Err((
                ErrorCode::InvalidInput,
                "description: up to 200 characters on one line".into(),
            ));
        }
        self.image_ref = self.image_ref.trim().to_string();
        if !valid_image_ref(&self.image_ref) {
            return Err((
                ErrorCode::InvalidImage,
                "image_ref: not an image reference ([registry/]name[:tag][@digest])".into(),
            ));
        }
        check_services(&self.services)?;
        self.command = check_command("command", self.command)?;
        self.prepare = check_command("prepare", self.prepare)?;
        Ok(self)
    }
}

fn valid_key(k: &str) -> bool {
    k.len() <= MAX_KEY
        && k.starts_with(|c: char| c.is_ascii_lowercase())
        && k.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// A start command or preparing step: none when absent or blank; otherwise one line of at
/// most [`MAX_COMMAND`] characters.
pub fn check_command(field: &str, c: Option<String>) -> Result<Option<String>, Refusal> {
    let Some(c) = c.map(|c| c.trim().to_string()).filter(|c| !c.is_empty()) else {
        return Ok(None);
    };
    if c.chars().count() > MAX_COMMAND || has_control(&c) {
        return Err((
            ErrorCode::InvalidCommand,
            format!("{field}: one line of at most {MAX_COMMAND} characters"),
        ));
    }
    Ok(Some(c))
}

/// A service's name: what its URL label starts with.
pub fn valid_service_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_SERVICE_NAME
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-')
}

/// A custom image's or an organization entry's services: 1 to [`MAX_SERVICES`], each named
/// and with a port, no two alike.
pub fn check_services(services: &[ServiceSpec]) -> Result<(), Refusal> {
    if services.is_empty() || services.len() > MAX_SERVICES {
        return Err((
            ErrorCode::InvalidService,
            format!("an image names 1 to {MAX_SERVICES} services"),
        ));
    }
    for (i, s) in services.iter().enumerate() {
        if !valid_service_name(&s.name) {
            return Err((
                ErrorCode::InvalidService,
                format!(
                    "a service's name is 1 to {MAX_SERVICE_NAME} lowercase letters, digits or `-`, starting with a letter"
                ),
            ));
        }
        if s.port == 0 {
            return Err((ErrorCode::InvalidService, "a port is 1 to 65535".into()));
        }
        if services[..i]
            .iter()
            .any(|o| o.name == s.name || o.port == s.port)
        {
            return Err((
                ErrorCode::InvalidService,
                format!(
                    "two services share the name `{}` or the port {}",
                    s.name, s.port
                ),
            ));
        }
    }
    Ok(())
}

/// Whether `r` reads as an image reference (`[registry/]name[:tag][@digest]`): 1 to 255
/// characters of letters, digits and `._-/:@`, starting with a letter or digit. Docker
/// itself has the last word; this keeps out what could never be one, and anything that a
/// shell would read as more than one word.
pub fn valid_image_ref(r: &str) -> bool {
    !r.is_empty()
        && r.len() <= 255
        && r.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && r.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/:@".contains(c))
        && !r.contains("//")
        && !r.ends_with([':', '/', '@'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references() {
        for ok in [
            "debian",
            "debian:bookworm-slim",
            "quay.io/jupyter/base-notebook:2025-01-01",
            "localhost:5000/team/app@sha256:0123abcd",
        ] {
            assert!(valid_image_ref(ok), "{ok}");
        }
        for bad in [
            "",
            "-rm",
            "debian; rm -rf /",
            "a b",
            "debian:",
            "x//y",
            "$(id)",
            &"a".repeat(256),
        ] {
            assert!(!valid_image_ref(bad), "{bad}");
        }
    }

    #[test]
    fn built_in_entries_have_services_and_images() {
        for e in BUILTIN {
            assert_eq!(e.image.is_none(), e.key == CUSTOM, "{}", e.key);
            assert_eq!(e.services.is_empty(), e.key == CUSTOM, "{}", e.key);
            if let Some(i) = e.image {
                assert!(valid_image_ref(i), "{i}");
            }
        }
        assert!(entry("terminal").unwrap().services[0].terminal);
        // Each preparing step is one valid shell command list (it lands inside `sh -c '...'`).
        for p in BUILTIN.iter().filter_map(|e| e.prepare) {
            assert!(!p.contains('\''), "{p}");
            let ok = std::process::Command::new("sh")
                .args(["-n", "-c", p])
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "{p}");
        }
        assert!(entry("nope").is_none());
    }

    fn org_entry() -> OrgEntry {
        OrgEntry {
            key: " gpu-lab ".into(),
            title: " GPU notebooks ".into(),
            description: String::new(),
            image_ref: "ghcr.io/team/gpu:1".into(),
            services: vec![ServiceSpec {
                name: "lab".into(),
                port: 8888,
                terminal: false,
            }],
            command: Some("  ".into()),
            prepare: Some("apt-get install -y curl".into()),
        }
    }

    #[test]
    fn organization_entries_are_checked() {
        let e = org_entry().checked().unwrap();
        assert_eq!(
            (e.key.as_str(), e.title.as_str()),
            ("gpu-lab", "GPU notebooks")
        );
        assert_eq!(e.command, None, "a blank command is none");
        assert!(e.prepare.is_some());
        let refused = |f: fn(&mut OrgEntry)| {
            let mut e = org_entry();
            f(&mut e);
            e.checked().unwrap_err().0
        };
        assert_eq!(
            refused(|e| e.key = "jupyterlab".into()),
            ErrorCode::ImageExists
        );
        assert_eq!(refused(|e| e.key = "custom".into()), ErrorCode::ImageExists);
        assert_eq!(refused(|e| e.key = "GPU".into()), ErrorCode::InvalidInput);
        assert_eq!(refused(|e| e.key = "a".repeat(33)), ErrorCode::InvalidInput);
        assert_eq!(
            refused(|e| e.title = String::new()),
            ErrorCode::InvalidInput
        );
        assert_eq!(
            refused(|e| e.image_ref = "a b".into()),
            ErrorCode::InvalidImage
        );
        assert_eq!(refused(|e| e.services.clear()), ErrorCode::InvalidService);
        assert_eq!(
            refused(|e| e.services.push(e.services[0].clone())),
            ErrorCode::InvalidService
        );
        assert_eq!(
            refused(|e| e.command = Some("a\nb".into())),
            ErrorCode::InvalidCommand
        );
        assert_eq!(
            refused(|e| e.prepare = Some("x".repeat(2001))),
            ErrorCode::InvalidCommand
        );
    }
}
