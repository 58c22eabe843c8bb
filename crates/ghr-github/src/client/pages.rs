//! Pagination: GitHub's `Link` header, and collecting every page of a page-numbered list.
//!
//! The client never follows a URL from `Link` itself (it could name another host, and the request
//! carries a credential): it reads only whether a `next` page exists and, for cursor lists, the cursor.

use super::GithubClient;
use super::http::{Auth, Call};
use ghr_core::ports::GithubError;
use reqwest::header::{HeaderMap, LINK};
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;

/// Page size for list endpoints (GitHub's maximum).
pub const PER_PAGE: u32 = 100;
/// Safety stop for paginated lists (100 000 items), against a server that never ends a listing.
pub const MAX_PAGES: u32 = 1000;

/// The `rel="next"` URL of a `Link` header (`<url>; rel="next", <url>; rel="last"`), if any.
pub(crate) fn next_link(headers: &HeaderMap) -> Option<Url> {
    headers.get_all(LINK).iter().filter_map(|value| value.to_str().ok()).flat_map(|value| value.split(',')).find_map(
        |entry| {
            let (target, params) = entry.trim().strip_prefix('<')?.split_once('>')?;
            let is_next = params.split(';').any(|param| {
                let param = param.trim();
                param.strip_prefix("rel=").is_some_and(|rel| rel.trim_matches('"').split(' ').any(|r| r == "next"))
            });
            if is_next { Url::parse(target.trim()).ok() } else { None }
        },
    )
}

/// The value of query parameter `name` in `url`.
pub(crate) fn query_value(url: &Url, name: &str) -> Option<String> {
    url.query_pairs().find(|(key, _)| key == name).map(|(_, value)| value.into_owned())
}

impl GithubClient {
    /// Every item of a page-numbered list at `url` (its query is kept; `per_page` and `page` are added),
    /// taking each page's items with `items`. Stops at the first page without a `next` link or items.
    pub(crate) async fn all_pages<P, T>(
        &self,
        url: Url,
        auth: Auth,
        items: impl Fn(P) -> Vec<T>,
    ) -> Result<Vec<T>, GithubError>
    where
        P: DeserializeOwned,
    {
        let mut all = Vec::new();
        for page in 1..=MAX_PAGES {
            let mut page_url = url.clone();
            page_url
                .query_pairs_mut()
                .append_pair("per_page", &PER_PAGE.to_string())
                .append_pair("page", &page.to_string());
            let answer = self.execute(&Call::new(Method::GET, page_url, auth)).await?;
            let found = items(answer.json::<P>()?);
            let last = found.is_empty() || answer.next_page().is_none();
            all.extend(found);
            if last {
                return Ok(all);
            }
        }
        Err(GithubError::decode_message(format!("GET {} did not end after {MAX_PAGES} pages", url.path())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn link(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(LINK, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn finds_the_next_link_among_others() {
        let headers = link(
            r#"<https://api.github.com/app/hook/deliveries?per_page=2&cursor=v1_42>; rel="next", <https://api.github.com/x?page=9>; rel="last""#,
        );
        let next = next_link(&headers).unwrap();
        assert_eq!(query_value(&next, "cursor").as_deref(), Some("v1_42"));
        assert_eq!(query_value(&next, "status"), None);
        let headers = link(r#"<https://h/x?page=1>; rel="first", <https://h/x?page=2>; rel="prev""#);
        assert_eq!(next_link(&headers), None);
        assert_eq!(next_link(&HeaderMap::new()), None);
    }

    #[test]
    fn malformed_links_are_ignored_without_panicking() {
        for value in ["", "garbage", "<>; rel=\"next\"", "<not a url>; rel=next", "<https://h/x; rel=\"next\""] {
            assert_eq!(next_link(&link(value)), None, "{value}");
        }
        assert!(next_link(&link("<https://h/x?page=2>; rel=next")).is_some());
    }
}
