//! A project document with the built-in modules, for the modules' reducer tests: events run
//! as a project runs them ([`run_event`]: one transaction per event, with the actor's
//! origin).

use serde_json::{Value, json};
use yrs::types::ToJson;
use yrs::{Doc, Transact};

use crate::gateway::module::{Actor, EventError, Modules};
use crate::gateway::project::run_event;
use crate::gateway::undo::UndoBook;

pub(crate) struct TestProject {
    pub(crate) doc: Doc,
    pub(crate) modules: Modules,
    pub(crate) undo: UndoBook,
}

impl TestProject {
    pub(crate) fn new() -> Self {
        let modules = crate::gateway::modules::builtin();
        let doc = Doc::new();
        {
            let mut txn = doc.transact_mut();
            modules.init("p", &mut txn);
        }
        Self {
            doc,
            modules,
            undo: UndoBook::default(),
        }
    }

    pub(crate) fn run(&mut self, actor: &Actor, ev: Value) -> Result<Value, EventError> {
        let parsed = self.modules.parse(ev)?;
        run_event(&self.doc, &self.modules, &mut self.undo, "p", actor, parsed).0
    }

    /// Runs an event that must succeed; its result.
    pub(crate) fn ok(&mut self, actor: &Actor, ev: Value) -> Value {
        let shown = ev.to_string();
        self.run(actor, ev)
            .unwrap_or_else(|e| panic!("{shown}: {e:?}"))
    }

    /// Runs an event that must be refused; the code it is refused with.
    pub(crate) fn code(&mut self, actor: &Actor, ev: Value) -> &'static str {
        match self.run(actor, ev) {
            Err(
                EventError::Invalid { code, .. }
                | EventError::NotFound { code, .. }
                | EventError::Conflict { code, .. }
                | EventError::Forbidden { code, .. },
            ) => code.as_str(),
            Ok(v) => panic!("expected a refusal, got {v}"),
        }
    }

    /// A root map as JSON (`{}` when it does not exist yet).
    pub(crate) fn root(&self, name: &str) -> Value {
        let txn = self.doc.transact();
        yrs::ReadTxn::get_map(&txn, name)
            .map(|m| serde_json::to_value(m.to_json(&txn)).expect("json"))
            .unwrap_or(json!({}))
    }
}
