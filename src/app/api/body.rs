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
            let web::Json(v) = value.await?;
            if !v.is_object() {
                return Err(ApiError::BadRequest {
                    code: ErrorCode::InvalidJson,
                    message: "the body must be a JSON object".into(),
                }
                .into());
            }
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
