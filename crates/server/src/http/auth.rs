//! Staff sign-in: username and password → an HttpOnly, SameSite=Strict
//! cookie holding a random token (only its digest is stored).

use crate::error::ErrorBody;
use crate::error::{ApiError, Json};
use crate::http::patron::ClientIp;
use crate::http::views::SignedOut;
use crate::limit::{Credential, KnownDevices, Refused};
use crate::AppState;
use axum::extract::{FromRequestParts, State};
use axum::http::header::SET_COOKIE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{AppendHeaders, IntoResponse, Response};
use refdesk_app::AppError;
use refdesk_domain::org::Staff;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use crate::input::{cookie_name, cookie_token};

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(login)).routes(routes!(logout)).routes(routes!(me)).routes(routes!(my_password))
}

/// A staff member's credentials.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Login {
    username: String,
    password: String,
}

/// Staff sign-in: sets the HttpOnly session cookie.
///
/// The cookie (`refdesk_session`) signs in every staff operation and the
/// staff WebSocket; it is `SameSite=Strict`, and when cookies are `Secure`
/// (an https public URL, or `secure_cookies`) it is
/// `__Host-refdesk_session` (`crate::input::SECURE_COOKIE_NAME`). It also
/// sets `refdesk_device` (`__Host-refdesk_device`): the browser's signed
/// tokens of the accounts that signed in there lately, whose attempts at
/// those accounts have a rate limit of their own (`refdesk_app::devices`).
#[utoipa::path(post, path = "/api/login", tag = "sign-in",
    request_body = Login,
    responses(
        (status = 200, description = "signed in; the account's oldest sign-ins past `limits.sign_ins_per_account` (20) end", body = Staff,
            headers(("set-cookie" = String, description = "refdesk_session=…; HttpOnly; SameSite=Strict (over https __Host-refdesk_session=…; …; Secure); and refdesk_device=label:issued:hmac[~…]; HttpOnly; SameSite=Strict; Max-Age=2592000 (__Host-refdesk_device), the accounts that signed in at this browser lately"))),
        (status = 401, description = "`unauthenticated`: wrong username or password, or a name that is no sign-in name", body = ErrorBody),
        (status = 403, description = "`forbidden`: the demo password from another machine; or the right password of a disabled account (\"this account is disabled: …\"; a wrong one is `401` as for anyone)", body = ErrorBody),
        (status = 429, description = "`rate_limited`: too many sign-in attempts from this address, or from this browser at an account that signed in at it lately (`Retry-After`); `busy`: 64 sign-ins are already being checked on this node (from a network the account signed in from in the last 30 days: 16 more places); `too_many_attempts`: this account's attempts for the hour (`limits.failed_logins_per_account_per_hour`, 20 on each node) are spent, from any network it did not sign in from in the last 30 days", body = ErrorBody),
    ))]
async fn login(
    State(state): State<AppState>,
    peer: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    devices: Option<axum::Extension<KnownDevices>>,
    headers: HeaderMap,
    Json(body): Json<Login>,
) -> Result<Response, Response> {
    let username = refdesk_domain::input::sign_in_name(&body.username);
    let peer = peer.map(|p| p.0 .0.ip());
    let ip = peer.map(|p| crate::limit::client_ip_of(p, &headers, &state.trusted_proxies));
    // From a browser the account signed in from: not taken by the
    // middleware (see `crate::limit::KnownDevices`).
    if let Some(axum::Extension(devices)) = &devices {
        devices.take(&state, &username, ip).map_err(IntoResponse::into_response)?;
    }
    // No account's name holds a control character, and PostgreSQL cannot
    // even look up one with a NUL: it signs nobody in, like any unknown name.
    if username.chars().any(char::is_control) {
        let message = WRONG_PASSWORD.into();
        return Err(ApiError { status: StatusCode::UNAUTHORIZED, code: "unauthenticated", message, field: None }
            .into_response());
    }
    let local = is_local(peer, &headers, &state);
    let login = state.app.login_from(&username, &body.password, local, ip);
    let (token, staff) = login.await.map_err(|e| {
        // What an operator watches for (docs/operations.md, "Abuse"): an
        // account's guesses spent, the node's line of hashes full.
        if let AppError::Domain(refdesk_domain::DomainError::Limited { code, .. }) = &e {
            match *code {
                "too_many_attempts" => state.metrics.limited("login_account"),
                "busy" => state.metrics.limited("login_busy"),
                _ => {}
            }
        }
        wrong_password(e).into_response()
    })?;
    let cookie = sign_in_cookie(&state, &token, state.app.limits().login_hours * 3600);
    state.limiter.remember(Credential::Staff, &token);
    let device_name = crate::input::device_cookie_name(state.secure_cookies);
    let device = state.app.device_cookie(crate::input::cookie(&headers, device_name), &staff.username).await;
    let mut response = (AppendHeaders([(SET_COOKIE, cookie)]), axum::Json(staff)).into_response();
    match device {
        Ok(device) => {
            let max_age = refdesk_app::devices::DEVICE_FOR / 1000;
            let set = set_cookie(&state, device_name, &device, max_age as u64);
            if let Ok(value) = axum::http::HeaderValue::from_str(&set) {
                response.headers_mut().append(SET_COOKIE, value);
            }
        }
        // Signed in all the same: the next attempt from this browser
        // counts by address, as without the cookie.
        Err(e) => tracing::warn!(error = %e, "no known-browser cookie could be made for a sign-in"),
    }
    Ok(response)
}

/// The `Set-Cookie` value of the sign-in cookie holding `token` for
/// `max_age` seconds (an empty token for 0: cleared), by its name when
/// cookies are `Secure` or not (see `crate::input::SECURE_COOKIE_NAME`).
fn sign_in_cookie(state: &AppState, token: &str, max_age: u64) -> String {
    set_cookie(state, cookie_name(state.secure_cookies), token, max_age)
}

/// The `Set-Cookie` value of refdesk's cookie `name` holding `value` for
/// `max_age` seconds: HttpOnly, SameSite=Strict, for the whole site, and
/// Secure when cookies are.
fn set_cookie(state: &AppState, name: &str, value: &str, max_age: u64) -> String {
    let secure = if state.secure_cookies { "; Secure" } else { "" };
    format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
}

/// The use case refuses a wrong username or password as a rule would
/// (`Forbidden`); over HTTP that is `401`, as for any credentials that do
/// not sign anyone in. (`403` stays for a refusal that does not depend on
/// the credentials: the demo password from another machine.)
fn wrong_password(e: AppError) -> ApiError {
    match e {
        AppError::Domain(refdesk_domain::DomainError::Forbidden(why)) if why == WRONG_PASSWORD => {
            ApiError { status: StatusCode::UNAUTHORIZED, code: "unauthenticated", message: why.into(), field: None }
        }
        other => other.into(),
    }
}

/// What [`refdesk_app::App::login`] says of a wrong username or password.
const WRONG_PASSWORD: &str = "wrong username or password";

/// Whether a request comes from this machine itself, talking to refdesk
/// directly: from a loopback address that is not a known proxy, without a
/// proxy's headers, addressed to a loopback name (not a public name that a
/// proxy, a tunnel or a rebinding DNS maps to this machine), and with no
/// public URL set (a service with one is deployed).
fn is_local(peer: Option<std::net::IpAddr>, headers: &HeaderMap, state: &AppState) -> bool {
    from_this_machine(peer, headers, &state.trusted_proxies) && state.public_url.is_none()
}

/// Whether a request comes from this machine itself, talking to refdesk
/// directly: from a loopback address that is not a known proxy, without a
/// proxy's headers, addressed to a loopback name.
pub(crate) fn from_this_machine(
    peer: Option<std::net::IpAddr>,
    headers: &HeaderMap,
    trusted_proxies: &[crate::proxy::ProxyNet],
) -> bool {
    let Some(peer) = peer else { return false };
    let host = headers.get(axum::http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(n, _)| n),
    };
    let loopback_name =
        name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    let forwarded = ["x-forwarded-for", "forwarded", "x-real-ip"].iter().any(|h| headers.contains_key(*h));
    (peer.is_loopback() || peer.to_canonical().is_loopback())
        && !crate::limit::is_trusted(peer, trusted_proxies)
        && !forwarded
        && loopback_name
}

/// Signs out.
///
/// Without a cookie, or with one that signs nobody in (expired, already
/// signed out), it is `401` like any staff route: nothing was signed out,
/// and a client that says so is not told it was. The stale cookie is
/// cleared either way.
#[utoipa::path(post, path = "/api/logout", tag = "sign-in", security(("staff" = [])),
    responses((status = 200, description = "signed out; the cookie is cleared, and the browser's cache of this site (`Clear-Site-Data: \"cache\"`)", body = SignedOut)))]
async fn logout(State(state): State<AppState>, ClientIp(ip): ClientIp, headers: HeaderMap) -> Response {
    let clear = AppendHeaders([
        (SET_COOKIE, sign_in_cookie(&state, "", 0)),
        // What the browser kept of the desk's pages (a shared computer at
        // the desk): the page itself removes its unsent replies.
        (axum::http::HeaderName::from_static("clear-site-data"), "\"cache\"".to_owned()),
    ]);
    let Some(token) = cookie_token(&headers, state.secure_cookies) else {
        return ApiError::from(AppError::Unauthenticated).into_response();
    };
    let signed_out = async {
        crate::limit::checked(&state, ip, (Credential::Staff, token), state.app.staff_for_token(token)).await?;
        state.app.logout(token).await.map_err(Refused::Failed)?;
        state.limiter.forget(Credential::Staff, token);
        Ok(())
    };
    match signed_out.await {
        Ok(()) => (clear, axum::Json(SignedOut { signed_out: true })).into_response(),
        // Not looked up, so not signed out: the cookie stays, to try again.
        Err(e @ Refused::TooMany(_)) => e.into_response(),
        Err(e) => (clear, e).into_response(),
    }
}

/// The signed-in staff member.
#[utoipa::path(get, path = "/api/me", tag = "sign-in", security(("staff" = [])),
    responses((status = 200, description = "who is signed in", body = Staff)))]
async fn me(CurrentStaff(staff): CurrentStaff) -> axum::Json<Staff> {
    axum::Json(staff)
}

/// One's own new password, with the current one.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewPassword {
    /// The password one signs in with now.
    current: String,
    /// The new one: as for a new account of one's role.
    password: String,
}

/// Changes one's own password (any role). Every sign-in of the account
/// ends, this one too: the cookie is cleared, and one signs in again with
/// the new password.
#[utoipa::path(post, path = "/api/me/password", tag = "sign-in", security(("staff" = [])),
    request_body = NewPassword,
    responses(
        (status = 200, description = "changed; signed out everywhere, the cookie cleared", body = SignedOut),
        (status = 403, description = "`forbidden`: the current password is not right (counted against the account's attempts)", body = ErrorBody),
        (status = 422, description = "`invalid`: the new password is not one the account's role may have (`field`: `password`)", body = ErrorBody),
        (status = 429, description = "`too_many_attempts`: the account's attempts for the hour (`limits.failed_logins_per_account_per_hour`) are spent; `busy`: the node's line of password checks is full", body = ErrorBody),
    ))]
async fn my_password(
    State(state): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Json(body): Json<NewPassword>,
) -> Result<Response, ApiError> {
    state.app.change_own_password(&staff, &body.current, &body.password).await?;
    let clear = AppendHeaders([(SET_COOKIE, sign_in_cookie(&state, "", 0))]);
    Ok((clear, axum::Json(SignedOut { signed_out: true })).into_response())
}

/// The signed-in staff member; 401 without a valid cookie. A write (any
/// method but `GET` and `HEAD`) spends one of the staff member's budget of
/// writes over HTTP (`frames_per_second`, `frame_burst`, as a socket's
/// frames): a line, a code, a change of availability costs the same over
/// HTTP as on a socket, and past the budget gets `429 rate_limited` (with
/// `Retry-After`), before anything is written. A read spends one of the
/// staff member's read budget (`staff_reads_per_second`), the same way.
/// Both are the account's, whatever sign-in asks: a password signed in ten
/// times has one budget, not ten.
pub struct CurrentStaff(pub Staff);

impl FromRequestParts<AppState> for CurrentStaff {
    type Rejection = Refused;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if !crate::origin::from_our_pages(&parts.headers, state.public_origin.as_deref()) {
            return Err(Refused::CrossSite);
        }
        let token =
            cookie_token(&parts.headers, state.secure_cookies).ok_or(Refused::Failed(AppError::Unauthenticated))?;
        let ip = ClientIp::of(parts, state);
        let staff =
            crate::limit::checked(state, ip, (Credential::Staff, token), state.app.staff_for_token(token)).await?;
        let writes = !matches!(parts.method, axum::http::Method::GET | axum::http::Method::HEAD);
        let key = format!("staff:{}", staff.id.0);
        if writes {
            let budget = crate::ws::per_key(state.app.limits());
            if !state.sockets.sign_ins.spend(key, budget) {
                state.metrics.limited("staff_write");
                let reason = format!("more than {} changes a second from this account; slow down", budget.0);
                return Err(Refused::SlowDown(reason));
            }
        } else {
            let rate = state.app.limits().staff_reads_per_second;
            if !state.sockets.sign_in_reads.spend(key, (rate, rate.saturating_mul(10))) {
                state.metrics.limited("staff_read");
                let reason = format!("more than {rate} reads a second from this account; slow down");
                return Err(Refused::SlowDown(reason));
            }
        }
        // A place for its answer (`http::ANSWERS_PER_STAFF`); a WebSocket's
        // upgrade, whose answer is sent at once, takes one for that moment.
        if let Some(slot) = parts.extensions.get::<super::AnswerSlot>() {
            let Some(place) = state.answers.take(staff.id) else {
                state.metrics.limited("staff_answers");
                let reason = format!(
                    "more than {} answers on their way to this account; read them first",
                    super::ANSWERS_PER_STAFF
                );
                return Err(Refused::SlowDown(reason));
            };
            slot.keep(place);
        }
        Ok(CurrentStaff(staff))
    }
}
