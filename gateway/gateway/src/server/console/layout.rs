//! The page shell (skip link, navigation, language switch, sign-out) and
//! the small pieces every page uses: times, forms' CSRF field, the error
//! page, the results chart.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::api::{Refused, segment};
use super::i18n::Lang;
use super::session::Session;

/// The console's sections (the navigation marks the current one).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Section {
    SignIn,
    Merchants,
    Overview,
    Versions,
    Callbacks,
    Settings,
}

/// What every page knows: the language, the user, the merchant shown.
pub struct Ctx<'a> {
    pub lang: Lang,
    pub session: Option<&'a Session>,
    pub merchant: Option<&'a str>,
    /// This page's own path (the language switch returns to it).
    pub here: &'a str,
}

impl Ctx<'_> {
    pub fn t(&self, key: &'static str) -> &'static str {
        self.lang.t(key)
    }

    /// The path of `section` for the page's merchant.
    pub fn link(&self, section: Section) -> String {
        let merchant = segment(self.merchant.unwrap_or_default());
        match section {
            Section::Overview => format!("/console/m/{merchant}"),
            Section::Versions => format!("/console/m/{merchant}/versions"),
            Section::Callbacks => format!("/console/m/{merchant}/callbacks"),
            Section::Settings => format!("/console/m/{merchant}/settings"),
            Section::Merchants => "/console/merchants".into(),
            Section::SignIn => "/console/login".into(),
        }
    }
}

/// A whole page.
pub fn page(ctx: &Ctx<'_>, section: Section, title: &str, body: Markup) -> Response {
    page_with_status(ctx, section, title, body, StatusCode::OK)
}

pub fn page_with_status(
    ctx: &Ctx<'_>,
    section: Section,
    title: &str,
    body: Markup,
    status: StatusCode,
) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang=(if ctx.lang == Lang::Zh { "zh-CN" } else { "en" }) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · " (ctx.t("console")) }
                link rel="stylesheet" href="/console/assets/console.css";
                script src="/console/assets/console.js" defer {}
            }
            body data-working=(ctx.t("working")) {
                a.skip href="#main" { (ctx.t("skip")) }
                header.top {
                    a.brand href="/console" { (ctx.t("console")) }
                    (navigation(ctx, section))
                    div.tools {
                        a href=(format!("/console/lang?to={}&back={}", ctx.lang.other().code(), segment(ctx.here)))
                            lang=(ctx.lang.other().code()) hreflang=(ctx.lang.other().code()) {
                            (ctx.lang.other().name())
                        }
                        @if let Some(session) = ctx.session {
                            form method="post" action="/console/logout" {
                                (csrf_field(session))
                                button.link type="submit" { (ctx.t("sign_out")) }
                            }
                        }
                    }
                }
                main id="main" tabindex="-1" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    };
    (status, Html(markup.into_string())).into_response()
}

fn navigation(ctx: &Ctx<'_>, current: Section) -> Markup {
    let Some(session) = ctx.session else {
        return html! {};
    };
    let mut sections = Vec::new();
    if session.is_operator() {
        sections.push((Section::Merchants, "merchants"));
    }
    if ctx.merchant.is_some() {
        sections.extend([
            (Section::Overview, "overview"),
            (Section::Versions, "versions"),
            (Section::Callbacks, "callbacks"),
            (Section::Settings, "settings"),
        ]);
    }
    html! {
        nav aria-label=(ctx.t("console")) {
            @if let Some(merchant) = ctx.merchant {
                span.merchant { (ctx.t("merchant")) ": " strong { (merchant) } }
            }
            ul {
                @for (section, key) in sections {
                    li {
                        @if section == current {
                            a href=(ctx.link(section)) aria-current="page" { (ctx.t(key)) }
                        } @else {
                            a href=(ctx.link(section)) { (ctx.t(key)) }
                        }
                    }
                }
            }
        }
    }
}

/// The hidden field every changing form carries.
pub fn csrf_field(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf); }
}

/// A confirmation page: the question and one button that does it.
pub fn confirm(
    ctx: &Ctx<'_>,
    section: Section,
    question: &str,
    action: &str,
    back: &str,
    extra: Markup,
) -> Response {
    let Some(session) = ctx.session else {
        return page(ctx, section, question, html! {});
    };
    page(
        ctx,
        section,
        ctx.t("confirm"),
        html! {
            form.confirm method="post" action=(action) {
                p { (question) }
                (csrf_field(session))
                (extra)
                div.actions {
                    button.primary type="submit" data-busy { (ctx.t("confirm")) }
                    a.button href=(back) { (ctx.t("cancel")) }
                }
            }
        },
    )
}

/// The API said no: its message, with its status.
pub fn refused(ctx: &Ctx<'_>, section: Section, refused: &Refused) -> Response {
    page_with_status(
        ctx,
        section,
        ctx.t("error"),
        html! {
            div.notice.error role="alert" {
                p { strong { (refused.code) } ": " (refused.message) }
            }
            p { a href=(ctx.link(section)) { (ctx.t("back")) } }
        },
        refused.status,
    )
}

/// Unix ms as `YYYY-MM-DD HH:MM:SS` (UTC).
pub fn time(ms: i64) -> String {
    let compact = koogallery_protocol::time::format_compact(ms.div_euclid(1000));
    let part = |range: std::ops::Range<usize>| compact.get(range).unwrap_or("");
    format!(
        "{}-{}-{} {}:{}:{}",
        part(0..4),
        part(4..6),
        part(6..8),
        part(8..10),
        part(10..12),
        part(12..14)
    )
}

/// A duration in seconds, readably (`2 h 05 min`, `4 min 10 s`).
pub fn duration(secs: f64) -> String {
    let secs = secs.max(0.0) as u64;
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min {:02} s", secs / 60, secs % 60),
        _ => format!("{} h {:02} min", secs / 3600, secs % 3600 / 60),
    }
}

/// A bar chart of successes and failures per hour (oldest first), as an
/// inline SVG with a text alternative.
pub fn results_chart(ctx: &Ctx<'_>, hours: &[(u64, u64)]) -> Markup {
    let (width, height, gap) = (24.0_f64, 120.0_f64, 4.0_f64);
    let most = hours
        .iter()
        .map(|(ok, failed)| ok + failed)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let total_width = hours.len() as f64 * (width + gap);
    let summary: u64 = hours.iter().map(|(ok, failed)| ok + failed).sum();
    let failed: u64 = hours.iter().map(|(_, failed)| failed).sum();
    let label = format!(
        "{}: {summary} ({}: {failed})",
        ctx.t("results_chart"),
        ctx.t("failures")
    );
    let mut bars = String::new();
    for (i, (ok, bad)) in hours.iter().enumerate() {
        let x = i as f64 * (width + gap);
        let ok_height = *ok as f64 / most * height;
        let bad_height = *bad as f64 / most * height;
        bars.push_str(&format!(
            "<rect class=\"ok\" x=\"{x}\" y=\"{}\" width=\"{width}\" height=\"{ok_height}\"><title>{ok} × 000000</title></rect>\
             <rect class=\"bad\" x=\"{x}\" y=\"{}\" width=\"{width}\" height=\"{bad_height}\"><title>{bad} × ≠000000</title></rect>",
            height - ok_height,
            height - ok_height - bad_height,
        ));
    }
    html! {
        figure.chart {
            svg viewBox=(format!("0 0 {total_width} {height}")) role="img" aria-label=(label) preserveAspectRatio="none" {
                (PreEscaped(bars))
            }
            figcaption {
                (ctx.t("results_chart")) " — "
                span.key-ok { (ctx.t("successes")) } " · "
                span.key-bad { (ctx.t("failures")) }
            }
        }
    }
}
