//! The marketplace's six-digit result codes: what each means, which ones
//! are final ([`ResultCode::disposition`], the one retry classification),
//! and the one mapping from a plugin's own error to a code
//! ([`for_plugin_error`]). Sandbox failures are mapped by the gateway (it
//! owns the sandbox): always 000005.

use koogallery_contract::PluginError;
use serde::Serialize;

/// The longest `resultMsg` the marketplace accepts.
pub const MAX_RESULT_MSG_CHARS: usize = 255;

/// A result code of the production interface. Serialised as its six digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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

    /// Whether an answer with this code is the final word on an operation.
    /// Only refusals that a retry cannot change are final; 000004, 000005
    /// and 000104 (a dependency failed) say nothing final about the order,
    /// and storing them as final would wedge it for the retention window.
    pub fn disposition(self) -> Disposition {
        match self {
            ResultCode::Processing | ResultCode::Internal | ResultCode::ServiceError => {
                Disposition::Retryable
            }
            ResultCode::Success
            | ResultCode::AuthFailed
            | ResultCode::InvalidParams
            | ResultCode::InstanceNotFound
            | ResultCode::NoResources
            | ResultCode::AlreadySubscribed
            | ResultCode::SoldOut => Disposition::Final,
        }
    }
}

/// Whether an answer is the final word on an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Success or a deterministic business refusal: stored and replayed.
    Final,
    /// Worth re-executing: released for the next retry.
    Retryable,
}

impl Serialize for ResultCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code())
    }
}

impl<'de> serde::Deserialize<'de> for ResultCode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        ResultCode::from_code(&code)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown result code `{code}`")))
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
    CodedResult::new(code, reason)
}

impl CodedResult {
    /// A code with `reason` as its message: the default message for a blank
    /// reason, truncated to what the marketplace accepts.
    pub fn new(code: ResultCode, reason: &str) -> CodedResult {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// The result-code table of the vectors.
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
    fn only_refusals_a_retry_cannot_change_are_final() {
        let retryable: Vec<ResultCode> = ResultCode::ALL
            .into_iter()
            .filter(|code| code.disposition() == Disposition::Retryable)
            .collect();
        assert_eq!(
            retryable,
            [
                ResultCode::Processing,
                ResultCode::Internal,
                ResultCode::ServiceError
            ]
        );
    }
}
