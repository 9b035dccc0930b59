//! The richer error model: a `google.rpc.Status` with standard error details, carried in a
//! [`Status`]'s binary details (the `grpc-status-details-bin` trailer).
//!
//! A failed call can say more than a code and a message: which request fields were wrong
//! ([`BadRequest`]), when to try again ([`RetryInfo`]), why in
//! machine-readable form ([`ErrorInfo`]), and so on. gRPC carries this as an
//! encoded `google.rpc.Status { code, message, details: [Any] }` in the
//! `grpc-status-details-bin` trailer, each detail a `google.protobuf.Any` whose type URL
//! names the message (`type.googleapis.com/google.rpc.BadRequest`). gRPC-Go
//! (`status.WithDetails`, `errdetails`), grpcio (`grpcio-status`) and tonic (`tonic-types`)
//! read and write the same bytes.
//!
//! - [`ErrorDetails`] is a typed collection of the standard details, at most one of each
//!   kind, plus any other `Any`s as they came;
//! - [`Status::with_error_details`] attaches them to a status, [`Status::error_details`]
//!   reads them back, [`Status::rpc_status`] gives the raw `google.rpc.Status`;
//! - [`pb`] re-exports the `google.rpc` messages themselves.
//!
//! # Examples
//!
//! A handler fails a call with the fields that were wrong and a retry delay; the client reads
//! them back:
//!
//! ```
//! use std::time::Duration;
//! use grpc_runtime::error_details::ErrorDetails;
//! use grpc_runtime::{Code, Status};
//!
//! let details = ErrorDetails::new()
//!     .with_bad_request_violation("name", "must not be empty")
//!     .with_retry_info(Duration::from_secs(2));
//! let status = Status::with_error_details(Code::InvalidArgument, "bad request", details);
//!
//! // ... sent as grpc-status-details-bin, received by the client ...
//! let details = status.error_details()?;
//! let violation = &details.bad_request().unwrap().field_violations[0];
//! assert_eq!(violation.field, "name");
//! assert_eq!(details.retry_delay(), Some(Duration::from_secs(2)));
//! # Ok::<(), grpc_runtime::error_details::DetailsError>(())
//! ```
//!
//! Keep details small: they travel in a trailer, and peers limit the size of a header list
//! (grpcio's default is 8 KiB, gRPC-Go's 16 MiB).

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use protobuf::Message;
use protobuf::well_known_types::any::Any;

use crate::status::{Code, Status};

use pb::{
    BadRequest, DebugInfo, ErrorInfo, Help, LocalizedMessage, PreconditionFailure, QuotaFailure,
    RequestInfo, ResourceInfo, RetryInfo,
};

/// The `google.rpc` messages (rust-protobuf), from our declarations of
/// `google/rpc/status.proto` and `google/rpc/error_details.proto`.
///
/// [`Status`](pb::Status) here is `google.rpc.Status`, the message, not
/// [`grpc_runtime::Status`](crate::Status).
pub mod pb {
    pub use crate::generated::google_rpc::error_details::{
        BadRequest, DebugInfo, ErrorInfo, Help, LocalizedMessage, PreconditionFailure,
        QuotaFailure, RequestInfo, ResourceInfo, RetryInfo, bad_request, help,
        precondition_failure, quota_failure,
    };
    pub use crate::generated::google_rpc::status::Status;
    pub use protobuf::well_known_types::any::Any;
}

/// The prefix of the type URLs this module writes (`type.googleapis.com/google.rpc.BadRequest`).
/// On reading, only the part after the last `/` counts, as the `Any` spec says.
pub const TYPE_URL_PREFIX: &str = "type.googleapis.com/";

/// The standard error details of a status, at most one of each kind, and any other details
/// as they came.
///
/// Build one with [`new`](ErrorDetails::new) and the `with_*` setters, attach it with
/// [`Status::with_error_details`], read it back with [`Status::error_details`]. On the wire
/// it is the `details` list of a `google.rpc.Status`, in this order: the standard details
/// present (in the order of the accessors below), then the [others](ErrorDetails::others).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use grpc_runtime::error_details::ErrorDetails;
/// use grpc_runtime::{Code, Status};
///
/// let details = ErrorDetails::new()
///     .with_bad_request_violation("page_size", "must be at most 100")
///     .with_error_info("PAGE_TOO_LARGE", "example.com", [("max", "100")])
///     .with_retry_info(Duration::from_millis(1500))
///     .with_help_link("page sizes", "https://example.com/docs/paging");
/// let status = Status::with_error_details(Code::InvalidArgument, "bad page size", details);
///
/// let back = status.error_details().unwrap();
/// assert_eq!(back.error_info().unwrap().reason, "PAGE_TOO_LARGE");
/// assert_eq!(back.error_info().unwrap().metadata["max"], "100");
/// assert_eq!(back.retry_delay(), Some(Duration::from_millis(1500)));
/// assert_eq!(back.help().unwrap().links[0].url, "https://example.com/docs/paging");
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ErrorDetails {
    retry_info: Option<RetryInfo>,
    debug_info: Option<DebugInfo>,
    quota_failure: Option<QuotaFailure>,
    error_info: Option<ErrorInfo>,
    precondition_failure: Option<PreconditionFailure>,
    bad_request: Option<BadRequest>,
    request_info: Option<RequestInfo>,
    resource_info: Option<ResourceInfo>,
    help: Option<Help>,
    localized_message: Option<LocalizedMessage>,
    others: Vec<Any>,
}

/// The standard detail types: their message name (after `google.rpc.`), a getter of the
/// slot and the slot itself, in wire order. One list, so encoding and decoding agree.
macro_rules! for_each_kind {
    ($mac:ident) => {
        $mac! {
            retry_info: RetryInfo,
            debug_info: DebugInfo,
            quota_failure: QuotaFailure,
            error_info: ErrorInfo,
            precondition_failure: PreconditionFailure,
            bad_request: BadRequest,
            request_info: RequestInfo,
            resource_info: ResourceInfo,
            help: Help,
            localized_message: LocalizedMessage,
        }
    };
}

impl ErrorDetails {
    /// No details.
    pub fn new() -> ErrorDetails {
        ErrorDetails::default()
    }

    /// Reads a `google.rpc.Status`'s `details` list: each standard type into its slot (the
    /// first of each kind; a repeated kind is kept among the [others](ErrorDetails::others),
    /// so nothing is lost), anything else into the others as it came.
    ///
    /// # Errors
    ///
    /// A detail whose type URL names a standard type but whose value does not decode as it
    /// ([`DetailsErrorKind::MalformedDetail`]).
    pub fn from_any(details: impl IntoIterator<Item = Any>) -> Result<ErrorDetails, DetailsError> {
        let mut out = ErrorDetails::new();
        for (index, any) in details.into_iter().enumerate() {
            out.add_any(index, any)?;
        }
        Ok(out)
    }

    fn add_any(&mut self, index: usize, any: Any) -> Result<(), DetailsError> {
        let name = type_name(&any.type_url);
        macro_rules! decode {
            ($($slot:ident: $ty:ident,)*) => {
                $(
                    if name == concat!("google.rpc.", stringify!($ty)) {
                        if self.$slot.is_some() {
                            self.others.push(any);
                            return Ok(());
                        }
                        let message = $ty::parse_from_bytes(&any.value).map_err(|source| {
                            DetailsError::malformed_detail(index, &any.type_url, source)
                        })?;
                        self.$slot = Some(message);
                        return Ok(());
                    }
                )*
            };
        }
        for_each_kind!(decode);
        self.others.push(any);
        Ok(())
    }

    /// The details as a `google.rpc.Status`'s `details` list: the standard ones present,
    /// then the others.
    pub fn to_any(&self) -> Vec<Any> {
        let mut out = Vec::new();
        macro_rules! encode {
            ($($slot:ident: $ty:ident,)*) => {
                $(
                    if let Some(message) = &self.$slot {
                        out.push(pack(message));
                    }
                )*
            };
        }
        for_each_kind!(encode);
        out.extend(self.others.iter().cloned());
        out
    }

    /// Whether there are no details at all.
    pub fn is_empty(&self) -> bool {
        *self == ErrorDetails::default()
    }

    // ---- setters ------------------------------------------------------------------------

    /// Sets the [`RetryInfo`]: how long the client should wait before
    /// retrying. A delay beyond protobuf's `Duration` range is saturated.
    #[must_use]
    pub fn with_retry_info(mut self, delay: Duration) -> ErrorDetails {
        let mut info = RetryInfo::new();
        let mut proto = protobuf::well_known_types::duration::Duration::new();
        proto.seconds = i64::try_from(delay.as_secs()).unwrap_or(i64::MAX);
        proto.nanos = i32::try_from(delay.subsec_nanos()).unwrap_or(0);
        info.retry_delay = protobuf::MessageField::some(proto);
        self.retry_info = Some(info);
        self
    }

    /// Sets the [`DebugInfo`]: a stack trace and a detail, for the
    /// service's own developers (never send it to clients you do not trust).
    #[must_use]
    pub fn with_debug_info(
        mut self,
        stack_entries: impl IntoIterator<Item = impl Into<String>>,
        detail: impl Into<String>,
    ) -> ErrorDetails {
        let mut info = DebugInfo::new();
        info.stack_entries = stack_entries.into_iter().map(Into::into).collect();
        info.detail = detail.into();
        self.debug_info = Some(info);
        self
    }

    /// Sets the [`QuotaFailure`], replacing any.
    #[must_use]
    pub fn with_quota_failure(mut self, failure: QuotaFailure) -> ErrorDetails {
        self.quota_failure = Some(failure);
        self
    }

    /// Adds a violation to the [`QuotaFailure`] (creating it): the
    /// `subject` whose quota ran out (`"project:my-project"`) and why.
    #[must_use]
    pub fn with_quota_failure_violation(
        mut self,
        subject: impl Into<String>,
        description: impl Into<String>,
    ) -> ErrorDetails {
        let mut violation = pb::quota_failure::Violation::new();
        violation.subject = subject.into();
        violation.description = description.into();
        self.quota_failure
            .get_or_insert_with(QuotaFailure::new)
            .violations
            .push(violation);
        self
    }

    /// Sets the [`ErrorInfo`]: the error's `reason` (an `UPPER_SNAKE_CASE`
    /// constant), the `domain` that defines it, and metadata about this occurrence.
    #[must_use]
    pub fn with_error_info(
        mut self,
        reason: impl Into<String>,
        domain: impl Into<String>,
        metadata: impl IntoIterator<Item = (impl Into<String>, impl Into<String>)>,
    ) -> ErrorDetails {
        let mut info = ErrorInfo::new();
        info.reason = reason.into();
        info.domain = domain.into();
        info.metadata = metadata
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        self.error_info = Some(info);
        self
    }

    /// Sets the [`PreconditionFailure`], replacing any.
    #[must_use]
    pub fn with_precondition_failure(mut self, failure: PreconditionFailure) -> ErrorDetails {
        self.precondition_failure = Some(failure);
        self
    }

    /// Adds a violation to the [`PreconditionFailure`] (creating
    /// it): its type (`"TOS"`), subject (`"google.com/cloud"`) and description.
    #[must_use]
    pub fn with_precondition_failure_violation(
        mut self,
        kind: impl Into<String>,
        subject: impl Into<String>,
        description: impl Into<String>,
    ) -> ErrorDetails {
        let mut violation = pb::precondition_failure::Violation::new();
        violation.type_ = kind.into();
        violation.subject = subject.into();
        violation.description = description.into();
        self.precondition_failure
            .get_or_insert_with(PreconditionFailure::new)
            .violations
            .push(violation);
        self
    }

    /// Sets the [`BadRequest`], replacing any.
    #[must_use]
    pub fn with_bad_request(mut self, bad_request: BadRequest) -> ErrorDetails {
        self.bad_request = Some(bad_request);
        self
    }

    /// Adds a field violation to the [`BadRequest`] (creating it): the
    /// field's path (`"address.zip_code"`) and what is wrong with it.
    #[must_use]
    pub fn with_bad_request_violation(
        mut self,
        field: impl Into<String>,
        description: impl Into<String>,
    ) -> ErrorDetails {
        let mut violation = pb::bad_request::FieldViolation::new();
        violation.field = field.into();
        violation.description = description.into();
        self.bad_request
            .get_or_insert_with(BadRequest::new)
            .field_violations
            .push(violation);
        self
    }

    /// Sets the [`RequestInfo`]: the request's id (for a bug report) and
    /// any data the service needs to trace it.
    #[must_use]
    pub fn with_request_info(
        mut self,
        request_id: impl Into<String>,
        serving_data: impl Into<String>,
    ) -> ErrorDetails {
        let mut info = RequestInfo::new();
        info.request_id = request_id.into();
        info.serving_data = serving_data.into();
        self.request_info = Some(info);
        self
    }

    /// Sets the [`ResourceInfo`]: the resource the error is about.
    #[must_use]
    pub fn with_resource_info(
        mut self,
        resource_type: impl Into<String>,
        resource_name: impl Into<String>,
        owner: impl Into<String>,
        description: impl Into<String>,
    ) -> ErrorDetails {
        let mut info = ResourceInfo::new();
        info.resource_type = resource_type.into();
        info.resource_name = resource_name.into();
        info.owner = owner.into();
        info.description = description.into();
        self.resource_info = Some(info);
        self
    }

    /// Sets the [`Help`], replacing any.
    #[must_use]
    pub fn with_help(mut self, help: Help) -> ErrorDetails {
        self.help = Some(help);
        self
    }

    /// Adds a link to the [`Help`] (creating it).
    #[must_use]
    pub fn with_help_link(
        mut self,
        description: impl Into<String>,
        url: impl Into<String>,
    ) -> ErrorDetails {
        let mut link = pb::help::Link::new();
        link.description = description.into();
        link.url = url.into();
        self.help.get_or_insert_with(Help::new).links.push(link);
        self
    }

    /// Sets the [`LocalizedMessage`]: the error in the user's
    /// language (`locale` as BCP-47, `"fr-CH"`).
    #[must_use]
    pub fn with_localized_message(
        mut self,
        locale: impl Into<String>,
        message: impl Into<String>,
    ) -> ErrorDetails {
        let mut localized = LocalizedMessage::new();
        localized.locale = locale.into();
        localized.message = message.into();
        self.localized_message = Some(localized);
        self
    }

    /// Adds a detail of any other type, sent after the standard ones. (One whose type URL
    /// names a standard type is read back into that type's slot if the slot is free.)
    #[must_use]
    pub fn with_any(mut self, detail: Any) -> ErrorDetails {
        self.others.push(detail);
        self
    }

    // ---- accessors ----------------------------------------------------------------------

    /// The [`RetryInfo`], if any.
    pub fn retry_info(&self) -> Option<&RetryInfo> {
        self.retry_info.as_ref()
    }

    /// The [`RetryInfo`]'s delay; `None` without one, or if its delay is
    /// missing or not a valid non-negative duration.
    pub fn retry_delay(&self) -> Option<Duration> {
        let delay = self.retry_info.as_ref()?.retry_delay.as_ref()?;
        let seconds = u64::try_from(delay.seconds).ok()?;
        let nanos = u32::try_from(delay.nanos)
            .ok()
            .filter(|n| *n < 1_000_000_000)?;
        Some(Duration::new(seconds, nanos))
    }

    /// The [`DebugInfo`], if any.
    pub fn debug_info(&self) -> Option<&DebugInfo> {
        self.debug_info.as_ref()
    }

    /// The [`QuotaFailure`], if any.
    pub fn quota_failure(&self) -> Option<&QuotaFailure> {
        self.quota_failure.as_ref()
    }

    /// The [`ErrorInfo`], if any.
    pub fn error_info(&self) -> Option<&ErrorInfo> {
        self.error_info.as_ref()
    }

    /// The [`PreconditionFailure`], if any.
    pub fn precondition_failure(&self) -> Option<&PreconditionFailure> {
        self.precondition_failure.as_ref()
    }

    /// The [`BadRequest`], if any.
    pub fn bad_request(&self) -> Option<&BadRequest> {
        self.bad_request.as_ref()
    }

    /// The [`RequestInfo`], if any.
    pub fn request_info(&self) -> Option<&RequestInfo> {
        self.request_info.as_ref()
    }

    /// The [`ResourceInfo`], if any.
    pub fn resource_info(&self) -> Option<&ResourceInfo> {
        self.resource_info.as_ref()
    }

    /// The [`Help`], if any.
    pub fn help(&self) -> Option<&Help> {
        self.help.as_ref()
    }

    /// The [`LocalizedMessage`], if any.
    pub fn localized_message(&self) -> Option<&LocalizedMessage> {
        self.localized_message.as_ref()
    }

    /// The details that are not standard ones (or repeat a kind already read), as they
    /// came, in order.
    pub fn others(&self) -> &[Any] {
        &self.others
    }
}

/// The message name of a type URL: what follows the last `/`.
fn type_name(type_url: &str) -> &str {
    type_url.rsplit_once('/').map_or(type_url, |(_, name)| name)
}

/// Packs a `google.rpc` message into an `Any` with its standard type URL.
fn pack<M: Message>(message: &M) -> Any {
    let mut any = Any::new();
    any.type_url = format!("{TYPE_URL_PREFIX}google.rpc.{}", M::NAME);
    // Writing a proto3 message fails only past protobuf's 2 GiB limit.
    any.value = message.write_to_bytes().unwrap_or_default();
    any
}

impl Status {
    /// Creates a status whose details are `details` in a `google.rpc.Status` with the same
    /// code and message (sent as `grpc-status-details-bin`).
    ///
    /// # Examples
    ///
    /// ```
    /// use grpc_runtime::error_details::ErrorDetails;
    /// use grpc_runtime::{Code, Status};
    ///
    /// let status = Status::with_error_details(
    ///     Code::FailedPrecondition,
    ///     "the terms of service were not accepted",
    ///     ErrorDetails::new().with_precondition_failure_violation(
    ///         "TOS",
    ///         "example.com/terms",
    ///         "accept the terms first",
    ///     ),
    /// );
    /// let rpc = status.rpc_status().unwrap();
    /// assert_eq!(rpc.code, 9);
    /// assert_eq!(rpc.details[0].type_url, "type.googleapis.com/google.rpc.PreconditionFailure");
    /// ```
    pub fn with_error_details(
        code: Code,
        message: impl Into<String>,
        details: ErrorDetails,
    ) -> Status {
        let message = message.into();
        let mut rpc = pb::Status::new();
        rpc.code = code as i32;
        rpc.message = message.clone();
        rpc.details = details.to_any();
        Status::with_details(code, message, encode(&rpc))
    }

    /// Creates a status from a `google.rpc.Status`: its code (an unknown one is
    /// [`Code::Unknown`]) and message, with the whole message as the details. What a proxy
    /// does with a status it got from elsewhere.
    pub fn from_rpc_status(rpc: &pb::Status) -> Status {
        Status::with_details(Code::from_i32(rpc.code), rpc.message.clone(), encode(rpc))
    }

    /// The `google.rpc.Status` in the details, as sent: its code and message are the
    /// sender's and are not checked against this status. Without details, one made of this
    /// status's code and message with no details.
    ///
    /// # Errors
    ///
    /// The details are not a `google.rpc.Status` ([`DetailsErrorKind::MalformedStatus`]).
    pub fn rpc_status(&self) -> Result<pb::Status, DetailsError> {
        if self.details().is_empty() {
            let mut rpc = pb::Status::new();
            rpc.code = self.code() as i32;
            rpc.message = self.message().to_owned();
            return Ok(rpc);
        }
        pb::Status::parse_from_bytes(self.details())
            .map_err(|source| DetailsError::malformed_status(self.details().len(), source))
    }

    /// The standard error details in the `google.rpc.Status` of the details; empty
    /// [`ErrorDetails`] when the status has no details.
    ///
    /// The `google.rpc.Status`'s message is not checked (this status's
    /// [`message`](Status::message) is the one from `grpc-message`; the other is in
    /// [`rpc_status`](Status::rpc_status)). Its code must be this status's, as gRPC-Go and
    /// grpcio also require.
    ///
    /// # Errors
    ///
    /// - the details are not a `google.rpc.Status` ([`DetailsErrorKind::MalformedStatus`]);
    /// - its code is not this status's ([`DetailsErrorKind::CodeMismatch`]);
    /// - a standard detail does not decode ([`DetailsErrorKind::MalformedDetail`]).
    pub fn error_details(&self) -> Result<ErrorDetails, DetailsError> {
        if self.details().is_empty() {
            return Ok(ErrorDetails::new());
        }
        let rpc = self.rpc_status()?;
        if rpc.code != self.code() as i32 {
            return Err(DetailsError::code_mismatch(self.code(), rpc.code));
        }
        ErrorDetails::from_any(rpc.details)
    }
}

fn encode(rpc: &pb::Status) -> Bytes {
    // Writing a proto3 message fails only past protobuf's 2 GiB limit.
    Bytes::from(rpc.write_to_bytes().unwrap_or_default())
}

/// Why a status's details could not be read as [`ErrorDetails`]; says what was wrong, with
/// the protobuf error as its [`source`](std::error::Error::source) when there is one.
#[derive(Debug)]
pub struct DetailsError {
    kind: DetailsErrorKind,
    what: String,
    source: Option<protobuf::Error>,
}

/// What kind of [`DetailsError`] it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DetailsErrorKind {
    /// The details (`grpc-status-details-bin`) are not an encoded `google.rpc.Status`.
    MalformedStatus,
    /// The `google.rpc.Status`'s code is not the status's own (`grpc-status`).
    CodeMismatch,
    /// A detail's type URL names a standard type, but its value does not decode as it.
    MalformedDetail,
}

impl DetailsError {
    fn malformed_status(len: usize, source: protobuf::Error) -> DetailsError {
        DetailsError {
            kind: DetailsErrorKind::MalformedStatus,
            what: format!("grpc-status-details-bin ({len} bytes) is not a google.rpc.Status"),
            source: Some(source),
        }
    }

    fn code_mismatch(code: Code, rpc_code: i32) -> DetailsError {
        DetailsError {
            kind: DetailsErrorKind::CodeMismatch,
            what: format!(
                "grpc-status-details-bin has google.rpc.Status code {rpc_code} ({}), \
                 but grpc-status is {} ({code})",
                Code::from_i32(rpc_code),
                code as i32,
            ),
            source: None,
        }
    }

    fn malformed_detail(index: usize, type_url: &str, source: protobuf::Error) -> DetailsError {
        DetailsError {
            kind: DetailsErrorKind::MalformedDetail,
            what: format!(
                "detail {index} of the google.rpc.Status ({type_url}) does not decode as {}",
                type_name(type_url)
            ),
            source: Some(source),
        }
    }

    /// What kind of error it is.
    pub fn kind(&self) -> DetailsErrorKind {
        self.kind
    }
}

impl fmt::Display for DetailsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Some(source) => write!(f, "{}: {source}", self.what),
            None => f.write_str(&self.what),
        }
    }
}

impl std::error::Error for DetailsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// A client that cannot read the details of a status it got can answer with this: an
/// `INTERNAL` status saying so, with the [`DetailsError`] as its source.
impl From<DetailsError> for Status {
    fn from(err: DetailsError) -> Status {
        Status::internal(err.to_string()).with_source(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> ErrorDetails {
        ErrorDetails::new()
            .with_retry_info(Duration::new(3, 500))
            .with_debug_info(["a.rs:1", "b.rs:2"], "boom")
            .with_quota_failure_violation("project:p", "daily limit")
            .with_error_info("REASON", "example.com", [("k", "v")])
            .with_precondition_failure_violation("TOS", "example.com/tos", "not accepted")
            .with_bad_request_violation("f", "bad")
            .with_bad_request_violation("g", "worse")
            .with_request_info("req-1", "shard 3")
            .with_resource_info("book", "shelves/1/books/2", "me", "not there")
            .with_help_link("docs", "https://example.com")
            .with_localized_message("fr-CH", "mauvais")
    }

    #[test]
    fn every_kind_round_trips_in_wire_order() {
        let details = full();
        let any = details.to_any();
        let names: Vec<&str> = any.iter().map(|a| type_name(&a.type_url)).collect();
        assert_eq!(
            names,
            [
                "google.rpc.RetryInfo",
                "google.rpc.DebugInfo",
                "google.rpc.QuotaFailure",
                "google.rpc.ErrorInfo",
                "google.rpc.PreconditionFailure",
                "google.rpc.BadRequest",
                "google.rpc.RequestInfo",
                "google.rpc.ResourceInfo",
                "google.rpc.Help",
                "google.rpc.LocalizedMessage",
            ]
        );
        assert!(any.iter().all(|a| a.type_url.starts_with(TYPE_URL_PREFIX)));
        assert_eq!(ErrorDetails::from_any(any).unwrap(), details);
        let status = Status::with_error_details(Code::Aborted, "m", details.clone());
        assert_eq!(status.error_details().unwrap(), details);
        assert_eq!(status.rpc_status().unwrap().message, "m");
    }

    /// The encoding agrees with protobuf's own Any packing (the descriptors' full names).
    #[test]
    fn type_urls_match_protobuf_packing() {
        let any = ErrorDetails::new()
            .with_bad_request_violation("f", "d")
            .to_any();
        let packed = Any::pack(
            ErrorDetails::new()
                .with_bad_request_violation("f", "d")
                .bad_request()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(any[0], packed);
    }

    #[test]
    fn other_prefixes_and_repeats_are_kept() {
        let mut odd = Any::new();
        odd.type_url = "example.com/types/google.rpc.LocalizedMessage".into();
        odd.value = {
            let mut m = LocalizedMessage::new();
            m.locale = "en".into();
            m.write_to_bytes().unwrap()
        };
        let second = pack(&LocalizedMessage::new());
        let details = ErrorDetails::from_any([odd, second.clone()]).unwrap();
        assert_eq!(details.localized_message().unwrap().locale, "en");
        assert_eq!(details.others(), [second]);
    }

    #[test]
    fn retry_delay_never_panics() {
        for (seconds, nanos, want) in [
            (1, 5, Some(Duration::new(1, 5))),
            (-1, 0, None),
            (0, -1, None),
            (0, 1_000_000_000, None),
            (
                i64::MAX,
                999_999_999,
                Some(Duration::new(i64::MAX as u64, 999_999_999)),
            ),
        ] {
            let mut d = protobuf::well_known_types::duration::Duration::new();
            d.seconds = seconds;
            d.nanos = nanos;
            let mut info = RetryInfo::new();
            info.retry_delay = protobuf::MessageField::some(d);
            let details = ErrorDetails::from_any([pack(&info)]).unwrap();
            assert_eq!(details.retry_delay(), want, "{seconds}s {nanos}ns");
        }
        let details = ErrorDetails::new().with_retry_info(Duration::MAX);
        assert_eq!(details.retry_info().unwrap().retry_delay.seconds, i64::MAX);
        assert_eq!(
            ErrorDetails::from_any([pack(&RetryInfo::new())])
                .unwrap()
                .retry_delay(),
            None
        );
    }

    #[test]
    fn errors_say_what_happened() {
        let garbage =
            Status::with_details(Code::Internal, "x", Bytes::from_static(b"\xff\xff\xff"));
        let err = garbage.error_details().unwrap_err();
        assert_eq!(err.kind(), DetailsErrorKind::MalformedStatus);
        assert!(
            err.to_string()
                .starts_with("grpc-status-details-bin (3 bytes) is not a google.rpc.Status: "),
            "{err}"
        );
        assert!(std::error::Error::source(&err).is_some());

        let mut rpc = pb::Status::new();
        rpc.code = 5;
        let mismatched = Status::with_details(Code::InvalidArgument, "x", encode(&rpc));
        let err = mismatched.error_details().unwrap_err();
        assert_eq!(err.kind(), DetailsErrorKind::CodeMismatch);
        assert_eq!(
            err.to_string(),
            "grpc-status-details-bin has google.rpc.Status code 5 (NOT_FOUND), but grpc-status is 3 (INVALID_ARGUMENT)"
        );
        assert_eq!(mismatched.rpc_status().unwrap().code, 5);

        let mut bad = Any::new();
        bad.type_url = "type.googleapis.com/google.rpc.BadRequest".into();
        bad.value = vec![0x0a, 0xff];
        let err = ErrorDetails::from_any([pack(&Help::new()), bad]).unwrap_err();
        assert_eq!(err.kind(), DetailsErrorKind::MalformedDetail);
        assert!(err.to_string().starts_with(
            "detail 1 of the google.rpc.Status (type.googleapis.com/google.rpc.BadRequest) does not decode as google.rpc.BadRequest: "
        ), "{err}");
        let status = Status::from(err);
        assert_eq!(status.code(), Code::Internal);
    }

    #[test]
    fn no_details() {
        let status = Status::not_found("gone");
        assert!(status.error_details().unwrap().is_empty());
        let rpc = status.rpc_status().unwrap();
        assert_eq!((rpc.code, rpc.message.as_str()), (5, "gone"));
        assert!(rpc.details.is_empty());
        let back = Status::from_rpc_status(&rpc);
        assert_eq!((back.code(), back.message()), (Code::NotFound, "gone"));
    }
}
