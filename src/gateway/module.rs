//! The module framework: a module is a Rust value implementing [`Module`]; the gateway runs
//! its events through its reducer, serialised per project, inside one yrs transaction.
//!
//! A module declares its part of the document ([`RootDef`]: named roots, and whether clients
//! may write them directly), its events (a serde type tagged by `"type": "<module>:<verb>"`),
//! the permission each event needs, and the permissions it adds to the catalogue.

use crate::code::ErrorCode;
use std::any::Any as StdAny;
use std::collections::HashMap;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::Value;
use yrs::TransactionMut;

use crate::orgs::perms::PermissionDef;

type Schema = utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>;

/// Why an event was refused. Each maps to an HTTP status and a stable code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// 400: the event is malformed or its values are out of range.
    #[error("{message}")]
    Invalid { code: ErrorCode, message: String },
    /// 403: the sender may see the project but not do this.
    #[error("{message}")]
    Forbidden { code: ErrorCode, message: String },
    /// 404: the event names something that does not exist.
    #[error("{message}")]
    NotFound { code: ErrorCode, message: String },
    /// 409: the event conflicts with the document as it is.
    #[error("{message}")]
    Conflict { code: ErrorCode, message: String },
}

impl EventError {
    pub fn invalid(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Invalid {
            code,
            message: message.into(),
        }
    }
    pub fn not_found(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::NotFound {
            code,
            message: message.into(),
        }
    }
    pub fn conflict(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            message: message.into(),
        }
    }
}

/// How a root is shaped (it decides how a restore copies it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootKind {
    Map,
    Array,
    Text,
}

/// One named root of the project document that a module owns.
#[derive(Debug, Clone, Copy)]
pub struct RootDef {
    pub name: &'static str,
    pub kind: RootKind,
    /// Clients may change it with direct Yjs updates (collaborative text). Otherwise only the
    /// module's reducers write it, and a direct write is refused.
    pub client_writable: bool,
    /// A user's undo history covers their changes here.
    pub undoable: bool,
    /// Restoring a saved version brings this root back to it. False for a root that mirrors
    /// facts kept outside the document (a container's credential, peer and routes), which a
    /// restore can neither bring back nor take away.
    pub restorable: bool,
}

/// Who caused an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A signed-in user (already checked against the event's permission).
    User(UserActor),
    /// The gateway itself (lifecycle, ticks, follow-up events).
    System,
}

/// A user acting in a project: who, and which permissions they hold there (a reducer may
/// need more than the event's own, such as overriding someone else's lock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserActor {
    pub id: String,
    pub name: String,
    pub holds: Arc<[&'static str]>,
}

impl Actor {
    pub fn user(id: impl Into<String>, name: impl Into<String>, holds: Vec<&'static str>) -> Self {
        Self::User(UserActor {
            id: id.into(),
            name: name.into(),
            holds: holds.into(),
        })
    }

    /// The acting user's id (`None` for the system).
    pub fn user_id(&self) -> Option<&str> {
        match self {
            Self::User(u) => Some(&u.id),
            Self::System => None,
        }
    }

    /// Does the actor hold `permission`? The system holds everything.
    pub fn may(&self, permission: &str) -> bool {
        match self {
            Self::User(u) => u.holds.contains(&permission),
            Self::System => true,
        }
    }

    /// The transaction origin of this actor's changes (`u:<id>`), which their undo history
    /// tracks; the system's changes have none.
    pub fn origin(&self) -> Option<yrs::Origin> {
        self.user_id()
            .map(|id| yrs::Origin::from(format!("u:{id}")))
    }
}

/// What a reducer sees: the project, who acts, the open transaction, and a way to emit
/// follow-up events (run after it, in the same transaction).
pub struct Cx<'a, 'doc> {
    pub project_id: &'a str,
    pub actor: &'a Actor,
    pub now: chrono::DateTime<chrono::Utc>,
    pub txn: &'a mut TransactionMut<'doc>,
    pub(crate) emitted: Vec<Value>,
    pub(crate) touched: Vec<String>,
}

impl Cx<'_, '_> {
    /// Queues a follow-up event (`{"type": "<module>:<verb>", ...}`), run as the system after
    /// this reducer returns, in the same transaction.
    pub fn emit(&mut self, event: Value) {
        self.emitted.push(event);
    }

    /// Records that the event changed (or created, or deleted) node `id`. An undo of this
    /// change is checked against the node's lock first.
    pub fn touch(&mut self, id: &str) {
        if !self.touched.iter().any(|t| t == id) {
            self.touched.push(id.to_string());
        }
    }
}

/// A module. `Event` is a serde enum tagged `"type"` whose variants are named
/// `"<module>:<verb>"`.
pub trait Module: Send + Sync + 'static {
    /// Its events; the schema goes into the API document (each variant's doc comment names
    /// the permission it needs).
    type Event: DeserializeOwned + utoipa::ToSchema + Send + 'static;

    fn name(&self) -> &'static str;
    /// Modules whose roots or events this one relies on.
    fn dependencies(&self) -> &'static [&'static str] {
        &[]
    }
    /// The document roots it owns.
    fn roots(&self) -> &'static [RootDef];
    /// The permissions it declares (added to the catalogue the role editor lists).
    fn permissions(&self) -> &'static [PermissionDef];
    /// The permission an event of this type (its `"<module>:<verb>"` tag) needs. Decided by
    /// the type alone, so the API document lists it with each event.
    fn permission(&self, event_type: &str) -> &'static str;
    /// Events only the gateway may send (lifecycle), by type tag; users get
    /// `forbidden_event`, whatever they hold.
    fn system_only(&self, _event_type: &str) -> bool {
        false
    }
    /// Changes the document for one event. Validate before writing: a transaction cannot
    /// be rolled back, so a reducer that fails must fail before its first write.
    fn reduce(&self, cx: &mut Cx<'_, '_>, event: Self::Event) -> Result<Value, EventError>;
    /// Runs once when a project's document is first created.
    fn init(&self, _cx: &mut Cx<'_, '_>) -> Result<(), EventError> {
        Ok(())
    }
    /// Runs on every gateway tick (`[gateway] tick`) of a loaded project.
    fn tick(&self, _cx: &mut Cx<'_, '_>) -> Result<(), EventError> {
        Ok(())
    }
    /// May `actor` change node `id` (a lock held by someone else says no)? Asked before an
    /// undo or redo touches the node, and for direct writes to the node's entry of a
    /// client-writable root (its collaborative text).
    fn may_change(
        &self,
        _txn: &yrs::Transaction<'_>,
        _actor: &Actor,
        _id: &str,
    ) -> Result<(), EventError> {
        Ok(())
    }
}

/// Who may send an event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Only the gateway itself.
    SystemOnly,
    /// Whoever holds this permission in the project.
    Needs(&'static str),
}

/// An event parsed by its module, with the permission it needs.
pub struct ParsedEvent {
    module: usize,
    pub kind: String,
    pub permission: &'static str,
    pub system_only: bool,
    /// Events of one user with the same step (a drag, a typing session) are one undo step.
    pub step: Option<String>,
    event: Box<dyn StdAny + Send>,
}

impl std::fmt::Debug for ParsedEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParsedEvent")
            .field("kind", &self.kind)
            .field("permission", &self.permission)
            .finish()
    }
}

/// The object-safe face of a [`Module`].
trait Erased: Send + Sync {
    fn name(&self) -> &'static str;
    fn roots(&self) -> &'static [RootDef];
    fn permissions(&self) -> &'static [PermissionDef];
    fn permission(&self, event_type: &str) -> &'static str;
    fn system_only(&self, event_type: &str) -> bool;
    fn parse(&self, value: Value) -> Result<(&'static str, bool, Box<dyn StdAny + Send>), String>;
    fn reduce(
        &self,
        cx: &mut Cx<'_, '_>,
        event: Box<dyn StdAny + Send>,
    ) -> Result<Value, EventError>;
    fn init(&self, cx: &mut Cx<'_, '_>) -> Result<(), EventError>;
    fn tick(&self, cx: &mut Cx<'_, '_>) -> Result<(), EventError>;
    fn may_change(
        &self,
        txn: &yrs::Transaction<'_>,
        actor: &Actor,
        id: &str,
    ) -> Result<(), EventError>;
    fn event_schema(&self, out: &mut Vec<(String, Schema)>) -> String;
}

impl<M: Module> Erased for M {
    fn name(&self) -> &'static str {
        Module::name(self)
    }
    fn roots(&self) -> &'static [RootDef] {
        Module::roots(self)
    }
    fn permissions(&self) -> &'static [PermissionDef] {
        Module::permissions(self)
    }
    fn permission(&self, event_type: &str) -> &'static str {
        Module::permission(self, event_type)
    }
    fn system_only(&self, event_type: &str) -> bool {
        Module::system_only(self, event_type)
    }
    fn parse(&self, value: Value) -> Result<(&'static str, bool, Box<dyn StdAny + Send>), String> {
        let tag = value.get("type").and_then(Value::as_str).unwrap_or("");
        let (permission, system_only) = (self.permission(tag), Module::system_only(self, tag));
        let ev: M::Event = serde_json::from_value(value).map_err(|e| e.to_string())?;
        Ok((permission, system_only, Box::new(ev)))
    }
    fn reduce(
        &self,
        cx: &mut Cx<'_, '_>,
        event: Box<dyn StdAny + Send>,
    ) -> Result<Value, EventError> {
        match event.downcast::<M::Event>() {
            Ok(ev) => Module::reduce(self, cx, *ev),
            Err(_) => Err(EventError::invalid(
                ErrorCode::InvalidEvent,
                "the event was parsed by another module",
            )),
        }
    }
    fn init(&self, cx: &mut Cx<'_, '_>) -> Result<(), EventError> {
        Module::init(self, cx)
    }
    fn tick(&self, cx: &mut Cx<'_, '_>) -> Result<(), EventError> {
        Module::tick(self, cx)
    }
    fn may_change(
        &self,
        txn: &yrs::Transaction<'_>,
        actor: &Actor,
        id: &str,
    ) -> Result<(), EventError> {
        Module::may_change(self, txn, actor, id)
    }
    fn event_schema(&self, out: &mut Vec<(String, Schema)>) -> String {
        // `core-graph` → `CoreGraphEvent`: every module's type is called `Event`.
        let mut name: String = Module::name(self)
            .split(['-', '_'])
            .map(|w| {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_uppercase().chain(c).collect::<String>())
                    .unwrap_or_default()
            })
            .collect();
        name.push_str("Event");
        <M::Event as utoipa::ToSchema>::schemas(out);
        let schema = <M::Event as utoipa::PartialSchema>::schema();
        // Each event's description says the permission it needs, from `permission` itself.
        let schema = serde_json::to_value(&schema)
            .ok()
            .and_then(|mut v| {
                describe_events(&mut v, &|t| {
                    if Module::system_only(self, t) {
                        None
                    } else {
                        Some(self.permission(t))
                    }
                });
                serde_json::from_value(v).ok()
            })
            .unwrap_or(schema);
        out.push((name.clone(), schema));
        name
    }
}

/// Completes every event schema under `v` (an object whose `type` property is one tag): its
/// description says "Needs `<permission>`." (or "Sent by the gateway only." for `None`), and
/// it takes `step` besides its own fields, nothing else.
fn describe_events(v: &mut Value, permission: &dyn Fn(&str) -> Option<&'static str>) {
    match v {
        Value::Object(m) => {
            let tag = m
                .get("properties")
                .and_then(|p| p.get("type"))
                .and_then(|t| t.get("enum"))
                .and_then(|e| e.as_array())
                .filter(|e| e.len() == 1)
                .and_then(|e| e[0].as_str())
                .map(str::to_string);
            if let Some(tag) = tag {
                let needs = match permission(&tag) {
                    Some(p) => format!("Needs `{p}`."),
                    None => "Sent by the gateway only: users get `forbidden_event`.".to_string(),
                };
                let text = match m.get("description").and_then(Value::as_str) {
                    Some(d) if !d.is_empty() => format!("{d}\n\n{needs}"),
                    _ => needs,
                };
                m.insert("description".into(), Value::String(text));
                // What the parse takes: the event's own fields (it denies any other) and the
                // `step` every event may carry.
                if let Some(Value::Object(props)) = m.get_mut("properties") {
                    props.insert(
                        "step".into(),
                        serde_json::json!({
                            "type": ["string", "null"],
                            "minLength": 1,
                            "maxLength": 64,
                            "description": "Events of one user with the same step (a drag, a typing session) are one undo step."
                        }),
                    );
                }
                m.insert("additionalProperties".into(), Value::Bool(false));
                return;
            }
            for x in m.values_mut() {
                describe_events(x, permission);
            }
        }
        Value::Array(a) => {
            for x in a {
                describe_events(x, permission);
            }
        }
        _ => {}
    }
}

/// Why a set of modules cannot run together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModulesError {
    #[error("module `{0}` is registered twice")]
    Duplicate(&'static str),
    #[error("module `{module}` needs `{missing}`, which is not registered before it")]
    MissingDependency {
        module: &'static str,
        missing: &'static str,
    },
    #[error("root `{root}` is claimed by both `{first}` and `{second}`")]
    SharedRoot {
        root: &'static str,
        first: &'static str,
        second: &'static str,
    },
}

/// The modules of this server, in dependency order.
#[derive(Clone, Default)]
pub struct Modules {
    list: Vec<Arc<dyn Erased>>,
    by_name: HashMap<&'static str, usize>,
    roots: HashMap<&'static str, (usize, RootDef)>,
}

/// Most follow-up events one event may cause (a loop guard).
const MAX_FOLLOW_UPS: usize = 64;

impl Modules {
    /// Adds a module; its dependencies must already be in.
    pub fn add<M: Module>(&mut self, module: M) -> Result<(), ModulesError> {
        let name = Module::name(&module);
        if self.by_name.contains_key(name) {
            return Err(ModulesError::Duplicate(name));
        }
        for dep in Module::dependencies(&module) {
            if !self.by_name.contains_key(dep) {
                return Err(ModulesError::MissingDependency {
                    module: name,
                    missing: dep,
                });
            }
        }
        let index = self.list.len();
        for r in Module::roots(&module) {
            if let Some((other, _)) = self.roots.get(r.name) {
                return Err(ModulesError::SharedRoot {
                    root: r.name,
                    first: self.list[*other].name(),
                    second: name,
                });
            }
        }
        for r in Module::roots(&module) {
            self.roots.insert(r.name, (index, *r));
        }
        self.by_name.insert(name, index);
        self.list.push(Arc::new(module));
        Ok(())
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.list.iter().map(|m| m.name()).collect()
    }

    /// Every permission the modules declare.
    pub fn permissions(&self) -> Vec<PermissionDef> {
        self.list
            .iter()
            .flat_map(|m| m.permissions().iter().cloned())
            .collect()
    }

    /// Every root, with its owner's name.
    pub fn roots(&self) -> impl Iterator<Item = &RootDef> {
        self.list.iter().flat_map(|m| m.roots().iter())
    }

    /// Does a module own root `name`?
    pub fn declared(&self, name: &str) -> bool {
        self.roots.contains_key(name)
    }

    /// May a client write root `name` directly?
    pub fn client_writable(&self, name: &str) -> bool {
        self.roots
            .get(name)
            .map(|(_, r)| r.client_writable)
            .unwrap_or(false)
    }

    /// Who may send an event of type `kind` (`"<module>:<verb>"`), read from the tag alone
    /// (so it is decided before the body is); `None` when no module has that prefix.
    pub fn gate_of(&self, kind: &str) -> Option<Gate> {
        let module_name = kind.split_once(':').map(|(m, _)| m).unwrap_or("");
        let &module = self.by_name.get(module_name)?;
        let m = &self.list[module];
        Some(if m.system_only(kind) {
            Gate::SystemOnly
        } else {
            Gate::Needs(m.permission(kind))
        })
    }

    /// Parses `{"type": "<module>:<verb>", ...}` with its module's event type. A string
    /// `step` (at most 64 characters) is taken off first: it groups undo steps.
    pub fn parse(&self, mut value: Value) -> Result<ParsedEvent, EventError> {
        crate::json::whole_numbers(&mut value);
        let step = match value.as_object_mut().and_then(|o| o.remove("step")) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if !s.is_empty() && s.chars().count() <= 64 => Some(s),
            Some(_) => {
                return Err(EventError::invalid(
                    ErrorCode::InvalidEvent,
                    "`step` is a string of 1 to 64 characters",
                ));
            }
        };
        let kind = value
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                EventError::invalid(
                    ErrorCode::InvalidEvent,
                    "an event is a JSON object with a string `type`: \"<module>:<verb>\"",
                )
            })?
            .to_string();
        let module_name = kind.split_once(':').map(|(m, _)| m).unwrap_or("");
        let Some(&module) = self.by_name.get(module_name) else {
            return Err(EventError::invalid(
                ErrorCode::UnknownEvent,
                format!(
                    "no module handles `{}`",
                    kind.chars().take(80).collect::<String>()
                ),
            ));
        };
        let (permission, system_only, event) = self.list[module].parse(value).map_err(|e| {
            if e.starts_with(&format!("unknown variant `{kind}`")) {
                EventError::invalid(
                    ErrorCode::UnknownEvent,
                    format!(
                        "module `{module_name}` has no event `{}`",
                        kind.chars().take(80).collect::<String>()
                    ),
                )
            } else {
                EventError::invalid(ErrorCode::InvalidEvent, format!("`{kind}`: {e}"))
            }
        })?;
        Ok(ParsedEvent {
            module,
            kind,
            permission,
            system_only,
            step,
            event,
        })
    }

    /// Runs an event and the follow-ups it emits, in `txn`. Returns the first reducer's result
    /// and the nodes the event touched (see [`Cx::touch`]).
    pub(crate) fn run(
        &self,
        project_id: &str,
        actor: &Actor,
        txn: &mut TransactionMut<'_>,
        event: ParsedEvent,
    ) -> (Result<Value, EventError>, Vec<String>) {
        let now = chrono::Utc::now();
        let (result, emitted, mut touched) = {
            let mut cx = Cx {
                project_id,
                actor,
                now,
                txn: &mut *txn,
                emitted: Vec::new(),
                touched: Vec::new(),
            };
            match self.list[event.module].reduce(&mut cx, event.event) {
                Ok(result) => (result, cx.emitted, cx.touched),
                Err(e) => return (Err(e), cx.touched),
            }
        };
        // Follow-ups run as the system. The first event's changes are already written (a
        // transaction cannot roll back), so a failing follow-up is logged, not returned.
        let mut queue: std::collections::VecDeque<Value> = emitted.into();
        let mut ran = 0;
        while let Some(next) = queue.pop_front() {
            ran += 1;
            if ran > MAX_FOLLOW_UPS {
                tracing::warn!(
                    project = project_id,
                    "follow-up events stopped at the loop guard"
                );
                break;
            }
            let parsed = match self.parse(next) {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(project = project_id, error = %e, "follow-up event refused");
                    continue;
                }
            };
            let mut cx = Cx {
                project_id,
                actor: &Actor::System,
                now,
                txn: &mut *txn,
                emitted: Vec::new(),
                touched: Vec::new(),
            };
            match self.list[parsed.module].reduce(&mut cx, parsed.event) {
                Ok(_) => queue.extend(cx.emitted),
                Err(e) => {
                    tracing::warn!(project = project_id, event = %parsed.kind, error = %e, "follow-up event failed")
                }
            }
            for t in cx.touched {
                if !touched.contains(&t) {
                    touched.push(t);
                }
            }
        }
        (Ok(result), touched)
    }

    /// May `actor` change node `id`? Every module is asked (the first refusal answers).
    pub(crate) fn may_change(
        &self,
        txn: &yrs::Transaction<'_>,
        actor: &Actor,
        id: &str,
    ) -> Result<(), EventError> {
        self.list
            .iter()
            .try_for_each(|m| m.may_change(txn, actor, id))
    }

    /// Every module's event schema, with the schemas they use: the components to add to the
    /// API document, and the names of the event schemas (one per module).
    pub fn event_schemas(&self) -> (Vec<(String, Schema)>, Vec<String>) {
        let mut out = Vec::new();
        let names = self.list.iter().map(|m| m.event_schema(&mut out)).collect();
        (out, names)
    }

    /// The roots a user's undo history covers.
    pub fn undoable_roots(&self) -> impl Iterator<Item = &RootDef> {
        self.roots().filter(|r| r.undoable)
    }

    /// Runs every module's `init` (a new project document).
    pub(crate) fn init(&self, project_id: &str, txn: &mut TransactionMut<'_>) {
        self.each_module(project_id, txn, "init", |m, cx| m.init(cx));
    }

    /// Runs every module's `tick`.
    pub(crate) fn tick(&self, project_id: &str, txn: &mut TransactionMut<'_>) {
        self.each_module(project_id, txn, "tick", |m, cx| m.tick(cx));
    }

    /// Runs a hook of every module as the system; a failing module is logged, not fatal.
    fn each_module(
        &self,
        project_id: &str,
        txn: &mut TransactionMut<'_>,
        hook: &'static str,
        run: impl Fn(&dyn Erased, &mut Cx<'_, '_>) -> Result<(), EventError>,
    ) {
        for m in &self.list {
            let mut cx = Cx {
                project_id,
                actor: &Actor::System,
                now: chrono::Utc::now(),
                txn,
                emitted: Vec::new(),
                touched: Vec::new(),
            };
            if let Err(e) = run(m.as_ref(), &mut cx) {
                tracing::warn!(module = m.name(), hook, error = %e, "module hook failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use yrs::{Doc, Map, Transact, WriteTxn};

    use super::*;
    use crate::orgs::perms::{Level, Scope};

    /// A module for the framework's own tests: a counter its tick and its events bump, and
    /// an event that emits a follow-up.
    struct Counter;

    #[derive(serde::Deserialize, utoipa::ToSchema)]
    #[serde(tag = "type")]
    enum CounterEvent {
        #[serde(rename = "counter:add")]
        Add { by: i64 },
        #[serde(rename = "counter:add-twice")]
        AddTwice { by: i64 },
        #[serde(rename = "counter:fail")]
        Fail {},
    }

    const COUNTER_PERMS: &[PermissionDef] = &[PermissionDef {
        name: "counter:value:write",
        description: "Bump the counter",
        scope: Scope::Project,
        level: Level::Write,
    }];

    fn bump(cx: &mut Cx<'_, '_>, by: i64) -> i64 {
        let root = cx.txn.get_or_insert_map("counter");
        let now = match root.get(cx.txn, "value") {
            Some(yrs::Out::Any(yrs::Any::Number(yrs::any::Number::Int(n)))) => n,
            Some(yrs::Out::Any(yrs::Any::Number(yrs::any::Number::Float(n)))) => n as i64,
            _ => 0,
        } + by;
        root.insert(cx.txn, "value", now);
        now
    }

    impl Module for Counter {
        type Event = CounterEvent;
        fn name(&self) -> &'static str {
            "counter"
        }
        fn dependencies(&self) -> &'static [&'static str] {
            &["gateway"]
        }
        fn roots(&self) -> &'static [RootDef] {
            &[RootDef {
                name: "counter",
                kind: RootKind::Map,
                client_writable: false,
                undoable: false,
                restorable: true,
            }]
        }
        fn permissions(&self) -> &'static [PermissionDef] {
            COUNTER_PERMS
        }
        fn permission(&self, _: &str) -> &'static str {
            "counter:value:write"
        }
        fn reduce(&self, cx: &mut Cx<'_, '_>, e: CounterEvent) -> Result<Value, EventError> {
            match e {
                CounterEvent::Add { by } => Ok(json!(bump(cx, by))),
                CounterEvent::AddTwice { by } => {
                    cx.emit(json!({"type": "counter:add", "by": by}));
                    Ok(json!(bump(cx, by)))
                }
                CounterEvent::Fail {} => Err(EventError::conflict(ErrorCode::Forbidden, "refused")),
            }
        }
        fn tick(&self, cx: &mut Cx<'_, '_>) -> Result<(), EventError> {
            bump(cx, 1000);
            Ok(())
        }
    }

    fn value(doc: &Doc) -> Value {
        use yrs::types::ToJson;
        let txn = doc.transact();
        let m = yrs::ReadTxn::get_map(&txn, "counter").expect("root");
        serde_json::to_value(m.to_json(&txn)).expect("json")["value"].clone()
    }

    #[test]
    fn modules_check_names_dependencies_and_roots() {
        let mut m = Modules::default();
        assert_eq!(
            m.add(Counter),
            Err(ModulesError::MissingDependency {
                module: "counter",
                missing: "gateway"
            })
        );
        let mut b = crate::gateway::modules::builtin();
        assert_eq!(
            b.names(),
            vec!["gateway", "core-graph", "whiteboard", "user-containers"]
        );
        assert!(b.add(Counter).is_ok());
        assert_eq!(b.add(Counter), Err(ModulesError::Duplicate("counter")));
        assert!(
            b.permissions()
                .iter()
                .any(|p| p.name == "core-graph:nodes:write")
        );
        assert!(!b.client_writable("nodes"));
        assert!(b.client_writable("texts"));
        assert!(!b.client_writable("undeclared"));
        m = Modules::default();
        assert!(m.add(crate::gateway::modules::gateway::Gateway).is_ok());
        struct Thief;
        impl Module for Thief {
            type Event = CounterEvent;
            fn name(&self) -> &'static str {
                "thief"
            }
            fn roots(&self) -> &'static [RootDef] {
                &[RootDef {
                    name: "meta",
                    kind: RootKind::Map,
                    client_writable: true,
                    undoable: false,
                    restorable: true,
                }]
            }
            fn permissions(&self) -> &'static [PermissionDef] {
                &[]
            }
            fn permission(&self, _: &str) -> &'static str {
                "x:y:z"
            }
            fn reduce(&self, _: &mut Cx<'_, '_>, _: CounterEvent) -> Result<Value, EventError> {
                Ok(Value::Null)
            }
        }
        assert!(matches!(
            m.add(Thief),
            Err(ModulesError::SharedRoot { root: "meta", .. })
        ));
    }

    #[test]
    fn events_parse_with_stable_codes() {
        let mut m = crate::gateway::modules::builtin();
        m.add(Counter).expect("add");
        let code = |v: Value| match m.parse(v) {
            Err(EventError::Invalid { code, .. }) => code,
            other => panic!("expected a 400, got {other:?}"),
        };
        assert_eq!(code(json!({"by": 1})), "invalid_event");
        assert_eq!(code(json!({"type": 7})), "invalid_event");
        assert_eq!(code(json!({"type": "nobody:add"})), "unknown_event");
        assert_eq!(code(json!({"type": "counter:nothing"})), "unknown_event");
        assert_eq!(
            code(json!({"type": "counter:add", "by": "x"})),
            "invalid_event"
        );
        assert_eq!(
            code(json!({"type": "core-graph:move-node", "id": "a", "x": 1, "y": 2, "z": 3})),
            "invalid_event"
        );
        let ok = m
            .parse(json!({"type": "counter:add", "by": 2}))
            .expect("parse");
        assert_eq!(ok.permission, "counter:value:write");
        assert!(!ok.system_only);
        let init = m.parse(json!({"type": "gateway:init"})).expect("parse");
        assert!(init.system_only);
    }

    #[test]
    fn follow_ups_run_in_the_same_transaction_and_ticks_reach_modules() {
        let mut m = crate::gateway::modules::builtin();
        m.add(Counter).expect("add");
        let doc = Doc::new();
        {
            let mut txn = doc.transact_mut();
            let ev = m
                .parse(json!({"type": "counter:add-twice", "by": 5}))
                .expect("parse");
            let r = m
                .run("p", &Actor::user("u", "U", vec![]), &mut txn, ev)
                .0
                .expect("run");
            assert_eq!(r, json!(5));
        }
        assert_eq!(value(&doc), json!(10));
        {
            let mut txn = doc.transact_mut();
            let ev = m.parse(json!({"type": "counter:fail"})).expect("parse");
            assert!(matches!(
                m.run("p", &Actor::System, &mut txn, ev).0,
                Err(EventError::Conflict {
                    code: ErrorCode::Forbidden,
                    ..
                })
            ));
            m.tick("p", &mut txn);
        }
        assert_eq!(value(&doc), json!(1010));
        {
            let mut txn = doc.transact_mut();
            m.init("p", &mut txn);
        }
        let txn = doc.transact();
        let meta = yrs::ReadTxn::get_map(&txn, "meta").expect("meta");
        assert!(meta.get(&txn, "created_at").is_some());
    }
}
