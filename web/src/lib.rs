//! Demiurge's user interface: Dioxus components rendered on the server (LiveView) and sent to
//! the browser as DOM patches over a WebSocket, plus the embedded static assets.
//!
//! The one public face is [`configure`], which mounts `/`, the LiveView socket at [`WS_PATH`]
//! and `/assets/*` on an actix-web app. The UI only renders what it is given through
//! [`Shell`]; it never reaches into the server's subsystems.

mod adapter;
mod assets;
pub mod board;
mod shell;
pub mod status;
mod ui;

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, web};
use dioxus_liveview::LiveViewPool;
use tokio::sync::watch;

pub use board::{Boards, Visitor};

pub use status::{SubsystemState, SubsystemView};

/// Where the browser opens the LiveView WebSocket.
pub const WS_PATH: &str = "/ui/ws";

/// The pages of the UI (each the LiveView shell; the app picks the page from the path).
const PAGES: [&str; 10] = [
    "/",
    "/signin",
    "/signup",
    "/forgot",
    "/settings",
    "/admin",
    "/orgs",
    "/orgs/{tail:.*}",
    "/projects/{tail:.*}",
    "/invite",
];

/// Every path the UI answers, all with GET only (the server's 405 and OPTIONS answers use
/// this list, so it is the one [`configure`] mounts).
pub fn get_paths() -> impl Iterator<Item = &'static str> {
    PAGES
        .into_iter()
        .chain([WS_PATH, shell::GLUE_PATH, FAVICON_PATH, "/assets/{path:.*}"])
}

/// Where browsers look for a site's icon by default (pages also link the SVG).
pub const FAVICON_PATH: &str = "/favicon.ico";

/// The Content-Security-Policy of every page of the UI: scripts and styles from our own
/// origin only, no inline script, never framed. `'unsafe-eval'` because dioxus-liveview runs
/// what the server asks of the page (`document::eval`) with `Function`; the code comes over
/// our own socket, never from a page's content. Inline styles are the components' `style`
/// attributes (card positions and sizes).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self' 'unsafe-eval'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; \
     object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/// What the UI shows: the instance, this boot, a live feed of subsystem status, and the
/// projects' boards.
#[derive(Clone)]
pub struct Shell {
    /// The instance's name, following an admin's change.
    pub instance_name: watch::Receiver<String>,
    /// Changes at every server start; the page shows it, so a reconnect is visible.
    pub boot_id: String,
    pub status: watch::Receiver<Vec<SubsystemView>>,
    pub boards: Arc<dyn Boards>,
}

impl PartialEq for Shell {
    fn eq(&self, other: &Self) -> bool {
        self.instance_name.same_channel(&other.instance_name)
            && self.boot_id == other.boot_id
            && self.status.same_channel(&other.status)
            && Arc::ptr_eq(&self.boards, &other.boards)
    }
}

struct UiState {
    shell: Shell,
    pool: LiveViewPool,
    glue: String,
}

/// Mounts the UI routes. Create once per process (it owns the LiveView thread pool).
pub fn configure(shell: Shell) -> impl FnOnce(&mut web::ServiceConfig) + Clone {
    let state = web::Data::new(UiState {
        glue: shell::glue_js(),
        shell,
        pool: LiveViewPool::new(),
    });
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(state);
        for path in PAGES {
            cfg.route(path, web::get().to(index));
        }
        cfg.route(WS_PATH, web::get().to(socket))
            .route(shell::GLUE_PATH, web::get().to(glue))
            .route(FAVICON_PATH, web::get().to(assets::favicon))
            .route("/assets/{path:.*}", web::get().to(assets::serve));
    }
}

async fn index(state: web::Data<UiState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header(("Referrer-Policy", "same-origin"))
        .body(shell::page_html(&state.shell.instance_name.borrow()))
}

async fn glue(state: web::Data<UiState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .body(state.glue.clone())
}

async fn socket(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<UiState>,
) -> actix_web::Result<HttpResponse> {
    let header = |name: actix_web::http::header::HeaderName| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let visitor = Visitor {
        cookie: header(actix_web::http::header::COOKIE),
        origin: header(actix_web::http::header::ORIGIN),
    };
    let (resp, session, msgs) = actix_ws::handle(&req, body)?;
    let socket = adapter::actix_socket(session, msgs);
    let pool = state.pool.clone();
    let root = shell::Root {
        shell: state.shell.clone(),
        visitor,
    };
    actix_web::rt::spawn(async move {
        if let Err(e) = pool.launch_with_props(socket, shell::app, root).await {
            tracing::debug!(error = ?e, "liveview session ended");
        }
    });
    Ok(resp)
}
