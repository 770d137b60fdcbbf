//! The image catalogue: what a person picks when they make a container. The built-in entries
//! are stock images that have `sh` and `curl` or `wget` (the agent fetches itself from the
//! server) and an app the agent knows how to start; "custom" is any image, with the ports of
//! its services named by the person.

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

/// The entry with this key.
pub fn entry(key: &str) -> Option<&'static Entry> {
    BUILTIN.iter().find(|e| e.key == key)
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
}
