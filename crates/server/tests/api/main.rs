//! Integration tests: the real server on 127.0.0.1:0 with a real SQLite file
//! in a temp folder, driven over real HTTP and real WebSockets.

mod abusive;
mod admin_log;
mod authz_table;
mod bad_input;
mod chat_flow;
mod closing;
mod desk;
mod helpers;
mod hostile;
mod mail;
mod metrics;
mod origin;
mod privacy;
mod properties;
mod question_list;
mod ready;
mod reports;
mod restart;
mod resume;
mod router;
mod sign_ins;
