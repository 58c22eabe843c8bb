//! GitHub App authentication: the App's credentials, its short-lived JWT, and cached installation tokens.

mod jwt;
mod tokens;

pub use jwt::{AppCredentials, AppJwtSigner, AppKeyError, JWT_BACKDATE, JWT_LIFETIME, JWT_REMINT_MARGIN};
pub use tokens::{DEFAULT_TOKEN_REFRESH_MARGIN, InstallationToken, TokenCache};
