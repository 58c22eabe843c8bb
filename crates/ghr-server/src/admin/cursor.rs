//! Page cursors of the list endpoints: a position in the listing's order, encoded as an opaque, URL-safe
//! string. A cursor this server did not issue (edited, truncated, from another listing) is refused with 400
//! rather than guessed at.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::DateTime;
use ghr_api::ApiError;
use ghr_core::Timestamp;
use ghr_core::ids::{InstallationId, JobId, RunnerSeq};

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

impl Cursor {
    /// The opaque text handed to clients.
    pub fn encode(self) -> String {
        let plain = match self {
            Cursor::Tenants(id) => format!("t:{id}"),
            Cursor::Runners(seq) => format!("r:{seq}"),
            Cursor::Jobs(at, id) => format!("j:{}:{id}", at.timestamp_millis()),
        };
        URL_SAFE_NO_PAD.encode(plain)
    }

    /// The cursor `text` encodes; the error says to start the listing again.
    pub fn decode(text: &str) -> Result<Cursor, ApiError> {
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
        let parts: Vec<&str> = plain.split(':').collect();
        let number = |s: &str| s.parse::<u64>().map_err(|_| invalid());
        match parts.as_slice() {
            ["t", id] => Ok(Cursor::Tenants(InstallationId(number(id)?))),
            ["r", seq] => Ok(Cursor::Runners(RunnerSeq(number(seq)?))),
            ["j", millis, id] => {
                let millis = millis.parse::<i64>().map_err(|_| invalid())?;
                let at = DateTime::from_timestamp_millis(millis).ok_or_else(invalid)?;
                Ok(Cursor::Jobs(at, JobId(number(id)?)))
            }
            _ => Err(invalid()),
        }
    }

    /// The listing's cursor, or 400 when it belongs to another listing.
    pub fn tenants(text: Option<&str>) -> Result<Option<InstallationId>, ApiError> {
        match text.map(Cursor::decode).transpose()? {
            None => Ok(None),
            Some(Cursor::Tenants(id)) => Ok(Some(id)),
            Some(_) => Err(other_listing("tenants")),
        }
    }

    pub fn runners(text: Option<&str>) -> Result<Option<RunnerSeq>, ApiError> {
        match text.map(Cursor::decode).transpose()? {
            None => Ok(None),
            Some(Cursor::Runners(seq)) => Ok(Some(seq)),
            Some(_) => Err(other_listing("runners")),
        }
    }

    pub fn jobs(text: Option<&str>) -> Result<Option<(Timestamp, JobId)>, ApiError> {
        match text.map(Cursor::decode).transpose()? {
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
        for cursor in [Cursor::Tenants(InstallationId(42)), Cursor::Runners(RunnerSeq(7)), Cursor::Jobs(at, JobId(9))] {
            let text = cursor.encode();
            assert!(text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'), "{text}");
            assert_eq!(Cursor::decode(&text).unwrap(), cursor);
        }
    }

    #[test]
    fn foreign_or_edited_cursors_are_refused() {
        for text in ["", "!!", "dDp4", "ajox", &"A".repeat(200), &URL_SAFE_NO_PAD.encode("j:1:2:3")] {
            let error = Cursor::decode(text).unwrap_err();
            assert!(matches!(error, ApiError::BadRequest(_)), "{text}: {error}");
        }
        let runners = Cursor::Runners(RunnerSeq(1)).encode();
        let error = Cursor::jobs(Some(&runners)).unwrap_err();
        assert!(error.to_string().contains("another listing"), "{error}");
        assert_eq!(Cursor::jobs(None).unwrap(), None);
    }
}
