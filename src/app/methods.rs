//! Which methods each path answers, for the requests no route takes: a known path with
//! another method gets 405 with `Allow`, OPTIONS gets 204 with `Allow`, anything else 404.
//! Read from the OpenAPI document (every API route is in it), the UI's paths and the
//! server-rendered pages, so the answers follow the routes without a second list.
//!
//! HEAD is answered wherever GET is: the app runs the GET and the HTTP layer sends its
//! headers without the body.

use actix_web::dev::ResourceDef;
use actix_web::http::Method;

/// Paths (as route patterns) and their methods.
pub struct MethodTable {
    entries: Vec<(ResourceDef, Vec<Method>)>,
}

impl MethodTable {
    /// From the API document, the UI's GET paths, and `(path, methods)` pairs.
    pub fn new<'a>(
        doc: &utoipa::openapi::OpenApi,
        get_paths: impl IntoIterator<Item = &'a str>,
        others: &[(&str, &[&str])],
    ) -> Self {
        let mut entries = Vec::new();
        for (path, item) in &doc.paths.paths {
            let declared = [
                (Method::GET, item.get.is_some()),
                (Method::POST, item.post.is_some()),
                (Method::PUT, item.put.is_some()),
                (Method::PATCH, item.patch.is_some()),
                (Method::DELETE, item.delete.is_some()),
            ];
            let methods = declared
                .into_iter()
                .filter(|(_, on)| *on)
                .map(|(m, _)| m)
                .collect();
            entries.push((ResourceDef::new(path.as_str()), methods));
        }
        for path in get_paths {
            entries.push((ResourceDef::new(path), vec![Method::GET]));
        }
        for (path, methods) in others {
            let methods = methods
                .iter()
                .filter_map(|m| Method::from_bytes(m.as_bytes()).ok())
                .collect();
            entries.push((ResourceDef::new(*path), methods));
        }
        Self { entries }
    }

    /// The `Allow` value for `path` (its methods, HEAD beside GET, and OPTIONS), or None
    /// when no route has this path.
    pub fn allow(&self, path: &str) -> Option<String> {
        let mut methods: Vec<&Method> = Vec::new();
        for (def, ms) in &self.entries {
            if def.is_match(path) {
                for m in ms {
                    if !methods.contains(&m) {
                        methods.push(m);
                    }
                }
            }
        }
        if methods.is_empty() {
            return None;
        }
        let order = [
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ];
        let has_get = methods.contains(&&Method::GET);
        let mut allow: Vec<&str> = order
            .iter()
            .filter(|m| methods.contains(m) || (**m == Method::HEAD && has_get))
            .map(Method::as_str)
            .collect();
        allow.push("OPTIONS");
        Some(allow.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_lists_the_methods_of_every_matching_pattern() {
        let doc = utoipa::openapi::OpenApi::default();
        let t = MethodTable::new(
            &doc,
            ["/", "/orgs/{tail:.*}"],
            &[
                ("/auth/link", &["GET", "POST"]),
                ("/orgs/{id}", &["DELETE"]),
            ],
        );
        assert_eq!(t.allow("/").as_deref(), Some("GET, HEAD, OPTIONS"));
        assert_eq!(
            t.allow("/auth/link").as_deref(),
            Some("GET, HEAD, POST, OPTIONS")
        );
        assert_eq!(
            t.allow("/orgs/x").as_deref(),
            Some("GET, HEAD, DELETE, OPTIONS")
        );
        assert_eq!(t.allow("/nowhere"), None);
    }
}
