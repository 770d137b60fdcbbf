//! The board: a project's cards and connectors on an infinite canvas that everyone on the
//! project edits together.
//!
//! The server renders the cards (`page`) from the project's live document, which it is given
//! through [`Boards`]; `assets/board.js`, the island, owns the camera and the gestures and
//! sends every change to the public events API from the browser. Presence (cursors,
//! selections, viewports) is awareness: the page's session is a collaboration client of the
//! project, so stock Yjs clients see it too.

mod cards;
pub mod geometry;
pub mod model;
pub(crate) mod page;
mod panels;
pub mod svg;

use std::sync::Arc;

use futures::future::BoxFuture;
use tokio::sync::{mpsc, watch};

pub use self::model::{BoardDoc, Rect};
pub(crate) use self::page::BoardPage;

/// Who opened the page, as the LiveView socket's request told.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Visitor {
    /// The request's `Cookie` header.
    pub cookie: Option<String>,
    /// The request's `Origin` header.
    pub origin: Option<String>,
}

/// The signed-in person on a board.
#[derive(Debug, Clone, PartialEq)]
pub struct Me {
    pub user_id: String,
    pub name: String,
    pub color: String,
}

/// What the person may do on the board.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Abilities {
    /// Change cards and connectors.
    pub edit: bool,
    /// Save history points.
    pub save_points: bool,
    /// Restore history points.
    pub restore: bool,
    /// Open the project's settings.
    pub settings: bool,
    /// Add, rename and delete views.
    pub views: bool,
    /// Create containers (and rename, re-issue the command of, one's own).
    pub containers: bool,
    /// Delete any container, and issue the command of anyone's.
    pub containers_manage: bool,
}

/// Someone else on the board (from the project's awareness).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Peer {
    /// Their awareness client id (one per open page or Yjs client).
    pub client: u64,
    pub user_id: String,
    pub name: String,
    pub color: String,
    /// Where their pointer is on the board.
    pub cursor: Option<(f64, f64)>,
    pub selection: Vec<String>,
    pub viewport: Option<Rect>,
    pub view: Option<String>,
}

/// What this page tells the others (its awareness state).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Presence {
    pub cursor: Option<(f64, f64)>,
    pub selection: Vec<String>,
    pub viewport: Option<Rect>,
    pub view: String,
}

/// Why a board session went away.
#[derive(Debug, Clone, PartialEq)]
pub enum Ended {
    /// Signed out, or the session expired.
    SignedOut,
    /// No longer allowed to see the project.
    NoAccess,
}

/// An open board: the project, the person, and live feeds of the board and the others.
pub struct BoardSession {
    pub project_id: String,
    pub project_name: String,
    pub org_id: String,
    pub org_name: String,
    pub me: Me,
    pub can: Abilities,
    pub doc: watch::Receiver<Arc<BoardDoc>>,
    pub peers: watch::Receiver<Arc<Vec<Peer>>>,
    /// Set when the session ends (the page then says why).
    pub ended: watch::Receiver<Option<Ended>>,
    /// This page's presence, to the others.
    pub presence: mpsc::Sender<Presence>,
    /// A container service's address, with `{label}` for its label.
    pub service_url: String,
}

/// Why a board cannot be opened.
#[derive(Debug, Clone, PartialEq)]
pub enum OpenError {
    SignedOut,
    /// No such project, or not one the person may see.
    NotFound,
    /// The server cannot open it now (the message says why).
    Unavailable(String),
}

/// What the board page needs from the server.
pub trait Boards: Send + Sync + 'static {
    /// Opens project `project_id`'s board for the visitor.
    fn open(
        &self,
        visitor: Visitor,
        project_id: String,
    ) -> BoxFuture<'static, Result<BoardSession, OpenError>>;
}
