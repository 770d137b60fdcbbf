//! The JSON body extractor of the API. Every request body the API documents is an object, but
//! serde reads a struct from a JSON array too (its fields by position), so `[null, null]`
//! passed as a body for `{"name", "slug"}`. This takes the body as actix's `web::Json` does
//! (its limit, content type and error answers), refuses anything but an object, then reads
//! the type.

use crate::code::ErrorCode;
use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use serde::de::DeserializeOwned;

use super::ApiError;

/// A JSON object body, read into `T`.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T> Json<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> Deref for Json<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let value = web::Json::<serde_json::Value>::from_request(req, payload);
        Box::pin(async move {
            let web::Json(mut v) = value.await?;
            if !v.is_object() {
                return Err(ApiError::BadRequest {
                    code: ErrorCode::InvalidJson,
                    message: "the body must be a JSON object".into(),
                }
                .into());
            }
            if let Some(field) = nul_in(&v, "") {
                // PostgreSQL cannot store U+0000 in text, and no name, address or note needs
                // it: refused everywhere alike, whichever backend runs.
                return Err(ApiError::Unprocessable {
                    code: ErrorCode::InvalidInput,
                    message: format!("{field}: the NUL character (U+0000) is not accepted"),
                }
                .into());
            }
            // `807.0` is an integer as JSON Schema reads it; serde would refuse it for a u16.
            crate::json::whole_numbers(&mut v);
            serde_json::from_value::<T>(v).map(Json).map_err(|e| {
                ApiError::BadRequest {
                    code: ErrorCode::InvalidJson,
                    message: e.to_string(),
                }
                .into()
            })
        })
    }
}

/// Where a string (or a key) in `v` holds U+0000, as a field path.
fn nul_in(v: &serde_json::Value, at: &str) -> Option<String> {
    use serde_json::Value;
    let here = || {
        if at.is_empty() {
            "body".to_string()
        } else {
            at.to_string()
        }
    };
    match v {
        Value::String(s) if s.contains('\0') => Some(here()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, x)| nul_in(x, &format!("{}[{i}]", here()))),
        Value::Object(map) => map.iter().find_map(|(k, x)| {
            let path = if at.is_empty() {
                k.clone()
            } else {
                format!("{at}.{k}")
            };
            if k.contains('\0') {
                Some(here())
            } else {
                nul_in(x, &path)
            }
        }),
        _ => None,
    }
}

/// An optional whole number for a body field declared `integer`: JSON Schema counts `111.0`
/// as one, serde's `u32` does not. Fractions and values out of range are refused.
pub(crate) fn optional_whole<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<u32>, D::Error> {
    use serde::Deserialize;
    use serde::de::Error;
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    let whole = n.as_u64().or_else(|| {
        n.as_f64()
            .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= f64::from(u32::MAX))
            .map(|f| f as u64)
    });
    whole
        .and_then(|w| u32::try_from(w).ok())
        .map(Some)
        .ok_or_else(|| {
            D::Error::custom(format!(
                "expected a whole number from 0 to {}, not {n}",
                u32::MAX
            ))
        })
}

#[cfg(test)]
mod tests {
    #[derive(serde::Deserialize)]
    struct Days {
        #[serde(default, deserialize_with = "super::optional_whole")]
        days: Option<u32>,
    }

    #[test]
    fn whole_numbers_may_be_written_as_floats() {
        let days = |s: &str| serde_json::from_str::<Days>(s).map(|d| d.days);
        assert_eq!(days(r#"{"days": 111}"#).unwrap(), Some(111));
        assert_eq!(days(r#"{"days": 111.0}"#).unwrap(), Some(111));
        assert_eq!(days(r#"{}"#).unwrap(), None);
        assert_eq!(days(r#"{"days": null}"#).unwrap(), None);
        assert!(days(r#"{"days": 1.5}"#).is_err());
        assert!(days(r#"{"days": -1}"#).is_err());
        assert!(days(r#"{"days": 1e12}"#).is_err());
    }
}
