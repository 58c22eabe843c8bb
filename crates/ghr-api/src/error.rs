//! [`ApiError`]: a failed admin operation, the same on the server (mapped to an HTTP status in one place) and
//! in the client (mapped back from the answer).

use serde::{Deserialize, Serialize};

/// A failed admin operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    #[error("missing or wrong admin token: send `Authorization: Bearer <token>`")]
    Unauthorized,
    #[error("internal error: {0}")]
    Internal(String),
    #[error("cannot reach the ghr server: {0}")]
    Unavailable(String),
}

impl ApiError {
    /// The HTTP status of the answer.
    pub fn status(&self) -> u16 {
        match self {
            ApiError::NotFound(_) => 404,
            ApiError::BadRequest(_) => 400,
            ApiError::Conflict(_) => 409,
            ApiError::Unauthorized => 401,
            ApiError::Internal(_) => 500,
            ApiError::Unavailable(_) => 503,
        }
    }

    /// The stable error code of the JSON error body.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::NotFound(_) => "not_found",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Conflict(_) => "conflict",
            ApiError::Unauthorized => "unauthorized",
            ApiError::Internal(_) => "internal",
            ApiError::Unavailable(_) => "unavailable",
        }
    }
}

/// The JSON body of every admin API error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    pub message: String,
}
