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
///
/// `message` makes it an [`ErrorResponse`] too, which is what clients print (the published Python
/// client needs the key); `errors` is the reference's detailed list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ValidationErrors {
    /// Every entry of `errors` as one line, `invalid value at <pointer>: <detail>`. Always sent;
    /// read as empty from daemons older than this field.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub message: String,
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
    /// The answer for `errors`, with its `message`.
    pub fn new(errors: Vec<ValidationError>) -> Self {
        let message = errors
            .iter()
            .map(ValidationError::summary)
            .collect::<Vec<_>>()
            .join("\n");
        ValidationErrors { message, errors }
    }

    /// A single invalid value at `pointer`.
    pub fn single(pointer: impl Into<String>, detail: impl Into<String>) -> Self {
        ValidationErrors::new(vec![ValidationError {
            title: "Invalid value".to_owned(),
            source: ValidationSource {
                pointer: pointer.into(),
            },
            detail: detail.into(),
        }])
    }
}

impl ValidationError {
    /// One line saying where the value is and why it is invalid; the request body as a whole when
    /// the pointer is empty.
    pub fn summary(&self) -> String {
        match self.source.pointer.as_str() {
            "" => format!("invalid request body: {}", self.detail),
            pointer => format!("invalid value at {pointer}: {}", self.detail),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_validation_answer_is_also_an_error_response() {
        let body =
            serde_json::to_value(ValidationErrors::single("/cmd/1", "not a string")).unwrap();
        assert_eq!(body["message"], "invalid value at /cmd/1: not a string");
        assert_eq!(body["errors"][0]["source"]["pointer"], "/cmd/1");
        let as_error: ErrorResponse = serde_json::from_value(body).unwrap();
        assert_eq!(as_error.message, "invalid value at /cmd/1: not a string");
    }

    #[test]
    fn an_empty_pointer_means_the_whole_body() {
        let errors = ValidationErrors::single("", "EOF while parsing a value");
        assert_eq!(
            errors.message,
            "invalid request body: EOF while parsing a value"
        );
    }

    #[test]
    fn answers_without_a_message_still_decode() {
        let old =
            r#"{"errors":[{"title":"Invalid value","source":{"pointer":"/all"},"detail":"bad"}]}"#;
        let errors: ValidationErrors = serde_json::from_str(old).unwrap();
        assert_eq!(errors.message, "");
        assert_eq!(errors.errors[0].summary(), "invalid value at /all: bad");
    }
}
