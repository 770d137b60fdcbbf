//! The modules that ship with the gateway, and [`builtin`], the set a server runs.

pub mod core_graph;
pub mod gateway;
#[cfg(test)]
pub(crate) mod testing;
pub mod user_containers;
pub mod whiteboard;

use super::module::Modules;

/// The built-in modules in dependency order: `gateway`, `core-graph`, `whiteboard`,
/// `user-containers`. Built
/// once where the app is wired; the gateway runs them and the permission catalogue lists
/// what they declare.
pub fn builtin() -> Modules {
    let mut m = Modules::default();
    // The built-in set is known to be consistent (checked by a unit test).
    let _ = m.add(gateway::Gateway);
    let _ = m.add(core_graph::CoreGraph);
    let _ = m.add(whiteboard::Whiteboard);
    let _ = m.add(user_containers::UserContainers);
    m
}

use yrs::{Any, Out};

/// A JSON value as a yrs `Any` (numbers become floats, as in JavaScript).
pub(crate) fn any(v: &serde_json::Value) -> Any {
    serde_json::from_value(v.clone()).unwrap_or(Any::Null)
}

/// A yrs value as JSON (`Null` for shared types, which reducers here never nest).
pub(crate) fn json(v: &Out) -> serde_json::Value {
    match v {
        Out::Any(a) => serde_json::to_value(a).unwrap_or(serde_json::Value::Null),
        _ => serde_json::Value::Null,
    }
}
