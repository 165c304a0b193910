//! Staff IM: one-to-one messages between staff of a cooperative, outside
//! any session. Delivered live over the staff member's WebSocket, numbered
//! per conversation so that a reconnect resumes with nothing lost or
//! doubled (I3, I4 as for chat).

use crate::{App, AppResult};
use refdesk_domain::event::ImMessage;
use refdesk_domain::ids::StaffId;
use refdesk_domain::input::{Body, ClientId};
use refdesk_domain::org::Staff;
use refdesk_domain::DomainError;
use refdesk_store::ImConversation;

/// Messages of a conversation in one `GET /api/im/{peer}` at most.
pub const IM_PAGE: u32 = 1000;

impl App {
    /// Sends a direct message to a colleague of the same cooperative.
    /// Returns the stored message and whether the client id was seen before.
    pub async fn im_send(
        &self,
        staff: &Staff,
        to: StaffId,
        body: &str,
        client_id: Option<&str>,
    ) -> AppResult<(ImMessage, bool)> {
        let body = Body::parse(body, self.limits.max_message_chars)?.into_string();
        let client_id = client_id.map(ClientId::parse).transpose()?.map(|c| c.as_str().to_owned());
        if to == staff.id {
            return Err(DomainError::invalid("to", "write to a colleague, not to yourself").into());
        }
        self.store
            .staff_by_id(to)
            .await?
            .filter(|s| s.home.cooperative == staff.home.cooperative)
            .ok_or_else(|| DomainError::invalid("to", "no such colleague in your cooperative"))?;
        let per_day = self.limits.ims_per_staff_per_day;
        Ok(self.store.im_send(staff.clone(), to, body, client_id, per_day, self.clock.now()).await?)
    }

    /// The conversation with `peer` after `after`: at most [`IM_PAGE`]
    /// messages and a staff page's text (`STAFF_PAGE_BYTES`; the first
    /// whatever its length); the next page is asked for after the last.
    pub async fn im_history(&self, staff: &Staff, peer: StaffId, after: u64) -> AppResult<Vec<ImMessage>> {
        let mut page = self.store.im_after(staff.id, peer, after, IM_PAGE).await?;
        if page.is_empty() {
            // Nothing to show: say so when there is no one to talk with, as
            // sending does (a conversation's page is read without a lookup).
            self.store
                .staff_by_id(peer)
                .await?
                .filter(|s| s.home.cooperative == staff.home.cooperative)
                .ok_or_else(|| DomainError::invalid("peer", "no such colleague in your cooperative"))?;
        }
        let mut text = 0;
        let over = page.iter().position(|m| {
            text += m.body.len();
            text > crate::chat::STAFF_PAGE_BYTES
        });
        if let Some(over) = over {
            page.truncate(over.max(1));
        }
        Ok(page)
    }

    /// My conversations, with unread counts.
    pub async fn im_conversations(&self, staff: &Staff) -> AppResult<Vec<ImConversation>> {
        Ok(self.store.im_conversations(staff.id).await?)
    }

    /// Marks a conversation read up to `seq`.
    pub async fn im_read(&self, staff: &Staff, peer: StaffId, seq: u64) -> AppResult<()> {
        Ok(self.store.im_read(staff.id, peer, seq).await?)
    }
}
