//! `ProviderError` keeps its cause: the message says what the provider was doing, the source says why,
//! and the rendered chain has both, each once.

use ghr_core::error::error_chain;
use ghr_core::ports::ProviderError;
use std::error::Error;

#[derive(Debug, thiserror::Error)]
#[error("RunInstances answered InsufficientInstanceCapacity")]
struct CloudAnswer;

#[test]
fn every_kind_keeps_its_meaning_and_its_cause() {
    let cases = [
        (ProviderError::capacity("no m7i.large in any subnet"), "no capacity: no m7i.large in any subnet"),
        (ProviderError::throttled("launching runner r-1"), "provider throttled or over quota: launching runner r-1"),
        (ProviderError::config("launching runner r-1"), "provider configuration error: launching runner r-1"),
        (ProviderError::failed("launching runner r-1"), "provider call failed: launching runner r-1"),
    ];
    for (error, display) in cases {
        assert!(error.source().is_none(), "{display}: no cause given");
        assert_eq!(error.to_string(), display);
        let message = error.message().to_owned();
        let caused = error.caused_by(CloudAnswer);
        assert_eq!(caused.to_string(), display, "the message does not repeat the cause");
        assert_eq!(caused.message(), message);
        let source = caused.source().expect("the cause is the source");
        assert!(source.downcast_ref::<CloudAnswer>().is_some(), "the cause keeps its type: {source:?}");
        assert_eq!(error_chain(&caused), format!("{display}: RunInstances answered InsufficientInstanceCapacity"));
    }
}

#[test]
fn the_variant_survives_adding_a_cause() {
    let error = ProviderError::throttled("listing instances").caused_by(CloudAnswer);
    assert!(
        matches!(error, ProviderError::Throttled { ref message, source: Some(_) } if message == "listing instances")
    );
}

#[test]
fn unavailability_codes_are_stable() {
    use ghr_core::ports::Unavailability;
    assert_eq!(Unavailability::ReadOnly.code(), "read_only");
    assert_eq!(Unavailability::Removed.code(), "removed");
    assert_eq!(Unavailability::Replaced.code(), "replaced");
}
