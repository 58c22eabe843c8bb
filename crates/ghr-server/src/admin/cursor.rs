//! Page cursors of the list endpoints: a position in the listing's order and a fingerprint of the filters it
//! was issued for, encoded as an opaque, URL-safe string. A cursor this server did not issue (edited,
//! truncated, from another listing) or passed with other filters is refused with 400 rather than guessed at.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::DateTime;
use ghr_api::ApiError;
use ghr_core::Timestamp;
use ghr_core::ids::{InstallationId, JobId, RunnerSeq};
use sha2::{Digest, Sha256};

/// The longest cursor accepted (the longest one issued is well under it).
const MAX_CURSOR_CHARS: usize = 128;

/// A position in one listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    /// Tenants after this installation id.
    Tenants(InstallationId),
    /// Runners created after this one.
    Runners(RunnerSeq),
    /// Jobs older than this (received_at, job_id), newest first.
    Jobs(Timestamp, JobId),
}

/// The filters a page was read with, as one fingerprint a cursor carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Filters(u32);

impl Filters {
    /// The fingerprint of the filters' canonical text (e.g. `tenant=7;status=queued`).
    pub fn of(canonical: &str) -> Filters {
        let digest = Sha256::digest(canonical.as_bytes());
        Filters(u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]))
    }
}

impl Cursor {
    /// The opaque text handed to clients, for a page read with `filters`.
    pub fn encode(self, filters: Filters) -> String {
        let plain = match self {
            Cursor::Tenants(id) => format!("t:{id}"),
            Cursor::Runners(seq) => format!("r:{seq}"),
            Cursor::Jobs(at, id) => format!("j:{}:{id}", at.timestamp_millis()),
        };
        URL_SAFE_NO_PAD.encode(format!("{plain}:{:08x}", filters.0))
    }

    /// The cursor `text` encodes, checked against the `filters` it is passed with; the error says to start the
    /// listing again.
    pub fn decode(text: &str, filters: Filters) -> Result<Cursor, ApiError> {
        let (cursor, issued_for) = Cursor::decode_unchecked(text)?;
        if issued_for != filters {
            return Err(ApiError::BadRequest(
                "this cursor was issued for other filters: pass the same filters as the page it came from, or leave \
                 `cursor` out to start from the first page"
                    .into(),
            ));
        }
        Ok(cursor)
    }

    fn decode_unchecked(text: &str) -> Result<(Cursor, Filters), ApiError> {
        let invalid = || {
            ApiError::BadRequest(format!(
                "cursor {:?} is not one this server issued for this listing: pass back `next_cursor` unchanged, or \
                 leave `cursor` out to start from the first page",
                ghr_core::text::clip_to(text, 40)
            ))
        };
        if text.len() > MAX_CURSOR_CHARS {
            return Err(invalid());
        }
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid())?;
        let plain = String::from_utf8(bytes).map_err(|_| invalid())?;
        let (position, fingerprint) = plain.rsplit_once(':').ok_or_else(invalid)?;
        let fingerprint = u32::from_str_radix(fingerprint, 16).map_err(|_| invalid())?;
        let parts: Vec<&str> = position.split(':').collect();
        let number = |s: &str| s.parse::<u64>().map_err(|_| invalid());
        let cursor = match parts.as_slice() {
            ["t", id] => Cursor::Tenants(InstallationId(number(id)?)),
            ["r", seq] => Cursor::Runners(RunnerSeq(number(seq)?)),
            ["j", millis, id] => {
                let millis = millis.parse::<i64>().map_err(|_| invalid())?;
                let at = DateTime::from_timestamp_millis(millis).ok_or_else(invalid)?;
                Cursor::Jobs(at, JobId(number(id)?))
            }
            _ => return Err(invalid()),
        };
        Ok((cursor, Filters(fingerprint)))
    }

    /// The listing's cursor, or 400 when it belongs to another listing.
    pub fn tenants(text: Option<&str>, filters: Filters) -> Result<Option<InstallationId>, ApiError> {
        match text.map(|t| Cursor::decode(t, filters)).transpose()? {
            None => Ok(None),
            Some(Cursor::Tenants(id)) => Ok(Some(id)),
            Some(_) => Err(other_listing("tenants")),
        }
    }

    pub fn runners(text: Option<&str>, filters: Filters) -> Result<Option<RunnerSeq>, ApiError> {
        match text.map(|t| Cursor::decode(t, filters)).transpose()? {
            None => Ok(None),
            Some(Cursor::Runners(seq)) => Ok(Some(seq)),
            Some(_) => Err(other_listing("runners")),
        }
    }

    pub fn jobs(text: Option<&str>, filters: Filters) -> Result<Option<(Timestamp, JobId)>, ApiError> {
        match text.map(|t| Cursor::decode(t, filters)).transpose()? {
            None => Ok(None),
            Some(Cursor::Jobs(at, id)) => Ok(Some((at, id))),
            Some(_) => Err(other_listing("jobs")),
        }
    }
}

fn other_listing(listing: &str) -> ApiError {
    ApiError::BadRequest(format!(
        "this cursor belongs to another listing, not {listing}: pass back the `next_cursor` of a {listing} page"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let at = DateTime::from_timestamp_millis(1_780_000_000_123).unwrap();
        let filters = Filters::of("tenant=7;status=queued");
        for cursor in [Cursor::Tenants(InstallationId(42)), Cursor::Runners(RunnerSeq(7)), Cursor::Jobs(at, JobId(9))] {
            let text = cursor.encode(filters);
            assert!(text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'), "{text}");
            assert_eq!(Cursor::decode(&text, filters).unwrap(), cursor);
        }
    }

    #[test]
    fn foreign_or_edited_cursors_are_refused() {
        let filters = Filters::of("");
        for text in ["", "!!", "dDp4", "ajox", &"A".repeat(200), &URL_SAFE_NO_PAD.encode("j:1:2:3:zz")] {
            let error = Cursor::decode(text, filters).unwrap_err();
            assert!(matches!(error, ApiError::BadRequest(_)), "{text}: {error}");
        }
        let runners = Cursor::Runners(RunnerSeq(1)).encode(filters);
        let error = Cursor::jobs(Some(&runners), filters).unwrap_err();
        assert!(error.to_string().contains("another listing"), "{error}");
        assert_eq!(Cursor::jobs(None, filters).unwrap(), None);
    }

    #[test]
    fn a_cursor_only_continues_the_filters_it_came_from() {
        let acme = Filters::of("tenant=1;status=-;reason=-");
        let text = Cursor::Tenants(InstallationId(5)).encode(acme);
        assert_eq!(Cursor::tenants(Some(&text), acme).unwrap(), Some(InstallationId(5)));
        let error = Cursor::tenants(Some(&text), Filters::of("tenant=2;status=-;reason=-")).unwrap_err();
        assert!(error.to_string().contains("other filters"), "{error}");
    }
}
