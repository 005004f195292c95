//! The console's pages and actions. Each reads and writes through the
//! admin API ([`super::api`]) with the session's token; a refusal is shown
//! as the API put it, with its status.

use std::collections::BTreeMap;

use axum::Form;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::header::{LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Console;
use super::api::{Refused, segment};
use super::i18n::Lang;
use super::layout::{self, Ctx, Section, csrf_field, page, page_with_status};
use super::session::{self, Session, Visit};
use crate::registry::now_ms;
use koogallery_protocol::callback::{Activity, Generation};

/// The marketplace stops retrying a failed callback after three hours.
const RETRY_WINDOW_SECS: f64 = 3.0 * 3600.0;
const HOUR_MS: i64 = 3600 * 1000;
/// Callbacks a list page shows.
const PAGE: u32 = 50;
/// Callbacks the overview counts (the last day's, newest first).
const OVERVIEW_RECORDS: u32 = 1000;

/// Every wire activity of both generations, for the callbacks filter.
fn activities() -> Vec<&'static str> {
    let mut names = Vec::new();
    for generation in [Generation::V2, Generation::V1] {
        for activity in Activity::of(generation) {
            if !names.contains(&activity.wire_name()) {
                names.push(activity.wire_name());
            }
        }
    }
    names
}

/// The form field every change carries.
#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// Refuses a change whose form does not carry the session's CSRF token.
fn forged(ctx: &Ctx<'_>, section: Section, session: &Session, given: &str) -> Option<Response> {
    if session.csrf_matches(given) {
        return None;
    }
    let refusal = Refused {
        status: StatusCode::FORBIDDEN,
        code: "csrf".into(),
        message: ctx.t("expired_csrf").into(),
    };
    Some(layout::refused(ctx, section, &refusal))
}

fn notice(kind: &str, text: Markup) -> Markup {
    html! { div class=(format!("notice {kind}")) role=(if kind == "error" { "alert" } else { "status" }) { (text) } }
}

fn refusal_notice(refused: &Refused) -> Markup {
    notice(
        "error",
        html! { strong { (refused.code) } ": " (refused.message) },
    )
}

// ---------------------------------------------------------------- sign-in

pub async fn home(State(console): State<Console>, headers: HeaderMap) -> Redirect {
    match session::read(&console, &headers) {
        None => Redirect::to("/console/login"),
        Some(session) => match &session.merchant {
            None => Redirect::to("/console/merchants"),
            Some(merchant) => Redirect::to(&format!("/console/m/{}", segment(merchant))),
        },
    }
}

pub async fn login_form(lang: Lang, uri: Uri) -> Response {
    login_page(lang, &uri, None, StatusCode::OK)
}

fn login_page(lang: Lang, uri: &Uri, error: Option<&str>, status: StatusCode) -> Response {
    let ctx = Ctx {
        lang,
        session: None,
        merchant: None,
        here: uri.path(),
    };
    let body = html! {
        @if let Some(error) = error { (notice("error", html! { (error) })) }
        form.card method="post" action="/console/login" {
            label for="token" { (ctx.t("token")) }
            input id="token" name="token" type="password" autocomplete="current-password"
                required autofocus aria-describedby="token-hint";
            p.hint id="token-hint" { (ctx.t("token_hint")) }
            button.primary type="submit" { (ctx.t("sign_in")) }
        }
    };
    page_with_status(&ctx, Section::SignIn, ctx.t("sign_in"), body, status)
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    token: String,
}

pub async fn login(
    State(console): State<Console>,
    lang: Lang,
    uri: Uri,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let token = form.token.trim().to_string();
    let principal = match crate::server::admin_api::principal(&console.app, &token).await {
        Ok(principal) if !token.is_empty() => principal,
        _ => {
            let error = lang.t("bad_token");
            return login_page(lang, &uri, Some(error), StatusCode::UNAUTHORIZED);
        }
    };
    let session = Session::new(token, &principal);
    let mut response = Redirect::to("/console").into_response();
    response.headers_mut().append(
        SET_COOKIE,
        session.cookie(&console, session::behind_tls(&headers)),
    );
    response
}

pub async fn logout(session: Session, headers: HeaderMap, Form(form): Form<CsrfForm>) -> Response {
    if !session.csrf_matches(&form.csrf) {
        return (StatusCode::FORBIDDEN, "the form has expired").into_response();
    }
    let mut response = Redirect::to("/console/login").into_response();
    response.headers_mut().append(
        SET_COOKIE,
        session::cleared_cookie(session::behind_tls(&headers)),
    );
    response
}

#[derive(Deserialize)]
pub struct LangSwitch {
    to: String,
    #[serde(default)]
    back: String,
}

/// Keeps a language choice and returns to the page it was made on (a
/// console page only: never an open redirect).
pub async fn switch_language(headers: HeaderMap, Query(switch): Query<LangSwitch>) -> Response {
    let lang = Lang::parse(&switch.to).unwrap_or(Lang::En);
    let back = if switch.back.starts_with("/console") && !switch.back.contains("//") {
        switch.back
    } else {
        "/console".to_string()
    };
    let mut response = (StatusCode::SEE_OTHER, [(LOCATION, back)]).into_response();
    response.headers_mut().append(
        SET_COOKIE,
        session::lang_cookie(lang, session::behind_tls(&headers)),
    );
    response
}

// -------------------------------------------------------------- merchants

pub async fn merchants(State(console): State<Console>, visit: Visit) -> Response {
    let ctx = visit.ctx(None);
    let list = match console.api.get(&visit.session.token, "/merchants").await {
        Ok(list) => list,
        Err(refused) => return layout::refused(&ctx, Section::Merchants, &refused),
    };
    let rows = list.as_array().cloned().unwrap_or_default();
    page(
        &ctx,
        Section::Merchants,
        ctx.t("merchants"),
        html! {
            table {
                thead { tr {
                    th scope="col" { (ctx.t("merchant")) }
                    th scope="col" { (ctx.t("active_version")) }
                    th scope="col" { (ctx.t("serving")) }
                } }
                tbody {
                    @for row in &rows {
                        @let id = row["id"].as_str().unwrap_or_default();
                        tr {
                            td { a href=(format!("/console/m/{}", segment(id))) { (id) } }
                            td { (version_text(&ctx, &row["active_version"])) }
                            td { (serving(&ctx, row)) }
                        }
                    }
                }
            }
        },
    )
}

fn version_text(ctx: &Ctx<'_>, version: &Value) -> String {
    version
        .as_i64()
        .map_or_else(|| ctx.t("none").to_string(), |v| format!("v{v}"))
}

fn serving(ctx: &Ctx<'_>, merchant: &Value) -> Markup {
    match merchant["unavailable"].as_str() {
        None => html! { span.ok { (ctx.t("serving_ok")) } },
        Some(why) => html! { span.bad { (ctx.t("unavailable")) } " — " (why) },
    }
}

// --------------------------------------------------------------- overview

pub async fn overview(
    State(console): State<Console>,
    visit: Visit,
    Path(id): Path<String>,
) -> Response {
    let ctx = visit.ctx(Some(&id));
    let base = format!("/merchants/{}", segment(&id));
    let since = now_ms() - 24 * HOUR_MS;
    let token = &visit.session.token;
    let (report_path, recent_path) = (
        format!("{base}/report"),
        format!("{base}/callbacks?since_ms={since}&limit={OVERVIEW_RECORDS}"),
    );
    let (merchant, report, recent) = tokio::join!(
        console.api.get(token, &base),
        console.api.get(token, &report_path),
        console.api.get(token, &recent_path),
    );
    let (merchant, report, recent) = match (merchant, report, recent) {
        (Ok(m), Ok(r), Ok(c)) => (m, r, c),
        (Err(refused), ..) | (_, Err(refused), _) | (.., Err(refused)) => {
            return layout::refused(&ctx, Section::Overview, &refused);
        }
    };
    let records = recent["records"].as_array().cloned().unwrap_or_default();
    let now = now_ms();
    let mut by_code: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut hours = vec![(0u64, 0u64); 24];
    for record in &records {
        let at = record["at_ms"].as_i64().unwrap_or(0);
        let code = record["result_code"].as_str().unwrap_or("?").to_string();
        let counts = by_code.entry(code.clone()).or_default();
        counts.1 += 1;
        if at >= now - HOUR_MS {
            counts.0 += 1;
        }
        let age_hours = ((now - at).max(0) / HOUR_MS) as usize;
        if let Some(hour) = hours.get_mut(23usize.saturating_sub(age_hours)) {
            if code == "000000" {
                hour.0 += 1;
            } else {
                hour.1 += 1;
            }
        }
    }
    let oldest = report["oldest_unresolved_failure_age_secs"].as_f64();
    let body = html! {
        dl.summary {
            div { dt { (ctx.t("active_version")) } dd { (version_text(&ctx, &merchant["active_version"])) } }
            div { dt { (ctx.t("serving")) } dd { (serving(&ctx, &merchant)) } }
            div { dt { (ctx.t("error_rate")) } dd {
                (format!("{:.1} %", report["failure_rate"].as_f64().unwrap_or(0.0) * 100.0))
                " (" (report["last_hour_failed"].as_u64().unwrap_or(0)) " / " (report["last_hour"].as_u64().unwrap_or(0)) ")"
            } }
            div { dt { (ctx.t("oldest_failure")) } dd {
                @match oldest {
                    None => span.ok { (ctx.t("no_failures")) },
                    Some(age) => {
                        span.bad { (layout::duration(age)) }
                        br;
                        (ctx.t("time_left")) ": "
                        @if age < RETRY_WINDOW_SECS {
                            strong { (layout::duration(RETRY_WINDOW_SECS - age)) }
                        } @else {
                            strong.bad { (ctx.t("window_closed")) }
                        }
                    }
                }
            } }
            div { dt { (ctx.t("parked")) } dd { (report["parked"].as_u64().unwrap_or(0)) } }
        }
        (layout::results_chart(&ctx, &hours))
        table {
            caption { (ctx.t("result_code")) }
            thead { tr {
                th scope="col" { (ctx.t("result_code")) }
                th scope="col" { (ctx.t("last_hour")) }
                th scope="col" { (ctx.t("last_day")) }
            } }
            tbody {
                @for (code, (hour, day)) in &by_code {
                    tr {
                        td { a href=(format!("{}?result_code={code}", ctx.link(Section::Callbacks))) { (code) } }
                        td.num { (hour) }
                        td.num { (day) }
                    }
                }
            }
        }
    };
    page(&ctx, Section::Overview, ctx.t("overview"), body)
}

// --------------------------------------------------------------- versions

pub async fn versions(
    State(console): State<Console>,
    visit: Visit,
    Path(id): Path<String>,
) -> Response {
    let ctx = visit.ctx(Some(&id));
    versions_page(&console, &ctx, &visit.session, &id, None, StatusCode::OK).await
}

async fn versions_page(
    console: &Console,
    ctx: &Ctx<'_>,
    session: &Session,
    id: &str,
    result: Option<Markup>,
    status: StatusCode,
) -> Response {
    let path = format!("/merchants/{}/plugins", segment(id));
    let plugins = match console.api.get(&session.token, &path).await {
        Ok(plugins) => plugins,
        Err(refused) => return layout::refused(ctx, Section::Versions, &refused),
    };
    let versions = plugins["versions"].as_array().cloned().unwrap_or_default();
    let link = ctx.link(Section::Versions);
    let body = html! {
        @if let Some(result) = result { (result) }
        form.card.upload method="post" action=(link) enctype="multipart/form-data" data-upload {
            h2 { (ctx.t("upload")) }
            label for="module" { (ctx.t("module_file")) }
            div.drop data-drop {
                input id="module" name="module" type="file" accept=".wasm,application/wasm" required;
                span.hint { (ctx.t("drop_here")) }
            }
            label.check { input type="checkbox" name="activate" value="on"; " " (ctx.t("activate_now")) }
            (csrf_field(session))
            button.primary type="submit" data-busy { (ctx.t("upload_button")) }
            progress hidden max="100" value="0" {}
        }
        table {
            caption { (ctx.t("versions")) }
            thead { tr {
                th scope="col" { (ctx.t("version")) }
                th scope="col" { "SHA-256" }
                th scope="col" { (ctx.t("size")) }
                th scope="col" { (ctx.t("contract")) }
                th scope="col" { (ctx.t("uploaded")) }
                th scope="col" { (ctx.t("by")) }
                th scope="col" { (ctx.t("state")) }
            } }
            tbody {
                @for version in versions.iter().rev() {
                    @let number = version["version"].as_i64().unwrap_or(0);
                    tr {
                        td { "v" (number) }
                        td { code title=(version["sha256"].as_str().unwrap_or_default()) { (version["sha256"].as_str().unwrap_or_default().get(..12).unwrap_or_default()) "…" } }
                        td.num { (version["size"].as_i64().unwrap_or(0) / 1024) " KiB" }
                        td { (version["contract_version"].as_str().unwrap_or_default()) }
                        td { (layout::time(version["uploaded_at"].as_i64().unwrap_or(0))) }
                        td { (version["uploaded_by"].as_str().unwrap_or_default()) }
                        td.actions {
                            @if version["active"].as_bool() == Some(true) {
                                strong.ok { (ctx.t("active")) }
                            } @else {
                                a.button href=(format!("{link}/{number}/activate")) { (ctx.t("activate")) }
                                form method="post" action=(format!("{link}/{number}/shadow")) {
                                    (csrf_field(session))
                                    button type="submit" data-busy { (ctx.t("shadow")) }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if plugins["previous_version"].as_i64().is_some() {
            p { a.button href=(format!("/console/m/{}/rollback", segment(id))) {
                (ctx.t("rollback")) " → v" (plugins["previous_version"].as_i64().unwrap_or(0))
            } }
        }
    };
    page_with_status(ctx, Section::Versions, ctx.t("versions"), body, status)
}

pub async fn upload(
    State(console): State<Console>,
    visit: Visit,
    Path(id): Path<String>,
    mut multipart: Multipart,
) -> Response {
    let ctx = visit.ctx(Some(&id));
    let (mut csrf, mut module, mut activate) = (String::new(), Vec::new(), false);
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(error) => {
                let refused = Refused {
                    status: StatusCode::BAD_REQUEST,
                    code: "invalid_request".into(),
                    message: error.body_text(),
                };
                return versions_page(
                    &console,
                    &ctx,
                    &visit.session,
                    &id,
                    Some(refusal_notice(&refused)),
                    refused.status,
                )
                .await;
            }
        };
        let name = field.name().unwrap_or_default().to_string();
        let Ok(bytes) = field.bytes().await else {
            break;
        };
        match name.as_str() {
            "csrf" => csrf = String::from_utf8_lossy(&bytes).into_owned(),
            "module" => module = bytes.to_vec(),
            "activate" => activate = true,
            _ => {}
        }
    }
    if let Some(refused) = forged(&ctx, Section::Versions, &visit.session, &csrf) {
        return refused;
    }
    let path = format!("/merchants/{}/plugins?activate={activate}", segment(&id));
    match console
        .api
        .post_wasm(&visit.session.token, &path, module)
        .await
    {
        Ok(version) => {
            let text = html! {
                (ctx.t("uploaded_ok")) ": v" (version["version"].as_i64().unwrap_or(0))
                @if version["active"].as_bool() == Some(true) { " — " (ctx.t("active")) }
            };
            versions_page(
                &console,
                &ctx,
                &visit.session,
                &id,
                Some(notice("ok", text)),
                StatusCode::OK,
            )
            .await
        }
        Err(refused) => {
            let text =
                html! { strong { (ctx.t("refused")) } " — " (refused.code) ": " (refused.message) };
            versions_page(
                &console,
                &ctx,
                &visit.session,
                &id,
                Some(notice("error", text)),
                refused.status,
            )
            .await
        }
    }
}

pub async fn confirm_activate(visit: Visit, Path((id, version)): Path<(String, i64)>) -> Response {
    let ctx = visit.ctx(Some(&id));
    let question = format!("v{version}: {}", ctx.t("confirm_activate"));
    layout::confirm(
        &ctx,
        Section::Versions,
        &question,
        ctx.here,
        &ctx.link(Section::Versions),
        html! {},
    )
}

pub async fn activate(
    State(console): State<Console>,
    visit: Visit,
    Path((id, version)): Path<(String, i64)>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let ctx = visit.ctx(Some(&id));
    if let Some(refused) = forged(&ctx, Section::Versions, &visit.session, &form.csrf) {
        return refused;
    }
    let path = format!("/merchants/{}/plugins/{version}/activate", segment(&id));
    let done = console
        .api
        .post_json(&visit.session.token, &path, &json!({}))
        .await;
    after_activation(&console, &ctx, &visit.session, &id, done).await
}

async fn after_activation(
    console: &Console,
    ctx: &Ctx<'_>,
    session: &Session,
    id: &str,
    done: Result<Value, Refused>,
) -> Response {
    match done {
        Ok(activation) => {
            let text = html! { (ctx.t("activated")) ": v" (activation["active_version"].as_i64().unwrap_or(0)) };
            versions_page(
                console,
                ctx,
                session,
                id,
                Some(notice("ok", text)),
                StatusCode::OK,
            )
            .await
        }
        Err(refused) => {
            let status = refused.status;
            versions_page(
                console,
                ctx,
                session,
                id,
                Some(refusal_notice(&refused)),
                status,
            )
            .await
        }
    }
}

pub async fn confirm_rollback(visit: Visit, Path(id): Path<String>) -> Response {
    let ctx = visit.ctx(Some(&id));
    let question = ctx.t("confirm_rollback");
    layout::confirm(
        &ctx,
        Section::Versions,
        question,
        ctx.here,
        &ctx.link(Section::Versions),
        html! {},
    )
}

pub async fn rollback(
    State(console): State<Console>,
    visit: Visit,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let ctx = visit.ctx(Some(&id));
    if let Some(refused) = forged(&ctx, Section::Versions, &visit.session, &form.csrf) {
        return refused;
    }
    let path = format!("/merchants/{}/rollback", segment(&id));
    let done = console
        .api
        .post_json(&visit.session.token, &path, &json!({}))
        .await;
    after_activation(&console, &ctx, &visit.session, &id, done).await
}

pub async fn shadow(
    State(console): State<Console>,
    visit: Visit,
    Path((id, version)): Path<(String, i64)>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let ctx = visit.ctx(Some(&id));
    if let Some(refused) = forged(&ctx, Section::Versions, &visit.session, &form.csrf) {
        return refused;
    }
    let path = format!("/merchants/{}/plugins/{version}/shadow", segment(&id));
    let report = match console
        .api
        .post_json(&visit.session.token, &path, &json!({}))
        .await
    {
        Ok(report) => report,
        Err(refused) => return layout::refused(&ctx, Section::Versions, &refused),
    };
    let rows = report["rows"].as_array().cloned().unwrap_or_default();
    let changed: Vec<&Value> = rows
        .iter()
        .filter(|row| row["changed"].as_bool() == Some(true))
        .collect();
    let regressions = report["regressions"].as_u64().unwrap_or(0);
    let body = html! {
        dl.summary {
            div { dt { (ctx.t("version")) } dd { "v" (version) } }
            div { dt { (ctx.t("compared")) } dd { (report["compared"].as_u64().unwrap_or(0)) } }
            div { dt { (ctx.t("changed")) } dd { (report["changed"].as_u64().unwrap_or(0)) } }
            div { dt { (ctx.t("regressions")) } dd class=(if regressions > 0 { "bad" } else { "ok" }) { (regressions) } }
        }
        table {
            caption { (ctx.t("changed")) }
            thead { tr {
                th scope="col" { "#" }
                th scope="col" { (ctx.t("activity")) }
                th scope="col" { (ctx.t("order_id")) }
                th scope="col" { (ctx.t("active_answer")) }
                th scope="col" { (ctx.t("candidate_answer")) }
            } }
            tbody {
                @for row in changed {
                    tr class=(if row["regression"].as_bool() == Some(true) { "regression" } else { "" }) {
                        td { a href=(format!("{}/{}", ctx.link(Section::Callbacks), row["seq"])) { (row["seq"]) } }
                        td { (row["activity"].as_str().unwrap_or_default()) }
                        td { (row["order_id"].as_str().unwrap_or_default()) }
                        td { (row["active_code"].as_str().unwrap_or_default()) " " (row["active_msg"].as_str().unwrap_or_default()) }
                        td { (row["candidate_code"].as_str().unwrap_or_default()) " " (row["candidate_msg"].as_str().unwrap_or_default()) }
                    }
                }
            }
        }
        p { a href=(ctx.link(Section::Versions)) { (ctx.t("back")) } }
    };
    page(&ctx, Section::Versions, ctx.t("shadow_result"), body)
}

// -------------------------------------------------------------- callbacks

#[derive(Deserialize, Default)]
pub struct CallbackFilter {
    result_code: Option<String>,
    activity: Option<String>,
    order_id: Option<String>,
    instance_id: Option<String>,
    /// Text, as the form sends it (empty when not filled in).
    since_hours: Option<String>,
    before: Option<i64>,
}

impl CallbackFilter {
    /// The filters given, as query pairs (empty fields left out).
    fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = Vec::new();
        for (key, value) in [
            ("result_code", &self.result_code),
            ("activity", &self.activity),
            ("order_id", &self.order_id),
            ("instance_id", &self.instance_id),
        ] {
            if let Some(value) = value.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
                pairs.push((key, value.to_string()));
            }
        }
        pairs
    }
}

fn query_string(pairs: &[(&str, String)]) -> String {
    pairs
        .iter()
        .map(|(key, value)| format!("{key}={}", segment(value)))
        .collect::<Vec<_>>()
        .join("&")
}

pub async fn callbacks(
    State(console): State<Console>,
    visit: Visit,
    Path(id): Path<String>,
    Query(filter): Query<CallbackFilter>,
) -> Response {
    let ctx = visit.ctx(Some(&id));
    let mut pairs = filter.pairs();
    let mut api_pairs = pairs.clone();
    let since_hours = filter
        .since_hours
        .as_deref()
        .and_then(|h| h.trim().parse::<u32>().ok())
        .filter(|h| *h > 0);
    if let Some(hours) = since_hours {
        api_pairs.push((
            "since_ms",
            (now_ms() - i64::from(hours) * HOUR_MS).to_string(),
        ));
        pairs.push(("since_hours", hours.to_string()));
    }
    if let Some(before) = filter.before {
        api_pairs.push(("before", before.to_string()));
    }
    api_pairs.push(("limit", PAGE.to_string()));
    let path = format!(
        "/merchants/{}/callbacks?{}",
        segment(&id),
        query_string(&api_pairs)
    );
    let found = match console.api.get(&visit.session.token, &path).await {
        Ok(found) => found,
        Err(refused) => return layout::refused(&ctx, Section::Callbacks, &refused),
    };
    let records = found["records"].as_array().cloned().unwrap_or_default();
    let link = ctx.link(Section::Callbacks);
    let value = |v: &Option<String>| v.clone().unwrap_or_default();
    let body = html! {
        form.filters method="get" action=(link) role="search" {
            div { label for="f-code" { (ctx.t("result_code")) }
                  input id="f-code" name="result_code" inputmode="numeric" pattern="[0-9]{6}" value=(value(&filter.result_code)); }
            div { label for="f-activity" { (ctx.t("activity")) }
                  select id="f-activity" name="activity" {
                      option value="" { (ctx.t("any")) }
                      @for activity in activities() {
                          option value=(activity) selected[filter.activity.as_deref() == Some(activity)] { (activity) }
                      }
                  } }
            div { label for="f-order" { (ctx.t("order_id")) }
                  input id="f-order" name="order_id" value=(value(&filter.order_id)); }
            div { label for="f-instance" { (ctx.t("instance_id")) }
                  input id="f-instance" name="instance_id" value=(value(&filter.instance_id)); }
            div { label for="f-since" { (ctx.t("since_hours")) }
                  input id="f-since" name="since_hours" type="number" min="1" max="720"
                      value=(since_hours.map(|h| h.to_string()).unwrap_or_default()); }
            button.primary type="submit" { (ctx.t("filter")) }
        }
        @if records.is_empty() {
            p.empty { (ctx.t("no_records")) }
        } @else {
            table.callbacks {
                thead { tr {
                    th scope="col" { (ctx.t("time")) }
                    th scope="col" { (ctx.t("activity")) }
                    th scope="col" { (ctx.t("order_id")) }
                    th scope="col" { (ctx.t("instance_id")) }
                    th scope="col" { (ctx.t("result_code")) }
                    th scope="col" { (ctx.t("latency")) }
                    th scope="col" { (ctx.t("path")) }
                } }
                tbody {
                    @for record in &records {
                        @let code = record["result_code"].as_str().unwrap_or_default();
                        tr {
                            td { a href=(format!("{link}/{}", record["seq"])) { (layout::time(record["at_ms"].as_i64().unwrap_or(0))) } }
                            td { (record["activity"].as_str().unwrap_or_default()) }
                            td { (record["order_id"].as_str().unwrap_or_default()) }
                            td { (record["instance_id"].as_str().unwrap_or_default()) }
                            td class=(if code == "000000" { "ok" } else { "bad" }) { (code) }
                            td.num { (format!("{:.1} ms", record["latency_ms"].as_f64().unwrap_or(0.0))) }
                            td { (record["path"].as_str().unwrap_or_default()) }
                        }
                    }
                }
            }
            @if let Some(next) = found["next"].as_i64() {
                @let older = [pairs.as_slice(), &[("before", next.to_string())]].concat();
                p { a.button href=(format!("{link}?{}", query_string(&older))) { (ctx.t("older")) " →" } }
            }
        }
    };
    page(&ctx, Section::Callbacks, ctx.t("callbacks"), body)
}

async fn record(
    console: &Console,
    session: &Session,
    id: &str,
    seq: i64,
) -> Result<Value, Refused> {
    let path = format!("/merchants/{}/callbacks/{seq}", segment(id));
    console.api.get(&session.token, &path).await
}

pub async fn callback(
    State(console): State<Console>,
    visit: Visit,
    Path((id, seq)): Path<(String, i64)>,
) -> Response {
    let ctx = visit.ctx(Some(&id));
    let record = match record(&console, &visit.session, &id, seq).await {
        Ok(record) => record,
        Err(refused) => return layout::refused(&ctx, Section::Callbacks, &refused),
    };
    let text = |key: &str| record[key].as_str().map(str::to_string).unwrap_or_default();
    let pretty = |value: &Value| serde_json::to_string_pretty(value).unwrap_or_default();
    let code = text("result_code");
    let body = html! {
        dl.record {
            div { dt { (ctx.t("time")) } dd { (layout::time(record["at_ms"].as_i64().unwrap_or(0))) } }
            div { dt { (ctx.t("activity")) } dd { (text("activity")) " (" (text("generation")) ")" } }
            div { dt { (ctx.t("order_id")) } dd { (text("order_id")) } }
            div { dt { (ctx.t("instance_id")) } dd { (text("instance_id")) } }
            div { dt { (ctx.t("result_code")) } dd class=(if code == "000000" { "ok" } else { "bad" }) { (code) " " (text("result_msg")) } }
            div { dt { (ctx.t("path")) } dd { (text("path")) } }
            div { dt { (ctx.t("latency")) } dd { (format!("{:.1} ms", record["latency_ms"].as_f64().unwrap_or(0.0))) } }
            div { dt { (ctx.t("attempt")) } dd { (record["attempt"].as_i64().map(|a| a.to_string()).unwrap_or_default()) } }
            div { dt { (ctx.t("version")) } dd { (record["plugin_version"].as_i64().map(|v| format!("v{v}")).unwrap_or_default()) } }
            @if let Some(reason) = record["reason"].as_str() {
                div { dt { (ctx.t("reason")) } dd { (reason) } }
            }
        }
        @if record["idempotency_key"].is_string() {
            p { a.button.primary href=(format!("{}/redrive", ctx.here)) { (ctx.t("redrive")) } }
        }
        @if !record["plugin_logs"].is_null() {
            h2 { (ctx.t("plugin_logs")) }
            pre.logs { (pretty(&record["plugin_logs"])) }
        }
        @if !record["request"].is_null() {
            h2 { (ctx.t("request")) }
            pre { (pretty(&record["request"])) }
        }
        p { a href=(ctx.link(Section::Callbacks)) { (ctx.t("back")) } }
    };
    page(
        &ctx,
        Section::Callbacks,
        &format!("{} #{seq}", ctx.t("record")),
        body,
    )
}

pub async fn confirm_redrive(visit: Visit, Path((id, seq)): Path<(String, i64)>) -> Response {
    let ctx = visit.ctx(Some(&id));
    let back = format!("{}/{seq}", ctx.link(Section::Callbacks));
    let force = html! {
        label.check { input type="checkbox" name="force" value="on"; " " (ctx.t("force")) }
    };
    layout::confirm(
        &ctx,
        Section::Callbacks,
        ctx.t("confirm_redrive"),
        ctx.here,
        &back,
        force,
    )
}

#[derive(Deserialize)]
pub struct RedriveForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    force: Option<String>,
}

pub async fn redrive(
    State(console): State<Console>,
    visit: Visit,
    Path((id, seq)): Path<(String, i64)>,
    Form(form): Form<RedriveForm>,
) -> Response {
    let ctx = visit.ctx(Some(&id));
    if let Some(refused) = forged(&ctx, Section::Callbacks, &visit.session, &form.csrf) {
        return refused;
    }
    let record = match record(&console, &visit.session, &id, seq).await {
        Ok(record) => record,
        Err(refused) => return layout::refused(&ctx, Section::Callbacks, &refused),
    };
    let request = json!({
        "idempotency_key": record["idempotency_key"],
        "force": form.force.is_some(),
    });
    let path = format!("/merchants/{}/operations/redrive", segment(&id));
    let back = format!("{}/{seq}", ctx.link(Section::Callbacks));
    let result = match console
        .api
        .post_json(&visit.session.token, &path, &request)
        .await
    {
        Ok(result) => result,
        Err(refused) => {
            let body = html! { (refusal_notice(&refused)) p { a href=(back) { (ctx.t("back")) } } };
            return page_with_status(
                &ctx,
                Section::Callbacks,
                ctx.t("redrive_result"),
                body,
                refused.status,
            );
        }
    };
    let code = result["result_code"].as_str().unwrap_or_default();
    let body = html! {
        dl.record {
            div { dt { (ctx.t("status")) } dd { (result["status"].as_str().unwrap_or_default()) } }
            div { dt { (ctx.t("result_code")) } dd id="redrive-code" class=(if code == "000000" { "ok" } else { "bad" }) {
                (code) " " (result["result_msg"].as_str().unwrap_or_default())
            } }
            div { dt { (ctx.t("attempt")) } dd { (result["attempt"]) } }
            div { dt { (ctx.t("instance_id")) } dd { (result["instance_id"].as_str().unwrap_or_default()) } }
        }
        p { a href=(back) { (ctx.t("back")) } }
    };
    page(&ctx, Section::Callbacks, ctx.t("redrive_result"), body)
}

// --------------------------------------------------------------- settings

pub async fn settings(
    State(console): State<Console>,
    visit: Visit,
    Path(id): Path<String>,
) -> Response {
    let ctx = visit.ctx(Some(&id));
    settings_page(&console, &ctx, &visit.session, &id, None, StatusCode::OK).await
}

async fn settings_page(
    console: &Console,
    ctx: &Ctx<'_>,
    session: &Session,
    id: &str,
    result: Option<Markup>,
    status: StatusCode,
) -> Response {
    let merchant = match console
        .api
        .get(&session.token, &format!("/merchants/{}", segment(id)))
        .await
    {
        Ok(merchant) => merchant,
        Err(refused) => return layout::refused(ctx, Section::Settings, &refused),
    };
    let tokens = if session.is_operator() {
        console.api.get(&session.token, "/tokens").await.ok()
    } else {
        None
    };
    let keys = merchant["key_ids"].as_array().cloned().unwrap_or_default();
    let hosts = merchant["settings"]["allowed_outbound_hosts"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let private = merchant["settings"]["allow_private_networks"].as_bool() == Some(true);
    let link = format!("/console/m/{}", segment(id));
    let body = html! {
        @if let Some(result) = result { (result) }
        section aria-labelledby="keys" {
            h2 id="keys" { (ctx.t("keys")) }
            table {
                thead { tr { th scope="col" { (ctx.t("key_id")) } th scope="col" {} } }
                tbody {
                    @for key in &keys {
                        @let key_id = key.as_str().unwrap_or_default();
                        tr {
                            td { code { (key_id) } }
                            td.actions { a.button href=(format!("{link}/keys/{}/retire", segment(key_id))) { (ctx.t("retire")) } }
                        }
                    }
                }
            }
            form.card method="post" action=(format!("{link}/keys")) {
                label for="new-key" { (ctx.t("new_key")) }
                input id="new-key" name="access_key" type="password" autocomplete="off" required minlength="8";
                (csrf_field(session))
                button type="submit" { (ctx.t("add_key")) }
            }
        }
        section aria-labelledby="tokens" {
            h2 id="tokens" { (ctx.t("tokens")) }
            @match &tokens {
                Some(tokens) => {
                    table {
                        thead { tr { th scope="col" { "ID" } th scope="col" { (ctx.t("created")) } th scope="col" { (ctx.t("state")) } } }
                        tbody {
                            @for token in tokens.as_array().into_iter().flatten().filter(|t| t["merchant_id"].as_str() == Some(id)) {
                                @let token_id = token["token_id"].as_str().unwrap_or_default();
                                tr {
                                    td { code { (token_id) } }
                                    td { (layout::time(token["created_at"].as_i64().unwrap_or(0))) }
                                    td.actions {
                                        @if token["revoked_at"].is_i64() {
                                            (ctx.t("revoked"))
                                        } @else {
                                            (ctx.t("active")) " "
                                            a.button href=(format!("{link}/tokens/{}/revoke", segment(token_id))) { (ctx.t("revoke")) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    form method="post" action=(format!("{link}/tokens")) {
                        (csrf_field(session))
                        button type="submit" { (ctx.t("create_token")) }
                    }
                }
                None => p { (ctx.t("tokens_by_operator")) },
            }
        }
        section aria-labelledby="grants" {
            h2 id="grants" { (ctx.t("grants")) }
            @if hosts.is_empty() {
                p { (ctx.t("no_grants")) }
            } @else {
                ul { @for host in &hosts { li { code { (host.as_str().unwrap_or_default()) } } } }
                @if private { p { (ctx.t("private_networks")) } }
            }
        }
    };
    page_with_status(ctx, Section::Settings, ctx.t("settings"), body, status)
}

#[derive(Deserialize)]
pub struct KeyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    access_key: String,
}

pub async fn add_key(
    State(console): State<Console>,
    visit: Visit,
    Path(id): Path<String>,
    Form(form): Form<KeyForm>,
) -> Response {
    let ctx = visit.ctx(Some(&id));
    if let Some(refused) = forged(&ctx, Section::Settings, &visit.session, &form.csrf) {
        return refused;
    }
    let path = format!("/merchants/{}/keys", segment(&id));
    let body = json!({ "access_key": form.access_key });
    let (result, status) = match console
        .api
        .post_json(&visit.session.token, &path, &body)
        .await
    {
        Ok(key) => (
            notice(
                "ok",
                html! { (ctx.t("add_key")) ": " code { (key["key_id"].as_str().unwrap_or_default()) } },
            ),
            StatusCode::OK,
        ),
        Err(refused) => (refusal_notice(&refused), refused.status),
    };
    settings_page(&console, &ctx, &visit.session, &id, Some(result), status).await
}

pub async fn confirm_retire(visit: Visit, Path((id, key_id)): Path<(String, String)>) -> Response {
    let ctx = visit.ctx(Some(&id));
    let question = format!("{key_id}: {}", ctx.t("confirm_retire"));
    layout::confirm(
        &ctx,
        Section::Settings,
        &question,
        ctx.here,
        &ctx.link(Section::Settings),
        html! {},
    )
}

pub async fn retire_key(
    State(console): State<Console>,
    visit: Visit,
    Path((id, key_id)): Path<(String, String)>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let ctx = visit.ctx(Some(&id));
    if let Some(refused) = forged(&ctx, Section::Settings, &visit.session, &form.csrf) {
        return refused;
    }
    let path = format!("/merchants/{}/keys/{}", segment(&id), segment(&key_id));
    let (result, status) = match console.api.delete(&visit.session.token, &path).await {
        Ok(_) => (
            notice("ok", html! { (ctx.t("retire")) ": " code { (key_id) } }),
            StatusCode::OK,
        ),
        Err(refused) => (refusal_notice(&refused), refused.status),
    };
    settings_page(&console, &ctx, &visit.session, &id, Some(result), status).await
}

pub async fn create_token(
    State(console): State<Console>,
    visit: Visit,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let ctx = visit.ctx(Some(&id));
    if let Some(refused) = forged(&ctx, Section::Settings, &visit.session, &form.csrf) {
        return refused;
    }
    let path = format!("/merchants/{}/tokens", segment(&id));
    let (result, status) = match console
        .api
        .post_json(&visit.session.token, &path, &json!({}))
        .await
    {
        Ok(token) => (
            notice(
                "ok",
                html! {
                    p { (ctx.t("token_once")) }
                    code.secret { (token["token"].as_str().unwrap_or_default()) }
                },
            ),
            StatusCode::OK,
        ),
        Err(refused) => (refusal_notice(&refused), refused.status),
    };
    settings_page(&console, &ctx, &visit.session, &id, Some(result), status).await
}

pub async fn confirm_revoke(
    visit: Visit,
    Path((id, token_id)): Path<(String, String)>,
) -> Response {
    let ctx = visit.ctx(Some(&id));
    let question = format!("{token_id}: {}", ctx.t("confirm_revoke"));
    let back = ctx.link(Section::Settings);
    layout::confirm(
        &ctx,
        Section::Settings,
        &question,
        ctx.here,
        &back,
        html! {},
    )
}

pub async fn revoke_token(
    State(console): State<Console>,
    visit: Visit,
    Path((id, token_id)): Path<(String, String)>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let ctx = visit.ctx(Some(&id));
    if let Some(refused) = forged(&ctx, Section::Settings, &visit.session, &form.csrf) {
        return refused;
    }
    let path = format!("/tokens/{}", segment(&token_id));
    let (result, status) = match console.api.delete(&visit.session.token, &path).await {
        Ok(_) => (
            notice("ok", html! { (ctx.t("revoked")) ": " code { (token_id) } }),
            StatusCode::OK,
        ),
        Err(refused) => (refusal_notice(&refused), refused.status),
    };
    settings_page(&console, &ctx, &visit.session, &id, Some(result), status).await
}
