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
        self.colleague(staff, to, "to").await?;
        let per_day = self.limits.ims_per_staff_per_day;
        Ok(self.store.im_send(staff.clone(), to, body, client_id, per_day, self.clock.now()).await?)
    }

    /// The conversation with `peer` after `after`: at most [`IM_PAGE`]
    /// messages and a staff page's text (`STAFF_PAGE_BYTES`; the first
    /// whatever its length); the next page is asked for after the last.
    /// Read a chunk at a time until the text read passes the page's
    /// (`read_page`): a page of long messages reads little more than it
    /// sends, not a thousand messages of 16 KB for 1 MiB.
    pub async fn im_history(&self, staff: &Staff, peer: StaffId, after: u64) -> AppResult<Vec<ImMessage>> {
        let read = |from, n| self.store.im_after(staff.id, peer, from, n);
        let page = im_page(read, after, self.longest_line()).await?;
        if page.is_empty() {
            // Nothing to show: say so when there is no one to talk with, as
            // sending does (a conversation's page is read without a lookup).
            self.colleague(staff, peer, "peer").await?;
        }
        Ok(page)
    }

    /// `peer`, a colleague of `staff`'s cooperative; else `422` on `field`
    /// (whether the id is someone's elsewhere, or nobody's, is not said).
    pub(crate) async fn colleague(&self, staff: &Staff, peer: StaffId, field: &'static str) -> AppResult<Staff> {
        Ok(self
            .store
            .staff_by_id(peer)
            .await?
            .filter(|s| s.home.cooperative == staff.home.cooperative)
            .ok_or_else(|| DomainError::invalid(field, "no such colleague in your cooperative"))?)
    }

    /// My conversations, with unread counts.
    pub async fn im_conversations(&self, staff: &Staff) -> AppResult<Vec<ImConversation>> {
        Ok(self.store.im_conversations(staff.id).await?)
    }

    /// Marks a conversation read up to `seq` (its last message at most);
    /// returns how far.
    pub async fn im_read(&self, staff: &Staff, peer: StaffId, seq: u64) -> AppResult<u64> {
        // As sending and reading do: a mark kept for someone who is no
        // colleague (another cooperative's staff, or nobody) would be a row
        // for nothing, and its answer would tell which ids are staff.
        self.colleague(staff, peer, "peer").await?;
        let read = self.store.im_read(staff.id, peer, seq).await?;
        // After the commit: their other desks count it read too.
        self.bus.publish_ephemeral(refdesk_domain::event::Event::ImRead { staff: staff.id, peer, seq: read });
        Ok(read)
    }
}

/// A page of a conversation after `after`, read by `read` (from, count):
/// see [`App::im_history`]; `longest` is the most bytes a message holds.
async fn im_page<F, Fut>(read: F, after: u64, longest: usize) -> AppResult<Vec<ImMessage>>
where
    F: FnMut(u64, u32) -> Fut,
    Fut: std::future::Future<Output = refdesk_store::Result<Vec<ImMessage>>>,
{
    let text = |page: &[ImMessage]| page.iter().map(|m| m.body.len()).sum();
    let budget = crate::chat::STAFF_PAGE_BYTES;
    let (mut page, _) = crate::chat::read_page(read, text, after, IM_PAGE, (budget, longest)).await?;
    page.truncate(IM_PAGE as usize);
    crate::chat::within_budget(&mut page, budget);
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::{im_page, IM_PAGE};
    use crate::chat::STAFF_PAGE_BYTES;
    use refdesk_domain::event::ImMessage;
    use refdesk_domain::ids::StaffId;
    use std::cell::Cell;

    /// A page of a conversation of `n` messages of `len` bytes: its
    /// messages and the bytes read to make it.
    async fn page_of(n: u64, len: usize) -> (usize, usize) {
        let all: Vec<ImMessage> = (1..=n)
            .map(|seq| ImMessage {
                seq,
                from: StaffId(1),
                from_name: "Ann".into(),
                to: StaffId(2),
                body: "x".repeat(len),
                client_id: None,
                at: 0,
            })
            .collect();
        let bytes = Cell::new(0);
        let read = |from: u64, count: u32| {
            let got: Vec<ImMessage> = all.iter().filter(|m| m.seq > from).take(count as usize).cloned().collect();
            bytes.set(bytes.get() + got.iter().map(|m| m.body.len()).sum::<usize>());
            std::future::ready(Ok(got))
        };
        let page = im_page(read, 0, 16_000).await.unwrap();
        (page.len(), bytes.get())
    }

    #[tokio::test]
    async fn a_page_of_long_messages_reads_little_more_than_it_sends() {
        // A thousand messages of 16 KB (16 MB): a page of 1 MiB, read in
        // chunks until the text read passes it, not all at once.
        let (shown, read) = page_of(1_000, 16_000).await;
        assert_eq!(shown, STAFF_PAGE_BYTES / 16_000);
        assert!(read <= 2 * STAFF_PAGE_BYTES + 16 * 16_000, "{read} bytes read for a page of 1 MiB");
        // Short messages: the page is full, a thousand.
        assert_eq!(page_of(3_000, 10).await.0, IM_PAGE as usize);
        // One message longer than a page is still sent.
        assert_eq!(page_of(5, STAFF_PAGE_BYTES + 1).await.0, 1);
    }
}
