//! Patron privacy (issue 15): what erasing a chat's personal data does to
//! the text that stays — e-mail addresses, phone numbers and the patron's
//! name are masked, so that a kept transcript still reads as a reference
//! interview without saying who asked.

use crate::question::Change;
use serde::{Deserialize, Serialize};

/// What replaces an e-mail address.
pub const EMAIL: &str = "[email]";
/// What replaces a phone number.
pub const PHONE: &str = "[phone]";
/// What replaces a word of the patron's name.
pub const NAME: &str = "[name]";
/// The name an erased patron's lines are shown under.
pub const PATRON: &str = "Patron";
/// What a deleted transcript's last line says once erased: the line keeps
/// only its number (and when it was written), so the chat's next line takes
/// a number after it.
pub const DELETED: &str = "[transcript deleted]";

/// What happens to a transcript when its chat's personal data is erased.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Transcripts {
    /// Kept, with personal data masked.
    Mask,
    /// Deleted, but for the question (masked too).
    Delete,
}

impl Transcripts {
    /// The name used in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Transcripts::Mask => "mask",
            Transcripts::Delete => "delete",
        }
    }

    /// Parses [`Transcripts::as_str`]'s names.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Mask, Self::Delete].into_iter().find(|t| t.as_str() == s)
    }
}

/// A library's retention period: after `days`, its chats' personal data is
/// erased.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Retention {
    /// Days kept (1–3650).
    pub days: u32,
    /// What happens to transcripts then.
    pub transcripts: Transcripts,
}

impl Retention {
    /// The longest period a library may choose: ten years.
    pub const MAX_DAYS: u32 = 3650;

    /// Checks a period.
    pub fn new(days: u32, transcripts: Transcripts) -> Result<Self, crate::DomainError> {
        if !(1..=Self::MAX_DAYS).contains(&days) {
            return Err(crate::DomainError::invalid("days", "keep personal data for 1 to 3650 days, or leave it null"));
        }
        Ok(Retention { days, transcripts })
    }
}

/// A timeline entry with its free text masked: answers (and the address
/// one went to), notes, messages to the librarian, block reasons. Its
/// kind, statuses, codes and staff names stay as they are: they are no
/// patron's data, and the entry must still read back.
pub fn mask_change(change: &Change, name: Option<&str>) -> Change {
    let m = |t: &str| mask(t, name);
    match change {
        Change::Answer { body, emailed_to, in_chat } => Change::Answer {
            body: m(body),
            emailed_to: emailed_to.as_ref().map(|_| EMAIL.to_owned()),
            in_chat: *in_chat,
        },
        Change::Note { body } => Change::Note { body: m(body) },
        Change::LibrarianMessage { to, body } => Change::LibrarianMessage { to: *to, body: m(body) },
        Change::Blocked { block, reason, until } => Change::Blocked { block: *block, reason: m(reason), until: *until },
        other => other.clone(),
    }
}

/// Masks a timeline entry refdesk wrote itself: its sentences never hold
/// the patron's name, so their words stay ("Missed chat" for a patron named
/// Mia Missed), but what it quotes between “ and ” — a mail server's reply,
/// which may name the patron — is masked as people's words are. Addresses
/// and numbers are masked throughout.
pub fn mask_refdesks_change(change: &Change, name: Option<&str>) -> Change {
    match change {
        Change::Note { body } => Change::Note { body: mask_refdesks(body, name) },
        other => mask_change(other, None),
    }
}

/// [`mask_refdesks_change`]'s text: `name` masked only inside quotes.
fn mask_refdesks(text: &str, name: Option<&str>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('“') {
        let (before, after) = rest.split_at(open + '“'.len_utf8());
        out.push_str(&mask(before, None));
        let close = after.find('”').unwrap_or(after.len());
        out.push_str(&mask(&after[..close], name));
        rest = &after[close..];
    }
    out.push_str(&mask(rest, None));
    out
}

/// Masks e-mail addresses, phone numbers and the words of `name` (any
/// letter case, whole words of two letters or more) in `text`.
pub fn mask(text: &str, name: Option<&str>) -> String {
    let names: Vec<String> = name
        .unwrap_or("")
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 2)
        .map(str::to_lowercase)
        .collect();
    let masked = mask_emails(text);
    let masked = mask_phones(&masked);
    mask_words(&masked, &names)
}

fn local_part(c: char) -> bool {
    c.is_alphanumeric() || "._%+-'".contains(c)
}

fn domain_part(c: char) -> bool {
    c.is_alphanumeric() || c == '.' || c == '-'
}

/// `local@domain.tld` → [`EMAIL`].
fn mask_emails(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut start = 0; // chars before `start` are in `out`
    while i < chars.len() {
        if chars[i] != '@' {
            i += 1;
            continue;
        }
        let mut left = i;
        while left > start && local_part(chars[left - 1]) {
            left -= 1;
        }
        let mut right = i + 1;
        while right < chars.len() && domain_part(chars[right]) {
            right += 1;
        }
        // A trailing full stop ends the sentence, not the address.
        while right > i + 1 && chars[right - 1] == '.' {
            right -= 1;
        }
        let domain: String = chars[i + 1..right].iter().collect();
        if left < i && domain.contains('.') && !domain.starts_with('.') {
            out.extend(&chars[start..left]);
            out.push_str(EMAIL);
            start = right;
            i = right;
        } else {
            i += 1;
        }
    }
    out.extend(&chars[start..]);
    out
}

/// A run of 7 to 15 digits, with the separators phone numbers are written
/// with (`+`, spaces, `-`, `.`, parentheses) → [`PHONE`]. A date written
/// `2026-11-30` is not a phone number.
fn mask_phones(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let starts =
            c.is_ascii_digit() || ((c == '+' || c == '(') && chars.get(i + 1).is_some_and(char::is_ascii_digit));
        let after_word = i > 0 && chars[i - 1].is_alphanumeric();
        if !starts || after_word {
            out.push(c);
            i += 1;
            continue;
        }
        let mut end = i;
        let mut digits = 0;
        let mut last_digit = i;
        while end < chars.len() && (chars[end].is_ascii_digit() || " -.()+".contains(chars[end])) {
            if chars[end].is_ascii_digit() {
                digits += 1;
                last_digit = end;
            }
            end += 1;
        }
        let end = last_digit + 1;
        let run: String = chars[i..end].iter().collect();
        let glued = chars.get(end).is_some_and(|c| c.is_alphanumeric());
        if (7..=15).contains(&digits) && !is_date(&run) && !glued {
            out.push_str(PHONE);
        } else {
            out.push_str(&run);
        }
        i = end;
    }
    out
}

fn is_date(run: &str) -> bool {
    let b = run.as_bytes();
    b.len() == 10 && b[4] == b'-' && b[7] == b'-' && run.bytes().filter(u8::is_ascii_digit).count() == 8
}

/// Whole words found in `names` (lower case) → [`NAME`].
fn mask_words(text: &str, names: &[String]) -> String {
    if names.is_empty() {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if names.contains(&word.to_lowercase()) {
            out.push_str(NAME);
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in text.chars() {
        if c.is_alphanumeric() {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_addresses_phones_and_the_name() {
        let text = "Hi, I'm Maria García (maria.garcia+lib@example.org). Call +1 (555) 123-4567 or 0612345678.";
        assert_eq!(mask(text, Some("maría García")), "Hi, I'm Maria [name] ([email]). Call [phone] or [phone].");
        assert_eq!(mask(text, Some("Maria García")), "Hi, I'm [name] [name] ([email]). Call [phone] or [phone].");
    }

    #[test]
    fn leaves_what_is_not_personal() {
        let text = "The 2026-11-30 issue, page 12 of 340, call no. QA76.73 R87, mail@ nobody, K2-345678X.";
        assert_eq!(mask(text, Some("Al")), text);
        assert_eq!(mask("email me at a@b", None), "email me at a@b");
    }

    #[test]
    fn a_sentence_ending_after_an_address_keeps_its_stop() {
        assert_eq!(mask("Write to ann@lib.example.", None), "Write to [email].");
    }

    #[test]
    fn names_match_whole_words_in_any_case() {
        assert_eq!(mask("ANN, Annex and ann.", Some("Ann")), "[name], Annex and [name].");
    }

    #[test]
    fn a_timeline_entry_keeps_its_kind_and_values_whatever_the_name() {
        let created = Change::Created { status: crate::question::Status::New };
        assert_eq!(mask_change(&created, Some("New Read Note Status Created")), created);
        let bounce = Change::Note {
            body: "Missed chat: mia@example.org bounced: “550 no Mia Missed here” and “Missed”; missed again".into(),
        };
        let masked = Change::Note {
            body: "Missed chat: [email] bounced: “550 no [name] [name] here” and “[name]”; missed again".into(),
        };
        assert_eq!(mask_refdesks_change(&bounce, Some("Mia Missed")), masked, "the quotes alone take the name");
        let open = Change::Note { body: "Missed: “Mia".into() };
        assert_eq!(mask_refdesks_change(&open, Some("Mia Missed")), Change::Note { body: "Missed: “[name]".into() });
        let note = Change::Note { body: "New Read asked; new@example.org".into() };
        assert_eq!(mask_change(&note, Some("New Read")), Change::Note { body: "[name] [name] asked; [email]".into() });
        let answer = Change::Answer { body: "Hi".into(), emailed_to: Some("x@example.org".into()), in_chat: true };
        let masked = mask_change(&answer, None);
        assert_eq!(masked, Change::Answer { body: "Hi".into(), emailed_to: Some(EMAIL.into()), in_chat: true });
    }

    #[test]
    fn retention_is_bounded() {
        assert!(Retention::new(0, Transcripts::Mask).is_err());
        assert!(Retention::new(3651, Transcripts::Mask).is_err());
        assert_eq!(Retention::new(90, Transcripts::Delete).map(|r| r.days).ok(), Some(90));
    }
}
