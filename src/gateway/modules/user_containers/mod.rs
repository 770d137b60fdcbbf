//! The `user-containers` module: the containers of a project, as everyone in it sees them.
//!
//! Document: root map `containers` (id → map {id, name, image, image_ref, services,
//! command?, image_title?, prepare?, created_by, created_by_name, created_at, state,
//! state_at, resources, health, tunnel}), written by
//! the reducers only and never undone. `services` is a list of {name, port, label, terminal};
//! a service answers at `https://<label>.containers.<domain>/`. What may connect and where a
//! host name goes is the database's (docs/decisions/containers.md); this is what the project
//! shows.
//!
//! People create, rename and delete containers; the server reports state changes, resources
//! and service health (`user-containers:report`, system only), at state changes and at most
//! every 30 s, never at heartbeat rate.

pub mod catalogue;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use crate::code::ErrorCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use yrs::{In, Map, MapPrelim, MapRef, ReadTxn, WriteTxn};

use super::any;
use super::core_graph::str_of;
use crate::gateway::module::{Cx, EventError, Module, RootDef, RootKind};
use crate::orgs::perms::{Level, PermissionDef, Scope};

pub struct UserContainers;

/// The root.
pub const CONTAINERS: &str = "containers";

/// Create containers, and rename one's own.
pub const CREATE: &str = "user-containers:container:create";
/// Delete containers, and rename anyone's.
pub const DELETE: &str = "user-containers:container:delete";
/// Open a container's services (checked by the edge).
pub const OPEN: &str = "user-containers:container:open";
/// Open a container's terminal (checked by the edge).
pub const TERMINAL: &str = "user-containers:container:terminal";

/// Most services one container offers.
pub const MAX_SERVICES: usize = 8;
/// Longest container name.
pub const MAX_NAME: usize = 64;
/// Longest service name (the first part of its URL label).
pub const MAX_SERVICE_NAME: usize = 20;

/// One web service of a custom image.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    /// 1 to 20 lowercase letters, digits or `-`, starting with a letter: the first part of
    /// its URL (`<name>-<random>.containers.<domain>`).
    #[schema(min_length = 1, max_length = 20, pattern = "^[a-z][a-z0-9-]*$")]
    pub name: String,
    /// The port it listens on inside the container (on 127.0.0.1).
    #[schema(minimum = 1, maximum = 65535)]
    pub port: u16,
    /// It is a terminal: opening it needs `user-containers:container:terminal`.
    #[serde(default)]
    pub terminal: bool,
}

/// Where a container is, derived by the server from its agent's timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Waiting for its agent (the command has not run yet).
    Created,
    /// The agent enrolled and is connecting.
    Connecting,
    /// Heartbeats arrive.
    Running,
    /// Heartbeats stopped: its URLs answer "this container is offline".
    Stale,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Connecting => "connecting",
            Self::Running => "running",
            Self::Stale => "stale",
        }
    }
}

/// How the server reaches a container's agent through the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Tunnel {
    /// WireGuard over UDP.
    Udp,
    /// UDP does not get through: the agent's control WebSocket carries the tunnel (slower).
    Relay,
}

impl Tunnel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Relay => "relay",
        }
    }
}

/// What a container uses, as its agent last measured.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    #[serde(default)]
    pub cpu_percent: Option<f64>,
    #[serde(default)]
    pub memory_bytes: Option<u64>,
    #[serde(default)]
    pub disk_bytes: Option<u64>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum Event {
    /// Makes a container record (state `created`, waiting for its agent). `image` is a
    /// catalogue key (`jupyterlab`, `terminal`, `vscode`, `custom`); a custom image needs
    /// `image_ref` and `services`, and may give `command`; any other key is an entry of the
    /// organization's catalogue. Answers the container's id and its services' URL labels.
    /// Needs `user-containers:container:create`.
    #[serde(rename = "user-containers:create")]
    Create {
        /// 1 to 64 characters.
        name: String,
        image: String,
        /// A custom image's reference (`[registry/]name[:tag][@digest]`).
        #[serde(default)]
        #[schema(max_length = 255)]
        image_ref: Option<String>,
        /// A custom image's web services (1 to 8, distinct names and ports).
        #[serde(default)]
        services: Option<Vec<ServiceSpec>>,
        /// A custom image's app: a shell command (`sh -c`, one line, up to 2000
        /// characters) the agent starts and keeps running. Without one the image's own
        /// processes must serve the ports (the `docker run` line replaces its command).
        #[serde(default)]
        #[schema(max_length = 2000)]
        command: Option<String>,
        /// The organization's catalogue entry `image` names, put here by the server
        /// (anything a client sends here is replaced).
        #[serde(default)]
        #[schema(ignore)]
        catalogue_entry: Option<catalogue::OrgEntry>,
    },
    /// Renames a container. Needs `user-containers:container:create` for one's own, or
    /// `user-containers:container:delete` for anyone's.
    #[serde(rename = "user-containers:rename")]
    Rename { id: String, name: String },
    /// Deletes a container: its record goes, and with it (at once) its agent's credential,
    /// its network peer and its URLs. Not undoable. Needs `user-containers:container:delete`.
    #[serde(rename = "user-containers:delete")]
    Delete { id: String },
    /// The server's report about a container: a state change, resource figures, service
    /// health (by service name). Sent by the gateway only (`forbidden_event` for anyone
    /// else).
    #[serde(rename = "user-containers:report")]
    Report {
        id: String,
        #[serde(default)]
        state: Option<State>,
        #[serde(default)]
        resources: Option<Resources>,
        #[serde(default)]
        health: Option<BTreeMap<String, bool>>,
        #[serde(default)]
        tunnel: Option<Tunnel>,
    },
}

const PERMISSIONS: &[PermissionDef] = &[
    PermissionDef {
        name: CREATE,
        description: "Create containers and rename one's own",
        scope: Scope::Project,
        level: Level::Write,
    },
    PermissionDef {
        name: DELETE,
        description: "Delete containers and rename anyone's",
        scope: Scope::Project,
        level: Level::Write,
    },
    PermissionDef {
        name: OPEN,
        description: "Open a container's apps (they run code on the container's machine)",
        scope: Scope::Project,
        level: Level::Write,
    },
    PermissionDef {
        name: TERMINAL,
        description: "Open a container's terminal",
        scope: Scope::Project,
        level: Level::Write,
    },
];

const ROOTS: &[RootDef] = &[RootDef {
    name: CONTAINERS,
    kind: RootKind::Map,
    client_writable: false,
    // A deleted container's credential is revoked; an undo could not bring it back.
    undoable: false,
    // Nor can a restore: the records follow the containers that exist.
    restorable: false,
}];

fn invalid(code: ErrorCode, message: impl Into<String>) -> EventError {
    EventError::invalid(code, message)
}

fn missing(id: &str) -> EventError {
    EventError::not_found(
        ErrorCode::ContainerNotFound,
        format!(
            "no container `{}` in this project",
            id.chars().take(64).collect::<String>()
        ),
    )
}

fn check_name(name: &str) -> Result<String, EventError> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > MAX_NAME || n.chars().any(char::is_control) {
        return Err(invalid(
            ErrorCode::InvalidName,
            format!(
                "a container's name is 1 to {MAX_NAME} characters, none of them control characters"
            ),
        ));
    }
    Ok(n.to_string())
}

/// A new URL label: the service's name and 8 random base32 characters (40 bits).
fn new_label(service: &str) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    let suffix: String = (0..8)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{service}-{suffix}")
}

/// What a new container runs, checked: its image, services and start command, and for an
/// organization entry its title and preparing step.
struct Chosen {
    image_ref: String,
    services: Vec<ServiceSpec>,
    command: Option<String>,
    title: Option<String>,
    prepare: Option<String>,
}

fn refused((code, message): catalogue::Refusal) -> EventError {
    invalid(code, message)
}

/// The image, services and command a create event asks for, checked.
fn choose(
    image: &str,
    image_ref: Option<String>,
    services: Option<Vec<ServiceSpec>>,
    command: Option<String>,
    org_entry: Option<catalogue::OrgEntry>,
) -> Result<Chosen, EventError> {
    let given = image_ref.is_some() || services.is_some() || command.is_some();
    let Some(entry) = catalogue::entry(image) else {
        // An organization's entry, filled in by the server for the key the event names.
        let Some(e) = org_entry.filter(|e| e.key == image) else {
            return Err(invalid(
                ErrorCode::InvalidImage,
                format!(
                    "no image `{}` in the catalogue (one of: {}, or one of the organization's)",
                    image.chars().take(64).collect::<String>(),
                    catalogue::BUILTIN
                        .iter()
                        .map(|e| e.key)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        };
        if given {
            return Err(invalid(
                ErrorCode::InvalidImage,
                format!(
                    "`{image}` comes with its image, services and command; give them only for `custom`"
                ),
            ));
        }
        let e = e.checked().map_err(refused)?;
        return Ok(Chosen {
            image_ref: e.image_ref,
            services: e.services,
            command: e.command,
            title: Some(e.title),
            prepare: e.prepare,
        });
    };
    let Some(builtin) = entry.image else {
        let r = image_ref
            .ok_or_else(|| invalid(ErrorCode::InvalidImage, "a custom image needs `image_ref`"))?;
        if !catalogue::valid_image_ref(&r) {
            return Err(invalid(
                ErrorCode::InvalidImage,
                "`image_ref` is not an image reference ([registry/]name[:tag][@digest])",
            ));
        }
        let services = services.unwrap_or_default();
        catalogue::check_services(&services).map_err(refused)?;
        return Ok(Chosen {
            image_ref: r,
            services,
            command: catalogue::check_command("command", command).map_err(refused)?,
            title: None,
            prepare: None,
        });
    };
    if given {
        return Err(invalid(
            ErrorCode::InvalidImage,
            format!("`{image}` comes with its image and services; give them only for `custom`"),
        ));
    }
    Ok(Chosen {
        image_ref: builtin.to_string(),
        services: entry.service_specs(),
        command: None,
        title: None,
        prepare: None,
    })
}

fn record<T: ReadTxn>(txn: &T, id: &str) -> Option<MapRef> {
    let root = txn.get_map(CONTAINERS)?;
    match root.get(txn, id) {
        Some(yrs::Out::YMap(m)) => Some(m),
        _ => None,
    }
}

impl Module for UserContainers {
    type Event = Event;

    fn name(&self) -> &'static str {
        "user-containers"
    }
    fn roots(&self) -> &'static [RootDef] {
        ROOTS
    }
    fn permissions(&self) -> &'static [PermissionDef] {
        PERMISSIONS
    }
    fn permission(&self, event_type: &str) -> &'static str {
        match event_type {
            "user-containers:delete" => DELETE,
            _ => CREATE,
        }
    }
    fn system_only(&self, event_type: &str) -> bool {
        event_type == "user-containers:report"
    }
    fn reduce(&self, cx: &mut Cx<'_, '_>, event: Event) -> Result<Value, EventError> {
        match event {
            Event::Create {
                name,
                image,
                image_ref,
                services,
                command,
                catalogue_entry,
            } => {
                let name = check_name(&name)?;
                let chosen = choose(&image, image_ref, services, command, catalogue_entry)?;
                let services = &chosen.services;
                let (by, by_name) = match cx.actor {
                    crate::gateway::module::Actor::User(u) => (u.id.clone(), u.name.clone()),
                    crate::gateway::module::Actor::System => (String::new(), String::new()),
                };
                let id = super::core_graph::new_id();
                let listed: Vec<Value> = services
                    .iter()
                    .map(|s| {
                        json!({"name": s.name, "port": s.port, "label": new_label(&s.name),
                            "terminal": s.terminal})
                    })
                    .collect();
                let now = cx.now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                let mut fields = vec![
                    ("id", In::Any(id.clone().into())),
                    ("name", In::Any(name.into())),
                    ("image", In::Any(image.into())),
                    ("image_ref", In::Any(chosen.image_ref.into())),
                    ("services", In::Any(any(&Value::Array(listed.clone())))),
                    ("created_by", In::Any(by.into())),
                    ("created_by_name", In::Any(by_name.into())),
                    ("created_at", In::Any(now.clone().into())),
                    ("state", In::Any(State::Created.as_str().into())),
                    ("state_at", In::Any(now.into())),
                ];
                for (k, v) in [
                    ("image_title", chosen.title),
                    ("command", chosen.command),
                    ("prepare", chosen.prepare),
                ] {
                    if let Some(v) = v {
                        fields.push((k, In::Any(v.into())));
                    }
                }
                let prelim = MapPrelim::from_iter(fields);
                let root = cx.txn.get_or_insert_map(CONTAINERS);
                root.insert(cx.txn, id.as_str(), prelim);
                Ok(json!({"id": id, "services": listed}))
            }
            Event::Rename { id, name } => {
                let name = check_name(&name)?;
                let m = record(cx.txn, &id).ok_or_else(|| missing(&id))?;
                let creator = str_of(&m, cx.txn, "created_by");
                if creator.as_deref() != cx.actor.user_id() && !cx.actor.may(DELETE) {
                    return Err(EventError::Forbidden {
                        code: ErrorCode::Forbidden,
                        message: format!("renaming someone else's container needs `{DELETE}`"),
                    });
                }
                m.insert(cx.txn, "name", name);
                Ok(json!({"id": id}))
            }
            Event::Delete { id } => {
                if record(cx.txn, &id).is_none() {
                    return Err(missing(&id));
                }
                let root = cx.txn.get_or_insert_map(CONTAINERS);
                root.remove(cx.txn, &id);
                Ok(json!({"id": id}))
            }
            Event::Report {
                id,
                state,
                resources,
                health,
                tunnel,
            } => {
                let m = record(cx.txn, &id).ok_or_else(|| missing(&id))?;
                if let Some(t) = tunnel {
                    m.insert(cx.txn, "tunnel", t.as_str());
                }
                let now = cx.now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                if let Some(s) = state
                    && str_of(&m, cx.txn, "state").as_deref() != Some(s.as_str())
                {
                    m.insert(cx.txn, "state", s.as_str());
                    m.insert(cx.txn, "state_at", now.clone());
                }
                if let Some(r) = resources {
                    let v = serde_json::to_value(&r).unwrap_or(Value::Null);
                    m.insert(cx.txn, "resources", any(&v));
                    m.insert(cx.txn, "resources_at", now);
                }
                if let Some(h) = health {
                    let v = serde_json::to_value(&h).unwrap_or(Value::Null);
                    m.insert(cx.txn, "health", any(&v));
                }
                Ok(json!({"id": id}))
            }
        }
    }
}
