//! The landing pages' HTML: one layout, the three forms and the message
//! pages, and the headers every one of them carries.
//!
//! A page is a single HTML document with no external asset and no script:
//! its only style is one inline `<style>` element, allowed by its SHA-256 in
//! the Content-Security-Policy, so nothing injected could style or run.
//! Every value inserted into the HTML (the product name, the token in its
//! hidden field, a message) goes through [`escape`].

use std::sync::LazyLock;

use base64::Engine;
use poem::{
    http::{header, StatusCode},
    Response,
};
use sha2::{Digest, Sha256};

use super::Flow;

/// The inline stylesheet, allowed by its hash in [`CSP`].
const CSS: &str = "\
body{font:16px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1b1b1f;\
background:#f4f4f6;margin:0;padding:2rem 1rem}\
main{max-width:26rem;margin:0 auto;background:#fff;border:1px solid #d8d8de;\
border-radius:8px;padding:1.5rem 1.75rem}\
h1{font-size:1.35rem;margin:0 0 1rem}\
p{margin:0 0 1rem}\
label{display:block;font-weight:600;margin:1rem 0 .25rem}\
input[type=password]{box-sizing:border-box;width:100%;font:inherit;padding:.5rem;\
border:1px solid #8a8a94;border-radius:4px}\
input[aria-invalid=true]{border-color:#b00020}\
button{margin-top:1.25rem;font:inherit;font-weight:600;color:#fff;background:#2b59c3;\
border:0;border-radius:4px;padding:.6rem 1.2rem;cursor:pointer}\
button:focus-visible,input:focus-visible{outline:3px solid #f5a623;outline-offset:2px}\
.hint{font-size:.9rem;color:#4a4a55;margin:.25rem 0 0}\
.error{color:#b00020;font-weight:600}\
.field-error{font-size:.9rem;margin:.25rem 0 0}\
.next{color:#4a4a55}\
.product{font-size:.85rem;font-weight:600;letter-spacing:.04em;text-transform:uppercase;\
color:#4a4a55;margin:0 0 .5rem}";

/// `Content-Security-Policy` of every landing page: nothing loads, the one
/// inline style is allowed by its hash, forms post only to this origin, no
/// page may frame it, and no `<base>` can move relative URLs elsewhere.
pub static CSP: LazyLock<String> = LazyLock::new(|| {
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(CSS.as_bytes()));
    format!(
        "default-src 'none'; style-src 'sha256-{hash}'; form-action 'self'; \
frame-ancestors 'none'; base-uri 'none'"
    )
});

/// Escapes `s` for HTML text and double- or single-quoted attribute values.
pub fn escape(s: &str) -> String {
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

/// A whole document: `title` (plain text) · the product, and `main` (HTML,
/// already escaped by its builder).
fn document(product: &str, title: &str, main: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
<meta name=\"robots\" content=\"noindex\">\n\
<title>{title} · {product}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n\
<p class=\"product\">{product}</p>\n<h1>{title}</h1>\n{main}</main>\n</body>\n</html>\n",
        title = escape(title),
        product = escape(product),
    )
}

/// The response for `html` with every landing-page header.
pub fn respond(status: StatusCode, html: String) -> Response {
    Response::builder()
        .status(status)
        .content_type("text/html; charset=utf-8")
        .header(header::CONTENT_SECURITY_POLICY, CSP.as_str())
        // The token is in this page's URL: no request from it may carry it.
        .header(header::REFERRER_POLICY, "no-referrer")
        .header(header::X_FRAME_OPTIONS, "DENY")
        .header(header::CACHE_CONTROL, "no-store")
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .body(html)
}

/// A page that only says something: `title`, then each paragraph (plain
/// text), the last one styled as the next step to take.
pub fn message(status: StatusCode, product: &str, title: &str, paragraphs: &[&str]) -> Response {
    let count = paragraphs.len();
    let main: String = paragraphs
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let class = if i + 1 == count && count > 1 {
                " class=\"next\""
            } else {
                ""
            };
            format!("<p{class}>{}</p>\n", escape(p))
        })
        .collect();
    respond(status, document(product, title, &main))
}

/// What a re-rendered form says went wrong.
#[derive(Default)]
pub struct Problems<'a> {
    /// Above the form: a refusal that is not about one field (rate limit).
    pub banner: Option<&'a str>,
    /// Beside the new password (the policy).
    pub password: Option<&'a str>,
    /// Beside the repeated password (a mismatch).
    pub confirm: Option<&'a str>,
}

/// The form of `flow` for `token`, with `problems` shown where they belong.
pub fn form(
    status: StatusCode,
    product: &str,
    flow: Flow,
    token: &str,
    problems: &Problems<'_>,
) -> Response {
    let mut main = String::new();
    if let Some(banner) = problems.banner {
        main.push_str(&format!(
            "<p class=\"error\" role=\"alert\">{}</p>\n",
            escape(banner)
        ));
    }
    main.push_str(&format!(
        "<p>{}</p>\n<form method=\"post\" action=\"{}\">\n\
<input type=\"hidden\" name=\"token\" value=\"{}\">\n",
        escape(flow.intro()),
        flow.path(),
        escape(token)
    ));
    if flow == Flow::Reset {
        main.push_str(&password_field(
            "password",
            "New password",
            Some("8 to 72 bytes (most characters take one byte; accented letters and emoji take more), and not a common or easily guessed password."),
            problems.password,
        ));
        main.push_str(&password_field(
            "confirm",
            "Repeat the new password",
            None,
            problems.confirm,
        ));
    }
    main.push_str(&format!(
        "<button type=\"submit\">{}</button>\n</form>\n",
        escape(flow.button())
    ));
    respond(status, document(product, flow.title(), &main))
}

/// One labelled password input, its hint and its error.
fn password_field(name: &str, label: &str, hint: Option<&str>, error: Option<&str>) -> String {
    let mut described = Vec::new();
    let mut after = String::new();
    if let Some(hint) = hint {
        described.push(format!("{name}-hint"));
        after.push_str(&format!(
            "<p class=\"hint\" id=\"{name}-hint\">{}</p>\n",
            escape(hint)
        ));
    }
    if let Some(error) = error {
        described.push(format!("{name}-error"));
        after.push_str(&format!(
            "<p class=\"error field-error\" id=\"{name}-error\" role=\"alert\">{}</p>\n",
            escape(error)
        ));
    }
    let described = if described.is_empty() {
        String::new()
    } else {
        format!(" aria-describedby=\"{}\"", described.join(" "))
    };
    let invalid = if error.is_some() {
        " aria-invalid=\"true\""
    } else {
        ""
    };
    format!(
        "<label for=\"{name}\">{label}</label>\n<input type=\"password\" id=\"{name}\" \
name=\"{name}\" autocomplete=\"new-password\" required{described}{invalid}>\n{after}",
        label = escape(label)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_text_and_both_quotes() {
        assert_eq!(
            escape(r#"<a href='x'>"&"</a>"#),
            "&lt;a href=&#39;x&#39;&gt;&quot;&amp;&quot;&lt;/a&gt;"
        );
    }

    #[test]
    fn the_csp_hash_is_the_hash_of_the_inline_style() {
        let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(CSS.as_bytes()));
        assert!(CSP.contains(&format!("style-src 'sha256-{hash}'")));
        let html = document("Acme <Co>", "Title", "");
        assert!(html.contains(&format!("<style>{CSS}</style>")));
        assert!(html.contains("<title>Title · Acme &lt;Co&gt;</title>"));
        assert!(!html.contains("<script"));
    }
}
