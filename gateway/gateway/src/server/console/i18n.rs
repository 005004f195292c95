//! The console's two languages: Chinese (most of the marketplace's
//! merchants) and English. Picked from the browser's `Accept-Language`
//! until the user switches (a cookie keeps the choice).

use axum::extract::FromRequestParts;
use axum::http::header::ACCEPT_LANGUAGE;
use axum::http::request::Parts;

use super::Console;
use super::session::{LANG_COOKIE, cookie};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    Zh,
    En,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::Zh => "zh",
            Lang::En => "en",
        }
    }

    pub fn parse(code: &str) -> Option<Lang> {
        match code {
            "zh" => Some(Lang::Zh),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The other language (the switch offers it).
    pub fn other(self) -> Lang {
        match self {
            Lang::Zh => Lang::En,
            Lang::En => Lang::Zh,
        }
    }

    /// The language's own name.
    pub fn name(self) -> &'static str {
        match self {
            Lang::Zh => "中文",
            Lang::En => "English",
        }
    }

    /// The first of Chinese or English the browser asks for (English when
    /// it asks for neither).
    fn from_accept_language(header: &str) -> Lang {
        for range in header.split(',') {
            let tag = range
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            if tag.starts_with("zh") {
                return Lang::Zh;
            }
            if tag.starts_with("en") {
                return Lang::En;
            }
        }
        Lang::En
    }

    /// The text for `key` in this language (the key itself if missing).
    pub fn t(self, key: &'static str) -> &'static str {
        TEXTS
            .iter()
            .find(|(k, _, _)| *k == key)
            .map_or(key, |(_, en, zh)| match self {
                Lang::En => en,
                Lang::Zh => zh,
            })
    }
}

impl FromRequestParts<Console> for Lang {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &Console) -> Result<Self, Self::Rejection> {
        if let Some(lang) = cookie(&parts.headers, LANG_COOKIE).and_then(Lang::parse) {
            return Ok(lang);
        }
        let header = parts
            .headers
            .get(ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        Ok(Lang::from_accept_language(header))
    }
}

/// (key, English, Chinese).
const TEXTS: &[(&str, &str, &str)] = &[
    ("console", "Merchant console", "商家控制台"),
    ("skip", "Skip to content", "跳到正文"),
    ("sign_in", "Sign in", "登录"),
    ("sign_out", "Sign out", "退出登录"),
    ("token", "Token", "令牌"),
    (
        "token_hint",
        "Your merchant token, or the operator token.",
        "您的商家令牌，或运营者令牌。",
    ),
    ("bad_token", "This token is not valid.", "该令牌无效。"),
    ("overview", "Overview", "概览"),
    ("versions", "Versions", "版本"),
    ("callbacks", "Callbacks", "回调"),
    ("settings", "Settings", "设置"),
    ("merchants", "Merchants", "商家"),
    ("merchant", "Merchant", "商家"),
    ("language", "Language", "语言"),
    ("active_version", "Active version", "当前版本"),
    ("previous_version", "Rollback returns to", "回滚目标版本"),
    ("none", "none", "无"),
    ("serving", "Serving", "服务状态"),
    ("serving_ok", "serving", "正常服务"),
    ("unavailable", "unavailable", "不可用"),
    ("last_hour", "Last hour", "最近一小时"),
    ("last_day", "Last 24 hours", "最近24小时"),
    ("result_code", "Result code", "结果码"),
    ("count", "Count", "数量"),
    (
        "error_rate",
        "Error rate, last hour",
        "错误率（最近一小时）",
    ),
    (
        "oldest_failure",
        "Oldest unresolved failure",
        "最早未解决的失败",
    ),
    (
        "time_left",
        "Left before the marketplace stops retrying (3 h)",
        "距离云商店停止重试（3小时）还剩",
    ),
    (
        "window_closed",
        "its retry window has closed",
        "重试窗口已关闭",
    ),
    ("no_failures", "none — all clear", "无 — 一切正常"),
    ("parked", "Parked operations", "已搁置的操作"),
    (
        "results_chart",
        "Results per hour, last 24 hours",
        "最近24小时每小时结果",
    ),
    ("successes", "000000", "000000（成功）"),
    ("failures", "other codes", "其他结果码"),
    ("upload", "Upload a version", "上传新版本"),
    (
        "module_file",
        "Plugin component (.wasm)",
        "插件组件（.wasm）",
    ),
    ("drop_here", "or drop the file here", "或将文件拖放到此处"),
    ("activate_now", "Activate it at once", "上传后立即激活"),
    ("upload_button", "Upload and validate", "上传并校验"),
    ("uploaded_ok", "Uploaded and validated", "已上传并通过校验"),
    ("refused", "Refused", "被拒绝"),
    ("version", "Version", "版本"),
    ("size", "Size", "大小"),
    ("contract", "Contract", "契约"),
    ("uploaded", "Uploaded", "上传时间"),
    ("by", "By", "上传者"),
    ("state", "State", "状态"),
    ("active", "active", "已激活"),
    ("activate", "Activate", "激活"),
    ("rollback", "Roll back", "回滚"),
    ("shadow", "Shadow check", "影子测试"),
    ("confirm", "Confirm", "确认"),
    ("cancel", "Cancel", "取消"),
    (
        "confirm_activate",
        "Activate this version? Callbacks in flight finish on the current one.",
        "激活此版本？正在处理的回调将在当前版本上完成。",
    ),
    (
        "confirm_rollback",
        "Roll back to the previous version?",
        "回滚到上一个版本？",
    ),
    ("activated", "Activated", "已激活"),
    ("shadow_result", "Shadow check", "影子测试结果"),
    ("compared", "Compared", "比较数"),
    ("changed", "Changed", "有变化"),
    ("regressions", "Regressions", "退化"),
    ("active_answer", "Active version answers", "当前版本结果"),
    ("candidate_answer", "Candidate answers", "候选版本结果"),
    ("filter", "Filter", "筛选"),
    ("order_id", "Order ID", "订单号"),
    ("instance_id", "Instance ID", "实例ID"),
    ("activity", "Activity", "活动"),
    ("since_hours", "Within the last hours", "最近小时数"),
    ("any", "any", "全部"),
    ("time", "Time", "时间"),
    ("latency", "Latency", "耗时"),
    ("path", "How answered", "处理方式"),
    ("older", "Older", "更早"),
    ("no_records", "No callbacks match.", "没有匹配的回调。"),
    ("record", "Callback", "回调记录"),
    ("reason", "Reason", "原因"),
    ("attempt", "Attempt", "尝试次数"),
    ("plugin_logs", "Plugin logs", "插件日志"),
    (
        "request",
        "Request (the buyer masked)",
        "请求（买家信息已脱敏）",
    ),
    ("redrive", "Re-drive", "重新执行"),
    (
        "confirm_redrive",
        "Run this operation again on the active version, with the same idempotency key and instance id?",
        "使用相同的幂等键和实例ID，在当前版本上重新执行该操作？",
    ),
    (
        "force",
        "Force: it already has a final answer (audited)",
        "强制：该操作已有最终结果（将记入审计）",
    ),
    ("redrive_result", "Re-drive result", "重新执行结果"),
    ("status", "Status", "状态"),
    ("keys", "Access keys", "访问密钥"),
    ("key_id", "Key handle", "密钥标识"),
    ("new_key", "New access key", "新访问密钥"),
    ("add_key", "Add the key", "添加密钥"),
    ("retire", "Retire", "停用"),
    (
        "confirm_retire",
        "Retire this key? Requests signed with it are refused from now on.",
        "停用此密钥？此后用它签名的请求将被拒绝。",
    ),
    ("tokens", "Admin tokens", "管理令牌"),
    (
        "create_token",
        "Create a token for this merchant",
        "为该商家创建令牌",
    ),
    (
        "token_once",
        "Copy it now: it is shown once.",
        "请立即复制：它只显示一次。",
    ),
    (
        "tokens_by_operator",
        "Tokens are issued by the operator.",
        "令牌由运营者签发。",
    ),
    ("revoked", "revoked", "已撤销"),
    ("revoke", "Revoke", "撤销"),
    (
        "confirm_revoke",
        "Revoke this token? It stops working at once, in the console too.",
        "撤销此令牌？它将立即失效（包括控制台）。",
    ),
    ("created", "Created", "创建时间"),
    (
        "grants",
        "Outbound HTTP (granted by the operator)",
        "出站HTTP（由运营者授权）",
    ),
    ("no_grants", "No outbound HTTP.", "不允许出站HTTP。"),
    (
        "private_networks",
        "Private networks allowed",
        "允许访问私有网络",
    ),
    ("error", "Something went wrong", "出错了"),
    ("back", "Back", "返回"),
    ("working", "Working…", "处理中…"),
    (
        "expired_csrf",
        "This form has expired; please try again.",
        "表单已过期，请重试。",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_browser_language_picks_chinese_or_english() {
        assert_eq!(
            Lang::from_accept_language("zh-CN,zh;q=0.9,en;q=0.8"),
            Lang::Zh
        );
        assert_eq!(Lang::from_accept_language("en-US,en;q=0.9"), Lang::En);
        assert_eq!(Lang::from_accept_language("fr-FR,zh-TW;q=0.5"), Lang::Zh);
        assert_eq!(Lang::from_accept_language(""), Lang::En);
    }

    #[test]
    fn every_text_has_both_languages_and_one_key() {
        let mut keys = std::collections::HashSet::new();
        for (key, en, zh) in TEXTS {
            assert!(keys.insert(key), "{key} twice");
            assert!(!en.is_empty() && !zh.is_empty(), "{key}");
        }
    }
}
