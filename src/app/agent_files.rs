//! The container agent, served by the server itself so that stock images need nothing of
//! ours: `GET /agent/v1/install.sh` (what a container's `docker run` line pipes into `sh`)
//! fetches `GET /agent/v1/demiurge-linux-<arch>` (this very executable, whose
//! `demiurge agent` is the agent), checks it against the SHA-256 the script carries, keeps
//! it in the container's volume and runs it. The checksum is worked out once, on first need.

use actix_web::{HttpRequest, HttpResponse, web};
use sha2::Digest;
use tokio::sync::OnceCell;

/// The script's path.
pub const INSTALL_PATH: &str = "/agent/v1/install.sh";
/// Where the executable is served, by architecture (`uname -m`).
const BINARY_PATH: &str = "/agent/v1/demiurge-linux-{arch}";

static CHECKSUM: OnceCell<Result<String, String>> = OnceCell::const_new();

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(INSTALL_PATH, web::get().to(install))
        .route(BINARY_PATH, web::get().to(binary));
}

/// SHA-256 (hex) of the running executable.
async fn checksum() -> Result<String, String> {
    CHECKSUM
        .get_or_init(|| async {
            tokio::task::spawn_blocking(|| {
                let path = std::env::current_exe().map_err(|e| e.to_string())?;
                let mut f = std::fs::File::open(&path).map_err(|e| e.to_string())?;
                let mut h = sha2::Sha256::new();
                std::io::copy(&mut f, &mut h).map_err(|e| e.to_string())?;
                Ok(hex(&h.finalize()))
            })
            .await
            .unwrap_or_else(|e| Err(e.to_string()))
        })
        .await
        .clone()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn plain(status: actix_web::http::StatusCode, text: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/plain; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .body(text)
}

/// The installer, for this server's architecture.
pub fn script(arch: &str, sha256: &str) -> String {
    format!(
        r#"#!/bin/sh
# The Demiurge agent: fetched from this server, checked, kept in the container's volume, run.
# What starts it: the `docker run` line a project member copied from the container's card.
set -eu
url="${{DEMIURGE_URL:?DEMIURGE_URL is not set}}"
url="${{url%/}}"
dir="${{DEMIURGE_STATE_DIR:-/var/lib/demiurge}}"
want_arch="{arch}"
sum="{sha256}"
fail() {{ echo "demiurge install: $*" >&2; exit 1; }}
have() {{ command -v "$1" >/dev/null 2>&1; }}
arch="$(uname -m)"
[ "$arch" = "$want_arch" ] || fail "this server carries the agent for $want_arch; this machine is $arch"
have sha256sum || fail "sha256sum is missing (install coreutils or busybox)"
mkdir -p "$dir"
bin="$dir/demiurge-agent"
ok() {{ [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$sum" ]; }}
if ! ok "$bin"; then
  tmp="$bin.download"
  rm -f "$tmp"
  if have curl; then
    curl -fsSL -o "$tmp" "$url/agent/v1/demiurge-linux-$arch" || fail "cannot download the agent from $url"
  elif have wget; then
    wget -qO "$tmp" "$url/agent/v1/demiurge-linux-$arch" || fail "cannot download the agent from $url"
  else
    fail "neither curl nor wget is here"
  fi
  ok "$tmp" || {{ rm -f "$tmp"; fail "the downloaded agent does not match its checksum"; }}
  chmod 0755 "$tmp"
  mv -f "$tmp" "$bin"
fi
# mimalloc commits its arenas eagerly on Linux; for the agent that is 13 of its 32 MB idle.
MIMALLOC_ARENA_EAGER_COMMIT=0 exec "$bin" agent
"#
    )
}

async fn install() -> HttpResponse {
    match checksum().await {
        Ok(sum) => HttpResponse::Ok()
            .content_type("text/x-shellscript; charset=utf-8")
            .insert_header(("Cache-Control", "no-store"))
            .body(script(std::env::consts::ARCH, &sum)),
        Err(e) => {
            tracing::error!(error = %e, "cannot read the running executable for the agent installer");
            plain(
                actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
                "the agent cannot be served: this server cannot read its own executable\n".into(),
            )
        }
    }
}

async fn binary(req: HttpRequest, arch: web::Path<String>) -> HttpResponse {
    let here = std::env::consts::ARCH;
    if arch.as_str() != here {
        return plain(
            actix_web::http::StatusCode::NOT_FOUND,
            format!(
                "this server carries the agent for linux-{here} only (asked: linux-{})\n",
                arch.chars().take(32).collect::<String>()
            ),
        );
    }
    let opened = match std::env::current_exe() {
        Ok(p) => tokio::fs::File::open(p).await,
        Err(e) => Err(e),
    };
    let file = match opened {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(error = %e, "cannot open the running executable for the agent");
            return plain(
                actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
                "the agent cannot be served now\n".into(),
            );
        }
    };
    let len = file.metadata().await.map(|m| m.len()).ok();
    let mut resp = HttpResponse::Ok();
    resp.content_type("application/octet-stream")
        .insert_header(("Cache-Control", "no-store"));
    if let Ok(sum) = checksum().await {
        resp.insert_header(("X-Checksum-Sha256", sum));
    }
    if req.method() == actix_web::http::Method::HEAD {
        if let Some(n) = len {
            resp.no_chunking(n);
        }
        return resp.finish();
    }
    let stream = tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024);
    match len {
        Some(n) => resp.no_chunking(n).streaming(stream),
        None => resp.streaming(stream),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_script_names_the_checksum_and_the_architecture() {
        let s = super::script("x86_64", "ab12");
        assert!(s.contains("sum=\"ab12\""));
        assert!(s.contains("want_arch=\"x86_64\""));
        assert!(s.contains("exec \"$bin\" agent"));
    }
}
