//! `dynamodb://<table prefix>?region=<region>&endpoint=<url>`: which tables, in which region, through which endpoint.

use crate::error::OpenError;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use std::time::Duration;

/// The longest one DynamoDB call may take, its retries included.
pub const SDK_OPERATION_TIMEOUT: Duration = Duration::from_secs(8);
/// The longest one attempt of a call may take (DynamoDB answers in milliseconds).
pub const SDK_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(4);
/// The longest a connection may take to open.
pub const SDK_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
use aws_sdk_dynamodb::Client;

/// The URL scheme of the DynamoDB store.
pub const SCHEME: &str = "dynamodb://";
/// Longest table prefix: DynamoDB table names stop at 255 characters and ghr appends at most `-deliveries`.
pub const MAX_PREFIX_LEN: usize = 200;

/// Whether `url` names a DynamoDB store.
pub fn is_dynamodb_url(url: &str) -> bool {
    url.starts_with(SCHEME)
}

/// A parsed `dynamodb://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamoUrl {
    /// Table names are `<prefix>-tenants`, `<prefix>-jobs`, ...
    pub prefix: String,
    /// `region=`; without it the SDK's own resolution (`AWS_REGION`, the profile, instance metadata).
    pub region: Option<String>,
    /// `endpoint=`; without it the SDK's own (`AWS_ENDPOINT_URL[_DYNAMODB]`, else AWS's endpoint).
    pub endpoint: Option<String>,
}

impl DynamoUrl {
    pub fn parse(url: &str) -> Result<Self, OpenError> {
        let bad = |reason: String| OpenError::BadUrl { url: url.to_owned(), reason };
        let rest = url.strip_prefix(SCHEME).ok_or_else(|| bad(format!("it must start with {SCHEME}")))?;
        if rest.contains('#') {
            return Err(bad("remove the '#...' fragment: a DynamoDB store URL has none".into()));
        }
        let (prefix, query) = rest.split_once('?').unwrap_or((rest, ""));
        let prefix = prefix.trim_end_matches('/');
        if prefix.is_empty() {
            return Err(bad("name the table prefix: dynamodb://<prefix>, e.g. dynamodb://ghr-prod".into()));
        }
        if prefix.len() > MAX_PREFIX_LEN
            || !prefix.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(bad(format!(
                "the table prefix {prefix:?} must be 1 to {MAX_PREFIX_LEN} characters of letters, digits, '-', '_' \
                 or '.' (DynamoDB's table-name alphabet)"
            )));
        }
        let mut parsed = Self { prefix: prefix.to_owned(), region: None, endpoint: None };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if value.is_empty() {
                return Err(bad(format!("parameter {key:?} needs a value ({key}=...)")));
            }
            let repeated = match key {
                "region" => parsed.region.is_some(),
                "endpoint" => parsed.endpoint.is_some(),
                _ => false,
            };
            if repeated {
                return Err(bad(format!("parameter {key:?} is given twice: keep one")));
            }
            match key {
                "region" => parsed.region = Some(value.to_owned()),
                "endpoint" => {
                    if !(value.starts_with("http://") || value.starts_with("https://")) {
                        return Err(bad(format!("endpoint {value:?} must be an http:// or https:// URL")));
                    }
                    parsed.endpoint = Some(value.to_owned());
                }
                other => {
                    return Err(bad(format!("unknown parameter {other:?}: the known ones are region and endpoint")));
                }
            }
        }
        Ok(parsed)
    }

    /// A client for this URL's region and endpoint, with the SDK's default credentials chain, and timeouts: a
    /// DynamoDB that stops answering fails a call in [`SDK_OPERATION_TIMEOUT`] instead of holding a webhook past
    /// GitHub's 10 s or a serverless function past its deadline.
    pub async fn client(&self) -> Client {
        let timeouts = TimeoutConfig::builder()
            .operation_timeout(SDK_OPERATION_TIMEOUT)
            .operation_attempt_timeout(SDK_ATTEMPT_TIMEOUT)
            .connect_timeout(SDK_CONNECT_TIMEOUT)
            .build();
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).timeout_config(timeouts);
        if let Some(region) = &self.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(endpoint) = &self.endpoint {
            loader = loader.endpoint_url(endpoint.clone());
        }
        Client::new(&loader.load().await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prefix_region_and_endpoint() {
        let url = DynamoUrl::parse("dynamodb://ghr-prod?region=eu-west-1&endpoint=http://127.0.0.1:5055").unwrap();
        assert_eq!(url.prefix, "ghr-prod");
        assert_eq!(url.region.as_deref(), Some("eu-west-1"));
        assert_eq!(url.endpoint.as_deref(), Some("http://127.0.0.1:5055"));
        assert_eq!(DynamoUrl::parse("dynamodb://p/").unwrap().prefix, "p");
    }

    #[test]
    fn refuses_what_it_cannot_use() {
        for (url, says) in [
            ("postgres://x", "must start with"),
            ("dynamodb://", "name the table prefix"),
            ("dynamodb://a b", "alphabet"),
            ("dynamodb://p?region=", "needs a value"),
            ("dynamodb://p?regoin=x", "unknown parameter"),
            ("dynamodb://p?endpoint=localhost:1", "http://"),
            ("dynamodb://p?region=us-east-1&region=eu-west-1", "given twice"),
            ("dynamodb://p?region=us-east-1#x", "fragment"),
        ] {
            let error = DynamoUrl::parse(url).unwrap_err().to_string();
            assert!(error.contains(says), "{url}: {error}");
        }
    }
}
