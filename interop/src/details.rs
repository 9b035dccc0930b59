//! The error-details convention (ours, not the interop spec's): a `UnaryCall` carrying the
//! header `x-fail-with-details` fails with [`CODE`], [`MESSAGE`] and, in
//! `grpc-status-details-bin`, a `google.rpc.Status` with these three details (in any order):
//!
//! - `google.rpc.BadRequest`: field violations (`payload.body`, `must not be empty`) and
//!   (`response_size`, `must be positive`);
//! - `google.rpc.ErrorInfo`: reason `INTEROP_DETAILS`, domain `interop.grpc.test`,
//!   metadata `{case: error_details}`;
//! - `google.rpc.RetryInfo`: retry delay 1.5 s.
//!
//! Our server and interop/peers/python/server.py send exactly this; our client and
//! interop/peers/python/client.py check it (the `error_details` own case), so each
//! direction is decoded by an implementation that did not encode it.

use std::time::Duration;

use grpc_runtime::error_details::ErrorDetails;
use grpc_runtime::{Code, Status};

/// The request header asking for the failure.
pub const HEADER: &str = "x-fail-with-details";
/// The status code of the failure.
pub const CODE: Code = Code::InvalidArgument;
/// The status message of the failure.
pub const MESSAGE: &str = "invalid request (details attached)";
const VIOLATIONS: [(&str, &str); 2] = [
    ("payload.body", "must not be empty"),
    ("response_size", "must be positive"),
];
const REASON: &str = "INTEROP_DETAILS";
const DOMAIN: &str = "interop.grpc.test";
const RETRY_DELAY: Duration = Duration::from_millis(1500);

/// The details the convention sends.
pub fn details() -> ErrorDetails {
    let mut details = ErrorDetails::new();
    for (field, description) in VIOLATIONS {
        details = details.with_bad_request_violation(field, description);
    }
    details
        .with_error_info(REASON, DOMAIN, [("case", "error_details")])
        .with_retry_info(RETRY_DELAY)
}

/// The status the convention fails with.
pub fn status() -> Status {
    Status::with_error_details(CODE, MESSAGE, details())
}

/// Checks a received status against the convention, saying what differs.
///
/// # Errors
///
/// The first difference found.
pub fn check(status: &Status) -> Result<(), String> {
    if status.code() != CODE || status.message() != MESSAGE {
        return Err(format!("got status {status}, expected {CODE}: {MESSAGE}"));
    }
    let got = status
        .error_details()
        .map_err(|e| format!("cannot read the details: {e}"))?;
    let violations: Vec<(&str, &str)> = got
        .bad_request()
        .map(|b| {
            b.field_violations
                .iter()
                .map(|v| (v.field.as_str(), v.description.as_str()))
                .collect()
        })
        .unwrap_or_default();
    if violations != VIOLATIONS {
        return Err(format!(
            "BadRequest violations {violations:?}, expected {VIOLATIONS:?}"
        ));
    }
    let info = got.error_info().ok_or("no ErrorInfo")?;
    let metadata: Vec<(&str, &str)> = info
        .metadata
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    if info.reason != REASON || info.domain != DOMAIN || metadata != [("case", "error_details")] {
        return Err(format!(
            "ErrorInfo {:?} in {:?} with {metadata:?}, expected {REASON:?} in {DOMAIN:?} \
             with case=error_details",
            info.reason, info.domain
        ));
    }
    if got.retry_delay() != Some(RETRY_DELAY) {
        return Err(format!(
            "RetryInfo delay {:?}, expected {RETRY_DELAY:?}",
            got.retry_delay()
        ));
    }
    let rpc = status.rpc_status().map_err(|e| e.to_string())?;
    if rpc.details.len() != 3 || !got.others().is_empty() {
        return Err(format!(
            "{} details ({} not standard), expected 3",
            rpc.details.len(),
            got.others().len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_convention_checks_its_own_status() {
        assert_eq!(super::check(&super::status()), Ok(()));
        assert!(super::check(&grpc_runtime::Status::invalid_argument(super::MESSAGE)).is_err());
    }
}
