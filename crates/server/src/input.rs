//! Input parsing shared by the REST API and the WebSocket: what both edges
//! take from a client and turn into domain values the same way, with the
//! same error — the kind of a message, the sign-in cookie. (Each edge parses its own envelope — a JSON body, a frame —
//! and both come here for what they share.)

use crate::error::ApiError;
use axum::http::header::COOKIE;
use axum::http::{HeaderMap, StatusCode};
use refdesk_domain::chat::MessageKind;
use serde::Deserialize;

/// The kinds of message a person may send: a chat line, or a librarian note
/// (staff only; its audience is always staff). Answers and system lines are
/// written by refdesk itself. Only its schema is used as such: the
/// client's text is parsed by [`sendable_kind`], so that a refusal says
/// what to send instead.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SendKind {
    /// A chat line everyone in the chat sees.
    Message,
    /// A librarian note: staff only, always (B4).
    Note,
}

/// Parses a message kind a person may send (`message` when none is named).
pub fn sendable_kind(kind: Option<&str>) -> Result<MessageKind, ApiError> {
    match kind.unwrap_or("message") {
        "message" => Ok(MessageKind::Message),
        "note" => Ok(MessageKind::Note),
        other => Err(ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid",
            message: format!("invalid kind: {other:?}; send \"message\" or \"note\""),
            field: Some("kind".into()),
        }),
    }
}

/// The staff sign-in cookie's name (set by `POST /api/login`, read by every
/// staff route and the staff WebSocket) over plain http.
pub const COOKIE_NAME: &str = "refdesk_session";
/// Its name when cookies are `Secure` (https): a browser keeps a `__Host-`
/// cookie only if it is `Secure`, for `Path=/` and set by this very host
/// (no `Domain`). A page on a sibling host of the same domain
/// (`students.example.edu` beside `ask.example.edu`) can set a cookie of
/// the plain name for the whole domain, which the browser would send
/// first, signing the victim's desk in as the attacker's account; it cannot
/// set this one, and refdesk then reads no other.
pub const SECURE_COOKIE_NAME: &str = "__Host-refdesk_session";

/// The sign-in cookie's name: see [`SECURE_COOKIE_NAME`].
pub fn cookie_name(secure: bool) -> &'static str {
    if secure {
        SECURE_COOKIE_NAME
    } else {
        COOKIE_NAME
    }
}

/// The cookie of the browsers staff signed in from (`refdesk_app::devices`),
/// by the same rule as the sign-in cookie's ([`SECURE_COOKIE_NAME`]): a
/// sibling host cannot plant one over https.
pub fn device_cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-refdesk_device"
    } else {
        "refdesk_device"
    }
}

/// The session token in the request's cookies, if any (the cookie of
/// [`cookie_name`]`(secure)`).
pub fn cookie_token(headers: &HeaderMap, secure: bool) -> Option<&str> {
    cookie(headers, cookie_name(secure))
}

/// The value of the request's first cookie named `name`, if any.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether a percent-encoded URL part (a path, a query string) decodes to a
/// control character (`%00`–`%1F`, `%7F`). The HTTP parser already refuses
/// raw ones.
pub fn has_encoded_control(s: &str) -> bool {
    let b = s.as_bytes();
    (0..b.len()).any(|i| {
        b[i] == b'%'
            && b.get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .is_some_and(|c| c < 0x20 || c == 0x7f)
    })
}

/// Whether a percent-encoded query string decodes to bytes that are not
/// UTF-8 (`%ED%A0%80`, a lone surrogate). The query's parser would read
/// them as U+FFFD (a search for `q=%ED%A0%80` searched for "\u{FFFD}").
pub fn has_encoded_non_utf8(s: &str) -> bool {
    let b = s.as_bytes();
    let mut decoded = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match hex.and_then(|h| u8::from_str_radix(h, 16).ok()).filter(|_| b[i] == b'%') {
            Some(c) => {
                decoded.push(c);
                i += 3;
            }
            None => {
                decoded.push(b[i]);
                i += 1;
            }
        }
    }
    std::str::from_utf8(&decoded).is_err()
}

/// A `422 invalid` naming the field and why.
pub fn invalid(field: &str, why: impl std::fmt::Display) -> ApiError {
    ApiError {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        code: "invalid",
        message: format!("invalid {field}: {why}"),
        field: Some(field.to_owned()),
    }
}

/// A field that must be there, `null` or a value: `#[serde(deserialize_with
/// = "crate::input::nullable")]` on an `Option`. serde takes a missing
/// `Option` as `null`, and for a setting whose `null` clears it (a
/// retention period: personal data kept for good; a closing notice: the
/// chat open again) a body that leaves it out would clear it unasked; with
/// this, it is `422 bad_json`, as any other missing field.
pub fn nullable<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    Option::<T>::deserialize(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_control_characters_are_found_and_nothing_else() {
        for bad in ["a%00b", "%0A", "x%1f", "%7F", "q=%09"] {
            assert!(has_encoded_control(bad), "{bad}");
        }
        for good in ["", "riverside-main", "a%20b", "%C3%A9", "100%", "%2", "%zz", "q=caf%C3%A9"] {
            assert!(!has_encoded_control(good), "{good}");
        }
    }

    #[test]
    fn encoded_bytes_that_are_not_utf8_are_found_and_nothing_else() {
        for bad in ["%ED%A0%80", "q=caf%C3", "%FF", "a=%C3%28", "q=%F0%9F%98"] {
            assert!(has_encoded_non_utf8(bad), "{bad}");
        }
        for good in ["", "q=caf%C3%A9", "a%20b", "100%", "%2", "%zz", "q=%F0%9F%98%80", "q=é"] {
            assert!(!has_encoded_non_utf8(good), "{good}");
        }
    }

    #[test]
    fn a_person_sends_messages_and_notes_and_nothing_else() {
        assert_eq!(sendable_kind(None).unwrap(), MessageKind::Message);
        assert_eq!(sendable_kind(Some("note")).unwrap(), MessageKind::Note);
        for refused in ["answer", "system", "", "Note"] {
            let e = sendable_kind(Some(refused)).unwrap_err();
            assert_eq!((e.status.as_u16(), e.code), (422, "invalid"), "{refused}");
        }
    }
}
