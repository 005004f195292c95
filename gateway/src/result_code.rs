//! The marketplace's six-digit result codes, and the one place where every
//! outcome of a plugin call is translated into one of them.
//!
//! Nothing else in the gateway decides a result code for a plugin outcome:
//! the served endpoint, the CLI and the tests all go through [`for_outcome`].

use serde::Serialize;

use crate::contract::PluginError;
use crate::runtime::{CallError, Outcome};

/// The longest `resultMsg` the marketplace accepts.
pub const MAX_RESULT_MSG_CHARS: usize = 255;

/// A result code of the production interface (research §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum ResultCode {
    /// 000000
    Success,
    /// 000001
    AuthFailed,
    /// 000002
    InvalidParams,
    /// 000003
    InstanceNotFound,
    /// 000004
    Processing,
    /// 000005
    Internal,
    /// 000100
    NoResources,
    /// 000104
    ServiceError,
    /// 000105
    AlreadySubscribed,
    /// 000106
    SoldOut,
}

impl ResultCode {
    /// Every code, in numeric order.
    pub const ALL: [ResultCode; 10] = [
        ResultCode::Success,
        ResultCode::AuthFailed,
        ResultCode::InvalidParams,
        ResultCode::InstanceNotFound,
        ResultCode::Processing,
        ResultCode::Internal,
        ResultCode::NoResources,
        ResultCode::ServiceError,
        ResultCode::AlreadySubscribed,
        ResultCode::SoldOut,
    ];

    /// The six digits sent as `resultCode`.
    pub fn code(self) -> &'static str {
        match self {
            ResultCode::Success => "000000",
            ResultCode::AuthFailed => "000001",
            ResultCode::InvalidParams => "000002",
            ResultCode::InstanceNotFound => "000003",
            ResultCode::Processing => "000004",
            ResultCode::Internal => "000005",
            ResultCode::NoResources => "000100",
            ResultCode::ServiceError => "000104",
            ResultCode::AlreadySubscribed => "000105",
            ResultCode::SoldOut => "000106",
        }
    }

    /// The code for six digits, if the gateway knows it.
    pub fn from_code(code: &str) -> Option<ResultCode> {
        ResultCode::ALL.into_iter().find(|c| c.code() == code)
    }

    /// The `resultMsg` used when there is no more specific reason.
    pub fn default_message(self) -> &'static str {
        match self {
            ResultCode::Success => "success",
            ResultCode::AuthFailed => "authentication failed",
            ResultCode::InvalidParams => "invalid request parameters",
            ResultCode::InstanceNotFound => "instance does not exist",
            ResultCode::Processing => "request is being processed",
            ResultCode::Internal => "internal service error",
            ResultCode::NoResources => "no instance resources available",
            ResultCode::ServiceError => "product service error",
            ResultCode::AlreadySubscribed => "account has already subscribed",
            ResultCode::SoldOut => "product resources sold out",
        }
    }

    /// Whether the marketplace should retry: every failure is retried by the
    /// marketplace, but only these mean "the same request may succeed later".
    pub fn is_transient(self) -> bool {
        matches!(self, ResultCode::Processing | ResultCode::Internal)
    }
}

impl std::fmt::Display for ResultCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// A result code with the message that goes with it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CodedResult {
    pub code: ResultCode,
    pub message: String,
}

/// The code a plugin's own error maps to: one case, one code.
pub fn for_plugin_error(error: &PluginError) -> CodedResult {
    let (code, reason) = match error {
        PluginError::InvalidRequest(r) => (ResultCode::InvalidParams, r),
        PluginError::InstanceNotFound(r) => (ResultCode::InstanceNotFound, r),
        PluginError::InProgress(r) => (ResultCode::Processing, r),
        PluginError::Internal(r) => (ResultCode::Internal, r),
        PluginError::NoResources(r) => (ResultCode::NoResources, r),
        PluginError::ServiceError(r) => (ResultCode::ServiceError, r),
        PluginError::AlreadySubscribed(r) => (ResultCode::AlreadySubscribed, r),
        PluginError::SoldOut(r) => (ResultCode::SoldOut, r),
    };
    coded(code, reason)
}

/// The code a failed call maps to. Every sandbox failure is an internal error
/// (000005): the marketplace retries it, and a retry may well succeed (a
/// deadline under load, a busy pool). The message says what happened, without
/// the plugin's internals.
pub fn for_call_error(error: &CallError) -> CodedResult {
    coded(ResultCode::Internal, &error.public_message())
}

/// The one mapping from the outcome of a plugin call to a result code.
pub fn for_outcome(outcome: &Outcome) -> CodedResult {
    match outcome {
        Outcome::Answered(_) => coded(ResultCode::Success, ResultCode::Success.default_message()),
        Outcome::Declined(error) => for_plugin_error(error),
        Outcome::Failed(error) => for_call_error(error),
    }
}

/// Builds a coded result, falling back to the default message for a blank
/// reason and truncating to what the marketplace accepts.
fn coded(code: ResultCode, reason: &str) -> CodedResult {
    let reason = reason.trim();
    let message = if reason.is_empty() {
        code.default_message()
    } else {
        reason
    };
    CodedResult {
        code,
        message: message.chars().take(MAX_RESULT_MSG_CHARS).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// The result-code table of the shared vectors, `../shared/spec/vectors`.
    fn shared_result_codes() -> BTreeMap<String, String> {
        serde_json::from_value(crate::test_vectors::vectors()["result_codes"].clone())
            .expect("result_codes is a table")
    }

    #[test]
    fn every_code_of_the_shared_table_is_known_and_no_other() {
        let table = shared_result_codes();
        let ours: Vec<&str> = ResultCode::ALL.iter().map(|c| c.code()).collect();
        let theirs: Vec<&str> = table.keys().map(String::as_str).collect();
        assert_eq!(ours, theirs);
        for code in ResultCode::ALL {
            assert_eq!(ResultCode::from_code(code.code()), Some(code));
        }
    }

    #[test]
    fn each_plugin_error_maps_to_its_own_code() {
        let cases = [
            (PluginError::InvalidRequest("a".into()), "000002"),
            (PluginError::InstanceNotFound("a".into()), "000003"),
            (PluginError::InProgress("a".into()), "000004"),
            (PluginError::Internal("a".into()), "000005"),
            (PluginError::NoResources("a".into()), "000100"),
            (PluginError::ServiceError("a".into()), "000104"),
            (PluginError::AlreadySubscribed("a".into()), "000105"),
            (PluginError::SoldOut("a".into()), "000106"),
        ];
        let table = shared_result_codes();
        for (error, expected) in cases {
            let coded = for_plugin_error(&error);
            assert_eq!(coded.code.code(), expected, "{error:?}");
            assert!(table.contains_key(expected));
            assert_eq!(coded.message, "a");
        }
    }

    #[test]
    fn messages_are_bounded_and_never_blank() {
        let long = "é".repeat(1000);
        let coded = for_plugin_error(&PluginError::SoldOut(long));
        assert_eq!(coded.message.chars().count(), MAX_RESULT_MSG_CHARS);
        let blank = for_plugin_error(&PluginError::NoResources("  ".into()));
        assert_eq!(blank.message, "no instance resources available");
    }

    #[test]
    fn call_failures_are_internal_errors() {
        let failure = CallError::Deadline {
            deadline_ms: 50,
            blocked_in_host: false,
        };
        let coded = for_outcome(&Outcome::Failed(failure));
        assert_eq!(coded.code, ResultCode::Internal);
        assert!(coded.message.contains("deadline"), "{}", coded.message);
    }
}
