//! The JSON answers the marketplace reads: always
//! `resultCode` and `resultMsg`; `instanceId`, `encryptType` and `appInfo`
//! for newInstance; `info[]` for queryInstance; `license` for licenses.
//! Credentials are encrypted here, so plaintext never leaves this module.

use serde::{Deserialize, Serialize};

use koogallery_contract::{AppInfo, InstanceReport, OperationOutput};

use crate::credentials::{self, EncryptType};
use crate::result_code::{CodedResult, ResultCode};
use crate::time;

/// An answer body, serialised with the marketplace's field names. Stored
/// answers are this same form, so it reads back from JSON too.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Answer {
    pub result_code: ResultCode,
    pub result_msg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "encrypt_type_wire"
    )]
    pub encrypt_type: Option<EncryptType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_info: Option<WireAppInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<Vec<WireInstance>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireAppInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub front_end_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memo: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireInstance {
    pub instance_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_info: Option<WireAppInfo>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub usage_info: Vec<WireUsage>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireUsage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub related_instance_id: Option<String>,
    pub usage_value: f64,
    /// `yyyyMMddHHmmss`, UTC.
    pub statistical_time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dashboard_url: Option<String>,
}

/// The key and algorithm credentials are encrypted with.
#[derive(Clone, Copy, Debug)]
pub struct Encryption<'a> {
    pub access_key: &'a str,
    pub encrypt_type: EncryptType,
}

impl Answer {
    /// An answer with only a code and a message.
    pub fn coded(result: &CodedResult) -> Answer {
        Answer {
            result_code: result.code,
            result_msg: result.message.clone(),
            instance_id: None,
            encrypt_type: None,
            app_info: None,
            info: None,
            license: None,
        }
    }

    /// An answer with a code and a message (at most 255 characters; the
    /// code's default message if blank), and nothing else yet.
    pub fn new(code: ResultCode, message: &str) -> Answer {
        Answer::coded(&CodedResult::new(code, message))
    }

    /// The success answer for a plugin's output. A create answers the
    /// instance id of its output: the sandbox has already made it the one
    /// the gateway assigned.
    pub fn success(output: &OperationOutput, encryption: Encryption<'_>) -> Answer {
        let mut answer = Answer::new(ResultCode::Success, "");
        let mut encrypted = false;
        match output {
            OperationOutput::Created(created) => {
                answer.instance_id = Some(created.instance_id.clone());
                answer.app_info = created
                    .app_info
                    .as_ref()
                    .map(|info| wire_app_info(info, encryption, &mut encrypted));
            }
            OperationOutput::Instances(reports) => {
                let info = reports
                    .iter()
                    .map(|report| wire_instance(report, encryption, &mut encrypted))
                    .collect();
                answer.info = Some(info);
            }
            OperationOutput::License(license) => answer.license = Some(license.content.clone()),
            OperationOutput::Done => {}
        }
        if encrypted {
            answer.encrypt_type = Some(encryption.encrypt_type);
        }
        answer
    }

    /// The exact bytes sent (and signed).
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serialising plain strings, numbers and options cannot fail; a
        // non-finite usage value is written as null by serde_json.
        serde_json::to_vec(self).unwrap_or_else(|_| {
            br#"{"resultCode":"000005","resultMsg":"internal service error"}"#.to_vec()
        })
    }
}

fn wire_app_info(info: &AppInfo, encryption: Encryption<'_>, encrypted: &mut bool) -> WireAppInfo {
    let mut encrypt = |plain: &Option<String>| {
        plain.as_ref().map(|text| {
            *encrypted = true;
            credentials::encrypt(encryption.access_key, encryption.encrypt_type, text)
        })
    };
    WireAppInfo {
        user_name: encrypt(&info.user_name),
        password: encrypt(&info.password),
        front_end_url: info.front_end_url.clone(),
        admin_url: info.admin_url.clone(),
        memo: info.memo.clone(),
    }
}

fn wire_instance(
    report: &InstanceReport,
    encryption: Encryption<'_>,
    encrypted: &mut bool,
) -> WireInstance {
    WireInstance {
        instance_id: report.instance_id.clone(),
        app_info: report
            .app_info
            .as_ref()
            .map(|info| wire_app_info(info, encryption, encrypted)),
        usage_info: report
            .usage
            .iter()
            .map(|usage| WireUsage {
                related_instance_id: usage.related_instance_id.clone(),
                usage_value: usage.value,
                statistical_time: time::format_compact(usage.statistical_time.unix_seconds),
                dashboard_url: usage.dashboard_url.clone(),
            })
            .collect(),
    }
}

/// `encryptType` goes on the wire as the text `"1"` or `"2"`.
mod encrypt_type_wire {
    use super::EncryptType;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        value: &Option<EncryptType>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(encrypt_type) => serializer.serialize_str(encrypt_type.wire_value()),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<EncryptType>, D::Error> {
        let Some(text) = Option::<std::borrow::Cow<'de, str>>::deserialize(deserializer)? else {
            return Ok(None);
        };
        [EncryptType::Aes256, EncryptType::Aes128]
            .into_iter()
            .find(|t| t.wire_value() == text)
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown encryptType `{text}`")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use koogallery_contract::Created;

    #[test]
    fn a_created_answer_encrypts_credentials_and_names_the_algorithm() {
        let output = OperationOutput::Created(Created {
            instance_id: "i-1".into(),
            app_info: Some(AppInfo {
                front_end_url: Some("https://a".into()),
                admin_url: None,
                user_name: Some("admin".into()),
                password: Some("s3cret".into()),
                memo: None,
            }),
        });
        let encryption = Encryption {
            access_key: "k",
            encrypt_type: EncryptType::Aes128,
        };
        let answer = Answer::success(&output, encryption);
        let json: serde_json::Value =
            serde_json::from_slice(&answer.to_bytes()).expect("answers are JSON");
        assert_eq!(json["resultCode"], "000000");
        assert_eq!(json["instanceId"], "i-1");
        assert_eq!(json["encryptType"], "2");
        assert_eq!(json["appInfo"]["frontEndUrl"], "https://a");
        assert!(json["appInfo"].get("adminUrl").is_none());
        let password = json["appInfo"]["password"].as_str().expect("password");
        assert!(!password.contains("s3cret"));
        assert_eq!(
            credentials::decrypt("k", EncryptType::Aes128, password).as_deref(),
            Ok("s3cret")
        );
    }

    #[test]
    fn plain_answers_carry_only_code_and_message() {
        let bytes = Answer::new(ResultCode::AuthFailed, "authentication failed").to_bytes();
        assert_eq!(
            bytes,
            br#"{"resultCode":"000001","resultMsg":"authentication failed"}"#
        );
    }

    #[test]
    fn a_stored_answer_reads_back_identical() {
        let created = OperationOutput::Created(Created {
            instance_id: "i-1".into(),
            app_info: Some(AppInfo {
                front_end_url: Some("https://x".into()),
                admin_url: None,
                user_name: Some("u".into()),
                password: Some("p".into()),
                memo: None,
            }),
        });
        let encryption = Encryption {
            access_key: "k",
            encrypt_type: EncryptType::Aes128,
        };
        let answer = Answer::success(&created, encryption);
        let stored = serde_json::to_string(&answer).expect("serialises");
        let read: Answer = serde_json::from_str(&stored).expect("reads back");
        assert_eq!(read, answer);
        let unknown = stored.replace("000000", "999999");
        assert!(serde_json::from_str::<Answer>(&unknown).is_err());
    }
}
