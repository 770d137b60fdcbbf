//! Static assets compiled into the binary, served with long-lived cache headers when the URL
//! carries the content hash (`?v=`), and revalidated by ETag otherwise.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "../assets/"]
struct Assets;

fn hash_hex(file: &rust_embed::EmbeddedFile) -> String {
    file.metadata.sha256_hash()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `/assets/<path>?v=<hash>`: the URL changes whenever the file does.
pub fn versioned_url(path: &str) -> String {
    match Assets::get(path) {
        Some(f) => format!("/assets/{path}?v={}", hash_hex(&f)),
        None => format!("/assets/{path}"),
    }
}

pub async fn serve(req: HttpRequest, path: web::Path<String>) -> HttpResponse {
    serve_file(&req, &path.into_inner())
}

/// `/favicon.ico`, which browsers ask for by default: the SVG icon (Chromium and Firefox
/// read it whatever the name).
pub async fn favicon(req: HttpRequest) -> HttpResponse {
    serve_file(&req, "favicon.svg")
}

fn serve_file(req: &HttpRequest, path: &str) -> HttpResponse {
    let Some(file) = Assets::get(path) else {
        return HttpResponse::NotFound()
            .content_type("application/json")
            .body(r#"{"error":"not_found","message":"no such asset"}"#);
    };
    let etag = format!("\"{}\"", hash_hex(&file));
    let matches_etag = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let versioned = req.query_string().split('&').any(|kv| kv.starts_with("v="));
    let cache = if versioned {
        "public, max-age=31536000, immutable"
    } else {
        "public, max-age=300, must-revalidate"
    };
    if matches_etag {
        return HttpResponse::NotModified()
            .insert_header((header::ETAG, etag))
            .insert_header((header::CACHE_CONTROL, cache))
            .finish();
    }
    HttpResponse::Ok()
        .content_type(file.metadata.mimetype())
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, cache))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .body(file.data.into_owned())
}
