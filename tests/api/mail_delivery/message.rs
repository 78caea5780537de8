//! Reading a received message: its envelope recipient, its bodies decoded
//! whatever transfer encoding was chosen, the token of its link.

use base64::Engine;

use crate::smtp::header;

/// The envelope recipient aiosmtpd recorded.
pub fn recipient(message: &str) -> String {
    header(message, "X-RcptTo")
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// The message's text with every MIME part's body decoded (base64 and
/// quoted-printable), so a link can be found whatever encoding was chosen:
/// the decoded parts first, then the raw message (where a quoted-printable
/// `=` still reads `=3D`).
pub fn readable(message: &str) -> String {
    let message = message.replace("\r\n", "\n");
    let mut out = String::new();
    let mut encoding = None::<String>;
    let mut in_head = true;
    let mut body = String::new();
    let flush = |encoding: &Option<String>, body: &mut String, out: &mut String| {
        match encoding.as_deref() {
            Some("base64") => {
                let joined: String = body.split_whitespace().collect();
                if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(joined) {
                    out.push('\n');
                    out.push_str(&String::from_utf8_lossy(&bytes));
                }
            }
            Some("quoted-printable") => {
                out.push('\n');
                out.push_str(&quoted_printable(body));
            }
            _ => {}
        }
        body.clear();
    };
    for line in message.lines() {
        if line.starts_with("--") {
            flush(&encoding, &mut body, &mut out);
            encoding = None;
            in_head = true;
            continue;
        }
        if in_head {
            if line.is_empty() {
                in_head = false;
            } else if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("Content-Transfer-Encoding") {
                    encoding = Some(value.trim().to_ascii_lowercase());
                }
            }
            continue;
        }
        body.push_str(line);
        body.push('\n');
    }
    flush(&encoding, &mut body, &mut out);
    out.push('\n');
    out.push_str(&message);
    out
}

fn quoted_printable(text: &str) -> String {
    let joined = text.replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
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
    let b64 = base64::engine::general_purpose::STANDARD.encode(link);
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
