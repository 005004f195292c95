//! The JSON answers the marketplace reads (research §2.2, §3.2): always
//! `resultCode` and `resultMsg`; `instanceId`, `encryptType` and `appInfo`
//! for newInstance; `info[]` for queryInstance; `license` for licenses.
//! Credentials are encrypted here, so plaintext never leaves this module.

use serde::{Deserialize, Serialize};

use super::credentials::{self, EncryptType};
use super::time;
use crate::contract::{AppInfo, InstanceReport, OperationOutput};
use crate::result_code::{CodedResult, ResultCode};

/// An answer body, serialised with the marketplace's field names.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Answer {
    pub result_code: &'static str,
    pub result_msg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypt_type: Option<&'static str>,
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
            result_code: result.code.code(),
            result_msg: result.message.clone(),
            instance_id: None,
            encrypt_type: None,
            app_info: None,
            info: None,
            license: None,
        }
    }

    /// An answer with a code and a message, and nothing else yet.
    pub fn new(code: ResultCode, message: impl Into<String>) -> Answer {
        Answer::coded(&CodedResult {
            code,
            message: message.into(),
        })
    }

    /// The success answer for a plugin's output. `instance_id` is the one
    /// the gateway assigned (newInstance only).
    pub fn success(
        output: &OperationOutput,
        instance_id: Option<&str>,
        encryption: Encryption<'_>,
    ) -> Answer {
        let mut answer = Answer::new(ResultCode::Success, ResultCode::Success.default_message());
        let mut encrypted = false;
        match output {
            OperationOutput::Created(created) => {
                answer.instance_id = instance_id.map(str::to_string);
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
            answer.encrypt_type = Some(encryption.encrypt_type.wire_value());
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

/// An answer as read back from the store: the same fields, owned. The code
/// and encryptType must be ones the gateway knows, so that they become
/// `&'static str` again.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredAnswer {
    result_code: String,
    result_msg: String,
    #[serde(default)]
    instance_id: Option<String>,
    #[serde(default)]
    encrypt_type: Option<String>,
    #[serde(default)]
    app_info: Option<WireAppInfo>,
    #[serde(default)]
    info: Option<Vec<WireInstance>>,
    #[serde(default)]
    license: Option<String>,
}

impl<'de> Deserialize<'de> for Answer {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Answer, D::Error> {
        let stored = StoredAnswer::deserialize(deserializer)?;
        Answer::try_from(stored).map_err(serde::de::Error::custom)
    }
}

impl TryFrom<StoredAnswer> for Answer {
    type Error = String;

    fn try_from(stored: StoredAnswer) -> Result<Answer, String> {
        let result_code = ResultCode::from_code(&stored.result_code)
            .map(ResultCode::code)
            .ok_or_else(|| format!("unknown result code `{}`", stored.result_code))?;
        let encrypt_type = match stored.encrypt_type {
            None => None,
            Some(value) => Some(
                [EncryptType::Aes256, EncryptType::Aes128]
                    .into_iter()
                    .map(EncryptType::wire_value)
                    .find(|wire| *wire == value)
                    .ok_or_else(|| format!("unknown encryptType `{value}`"))?,
            ),
        };
        Ok(Answer {
            result_code,
            result_msg: stored.result_msg,
            instance_id: stored.instance_id,
            encrypt_type,
            app_info: stored.app_info,
            info: stored.info,
            license: stored.license,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::Created;

    #[test]
    fn a_created_answer_encrypts_credentials_and_names_the_algorithm() {
        let output = OperationOutput::Created(Created {
            instance_id: "ignored".into(),
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
        let answer = Answer::success(&output, Some("i-1"), encryption);
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
        let answer = Answer::success(&created, Some("i-1"), encryption);
        let stored = serde_json::to_string(&answer).expect("serialises");
        let read: Answer = serde_json::from_str(&stored).expect("reads back");
        assert_eq!(read, answer);
        let unknown = stored.replace("000000", "999999");
        assert!(serde_json::from_str::<Answer>(&unknown).is_err());
    }
}
