//! Building HTML safely: every piece of text from the database goes through
//! [`esc`]. Pages are small and server-rendered; a template engine would
//! bring proc macros and a second language for five tables, so they are
//! `format!` with escaping, kept in one place.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

/// A finding's deciding rule as ` <code>rule</code>`, or nothing.
pub fn rule_code(rule: Option<&str>) -> String {
    rule.map(|r| format!(" <code>{}</code>", esc(r)))
        .unwrap_or_default()
}

/// The mark on an event involved in a chain break, put before its
/// description wherever one is shown: its content may be forged.
pub fn untrusted_mark(untrusted: bool) -> &'static str {
    if untrusted {
        "<span class=\"b bad untrusted\" title=\"This event is involved in a chain break: \
         its sequence number was reused or its hash link does not match. Do not trust its content.\">\
         chain break — untrusted</span> "
    } else {
        ""
    }
}

/// Escape text for HTML element content and double-quoted attributes.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encode a query-string value (RFC 3986 unreserved kept).
pub fn url_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

const STYLE: &str = "
body{font:14px/1.45 -apple-system,BlinkMacSystemFont,'Segoe UI',Helvetica,Arial,sans-serif;margin:0;color:#1d1d1f;background:#f5f5f7}
header{background:#1d1d1f;color:#fff;padding:10px 24px;display:flex;gap:24px;align-items:center}
header b{font-size:16px}header a{color:#d2d2d7;text-decoration:none}header a.on{color:#fff;border-bottom:2px solid #0a84ff}
header .out{margin-left:auto}
main{padding:16px 24px;max-width:1280px}
h1{font-size:20px;margin:8px 0 4px}h2{font-size:16px;margin:20px 0 6px}
p.lead{color:#555;margin:0 0 12px}
.tiles{display:flex;gap:12px;flex-wrap:wrap;margin:8px 0 16px}
.tile{background:#fff;border-radius:8px;padding:10px 16px;min-width:140px;box-shadow:0 1px 2px #0002}
.tile .n{font-size:24px;font-weight:600}.tile .l{color:#666;font-size:12px}
table{border-collapse:collapse;width:100%;background:#fff;box-shadow:0 1px 2px #0002;border-radius:8px;overflow:hidden}
th,td{text-align:left;padding:6px 10px;border-bottom:1px solid #eee;vertical-align:top}
th{background:#fafafa;font-weight:600;font-size:12px;color:#555}
td.num{text-align:right;font-variant-numeric:tabular-nums}
code{font:12px ui-monospace,Menlo,monospace;word-break:break-all}
.b{display:inline-block;padding:0 6px;border-radius:4px;font-size:12px;font-weight:600}
.remediate,.critical,.failure,.bad{background:#ffe5e5;color:#b00020}.report,.high,.medium{background:#fff4d6;color:#8a5a00}
.allow,.low,.info,.success,.ok{background:#e6f6ea;color:#1a7f37}.monitor,.not_attempted{background:#eef;color:#334}
.cam{background:#e8f0fe;color:#174ea6}.cam_off{background:#f0f0f2;color:#555}
.detail{color:#444;font-size:12px;margin-top:2px}.incident{color:#b00020;font-weight:600;font-size:12px;margin-top:2px}
.empty{color:#666;padding:12px;background:#fff;border-radius:8px}
.more{margin:10px 0}
form.login{background:#fff;padding:20px;border-radius:8px;max-width:480px;box-shadow:0 1px 2px #0002}
form.login input[type=password]{width:100%;padding:6px;font:inherit;margin:6px 0 12px;box-sizing:border-box}
.err{color:#b00020}
";

/// The pages in the navigation bar: (path, label).
const NAV: &[(&str, &str)] = &[
    ("/ui/", "Incidents"),
    ("/ui/fleet", "Fleet"),
    ("/ui/rules", "Findings by rule"),
    ("/ui/remediations", "Remediations"),
    ("/ui/camera", "Camera"),
    ("/ui/gaps", "Gaps"),
    ("/ui/alerts", "Alerts"),
];

/// A whole page. `body` must already be escaped HTML.
pub fn page(title: &str, active: &str, body: &str) -> Response {
    let mut nav = String::new();
    for (path, label) in NAV {
        let class = if *path == active { " class=\"on\"" } else { "" };
        nav.push_str(&format!("<a href=\"{path}\"{class}>{label}</a>"));
    }
    let logout = if active.is_empty() {
        ""
    } else {
        "<a class=\"out\" href=\"/ui/logout\">Sign out</a>"
    };
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{} · lenscap</title><style>{STYLE}</style></head>\
         <body><header><b>lenscap</b>{nav}{logout}</header><main>{body}</main></body></html>",
        esc(title)
    );
    html_response(html)
}

/// HTML with a Content-Security-Policy that allows no script at all: the
/// dashboard has none, so injected markup could not run any either.
pub fn html_response(html: String) -> Response {
    let mut resp = html.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    resp
}

/// A badge: `class` picks the colour and must be one of our own words;
/// `text` is escaped.
pub fn badge(class: &str, text: &str) -> String {
    let class: String = class
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    format!("<span class=\"b {class}\">{}</span>", esc(text))
}

/// A table; cells must already be HTML. `empty` is shown instead when
/// there are no rows.
pub fn table(headers: &[&str], rows: &[Vec<String>], empty: &str) -> String {
    if rows.is_empty() {
        return format!("<p class=\"empty\">{}</p>", esc(empty));
    }
    let mut out = String::from("<table><thead><tr>");
    for h in headers {
        out.push_str(&format!("<th>{}</th>", esc(h)));
    }
    out.push_str("</tr></thead><tbody>");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            out.push_str(&format!("<td>{cell}</td>"));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    out
}

pub fn tile(number: impl std::fmt::Display, label: &str) -> String {
    format!(
        "<div class=\"tile\"><div class=\"n\">{}</div><div class=\"l\">{}</div></div>",
        esc(&number.to_string()),
        esc(label)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
    }

    #[test]
    fn url_values_are_percent_encoded() {
        assert_eq!(url_value("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
        assert_eq!(url_value("1764312005250_42"), "1764312005250_42");
    }

    #[test]
    fn badge_class_cannot_break_out() {
        assert_eq!(
            badge("x\" onclick=\"y", "<b>"),
            "<span class=\"b xonclicky\">&lt;b&gt;</span>"
        );
    }
}
