//! One board where every subsystem reports its state; read by `/readyz`, `/api/v1/status`,
//! the metrics and the UI (through a watch channel, so the page updates live).

use std::sync::Arc;

use demiurge_web::{SubsystemState, SubsystemView};
use tokio::sync::watch;

/// The subsystems `demiurge serve` runs, in start order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subsystem {
    Database,
    App,
    Edge,
    Dns,
    Vpn,
}

impl Subsystem {
    pub const ALL: [Subsystem; 5] = [Self::Database, Self::App, Self::Edge, Self::Dns, Self::Vpn];

    pub fn name(self) -> &'static str {
        match self {
            Self::Database => "database",
            Self::App => "app",
            Self::Edge => "edge",
            Self::Dns => "dns",
            Self::Vpn => "vpn",
        }
    }
}

#[derive(Clone)]
pub struct StatusBoard {
    tx: Arc<watch::Sender<Vec<SubsystemView>>>,
}

impl Default for StatusBoard {
    fn default() -> Self {
        Self::new()
    }
}

impl StatusBoard {
    pub fn new() -> Self {
        let rows = Subsystem::ALL
            .iter()
            .map(|s| SubsystemView {
                name: s.name(),
                state: SubsystemState::Starting,
                detail: String::new(),
            })
            .collect();
        Self {
            tx: Arc::new(watch::Sender::new(rows)),
        }
    }

    pub fn set(&self, which: Subsystem, state: SubsystemState, detail: impl Into<String>) {
        let detail = detail.into();
        self.tx.send_modify(|rows| {
            if let Some(r) = rows.iter_mut().find(|r| r.name == which.name()) {
                r.state = state;
                r.detail = detail;
            }
        });
    }

    pub fn snapshot(&self) -> Vec<SubsystemView> {
        self.tx.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<Vec<SubsystemView>> {
        self.tx.subscribe()
    }

    /// Every subsystem is running (or turned off by configuration).
    pub fn ready(&self) -> bool {
        self.tx.borrow().iter().all(|r| r.state.is_ready())
    }
}
