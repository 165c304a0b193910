//! Parsers for everything that comes from outside. A value of one of these
//! types has been checked once, at the edge; nothing inside re-validates.

use crate::org::Role;
use crate::DomainError;

fn has_bad_control(s: &str) -> bool {
    s.chars().any(|c| c.is_control() && c != '\n' && c != '\t')
}

/// Whether `c` shows nothing: white space, a braille blank, or one of
/// Unicode's default-ignorable code points (DerivedCoreProperties.txt,
/// `Default_Ignorable_Code_Point`): format characters that only steer the
/// text around them (zero-width spaces and joiners, direction marks and
/// overrides, the byte-order mark, a soft hyphen), fillers, variation
/// selectors, tags.
fn is_invisible(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{034F}'
                | '\u{061C}'
                | '\u{115F}'
                | '\u{1160}'
                | '\u{2800}'
                | '\u{3164}'
                | '\u{FEFF}'
                | '\u{FFA0}'
        )
        || matches!(c, '\u{17B4}'..='\u{17B5}' | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}')
        || matches!(c, '\u{2060}'..='\u{206F}' | '\u{FE00}'..='\u{FE0F}' | '\u{FFF0}'..='\u{FFF8}')
        || matches!(c, '\u{1BCA0}'..='\u{1BCA3}' | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E0FFF}')
}

/// Whether `s` shows nothing at all ([`is_invisible`]).
fn is_blank(s: &str) -> bool {
    s.chars().all(is_invisible)
}

/// A chat line's text: not blank, at most `max` characters, no control
/// characters but newline and tab.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Body(String);

impl Body {
    /// Parses a message body with the configured length limit.
    pub fn parse(s: &str, max: usize) -> Result<Body, DomainError> {
        let trimmed = s.trim();
        if is_blank(trimmed) {
            return Err(DomainError::invalid("body", "it is empty"));
        }
        let n = trimmed.chars().count();
        if n > max {
            return Err(DomainError::invalid(
                "body",
                // A message, a note or an answer alike: "it", not "the message".
                format!("it is {n} characters long; the limit is {max}"),
            ));
        }
        if has_bad_control(trimmed) {
            return Err(DomainError::invalid("body", "it contains control characters"));
        }
        Ok(Body(trimmed.to_owned()))
    }

    /// A patron's question (the chat's first line, or the form's): as
    /// [`Body::parse`], refused under the field `question` with what to do.
    pub fn question(s: &str, max: usize) -> Result<Body, DomainError> {
        Body::parse(s, max).map_err(|_| {
            let n = s.trim().chars().count();
            let why = match n {
                _ if is_blank(s) => "type your question".to_owned(),
                n if n > max => format!("it is {n} characters long, and a question may have {max}: shorten it"),
                _ => "it holds control characters; type it again".to_owned(),
            };
            DomainError::invalid("question", why)
        })
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The text, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// A client message id: 1–64 visible ASCII characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientId(String);

impl ClientId {
    /// Parses a client message id.
    pub fn parse(s: &str) -> Result<ClientId, DomainError> {
        if s.is_empty() || s.len() > 64 || !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(DomainError::invalid("client_id", "must be 1 to 64 visible ASCII characters"));
        }
        Ok(ClientId(s.to_owned()))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An optional short single-line text (a patron's name): trimmed, empty means
/// absent, at most `max` characters, no control characters.
pub fn optional_line(field: &'static str, s: Option<&str>, max: usize) -> Result<Option<String>, DomainError> {
    let Some(s) = s.map(str::trim).filter(|s| !is_blank(s)) else {
        return Ok(None);
    };
    if s.chars().count() > max {
        return Err(DomainError::invalid(field, format!("at most {max} characters")));
    }
    if s.chars().any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')) {
        return Err(DomainError::invalid(field, "must be a single line of text"));
    }
    // Bidirectional embeddings, overrides and isolates turn the text that
    // follows around: a name could show as a colleague's, or as refdesk's.
    if s.chars().any(|c| matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')) {
        return Err(DomainError::invalid(field, "must not hold characters that reverse the text's direction"));
    }
    Ok(Some(s.to_owned()))
}

/// A name people tell each other apart by: a staff member's display name,
/// a library's, an institution's, a cooperative's. One line, as
/// [`optional_line`] takes it, with its runs of spaces made one (a page
/// shows them as one: "Liam  Main" would read as "Liam Main"); refused when
/// it holds a character that shows as nothing (a zero-width space, a soft
/// hyphen…), or a word that mixes the Latin, Greek and Cyrillic alphabets
/// (a Cyrillic "і" in a Latin "Liam"): either makes a name that reads as
/// another's. [`name_key`] is what names are compared by.
pub fn name(field: &'static str, s: Option<&str>, max: usize) -> Result<Option<String>, DomainError> {
    let Some(s) = optional_line(field, s, max)? else {
        return Ok(None);
    };
    if s.chars().any(invisible) {
        return Err(DomainError::invalid(field, "must not hold characters that show as nothing (a zero-width space…)"));
    }
    let words: Vec<&str> = s.split_whitespace().collect();
    if let Some(word) = words.iter().find(|w| mixes_alphabets(w)) {
        let why = format!("the word {word:?} mixes letters of the Latin, Greek or Cyrillic alphabets: write it in one");
        return Err(DomainError::invalid(field, why));
    }
    Ok(Some(words.join(" ")))
}

/// What names are compared by, so that two that read alike are the same:
/// compatibility forms made plain (NFKC: a full-width "Ｌiam" is "Liam"),
/// in lower case, without what shows as nothing, each letter as the one it
/// is drawn like (the skeleton of Unicode's UTS #39: a Cyrillic "Јое" is
/// "Joe", an Armenian "օ" an "o", a modifier letter "ʼ" an apostrophe);
/// then, of that, the accents of Latin, Greek and Cyrillic letters left out
/// ("Erin Índex", "Łukasz": in a list, an IM or a chat's line they are
/// missed; other scripts' marks are parts of their letters and stay),
/// apostrophes left out ("O'Brien" is "OBrien"), any other character that
/// is neither a letter nor a digit read as a space ("Erin-Index", "Erin.
/// Index" and "Erin Index." are "Erin Index"), and runs of spaces made
/// one. Names the skeleton takes for one another though a reader may not
/// ("rn" and "m") are the same too: a second one is refused, never a first
/// one changed.
pub fn name_key(s: &str) -> String {
    use unicode_normalization::char::is_combining_mark;
    use unicode_normalization::UnicodeNormalization;
    let plain: String = s.nfkc().filter(|c| !invisible(*c) && !joiner(*c)).collect::<String>().to_lowercase();
    let drawn: String = unicode_security::confusable_detection::skeleton(&plain).collect::<String>().to_lowercase();
    // Whether the last character kept was a letter of another script than
    // those three: a mark stays only after one.
    let mut after_other_letter = false;
    let mut folded = String::with_capacity(drawn.len());
    for c in drawn.nfd() {
        if is_combining_mark(c) {
            if after_other_letter {
                folded.push(c);
            }
            continue;
        }
        after_other_letter = c.is_alphanumeric() && alphabet(c).is_none();
        match c {
            '\'' | '`' => {}
            c if c.is_alphanumeric() => folded.push(c),
            _ => folded.push(' '),
        }
    }
    folded.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A character inside a name that shows as nothing ([`is_invisible`]), but
/// a space (runs of them are made one) and the [`joiner`]s.
fn invisible(c: char) -> bool {
    is_invisible(c) && !c.is_whitespace() && !joiner(c)
}

/// The zero-width non-joiner and joiner: invisible, but part of how names
/// are written in several scripts (Persian, Sinhala, Indic ones), so taken
/// in a name and left out when names are compared.
fn joiner(c: char) -> bool {
    matches!(c, '\u{200C}' | '\u{200D}')
}

/// Whether a word holds letters of more than one of the alphabets whose
/// letters look alike (Latin, Greek, Cyrillic).
fn mixes_alphabets(word: &str) -> bool {
    let mut seen = word.chars().filter_map(alphabet);
    seen.next().is_some_and(|first| seen.any(|a| a != first))
}

/// Which of the alphabets whose letters look alike a character is of:
/// Latin (0), Greek (1), Cyrillic (2); `None` for any other.
fn alphabet(c: char) -> Option<u8> {
    match c {
        'A'..='Z' | 'a'..='z' | '\u{00C0}'..='\u{024F}' | '\u{1E00}'..='\u{1EFF}' => Some(0),
        '\u{0370}'..='\u{03FF}' | '\u{1F00}'..='\u{1FFF}' => Some(1),
        '\u{0400}'..='\u{052F}' | '\u{1C80}'..='\u{1C8F}' | '\u{2DE0}'..='\u{2DFF}' | '\u{A640}'..='\u{A69F}' => {
            Some(2)
        }
        _ => None,
    }
}

/// An e-mail address, checked for shape only (one `@`, a dotted domain, no
/// spaces, at most 254 characters). Empty means absent.
pub fn optional_email(s: Option<&str>) -> Result<Option<String>, DomainError> {
    let Some(s) = s.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let bad = || DomainError::invalid("email", "not an e-mail address");
    if s.len() > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    let (local, domain) = s.split_once('@').ok_or_else(bad)?;
    // The everyday form only: a local part of plain characters and dots, a
    // domain of letters, digits, hyphens and dots. A quoted local part, an
    // escape or a comment would write one mailbox in endless ways, each
    // counted apart by the caps on mail to one address.
    let plain = |c: char| c.is_alphanumeric() || "!#$%&'*+/=?^_`{|}~-.".contains(c);
    if local.is_empty()
        || !local.chars().all(plain)
        || local.starts_with('.')
        || local.ends_with('.')
        || local.contains("..")
        || !domain.chars().all(|c| c.is_alphanumeric() || c == '-' || c == '.')
        || !domain.contains('.')
        || domain.starts_with('.')
        || domain.ends_with('.')
        || domain.contains("..")
        // No top-level domain is all digits: `a@1.2.3.4` is an address
        // literal without its brackets, which no mail server delivers
        // to, and which would point the relay at a machine of the
        // sender's choosing.
        || domain.rsplit('.').next().is_some_and(|top| top.chars().all(|c| c.is_ascii_digit()))
    {
        return Err(bad());
    }
    Ok(Some(s.to_owned()))
}

/// An address (as [`optional_email`] takes it) as mail servers take it: its
/// domain in ASCII (`exämple.de` → `xn--exmple-cua.de`, full-width letters
/// as the plain ones, upper case as lower), its local part as it is; `None`
/// when the domain has no such form (IDNA refuses it). A relay without
/// SMTPUTF8 refuses a domain in other letters.
pub fn ascii_address(address: &str) -> Option<String> {
    let (local, domain) = address.rsplit_once('@')?;
    let domain = idna::domain_to_ascii(domain).ok().filter(|d| !d.is_empty())?;
    Some(format!("{local}@{domain}"))
}

/// The mailbox an address (as [`optional_email`] takes it) reaches, as the
/// caps on mail to one address count it: letter case, a `+tag` and dots in
/// the local part make no difference, as at most providers, and the domain
/// is taken in its ASCII form (`exämple.de`, `xn--exmple-cua.de` and
/// full-width letters are one domain; `googlemail.com` is `gmail.com`). Two people whose addresses differ
/// only so share a cap, which is all it costs.
pub fn mailbox_key(address: &str) -> String {
    let address = address.trim().to_lowercase();
    let Some((local, domain)) = address.rsplit_once('@') else { return address };
    let local = local.split('+').next().unwrap_or_default().replace('.', "");
    let domain = idna::domain_to_ascii(domain).unwrap_or_else(|_| domain.to_owned());
    // Gmail's two domains are one mailbox (an attacker's trial doubled the
    // caps with them).
    let domain = if domain == "googlemail.com" { "gmail.com".to_owned() } else { domain };
    format!("{local}@{domain}")
}

/// Local time minus UTC, in minutes: −840 to 840 (UTC−14:00 to UTC+14:00,
/// every offset in use). A report's days and a transcript's times go by it.
pub fn utc_offset(minutes: i32) -> Result<i32, DomainError> {
    if (-840..=840).contains(&minutes) {
        Ok(minutes)
    } else {
        Err(DomainError::invalid("utc_offset", "give the offset from UTC in minutes, -840 to 840"))
    }
}

/// A sign-in name as typed: without the spaces around it and in lower case
/// (every sign-in name is a [`slug`]; a tablet's keyboard capitalises the
/// first letter, and " Liam" or "Liam" means `liam`).
pub fn sign_in_name(s: &str) -> String {
    s.trim().to_ascii_lowercase()
}

/// A sign-in name or library slug: 1–64 of `a-z 0-9 . _ -`.
pub fn slug(field: &'static str, s: &str) -> Result<String, DomainError> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if ok {
        Ok(s.to_owned())
    } else {
        Err(DomainError::invalid(field, "use 1 to 64 of a-z (lower case), 0-9, '.', '_' and '-'"))
    }
}

/// A new password for an account of `role`. Every account reads patrons'
/// names, addresses and transcripts, so none takes a common password or
/// one built from its username: a librarian's is 8 to 256 characters, an
/// admin's (who also manages accounts) as strong as the first admin's
/// ([`strong_password`]).
pub fn new_password<'a>(s: &'a str, username: &str, role: Role) -> Result<&'a str, DomainError> {
    if role >= Role::LibraryAdmin {
        return strong_password(s, username);
    }
    let bad = |why| Err(DomainError::invalid("password", why));
    if !(8..=256).contains(&s.chars().count()) {
        return bad(if s.is_empty() {
            "is empty"
        } else {
            "must be 8 to 256 characters (a librarian's; an admin's 12)"
        });
    }
    if distinct_chars(s) < 5 {
        return bad("needs at least 5 different characters");
    }
    if !username.is_empty() && s.to_lowercase().contains(&username.to_lowercase()) {
        return bad("must not contain the username");
    }
    if uncommon_part(s).chars().count() < 6 {
        return bad("is too close to a commonly used password");
    }
    Ok(s)
}

fn distinct_chars(s: &str) -> usize {
    let mut distinct: Vec<char> = s.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    distinct.len()
}

/// What is left of a password, in lower case, once the common words are
/// taken out: it must be a password of its own, not "password2024!".
fn uncommon_part(s: &str) -> String {
    let mut rest = s.to_lowercase();
    for word in COMMON {
        rest = rest.replace(word, "");
    }
    rest
}

/// Passwords too common to be worth a check: whatever else they look like,
/// they are among the first anyone tries.
const COMMON: &[&str] = &[
    "password",
    "passw0rd",
    "123456",
    "12345678",
    "qwerty",
    "letmein",
    "welcome",
    "admin",
    "library",
    "librarian",
    "iloveyou",
    "monkey",
    "dragon",
    "football",
    "baseball",
    "sunshine",
    "princess",
    "refdesk",
    // The keyboard's and the digits' runs that lists of leaked passwords
    // are full of (`abcd1234`, `1q2w3e4r`, `qwer1234`).
    "1q2w3e4r",
    "1234",
    "4321",
    "abcd",
    "qwer",
    "asdf",
    "zxcv",
];

/// The password of an account that runs a service (the first cooperative
/// admin): at least 12 characters, at least 6 different ones, not built
/// from the username or a common password, and not the demo password.
pub fn strong_password<'a>(s: &'a str, username: &str) -> Result<&'a str, DomainError> {
    let bad = |why| Err(DomainError::invalid("password", why));
    let n = s.chars().count();
    if !(12..=256).contains(&n) {
        // Said with whom it is for: an admin's password of 11 characters
        // would pass for a librarian.
        return bad(if n == 0 {
            "is empty"
        } else {
            "must be 12 to 256 characters (an admin's, or the first admin's)"
        });
    }
    if distinct_chars(s) < 6 {
        return bad("needs at least 6 different characters");
    }
    if !username.is_empty() && s.to_lowercase().contains(&username.to_lowercase()) {
        return bad("must not contain the username");
    }
    if uncommon_part(s).chars().count() < 8 {
        return bad("is too close to a commonly used password");
    }
    Ok(s)
}

/// How many sites one library's chat may be shown on ([`embed_sites`]).
pub const MAX_EMBED_SITES: usize = 20;

/// The web sites allowed to show a library's chat in a frame (its widget):
/// each an origin, `https://` or `http://` then a host name (its first
/// label may be `*`, for every subdomain) and an optional port, nothing
/// after it but a `/`. Written back in lower case, without the `/`, each
/// once, in the order given; at most [`MAX_EMBED_SITES`]. An empty list
/// means any site. Nothing else gets through: the list goes into a
/// `Content-Security-Policy` header as it is.
pub fn embed_sites(sites: &[String]) -> Result<Vec<String>, DomainError> {
    let too_many = || DomainError::invalid("sites", format!("at most {MAX_EMBED_SITES} sites"));
    // Counted once written back (a site given twice is one), but not
    // without end.
    if sites.len() > 5 * MAX_EMBED_SITES {
        return Err(too_many());
    }
    let mut out: Vec<String> = Vec::with_capacity(MAX_EMBED_SITES);
    // Every one refused is named at once (the first few), not the first
    // alone: an admin fixing a list of twenty should not learn of each in
    // turn.
    let mut refused: Vec<String> = Vec::new();
    for given in sites {
        match embed_site(given) {
            Some(site) if !out.contains(&site) => out.push(site),
            Some(_) => {}
            None => refused.push(format!("\"{}\"", given.trim().chars().take(80).collect::<String>())),
        }
    }
    if !refused.is_empty() {
        let (these, are) =
            if refused.len() == 1 { ("is not a site's address", "it") } else { ("are not sites' addresses", "each") };
        let more = refused.len().saturating_sub(5);
        let and_more = if more > 0 { format!(" and {more} more") } else { String::new() };
        return Err(DomainError::invalid(
            "sites",
            format!(
                "{}{and_more} {these}: write {are} as https://www.example.org (scheme, host, optional port; no \
                 path; a name in other letters than a-z in its xn-- form)",
                refused[..refused.len().min(5)].join(", ")
            ),
        ));
    }
    if out.len() > MAX_EMBED_SITES {
        return Err(too_many());
    }
    Ok(out)
}

/// Whether a page of `origin` (a request's `Origin` header) may show a
/// library's chat in a frame, the `sites` ([`embed_sites`]) being what the
/// chat's `Content-Security-Policy: frame-ancestors` names: any page when
/// there are none; else as a browser matches a source (the scheme, or
/// `http` for a page on `https`; the host, or any subdomain for `*.`; the
/// port, a missing one being the scheme's own). An origin that is not a
/// site's address (`null`, an IPv6 literal) matches no named site.
pub fn may_frame(sites: &[String], origin: &str) -> bool {
    if sites.is_empty() {
        return true;
    }
    let Some(page) = embed_site(origin) else { return false };
    let Some(page) = origin_parts(&page).filter(|p| !p.host.starts_with('*')) else { return false };
    sites.iter().filter_map(|s| origin_parts(s)).any(|site| {
        let scheme = site.scheme == page.scheme || (site.scheme == "http" && page.scheme == "https");
        let host = match site.host.strip_prefix('*') {
            Some(suffix) => page.host.ends_with(suffix) && page.host.len() > suffix.len(),
            None => site.host == page.host,
        };
        let port = site.port == page.port || (site.default_port && page.default_port);
        scheme && host && port
    })
}

/// A written-back site's scheme, host and port (the scheme's own when none).
struct OriginParts<'a> {
    scheme: &'a str,
    host: &'a str,
    port: u32,
    default_port: bool,
}

fn origin_parts(site: &str) -> Option<OriginParts<'_>> {
    let (scheme, rest) = site.split_once("://")?;
    let default = if scheme == "https" { 443 } else { 80 };
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) => (host, port.parse().ok()?),
        None => (rest, default),
    };
    Some(OriginParts { scheme, host, port, default_port: port == default })
}

/// Whether `host` is a host name as DNS writes it (and an IPv4 address
/// in dotted decimal): labels of ASCII letters, digits and hyphens, none
/// empty, none beginning or ending with a hyphen, at most 63 bytes each and
/// 253 in all. The last label is not all digits, unless the whole is an
/// IPv4 address: `1.2.3.999` names nothing. A name in other letters is
/// written in its `xn--` form.
pub fn host_name(host: &str) -> bool {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let numeric_top = host.rsplit('.').next().is_some_and(|top| top.bytes().all(|b| b.is_ascii_digit()));
    host.len() <= 253 && host.split('.').all(label_ok) && (!numeric_top || host.parse::<std::net::Ipv4Addr>().is_ok())
}

fn embed_site(given: &str) -> Option<String> {
    let lower = given.trim().to_ascii_lowercase();
    let (scheme, rest) = lower.split_once("://")?;
    if scheme != "https" && scheme != "http" {
        return None;
    }
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (rest, None),
    };
    // A port as a number, and none where it is the scheme's own: one site,
    // one spelling.
    let port = match port {
        Some(p) => {
            let n: u32 = if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            } else {
                p.parse().ok()?
            };
            if !(1..=65535).contains(&n) {
                return None;
            }
            let default = if scheme == "https" { 443 } else { 80 };
            (n != default).then_some(n)
        }
        None => None,
    };
    let (wild, named) = match host.strip_prefix("*.") {
        Some(named) => (true, named),
        None => (false, host),
    };
    // A wildcard stands for the subdomains of a name of two labels or more.
    if !host_name(named) || (wild && !named.contains('.')) {
        return None;
    }
    Some(match port {
        Some(port) => format!("{scheme}://{host}:{port}"),
        None => format!("{scheme}://{host}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_that_reads_as_another_is_refused_or_made_plain() {
        let name = |s: &str| name("display_name", Some(s), 100);
        assert_eq!(name("  Cora   City  ").unwrap().as_deref(), Some("Cora City"), "runs of spaces made one");
        assert_eq!(name("Liam\u{00A0}\u{3000}Main").unwrap().as_deref(), Some("Liam Main"));
        for hidden in ["Liam\u{200B}Main", "Li\u{00AD}am Main", "Liam Main\u{FEFF}", "Liam\u{2060}", "Liam\u{2800}Main"]
        {
            assert!(name(hidden).is_err(), "{hidden:?}");
        }
        // A Cyrillic "і" in a Latin word; a Greek omicron in one.
        assert!(name("L\u{0456}am Main").is_err());
        assert!(name("Mari\u{03BF} Rossi").is_err());
        // One alphabet a word, whichever, and names of other scripts, pass.
        // The joiners some scripts write names with (Persian, Sinhala) pass.
        let joined = ["می\u{200C}خواهم", "ශ්\u{200D}රී"];
        for fine in ["Лиам Майн", "Ζωή Παππά", "Ann Петрова", "José Núñez-Ortiz", "李小龍", "O'Brien (Law)"]
            .iter()
            .chain(&joined)
        {
            assert_eq!(name(fine).unwrap().as_deref(), Some(*fine), "{fine:?}");
        }
        assert_eq!(name("   ").unwrap(), None);
        // Compared as a reader tells them apart.
        let key = |s: &str| name_key(s);
        assert_eq!(key("Liam Main"), key("liam  MAIN"));
        assert_eq!(key("Liam Main"), key("\u{FF2C}iam Main"), "a full-width letter");
        assert_eq!(key("Liam Main"), key("Liam\u{200B} Main"), "what shows as nothing");
        assert_eq!(key("Liam Main"), key("Li\u{200D}am Main"), "a joiner");
        assert_ne!(key("Liam Main"), key("Liam Maine"));
        // Whole words of another script drawn alike.
        assert_eq!(key("Joe Main"), key("\u{0408}\u{043E}\u{0435} Main"), "a Cyrillic Јое");
        assert_eq!(key("Joe Main"), key("J\u{0585}e Main"), "an Armenian օ");
        assert_eq!(key("Ada"), key("\u{0391}\u{0501}\u{0430}"), "Greek, Cyrillic");
        // Punctuation and the accents of Latin, Greek and Cyrillic letters
        // are missed at a glance (a library admin took "Erin Index." and
        // "Erin Índex" beside a cooperative admin's "Erin Index").
        for alike in ["Erin Index.", "Erin-Index", "Erin. Index", "Erin Índex", "ERIN  ÍNDEX"] {
            assert_eq!(key(alike), key("Erin Index"), "{alike:?}");
        }
        assert_eq!(key("José Núñez"), key("Jose Nunez"));
        assert_eq!(key("Zoë"), key("Zoe"));
        assert_eq!(key("Ёлка"), key("Елка"), "a Cyrillic diaeresis");
        assert_ne!(key("Erin Index (cooperative admin)"), key("Erin Index"), "words added are read");
        // What the skeleton draws as punctuation is punctuation (a modifier
        // letter apostrophe, a modifier minus, an Armenian full stop), and
        // an accent on a letter it draws as a Latin one is an accent.
        assert_eq!(key("J\u{0585}\u{0301}e"), key("Joe"), "an Armenian օ with an accent");
        for alike in ["Erin Index\u{02BC}", "Erin\u{02D7}Index", "Erin Index\u{0589}"] {
            assert_eq!(key(alike), key("Erin Index"), "{alike:?}");
        }
        assert_eq!(key("Łukasz"), key("Lukasz"));
        assert_eq!(key("O'Brien"), key("OBrien"));
        assert_eq!(key("O\u{2019}Brien"), key("O'Brien"), "a right single quote");
        assert_ne!(key("Лиам"), key("Liam"));
        // Other scripts' marks are parts of their letters: कि is not क.
        assert_ne!(key("किरण"), key("करण"));
        assert_ne!(key("ශ්රී"), key("ශරී"));
    }

    /// The widget asks whether its page may frame the chat: the answer
    /// agrees with how a browser matches `frame-ancestors` sources.
    #[test]
    fn a_page_may_frame_the_chat_as_the_named_sites_say() {
        let sites = embed_sites(&[
            "https://www.riverside.example.org".into(),
            "https://*.riverside.example.edu".into(),
            "http://intranet.example.org:8080".into(),
            "http://old.example.org".into(),
        ])
        .unwrap();
        for (origin, may) in [
            ("https://www.riverside.example.org", true),
            ("https://WWW.Riverside.Example.org", true),
            ("https://www.riverside.example.org:443", true),
            ("http://www.riverside.example.org", false),
            ("https://www.riverside.example.org:8443", false),
            ("https://riverside.example.org", false),
            ("https://evil-www.riverside.example.org", false),
            ("https://www.riverside.example.org.evil.test", false),
            ("https://law.riverside.example.edu", true),
            ("https://a.b.riverside.example.edu", true),
            ("https://riverside.example.edu", false),
            ("https://xriverside.example.edu", false),
            ("http://intranet.example.org:8080", true),
            ("https://intranet.example.org:8080", true),
            ("http://intranet.example.org", false),
            ("http://old.example.org", true),
            ("https://old.example.org", true),
            ("https://old.example.org:8443", false),
            ("null", false),
            ("", false),
            ("http://[::1]:8080", false),
            ("https://*.riverside.example.edu", false),
        ] {
            assert_eq!(may_frame(&sites, origin), may, "{origin}");
        }
        assert!(may_frame(&[], "null"), "no sites named: any page");
        assert!(may_frame(&[], "https://anywhere.example.net"));
    }

    #[test]
    fn a_host_name_is_written_as_dns_writes_it() {
        for good in ["localhost", "ask.example.org", "xn--exmple-cua.de", "127.0.0.1", "a-b.c0.org", "example.co.uk"] {
            assert!(host_name(good), "{good}");
        }
        let long = format!("{}.org", vec!["a".repeat(63); 4].join("."));
        for bad in [
            "",
            ".",
            "a..org",
            "-a.org",
            "a-.org",
            "a.org.",
            "a_b.org",
            "ex\u{e4}mple.org",
            "1.2.3.999",
            "a.123",
            &long,
        ] {
            assert!(!host_name(bad), "{bad}");
        }
        assert!(!host_name(&format!("{}.org", "a".repeat(64))), "a label of 64 bytes");
    }

    /// Only origins get through, in one spelling each: nothing that could
    /// end the header's directive or add another source to it.
    #[test]
    fn an_embedding_site_is_an_origin_and_nothing_more() {
        let sites = |v: &[&str]| embed_sites(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            sites(&[" HTTPS://www.Riverside.example.org/ ", "http://127.0.0.1:8080", "https://*.example.edu"]).unwrap(),
            ["https://www.riverside.example.org", "http://127.0.0.1:8080", "https://*.example.edu"]
        );
        assert_eq!(
            sites(&["https://a.org", "https://A.org/", "https://a.org:443", "http://a.org:80", "http://a.org:0080"])
                .unwrap(),
            ["https://a.org", "http://a.org"],
            "each once, the scheme's port left out"
        );
        assert_eq!(sites(&["https://a.org:08443"]).unwrap(), ["https://a.org:8443"]);
        assert!(sites(&[]).unwrap().is_empty(), "an empty list: any site");
        for bad in [
            "*",
            "www.example.org",
            "ftp://example.org",
            "https://example.org/chat",
            "https://example.org; script-src *",
            "https://example.org https://evil.example",
            "https://example.org,https://evil.example",
            "https://*",
            "https://*.org",
            "https://a.*.org",
            "https://example.org:0",
            "https://example.org:70000",
            "https://example.org:",
            "https://-a.org",
            "https://exa mple.org",
            "https://user@example.org",
            "https://example.org?x=1",
            "https://",
            "'self'",
            "https://ex\u{e4}mple.org",
            "https://a..org",
            "https://-bad-.example.org",
            "https://1.2.3.999",
            "https://a.org.",
        ] {
            let err = sites(&[bad]).unwrap_err();
            assert!(matches!(err, DomainError::Invalid { field: "sites", .. }), "{bad:?}: {err:?}");
        }
        // Every refused one is named, the first five at most.
        let err = sites(&["not a url", "https://a.org", "www.b.org"]).unwrap_err().to_string();
        assert!(err.contains("\"not a url\", \"www.b.org\" are not sites' addresses"), "{err}");
        let eight: Vec<String> = (0..8).map(|i| format!("bad{i}")).collect();
        let err = embed_sites(&eight).unwrap_err().to_string();
        assert!(err.contains("\"bad4\" and 3 more are not") && !err.contains("bad5"), "{err}");
        let many: Vec<String> = (0..=MAX_EMBED_SITES).map(|i| format!("https://s{i}.example.org")).collect();
        assert!(embed_sites(&many).is_err(), "at most {MAX_EMBED_SITES}");
        let mut twice = many[..MAX_EMBED_SITES].to_vec();
        twice.extend(many[..MAX_EMBED_SITES].iter().map(|s| s.to_uppercase()));
        assert_eq!(embed_sites(&twice).unwrap().len(), MAX_EMBED_SITES, "counted once written back");
    }

    /// A name is one line that reads the way it is written: no line or
    /// paragraph separator, no character that turns the text around (a
    /// name that would show as a colleague's, or as refdesk's). Letters of
    /// every script, and the joiners some write names with, stay.
    #[test]
    fn a_name_is_one_line_that_reads_as_written() {
        let line = |s: &str| optional_line("name", Some(s), 100);
        assert_eq!(line(" Ann Archer ").unwrap().as_deref(), Some("Ann Archer"));
        assert!(line("مریم\u{200C}ها").unwrap().is_some(), "a zero-width non-joiner, as Persian writes names");
        for bad in ["Ann\nArcher", "Ann\u{2028}Archer", "A\u{2029}B", "\u{202E}rehcrA nnA", "a\u{2066}b\u{2069}"] {
            assert!(line(bad).is_err(), "{bad:?}");
        }
    }

    /// A line that shows nothing (zero-width spaces, direction marks, a
    /// byte-order mark) is empty; the same characters within text stay
    /// (an emoji's joiners, Persian's non-joiner).
    #[test]
    fn a_line_of_invisible_characters_only_is_empty() {
        for blank in [
            "\u{200B}",
            "\u{202E}\u{200B}\u{FEFF}",
            " \u{2060}\u{3164} ",
            "\u{00AD}\u{2066}\u{2069}",
            "\u{061C}\u{2800}\u{FE0F}\u{E0041}",
        ] {
            assert!(Body::parse(blank, 100).is_err(), "{blank:?}");
            assert_eq!(optional_line("name", Some(blank), 100).unwrap(), None, "{blank:?}");
        }
        for text in ["👩\u{200D}👩\u{200D}👧", "می\u{200C}خواهم", "ok\u{200B}"] {
            assert_eq!(Body::parse(text, 100).unwrap().as_str(), text);
        }
    }

    #[test]
    fn a_librarians_password_is_not_common_nor_the_username_and_an_admins_is_strong() {
        for weak in [
            "short",
            "password",
            "12345678",
            "Password2024!",
            "annarcher1",
            "library-123",
            "11111111",
            "aaaaaaaa",
            "abcd1234",
            "1q2w3e4r",
            "qwer1234",
            "00000000",
        ] {
            assert!(new_password(weak, "annarcher", Role::Librarian).is_err(), "{weak} accepted");
        }
        for ok in ["hunter2-otter", "tz8q!mvw"] {
            assert_eq!(new_password(ok, "annarcher", Role::Librarian), Ok(ok));
        }
        for role in [Role::LibraryAdmin, Role::InstitutionAdmin, Role::CooperativeAdmin] {
            assert!(new_password("tz8q!mvw", "annarcher", role).is_err(), "a short admin password for {role:?}");
            assert!(new_password("river bend otter 1889", "annarcher", role).is_ok());
        }
    }

    #[test]
    fn a_service_password_must_be_long_varied_and_uncommon() {
        for weak in
            ["short", "aaaaaaaaaaaaaaaa", "abcabcabcabcabc", "Password2024!", "annarcher-secret-1", "refdesk-demo"]
        {
            assert!(strong_password(weak, "annarcher").is_err(), "{weak} accepted");
        }
        for strong in ["correct horse battery", "Tz8#q!mV29xLw", "river bend otter 1889"] {
            assert_eq!(strong_password(strong, "annarcher"), Ok(strong));
        }
    }
    use proptest::prelude::*;

    #[test]
    fn bodies_are_trimmed_and_limited() {
        assert_eq!(Body::parse("  hi \n", 10).map(Body::into_string), Ok("hi".into()));
        assert!(Body::parse("   ", 10).is_err());
        assert!(Body::parse(&"é".repeat(11), 10).is_err());
        assert!(Body::parse(&"é".repeat(10), 10).is_ok());
        assert!(Body::parse("a\u{0}b", 10).is_err());
        assert!(Body::parse("a\nb\tc", 10).is_ok());
    }

    #[test]
    fn emails_are_checked_for_shape() {
        assert_eq!(optional_email(Some(" a@b.org ")), Ok(Some("a@b.org".into())));
        assert_eq!(optional_email(Some("")), Ok(None));
        assert_eq!(optional_email(None), Ok(None));
        for bad in ["a", "a@b", "@b.org", "a@b..org", "a b@c.org", "a@b@c.org", "a@.org"] {
            assert!(optional_email(Some(bad)).is_err(), "{bad}");
        }
        // One mailbox written in other ways than its everyday form.
        for odd in [
            r#""target"@example.net"#,
            r#""\target"@example.net"#,
            r"t\arget@example.net",
            "(x)t@example.net",
            "t@[127.0.0.1]",
            ".t@example.net",
            "t.@example.net",
            "t..u@example.net",
            "t@exa_mple.net",
            "t@1.2.3.4",
            "t@example.123",
        ] {
            assert!(optional_email(Some(odd)).is_err(), "{odd}");
        }
        for fine in ["o'brien@example.ie", "first.last+lib@example.org", "zoë@exämple.de", "a-b_c@sub.example.co.uk"]
        {
            assert!(optional_email(Some(fine)).is_ok(), "{fine}");
        }
    }

    #[test]
    fn a_mailbox_is_counted_once_however_its_address_is_written() {
        let key = mailbox_key("target@example.net");
        for same in
            ["Target@Example.NET", "target+a@example.net", "tar.get@example.net", " t.a.r.g.e.t+x+y@example.net "]
        {
            assert_eq!(mailbox_key(same), key, "{same}");
        }
        assert_ne!(mailbox_key("target@example.org"), key);
        assert_ne!(mailbox_key("targe@example.net"), key);
        // One domain, however its name is written.
        assert_eq!(mailbox_key("target@ｅｘａｍｐｌｅ.net"), key, "full-width letters");
        assert_eq!(mailbox_key("a@exämple.de"), mailbox_key("a@xn--exmple-cua.de"));
        // Sent with the domain in ASCII, the local part as typed.
        assert_eq!(ascii_address("Zoë@Exämple.de").as_deref(), Some("Zoë@xn--exmple-cua.de"));
        assert_eq!(ascii_address("x@ｖｉｃｔｉｍ.ｏｒｇ").as_deref(), Some("x@victim.org"));
        assert_eq!(ascii_address("x@example.org").as_deref(), Some("x@example.org"));
        assert_eq!(ascii_address("x@xn--.org"), None, "no domain IDNA takes");
        assert_eq!(mailbox_key("a@EXÄMPLE.de"), mailbox_key("a@exämple.de"));
        assert_eq!(mailbox_key("t.arget@googlemail.com"), mailbox_key("target@gmail.com"), "Gmail's other domain");
    }

    #[test]
    fn client_ids_and_slugs() {
        assert!(ClientId::parse("c-1").is_ok());
        assert!(ClientId::parse("").is_err());
        assert!(ClientId::parse("a b").is_err());
        assert!(ClientId::parse(&"x".repeat(65)).is_err());
        assert!(slug("username", "ann.lee").is_ok());
        assert!(slug("username", "Ann").is_err());
    }

    #[test]
    fn a_refused_question_says_why() {
        let why = |s: &str| match Body::question(s, 10) {
            Err(DomainError::Invalid { field: "question", reason }) => reason,
            other => panic!("{other:?}"),
        };
        assert_eq!(why(" \u{200B} "), "type your question");
        assert_eq!(why("a question too long"), "it is 19 characters long, and a question may have 10: shorten it");
        assert!(why("a\u{7}b").contains("control characters"));
        assert_eq!(Body::question(" ten chars!", 10).map(Body::into_string), Ok("ten chars!".into()));
    }

    proptest! {
        #[test]
        fn body_parse_never_panics_and_respects_the_limit(s in ".{0,300}", max in 1usize..200) {
            if let Ok(b) = Body::parse(&s, max) {
                prop_assert!(b.as_str().chars().count() <= max);
                prop_assert!(!b.as_str().trim().is_empty());
            }
        }
    }
}
