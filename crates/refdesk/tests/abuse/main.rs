//! The abuse layer (issue 12): each test mounts one attack a stranger on
//! the open internet could make against the real `refdesk serve` binary,
//! shows that it no longer works, and that a legitimate user is still
//! served while it runs. The limits tried here, with their defaults and
//! why, are in `docs/security.md`.

mod harness;

mod connections;
mod files;
mod nats;
mod origin;
mod queue;
