//! Rules for input from outside (webhook payloads, admin requests) that the domain can hold: GitHub ids
//! that fit the store's signed 64-bit columns, and logins as GitHub allows them. Pure functions, checked at
//! the edges so that nothing out of range ever reaches the store.

use crate::text::clip;

/// The largest GitHub id ghr stores: ids live in signed 64-bit integer columns. GitHub's ids are positive
/// and far below this; a larger value can never be a real id.
pub const GITHUB_ID_MAX: u64 = i64::MAX as u64;
/// GitHub's limit on the length of a user or organisation login.
pub const LOGIN_MAX_CHARS: usize = 39;
/// The longest login ghr accepts from a webhook. Logins GitHub reports can be older than today's rule
/// (consecutive or trailing hyphens) or belong to managed users (`handle_shortcode`), so the webhook check
/// is looser than [`check_login`]; this bound only keeps absurd values out of the store and the logs.
pub const REPORTED_LOGIN_MAX_CHARS: usize = 100;

/// A value that cannot be accepted, naming the field and what would be valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} is invalid: {reason}")]
pub struct InvalidInput {
    pub field: &'static str,
    pub reason: String,
}

impl InvalidInput {
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self { field, reason: reason.into() }
    }
}

/// A GitHub id (installation, account, job, sender) must be in `1..=GITHUB_ID_MAX`.
pub fn check_github_id(field: &'static str, value: u64) -> Result<u64, InvalidInput> {
    if (1..=GITHUB_ID_MAX).contains(&value) {
        Ok(value)
    } else {
        Err(InvalidInput::new(field, format!("{value} is not a GitHub id (expected 1 to {GITHUB_ID_MAX})")))
    }
}

/// A login as GitHub allows one to be created today: 1 to 39 characters, ASCII letters, digits and single
/// hyphens, neither first nor last. Used for org names an operator types.
pub fn check_login(field: &'static str, login: &str) -> Result<(), InvalidInput> {
    let invalid = |why: &str| {
        Err(InvalidInput::new(
            field,
            format!(
                "{:?} {why}; a GitHub login is 1-{LOGIN_MAX_CHARS} characters of letters, digits and single \
                 hyphens, not starting or ending with a hyphen",
                clip(login)
            ),
        ))
    };
    if login.is_empty() {
        return invalid("is empty");
    }
    if login.chars().count() > LOGIN_MAX_CHARS {
        return invalid("is too long");
    }
    if !login.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return invalid("contains a character other than a letter, a digit or a hyphen");
    }
    if login.starts_with('-') || login.ends_with('-') {
        return invalid("starts or ends with a hyphen");
    }
    if login.contains("--") {
        return invalid("contains consecutive hyphens");
    }
    Ok(())
}

/// A login as a webhook reports it: 1 to [`REPORTED_LOGIN_MAX_CHARS`] ASCII letters, digits, hyphens or
/// underscores (see the constant for why this is looser than [`check_login`]).
pub fn check_reported_login(field: &'static str, login: &str) -> Result<(), InvalidInput> {
    let fits = !login.is_empty()
        && login.chars().count() <= REPORTED_LOGIN_MAX_CHARS
        && login.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if fits {
        Ok(())
    } else {
        Err(InvalidInput::new(
            field,
            format!(
                "{:?} is not a GitHub login (1-{REPORTED_LOGIN_MAX_CHARS} letters, digits, '-' or '_')",
                clip(login)
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_ids_fit_a_signed_64_bit_column() {
        let table: &[(u64, bool)] =
            &[(0, false), (1, true), (42, true), (GITHUB_ID_MAX, true), (GITHUB_ID_MAX + 1, false), (u64::MAX, false)];
        for (value, ok) in table {
            let result = check_github_id("installation_id", *value);
            assert_eq!(result.is_ok(), *ok, "{value}: {result:?}");
            if let Err(error) = result {
                assert!(error.to_string().starts_with("installation_id is invalid"), "{error}");
            }
        }
    }

    #[test]
    fn logins_follow_githubs_rule() {
        let forty = "a".repeat(LOGIN_MAX_CHARS + 1);
        let thirty_nine = "a".repeat(LOGIN_MAX_CHARS);
        let table: &[(&str, Option<&str>)] = &[
            ("acme", None),
            ("a", None),
            ("Acme-Corp-2", None),
            ("0xdeadbeef", None),
            (&thirty_nine, None),
            ("", Some("is empty")),
            (&forty, Some("is too long")),
            ("-acme", Some("starts or ends with a hyphen")),
            ("acme-", Some("starts or ends with a hyphen")),
            ("ac--me", Some("consecutive hyphens")),
            ("ac_me", Some("other than")),
            ("ac.me", Some("other than")),
            ("../etc", Some("other than")),
            ("ac me", Some("other than")),
            ("acme\0", Some("other than")),
            ("acme\r\nX-Evil: 1", Some("other than")),
            ("äcme", Some("other than")),
        ];
        for (login, want) in table {
            match (check_login("org_name", login), want) {
                (Ok(()), None) => {}
                (Err(error), Some(why)) => {
                    let message = error.to_string();
                    assert!(message.contains(why), "{login:?}: {message}");
                    assert!(message.starts_with("org_name is invalid"), "{message}");
                }
                (result, want) => panic!("{login:?}: got {result:?}, wanted {want:?}"),
            }
        }
    }

    #[test]
    fn reported_logins_are_looser_but_bounded() {
        for ok in ["acme", "legacy--name", "trailing-", "octo_emu", &"a".repeat(REPORTED_LOGIN_MAX_CHARS)] {
            assert_eq!(check_reported_login("installation.account.login", ok), Ok(()), "{ok:?}");
        }
        let huge = "a".repeat(300 * 1024);
        for bad in ["", "a/b", "../x", "nul\0", "line\nbreak", huge.as_str()] {
            let error = check_reported_login("installation.account.login", bad).unwrap_err();
            assert!(
                error.to_string().len() < 512,
                "the message quotes a clipped login: {} bytes",
                error.to_string().len()
            );
        }
    }
}
