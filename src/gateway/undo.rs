//! Per-user undo: one yrs `UndoManager` per user in a loaded project, tracking the origin
//! (`u:<id>`) that the user's events are written with and scoped to the roots modules mark
//! undoable. So an undo reverts only that user's own changes; where someone else changed the
//! same field since, their value stays (yrs, like Yjs, does not redo over a newer value).
//!
//! Each history step remembers the cards (nodes) its changes touched. An undo or redo is
//! checked against them first (a card locked by someone else refuses it, and the step stays).
//! yrs skips a step whose changes were all overwritten by others and goes on to the one
//! before; that step is checked after the fact and reverted at once if it was not allowed.
//!
//! Events of one user with the same `step` (a drag, a typing session) merge into one history
//! step; any other event starts a new one.

use crate::code::ErrorCode;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use yrs::undo::{Options, StackItem, UndoManager};
use yrs::{Doc, Origin, Transact};

use super::module::{Actor, EventError, Modules, RootKind};

/// What a history step touched.
#[derive(Debug, Default, Clone)]
pub(crate) struct Touched(Vec<String>);

impl Touched {
    fn add(&mut self, ids: impl IntoIterator<Item = String>) {
        for id in ids {
            if !self.0.contains(&id) {
                self.0.push(id);
            }
        }
    }
}

/// Most history steps kept per user; older ones are forgotten.
pub(crate) const MAX_STEPS: usize = 200;

struct History {
    mgr: UndoManager<Touched>,
    step: Option<String>,
}

/// Every user's undo history in one project.
#[derive(Default)]
pub(crate) struct UndoBook {
    users: HashMap<String, History>,
    /// The cards the change being committed touched (read by the managers' observers).
    touching: Arc<Mutex<Vec<String>>>,
    /// The cards of the step an undo or redo just popped.
    popped: Arc<Mutex<Option<Touched>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn nothing(redo: bool) -> EventError {
    if redo {
        EventError::conflict(
            ErrorCode::NothingToRedo,
            "there is nothing of yours to redo",
        )
    } else {
        EventError::conflict(
            ErrorCode::NothingToUndo,
            "there is nothing of yours to undo",
        )
    }
}

impl UndoBook {
    fn manager(
        &self,
        doc: &Doc,
        modules: &Modules,
        user: &str,
        undo: Vec<StackItem<Touched>>,
        redo: Vec<StackItem<Touched>>,
    ) -> UndoManager<Touched> {
        let mut mgr = UndoManager::with_options(Options {
            // Steps end where events say (`reset`), not after a pause.
            capture_timeout_millis: u64::MAX / 4,
            init_undo_stack: undo,
            init_redo_stack: redo,
            ..Options::default()
        });
        for r in modules.undoable_roots() {
            match r.kind {
                RootKind::Map => mgr.expand_scope(doc, &doc.get_or_insert_map(r.name)),
                RootKind::Array => mgr.expand_scope(doc, &doc.get_or_insert_array(r.name)),
                RootKind::Text => mgr.expand_scope(doc, &doc.get_or_insert_text(r.name)),
            }
        }
        mgr.include_origin(Origin::from(format!("u:{user}")));
        let t = self.touching.clone();
        mgr.observe_item_added("touched", move |_, e| {
            e.meta_mut().add(lock(&t).iter().cloned());
        });
        let t = self.touching.clone();
        mgr.observe_item_updated("touched", move |_, e| {
            e.meta_mut().add(lock(&t).iter().cloned());
        });
        let popped = self.popped.clone();
        mgr.observe_item_popped("popped", move |_, e| {
            *lock(&popped) = Some(e.meta().clone());
        });
        mgr
    }

    /// Before a user's event: their history exists, and a new step starts unless the event
    /// continues the step of their last one.
    pub(crate) fn before_event(
        &mut self,
        doc: &Doc,
        modules: &Modules,
        user: &str,
        step: Option<&str>,
    ) {
        let trim = match self.users.get(user) {
            None => Some((Vec::new(), Vec::new())),
            // Past MAX_STEPS the oldest half is forgotten (a manager starts again with the rest).
            Some(h) if h.mgr.undo_stack().len() >= MAX_STEPS => {
                let stack = h.mgr.undo_stack();
                Some((
                    stack[stack.len() - MAX_STEPS / 2..].to_vec(),
                    h.mgr.redo_stack().to_vec(),
                ))
            }
            Some(_) => None,
        };
        if let Some((undo, redo)) = trim {
            let step = self.users.remove(user).and_then(|h| h.step);
            let mgr = self.manager(doc, modules, user, undo, redo);
            self.users.insert(user.to_string(), History { mgr, step });
        }
        let Some(h) = self.users.get_mut(user) else {
            return;
        };
        if step.is_none() || h.step.as_deref() != step {
            h.mgr.reset();
        }
        h.step = step.map(str::to_string);
    }

    /// The cards the change about to commit touched (empty once it has).
    pub(crate) fn touching(&self, ids: Vec<String>) {
        *lock(&self.touching) = ids;
    }

    /// Undoes (or redoes) `actor`'s last step. `may_change` is asked about every card it
    /// touches. Returns the change as an update (`None` if nothing changed) and the cards.
    pub(crate) fn step(
        &mut self,
        doc: &Doc,
        actor: &Actor,
        redo: bool,
        may_change: impl Fn(&yrs::Transaction<'_>, &str) -> Result<(), EventError>,
    ) -> Result<(Option<Vec<u8>>, Vec<String>), EventError> {
        let Some(user) = actor.user_id() else {
            return Err(nothing(redo));
        };
        let touching = self.touching.clone();
        let popped = self.popped.clone();
        let Some(h) = self.users.get_mut(user) else {
            return Err(nothing(redo));
        };
        let top = if redo {
            h.mgr.redo_stack().last()
        } else {
            h.mgr.undo_stack().last()
        };
        let Some(top) = top.map(|t| t.meta().clone()) else {
            return Err(nothing(redo));
        };
        {
            let txn = doc.transact();
            for id in &top.0 {
                may_change(&txn, id)?;
            }
        }
        let updates: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let sink = updates.clone();
        let _ = doc.observe_update_v1("undo", move |_, e| lock(&sink).push(e.update.clone()));
        // The step the undo creates on the other stack touches the same cards.
        *lock(&touching) = top.0.clone();
        *lock(&popped) = None;
        let changed = if redo {
            h.mgr.redo_blocking()
        } else {
            h.mgr.undo_blocking()
        };
        let went = lock(&popped).take().unwrap_or_default();
        // yrs went past steps that changed nothing any more: check the one it took.
        let allowed = {
            let txn = doc.transact();
            went.0.iter().try_for_each(|id| may_change(&txn, id))
        };
        if changed && let Err(e) = allowed {
            *lock(&touching) = went.0.clone();
            if redo {
                h.mgr.undo_blocking();
            } else {
                h.mgr.redo_blocking();
            }
            *lock(&touching) = Vec::new();
            let _ = doc.unobserve_update_v1("undo");
            h.mgr.reset();
            return Err(e);
        }
        *lock(&touching) = Vec::new();
        let _ = doc.unobserve_update_v1("undo");
        h.mgr.reset();
        h.step = None;
        if !changed {
            return Err(nothing(redo));
        }
        let updates = std::mem::take(&mut *lock(&updates));
        let delta = match updates.len() {
            0 => None,
            1 => updates.into_iter().next(),
            _ => yrs::merge_updates_v1(updates.iter().map(Vec::as_slice)).ok(),
        };
        Ok((delta, went.0))
    }
}

/// Collects which entries of client-writable map roots a transaction changed, by deep
/// observers on those roots (a card's text is entry `<card id>` of `texts`).
#[derive(Default)]
pub(crate) struct DirectWrites {
    changed: Arc<Mutex<Vec<(String, String)>>>,
}

impl DirectWrites {
    /// Observes `doc`'s client-writable map roots.
    pub(crate) fn watch(&self, doc: &Doc, modules: &Modules) {
        use yrs::DeepObservable;
        use yrs::types::{Event, PathSegment};
        for r in modules.roots().filter(|r| r.client_writable) {
            if r.kind != RootKind::Map {
                continue;
            }
            let root = r.name.to_string();
            let sink = self.changed.clone();
            doc.get_or_insert_map(r.name)
                .observe_deep("direct-writes", move |txn, events| {
                    let mut out = lock(&sink);
                    for e in events.iter() {
                        match e.path().front() {
                            Some(PathSegment::Key(k)) => out.push((root.clone(), k.to_string())),
                            Some(PathSegment::Index(_)) => {}
                            None => {
                                if let Event::Map(m) = e {
                                    for k in m.keys(txn).keys() {
                                        out.push((root.clone(), k.to_string()));
                                    }
                                }
                            }
                        }
                    }
                });
        }
    }

    /// What changed since the last call.
    pub(crate) fn take(&self) -> Vec<(String, String)> {
        std::mem::take(&mut *lock(&self.changed))
    }
}
