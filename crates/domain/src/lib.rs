//! refdesk's domain: the types and rules of a virtual reference service, with
//! no I/O at all — no database, no sockets, no clock (time is always passed
//! in). Everything here is a pure function of its arguments, which is what
//! lets every rule of DESIGN.md be a plain unit test.
//!
//! - [`ids`]: typed identifiers, so a library id is never passed as a staff id.
//! - [`org`]: cooperative > institution > library, staff roles and their scope.
//! - [`chat`]: chat sessions, messages, their kinds and audiences.
//! - [`question`]: statuses, resolution codes and what they decide (R1, R6, R7).
//! - [`actions`]: the question list's actions on live chats (R4, B1) and its views.
//! - [`authz`]: the one authorization module: role × scope × action.
//! - [`event`]: committed events, as the bus carries them.
//! - [`visibility`]: the one function that decides who may see what (§5, B4).
//! - [`input`]: parsers for everything that comes from outside ("parse, don't validate").
//! - [`net`]: the network a client address stands for (what per-address limits and blocks count by).
//!
//! This crate must never depend on anything of ours, nor do I/O.
#![forbid(unsafe_code)]

pub mod actions;
pub mod authz;
pub mod chat;
pub mod error;
pub mod event;
pub mod ids;
pub mod input;
pub mod lines;
pub mod net;
pub mod org;
pub mod privacy;
pub mod question;
pub mod report;
pub mod visibility;

pub use error::DomainError;

/// Milliseconds since the Unix epoch. The domain never reads the clock: callers pass `now`.
pub type Millis = i64;
