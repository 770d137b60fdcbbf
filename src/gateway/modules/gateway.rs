//! The built-in `gateway` module: the project's lifecycle (`gateway:init` writes the `meta`
//! root when a project document is first created) and the permissions of the gateway's own
//! endpoints (start/stop, history).

use crate::code::ErrorCode;
use serde::Deserialize;
use serde_json::{Value, json};
use yrs::{Map, WriteTxn};

use crate::gateway::module::{Cx, EventError, Module, RootDef, RootKind};
use crate::orgs::perms::{Level, PermissionDef, Scope};

pub struct Gateway;

/// The schema version `meta.schema` records.
pub const SCHEMA: i64 = 1;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum Event {
    /// Written once, when the project's document is created. Sent by the gateway only
    /// (`forbidden_event` for anyone else).
    #[serde(rename = "gateway:init")]
    Init {},
}

const PERMISSIONS: &[PermissionDef] = &[
    PermissionDef {
        name: "gateway:gateway:manage",
        description: "Start and stop the organization's gateway",
        scope: Scope::Org,
        level: Level::Manage,
    },
    PermissionDef {
        name: "gateway:history:read",
        description: "List a project's history points",
        scope: Scope::Project,
        level: Level::Read,
    },
    PermissionDef {
        name: "gateway:history:create",
        description: "Save a named history point of a project",
        scope: Scope::Project,
        level: Level::Write,
    },
    PermissionDef {
        name: "gateway:history:restore",
        description: "Restore a project to a history point (as a new change)",
        scope: Scope::Project,
        level: Level::Manage,
    },
];

const ROOTS: &[RootDef] = &[RootDef {
    name: "meta",
    kind: RootKind::Map,
    client_writable: false,
    undoable: false,
    restorable: true,
}];

impl Module for Gateway {
    type Event = Event;

    fn name(&self) -> &'static str {
        "gateway"
    }
    fn roots(&self) -> &'static [RootDef] {
        ROOTS
    }
    fn permissions(&self) -> &'static [PermissionDef] {
        PERMISSIONS
    }
    fn permission(&self, _event_type: &str) -> &'static str {
        "gateway:gateway:manage"
    }
    fn system_only(&self, _event_type: &str) -> bool {
        true
    }
    fn reduce(&self, cx: &mut Cx<'_, '_>, event: Event) -> Result<Value, EventError> {
        match event {
            Event::Init {} => {
                let meta = cx.txn.get_or_insert_map("meta");
                if meta.get(cx.txn, "created_at").is_some() {
                    return Err(EventError::conflict(
                        ErrorCode::AlreadyInitialised,
                        "the project document exists already",
                    ));
                }
                meta.insert(cx.txn, "created_at", cx.now.to_rfc3339());
                meta.insert(cx.txn, "project_id", cx.project_id.to_string());
                meta.insert(cx.txn, "schema", SCHEMA);
                Ok(json!({}))
            }
        }
    }
    fn init(&self, cx: &mut Cx<'_, '_>) -> Result<(), EventError> {
        self.reduce(cx, Event::Init {}).map(|_| ())
    }
}
