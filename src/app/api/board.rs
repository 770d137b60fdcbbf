//! A project's board as files: exported as PNG, SVG, our own board file or JSON Canvas
//! (rendered on the server from the document, so an export matches what people see), and
//! board files imported as new cards.

use crate::code::ErrorCode;
use std::sync::{Arc, OnceLock};

use actix_web::{HttpResponse, web};
use actix_web::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa_actix_web::service_config::ServiceConfig;

use super::gateway::project_access;
use super::private_json;
use crate::app::AppState;
use crate::app::error::{ApiError, ErrorBody};
use crate::app::session::Authenticated;
use crate::gateway::modules::whiteboard::{self, formats};
use crate::orgs::ProjectAccess;

/// What an imported file becomes: one paste of its cards and edges. The file may be as
/// large as any JSON body (`crate::app::JSON_LIMIT`, the app's `PayloadConfig`).
const IMPORT_EVENT: &str = "whiteboard:insert";

/// Largest side of an exported PNG, in pixels (a bigger board is scaled down to fit).
const MAX_PNG_SIDE: f32 = 8192.0;

/// Registers this file's handlers with the router and the API document at once.
pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(export).service(import);
}

#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    Png,
    Svg,
    Json,
    Canvas,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ExportQuery {
    /// `png`, `svg`, `json` (a Demiurge board file) or `canvas` (JSON Canvas 1.0).
    format: ExportFormat,
    /// The board view (`main` when absent).
    #[serde(default)]
    view: Option<String>,
    /// Only these cards (ids, comma-separated), and the connectors between them.
    #[serde(default)]
    ids: Option<String>,
}

/// A file name made of the project's name.
fn file_name(project: &str, ext: &str) -> String {
    let mut base: String = project
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    base = base.trim_matches('-').chars().take(60).collect();
    if base.is_empty() {
        base = "board".into();
    }
    format!("{base}.{ext}")
}

fn file(body: impl Into<bytes::Bytes>, mime: &str, name: &str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(mime)
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"{name}\""),
        ))
        .body(body.into())
}

/// The fonts PNG exports draw text with (the system's, read once).
fn fonts() -> Arc<resvg::usvg::fontdb::Database> {
    static FONTS: OnceLock<Arc<resvg::usvg::fontdb::Database>> = OnceLock::new();
    FONTS
        .get_or_init(|| {
            let mut db = resvg::usvg::fontdb::Database::new();
            db.load_system_fonts();
            db.set_sans_serif_family("Liberation Sans");
            Arc::new(db)
        })
        .clone()
}

/// `svg` as a PNG image (at most [`MAX_PNG_SIDE`] pixels a side).
pub fn png_of(svg: &str) -> Result<Vec<u8>, String> {
    let mut opt = resvg::usvg::Options {
        fontdb: fonts(),
        ..resvg::usvg::Options::default()
    };
    opt.font_family = "Liberation Sans".into();
    let tree = resvg::usvg::Tree::from_str(svg, &opt).map_err(|e| e.to_string())?;
    let size = tree.size();
    let scale = (MAX_PNG_SIDE / size.width().max(size.height())).min(1.0);
    let (w, h) = (
        (size.width() * scale).ceil().max(1.0) as u32,
        (size.height() * scale).ceil().max(1.0) as u32,
    );
    let mut pixmap = resvg::tiny_skia::Pixmap::new(w, h).ok_or("the image is too large")?;
    resvg::render(
        &tree,
        resvg::tiny_skia::Transform::from_scale(scale, scale),
        &mut pixmap.as_mut(),
    );
    pixmap.encode_png().map_err(|e| e.to_string())
}

/// The document's roots, checked for the view.
async fn roots(state: &AppState, access: &ProjectAccess, view: &str) -> Result<Value, ApiError> {
    let doc = state.gateways.document(access).await?;
    let roots = doc["roots"].clone();
    if view != whiteboard::doc::MAIN && roots["views"].get(view).is_none() {
        return Err(ApiError::Missing {
            code: ErrorCode::ViewNotFound,
            message: format!(
                "no board view `{}`",
                view.chars().take(64).collect::<String>()
            ),
        });
    }
    Ok(roots)
}

/// Export the board (or some of its cards) as an image or a file.
#[utoipa::path(tag = "board",
    params(("id" = String, Path, description = "Project id"), ExportQuery),
    responses(
        (status = 200, description = "The file (`image/png`, `image/svg+xml`, or JSON), as an attachment"),
        (status = 422, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, description = "`not_found` or `view_not_found`", body = ErrorBody)))]
#[get("/api/v1/projects/{id}/export")]
pub async fn export(
    state: web::Data<AppState>,
    who: Authenticated,
    id: web::Path<String>,
    q: web::Query<ExportQuery>,
) -> Result<HttpResponse, ApiError> {
    let (p, access) = project_access(&state, &who, &id).await?;
    let view = q
        .view
        .clone()
        .unwrap_or_else(|| whiteboard::doc::MAIN.into());
    let only: Option<Vec<String>> = q.ids.as_ref().map(|ids| {
        ids.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .take(whiteboard::MAX_IDS)
            .map(str::to_string)
            .collect()
    });
    let only = only.filter(|o| !o.is_empty());
    let roots = roots(&state, &access, &view).await?;
    Ok(match q.format {
        ExportFormat::Json => file(
            formats::export_board(&roots, &view, only.as_deref()).to_string(),
            "application/json",
            &file_name(&p.name, "board.json"),
        ),
        ExportFormat::Canvas => file(
            formats::export_canvas(&roots, &view, only.as_deref()).to_string(),
            "application/json",
            &file_name(&p.name, "canvas"),
        ),
        ExportFormat::Svg => {
            let doc = demiurge_web::board::BoardDoc::from_roots(&roots);
            file(
                demiurge_web::board::svg::render(&doc, &view, only.as_deref()),
                "image/svg+xml",
                &file_name(&p.name, "svg"),
            )
        }
        ExportFormat::Png => {
            let doc = demiurge_web::board::BoardDoc::from_roots(&roots);
            let svg = demiurge_web::board::svg::render(&doc, &view, only.as_deref());
            let png = tokio::task::spawn_blocking(move || png_of(&svg))
                .await
                .map_err(|e| ApiError::Internal(e.to_string()))?
                .map_err(ApiError::Internal)?;
            file(png, "image/png", &file_name(&p.name, "png"))
        }
    })
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ImportQuery {
    /// The board view (`main` when absent).
    #[serde(default)]
    view: Option<String>,
    /// Where the middle of the imported cards goes (both or neither; else where they were).
    #[serde(default)]
    x: Option<f64>,
    #[serde(default)]
    y: Option<f64>,
}

/// Import a board file (a Demiurge board file or JSON Canvas 1.0) as new cards: every card
/// and connector gets a new id; answers the new ids by the file's.
#[utoipa::path(tag = "board",
    params(("id" = String, Path, description = "Project id"), ImportQuery),
    request_body(content = Object, description = "The file: `{\"format\": \"demiurge-board\", ...}` or `{\"nodes\": [...], \"edges\": [...]}`"),
    responses(
        (status = 200, description = "`{\"cards\": {<file id>: <new id>}, \"edges\": {...}, \"seq\": n}`"),
        (status = 422, description = "`invalid_board_file`, or a reducer's code", body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody)))]
#[post("/api/v1/projects/{id}/import")]
pub async fn import(
    state: web::Data<AppState>,
    who: Authenticated,
    id: web::Path<String>,
    q: web::Query<ImportQuery>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let (_, access) = project_access(&state, &who, &id).await?;
    // Refused before the file is read, as the event it becomes would be.
    state.gateways.may_send(&access, IMPORT_EVENT)?;
    let bad = |m: String| ApiError::Unprocessable {
        code: ErrorCode::InvalidBoardFile,
        message: m,
    };
    let file: Value =
        serde_json::from_slice(&body).map_err(|e| bad(format!("the file is not JSON: {e}")))?;
    let (cards, edges) = formats::import(&file).map_err(|e| bad(e.to_string()))?;
    let at = match (q.x, q.y) {
        (Some(x), Some(y)) => Some(json!({"x": x, "y": y})),
        (None, None) => None,
        _ => {
            return Err(ApiError::Unprocessable {
                code: ErrorCode::InvalidPosition,
                message: "give both `x` and `y`, or neither".into(),
            });
        }
    };
    let event = json!({
        "type": IMPORT_EVENT,
        "view": q.view,
        "at": at,
        "cards": cards,
        "edges": edges,
    });
    let outcome = state.gateways.event(&access, event).await?;
    let mut answer = outcome.result;
    answer["seq"] = json!(outcome.seq);
    Ok(private_json(answer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_board_renders_to_png_and_names_its_file() {
        let doc = demiurge_web::board::BoardDoc::from_roots(&json!({
            "nodes": {"a": {"kind": "note", "x": 0, "y": 0, "w": 200, "h": 100}},
            "texts": {"a": "hello"}
        }));
        let png = png_of(&demiurge_web::board::svg::render(&doc, "main", None)).expect("png");
        assert_eq!(&png[1..4], b"PNG");
        assert_eq!(
            file_name("Q3 plan / roadmap", "svg"),
            "Q3-plan---roadmap.svg"
        );
        assert_eq!(file_name("···", "png"), "board.png");
    }
}
