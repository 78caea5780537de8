//! Which characters an identity (an email address, a username) may hold:
//! none that renders as nothing, reorders the text around it, or has no
//! agreed glyph ([`hidden_char`]), and, in an email's local part, no mix of
//! scripts whose letters look alike ([`mixed_scripts`]).
//!
//! Why: an identity is shown to people (an admin list, an audit log, a
//! "signed in as" line) who decide on what they see. `ada\u{200B}@x.com`
//! (a zero-width space) looks exactly like `ada@x.com`, and a right-to-left
//! override (U+202E) makes `moc.elpmaxe@ada` read as something else. Such
//! characters never belong in an address or a display name, so they are
//! refused rather than silently dropped: dropping would turn two different
//! inputs into one account without telling anyone.
//!
//! The tables are written out here rather than taken from a Unicode crate;
//! each range cites the property it comes from (Unicode 16.0,
//! `DerivedGeneralCategory.txt`, `DerivedCoreProperties.txt`,
//! `PropList.txt`).

/// Code points an identity may never contain, beyond `char::is_control`
/// (general category Cc) and `char::is_whitespace` (White_Space, handled by
/// the callers). Sorted, inclusive, non-overlapping.
const HIDDEN: &[(u32, u32)] = &[
    (0x00AD, 0x00AD),   // Cf SOFT HYPHEN
    (0x034F, 0x034F),   // Default_Ignorable: COMBINING GRAPHEME JOINER
    (0x0600, 0x0605),   // Cf Arabic number signs (prepended, invisible on their own)
    (0x061C, 0x061C),   // Cf ARABIC LETTER MARK (bidi)
    (0x06DD, 0x06DD),   // Cf ARABIC END OF AYAH
    (0x070F, 0x070F),   // Cf SYRIAC ABBREVIATION MARK
    (0x0890, 0x0891),   // Cf Arabic pound/piastre marks above
    (0x08E2, 0x08E2),   // Cf ARABIC DISPUTED END OF AYAH
    (0x115F, 0x1160),   // Default_Ignorable: Hangul choseong/jungseong fillers (blank)
    (0x17B4, 0x17B5),   // Default_Ignorable: Khmer inherent vowels (blank)
    (0x180B, 0x180F),   // Default_Ignorable / Cf: Mongolian variation selectors, vowel separator
    (0x200B, 0x200F),   // Cf ZERO WIDTH SPACE, ZWNJ, ZWJ, LRM, RLM
    (0x202A, 0x202E),   // Cf bidi embeddings and overrides: LRE RLE PDF LRO RLO
    (0x2060, 0x206F), // Cf / Default_Ignorable: WORD JOINER, invisible operators, LRI RLI FSI PDI, deprecated format chars
    (0x3164, 0x3164), // Default_Ignorable: HANGUL FILLER (blank)
    (0xD800, 0xDFFF), // Cs surrogates (a `char` cannot hold one; listed for completeness)
    (0xE000, 0xF8FF), // Co private use: no agreed glyph, any font may draw anything
    (0xFDD0, 0xFDEF), // Noncharacter_Code_Point
    (0xFE00, 0xFE0F), // Default_Ignorable: VARIATION SELECTORS 1-16
    (0xFEFF, 0xFEFF), // Cf ZERO WIDTH NO-BREAK SPACE (BOM)
    (0xFFA0, 0xFFA0), // Default_Ignorable: HALFWIDTH HANGUL FILLER (blank)
    (0xFFF0, 0xFFFB), // Default_Ignorable unassigned + Cf interlinear annotation controls
    (0xFFFE, 0xFFFF), // Noncharacter_Code_Point
    (0x110BD, 0x110BD), // Cf KAITHI NUMBER SIGN
    (0x110CD, 0x110CD), // Cf KAITHI NUMBER SIGN ABOVE
    (0x13430, 0x1343F), // Cf Egyptian hieroglyph format controls
    (0x1BCA0, 0x1BCA3), // Cf shorthand format controls
    (0x1D173, 0x1D17A), // Cf musical symbol format controls
    // Planes 4 to 13 hold no assigned character at all (Cn): nothing a
    // person types, and a font draws them as it likes.
    (0x40000, 0xDFFFF),
    // Cf language tags and Default_Ignorable plane 14, including
    // VARIATION SELECTORS 17-256 (U+E0100..E01EF).
    (0xE0000, 0xE0FFF),
    // Co supplementary private use areas A and B (with their noncharacters).
    (0xF0000, 0x10FFFF),
];

/// The first character of `text` that must not appear in an identity: a
/// control (Cc), a format character (Cf: zero-width space and joiners,
/// BOM, soft hyphen, every bidi control), another default-ignorable code
/// point (variation selectors, fillers), a private-use or noncharacter, or
/// one in the unassigned planes. Plane-0 to plane-3 code points that are
/// merely unassigned today are not detected (that would need the full
/// Unicode table); for domains, IDNA refuses them.
pub fn hidden_char(text: &str) -> Option<char> {
    text.chars().find(|&c| c.is_control() || is_hidden(c))
}

fn is_hidden(c: char) -> bool {
    let c = u32::from(c);
    HIDDEN
        .binary_search_by(|&(lo, hi)| {
            if hi < c {
                std::cmp::Ordering::Less
            } else if lo > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// How a character is written, coarsely: enough to tell the scripts whose
/// letters pass for Latin ones apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Script {
    Latin,
    Greek,
    Cyrillic,
    Cherokee,
    /// Han, Hiragana, Katakana, Bopomofo, Hangul: the East Asian scripts
    /// UTS #39 allows together and with Latin.
    EastAsian,
    /// Any other letter: allowed alone or with Latin.
    Other,
}

/// The script of `c`, or `None` for what every script shares (ASCII digits
/// and punctuation, combining marks, symbols).
fn script(c: char) -> Option<Script> {
    let u = u32::from(c);
    Some(match u {
        0x41..=0x5A | 0x61..=0x7A => Script::Latin,
        0x00..=0x7F => return None,
        0xC0..=0xD6 | 0xD8..=0xF6 | 0xF8..=0x24F => Script::Latin,
        0x250..=0x2AF | 0x1D00..=0x1DBF | 0x1E00..=0x1EFF => Script::Latin,
        0x2C60..=0x2C7F | 0xA720..=0xA7FF | 0xAB30..=0xAB6F | 0xFF21..=0xFF3A => Script::Latin,
        0xFF41..=0xFF5A => Script::Latin,
        0x0300..=0x036F => return None, // combining diacritics: inherit their base
        0x0370..=0x03FF | 0x1F00..=0x1FFF => Script::Greek,
        0x0400..=0x052F | 0x1C80..=0x1C8F | 0x2DE0..=0x2DFF | 0xA640..=0xA69F => Script::Cyrillic,
        0x13A0..=0x13FF | 0xAB70..=0xABBF => Script::Cherokee,
        0x1100..=0x11FF | 0x2E80..=0x2FDF | 0x3040..=0x30FF | 0x3100..=0x312F => Script::EastAsian,
        0x3130..=0x318F | 0x31A0..=0x31FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF => Script::EastAsian,
        0xAC00..=0xD7FF | 0xF900..=0xFAFF | 0xFF66..=0xFFDC | 0x20000..=0x323AF => {
            Script::EastAsian
        }
        _ if c.is_alphabetic() => Script::Other,
        _ => return None,
    })
}

/// True when `text` mixes scripts the way a spoof does: Latin, Greek,
/// Cyrillic or Cherokee letters together (`pаypal`, with a Cyrillic `а`),
/// or two unrelated non-Latin scripts. A simplified UTS #39 §5.2
/// "Moderately Restrictive" level: one script, or Latin with the East
/// Asian scripts, or Latin with any one other script that does not look
/// like it.
pub fn mixed_scripts(text: &str) -> bool {
    let mut seen: Vec<Script> = Vec::new();
    for s in text.chars().filter_map(script) {
        if !seen.contains(&s) {
            seen.push(s);
        }
    }
    let lookalike = |s: &Script| matches!(s, Script::Greek | Script::Cyrillic | Script::Cherokee);
    let others: Vec<&Script> = seen.iter().filter(|s| **s != Script::Latin).collect();
    match others.as_slice() {
        [] => false,
        [only] => seen.contains(&Script::Latin) && lookalike(only),
        // Distinct non-Latin scripts: only one "Other" plus East Asian is
        // never allowed either, so any two is a mix.
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_and_disjoint() {
        for pair in HIDDEN.windows(2) {
            assert!(pair[0].1 < pair[1].0, "{pair:x?}");
        }
        assert!(HIDDEN.iter().all(|(lo, hi)| lo <= hi));
    }

    #[test]
    fn invisible_and_bidi_characters_are_found() {
        for c in [
            '\u{7}',
            '\u{AD}',
            '\u{200B}',
            '\u{200C}',
            '\u{200D}',
            '\u{200E}',
            '\u{202E}',
            '\u{202D}',
            '\u{2066}',
            '\u{2069}',
            '\u{2060}',
            '\u{FEFF}',
            '\u{FE0F}',
            '\u{E0041}',
            '\u{E0100}',
            '\u{E000}',
            '\u{F0000}',
            '\u{180E}',
            '\u{3164}',
            '\u{FFFF}',
            '\u{50000}',
        ] {
            assert_eq!(
                hidden_char(&format!("ada{c}x")),
                Some(c),
                "U+{:04X}",
                u32::from(c)
            );
        }
        for ok in [
            "ada",
            "zoë",
            "Ελένη",
            "Мария",
            "山田",
            "josé-maría_o'neil",
            "😀",
        ] {
            assert_eq!(hidden_char(ok), None, "{ok}");
        }
    }

    #[test]
    fn lookalike_script_mixes_are_found_and_honest_ones_pass() {
        for spoof in ["pаypal", "аdmin1", "αda", "Ꭺda", "мαρια"] {
            assert!(mixed_scripts(spoof), "{spoof}");
        }
        for ok in [
            "paypal",
            "мария",
            "ελένη",
            "zoë.o'neil",
            "tanaka山田",
            "山田たろう",
            "ravi.रवि",
            "a1-b2_c3",
        ] {
            assert!(!mixed_scripts(ok), "{ok}");
        }
    }
}
