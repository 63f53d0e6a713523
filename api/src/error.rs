//! Bodies of errors and of answers that carry only an identifier.

use serde::{Deserialize, Serialize};

/// The body of every error answer: `{"message": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorResponse {
    /// What went wrong.
    pub message: String,
}

/// The body of answers that name one object: `{"id": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IdResponse {
    /// The object's identifier.
    pub id: String,
}

/// The body of a 422 answer: a request body, query or path that failed validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ValidationErrors {
    /// One entry per invalid value.
    pub errors: Vec<ValidationError>,
}

/// One invalid value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ValidationError {
    /// Always `Invalid value`.
    pub title: String,
    /// Where the value is.
    pub source: ValidationSource,
    /// Why it is invalid.
    pub detail: String,
}

/// Location of an invalid value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ValidationSource {
    /// JSON pointer to the field (`/all`, `/config/cmd/0`).
    pub pointer: String,
}

impl ValidationErrors {
    /// A single invalid value at `pointer`.
    pub fn single(pointer: impl Into<String>, detail: impl Into<String>) -> Self {
        ValidationErrors {
            errors: vec![ValidationError {
                title: "Invalid value".to_owned(),
                source: ValidationSource {
                    pointer: pointer.into(),
                },
                detail: detail.into(),
            }],
        }
    }
}
