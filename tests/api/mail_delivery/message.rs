//! Reading a received message: its envelope recipient, its bodies decoded
//! whatever transfer encoding was chosen, the token of its link.

use crate::smtp::header;

/// The envelope recipient aiosmtpd recorded.
pub fn recipient(message: &str) -> String {
    header(message, "X-RcptTo")
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// The message's text with every MIME part's body decoded (base64 and
/// quoted-printable, by `mailparse`), so a link can be found whatever
/// encoding was chosen.
pub fn readable(message: &str) -> String {
    let Ok(parsed) = mailparse::parse_mail(message.as_bytes()) else {
        return message.to_owned();
    };
    let mut out = String::new();
    let mut parts = vec![&parsed];
    while let Some(part) = parts.pop() {
        if part.subparts.is_empty() {
            if let Ok(body) = part.get_body() {
                out.push_str(&body);
                out.push('\n');
            }
        }
        parts.extend(part.subparts.iter());
    }
    out
}

/// The token of the first `/{path}?token=` link in `message`.
pub fn link_token(message: &str, path: &str) -> Option<String> {
    let text = readable(message);
    let needle = format!("/{path}?token=");
    let start = text.find(&needle)? + needle.len();
    let token: String = text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~' | '%'))
        .collect();
    (!token.is_empty()).then_some(token)
}

#[test]
fn a_link_is_found_in_seven_bit_quoted_printable_and_base64_bodies() {
    let link = "Open this link: http://w.test/reset-password?token=Ab-c_9";
    let b64 = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(link)
    };
    let cases = [
        format!("Subject: x\r\n\r\n{link}\r\n"),
        "Content-Transfer-Encoding: quoted-printable\r\n\r\nOpen this link: http://w.test/reset-=\r\npassword?token=3DAb-c_9\r\n".to_owned(),
        format!("Content-Type: multipart/alternative; boundary=\"b\"\r\n\r\n--b\r\nContent-Transfer-Encoding: base64\r\n\r\n{b64}\r\n--b--\r\n"),
    ];
    for case in &cases {
        assert_eq!(
            link_token(case, "reset-password").as_deref(),
            Some("Ab-c_9"),
            "{case}"
        );
    }
    assert_eq!(link_token(&cases[0], "verify-email"), None);
}
