//! The modules that ship with the gateway.

pub mod core_graph;
pub mod gateway;

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
