//! Reports: what the store counts, grouped as asked, the same on every
//! backend (issue 15). The figures of every report against a generated set
//! of chats are in the API suite (`crates/server/tests/api/reports.rs`);
//! here, each grouping and each definition once.

use crate::support::{chatting, ok, patron, staff_author, start, Backend};
use refdesk_domain::chat::ConferenceMode;
use refdesk_domain::question::apply_code;
use refdesk_store::{Ending, QuestionGroup, ReportRange, SessionCounts, SessionGroup, Span};

on_every_backend!(chats_are_counted_by_hour_library_and_kind_and_practice_is_left_out, spans_conferences_and_comments);

const HOUR: i64 = 3_600_000;

fn range(b: &Backend) -> ReportRange {
    ReportRange { libraries: vec![b.w.library.placement.library], from: 0, to: 100 * HOUR, offset: 0, bucket: HOUR }
}

async fn code(b: &Backend, id: refdesk_domain::ids::SessionId, key: &'static str, read: Option<u8>, now: i64) {
    let decide: refdesk_store::Decide = Box::new(move |before, rec, codes| {
        let code = codes.iter().find(|c| c.key == key).unwrap();
        let mut state = apply_code(before, code, rec.ctx.librarian, None);
        state.read_scale = read.or(state.read_scale);
        Ok(state)
    });
    b.store.set_code(id, key.into(), b.w.ann.clone(), ok(), decide, now).await.unwrap();
}

async fn end(b: &Backend, id: refdesk_domain::ids::SessionId, by_patron: bool, now: i64) {
    let by = if by_patron { patron() } else { staff_author(&b.w.ann) };
    b.store.end(id, by, ok(), Box::new(|_, _| None), Ending::default(), now).await.unwrap();
}

/// Accepted, missed, abandoned and waiting chats land in their hour and
/// their library; a practice chat (its code excludes it) is in no figure;
/// questions count by code, status and READ level.
async fn chats_are_counted_by_hour_library_and_kind_and_practice_is_left_out(b: &Backend) {
    let s = &*b.store;
    let served = chatting(s, &b.w, None, "r1", HOUR + 5).await;
    code(b, served, "answered", Some(3), HOUR + 10).await;
    end(b, served, false, HOUR + 20).await;
    let missed = start(s, &b.w, None, "r2", 2 * HOUR).await;
    end(b, missed, false, 2 * HOUR + 9).await;
    let abandoned = start(s, &b.w, None, "r3", 2 * HOUR + 1).await;
    end(b, abandoned, true, 2 * HOUR + 2).await;
    let _waiting = start(s, &b.w, None, "r4", 3 * HOUR).await;
    let practice = chatting(s, &b.w, None, "r5", 3 * HOUR + 1).await;
    code(b, practice, "practice", None, 3 * HOUR + 2).await;
    let by_hour = s.session_counts(range(b), SessionGroup::Hour).await.unwrap();
    let hours: Vec<(Option<i64>, i64)> = by_hour.iter().map(|c| (c.keys[0], c.chats)).collect();
    assert_eq!(hours, vec![(Some(1), 1), (Some(2), 2), (Some(3), 1)], "practice left out: {by_hour:?}");
    let total = s.session_counts(range(b), SessionGroup::Total).await.unwrap();
    let t = &total[0];
    assert_eq!((t.chats, t.accepted, t.missed, t.abandoned, t.waiting, t.forms), (4, 1, 1, 1, 1, 0), "{t:?}");
    assert_eq!((t.timed, t.duration_sum), (1, 0), "19 ms is 0 whole seconds");
    let by_library = s.session_counts(range(b), SessionGroup::Library).await.unwrap();
    assert_eq!(by_library.len(), 1);
    assert_eq!(by_library[0].keys[0], Some(b.w.library.placement.library.0));
    let elsewhere = ReportRange { libraries: vec![b.w.other.placement.library], ..range(b) };
    let none = s.session_counts(elsewhere, SessionGroup::Total).await.unwrap();
    assert_eq!(none, vec![SessionCounts::default()], "another library's scope counts none");
    let codes = s.question_counts(range(b), QuestionGroup::Code).await.unwrap();
    assert_eq!(codes, vec![(Some("answered".into()), 1)], "the practice question is left out");
    let read = s.question_counts(range(b), QuestionGroup::ReadScale).await.unwrap();
    assert_eq!(read, vec![(Some("3".into()), 1)]);
    let coverage = s.session_counts(range(b), SessionGroup::Coverage).await.unwrap();
    let lib = b.w.library.placement.library.0;
    assert_eq!(coverage.iter().map(|c| (c.keys, c.accepted)).collect::<Vec<_>>(), vec![([Some(lib), Some(lib)], 1)]);
    let later = ReportRange { from: 2 * HOUR, ..range(b) };
    let t = &s.session_counts(later, SessionGroup::Total).await.unwrap()[0];
    assert_eq!(t.chats, 3, "the range starts at `from`");
}

/// Waits and durations as histograms of whole seconds; a chat someone
/// conferenced into; hand-overs; ratings and their comments.
async fn spans_conferences_and_comments(b: &Backend) {
    let s = &*b.store;
    let a = start(s, &b.w, None, "s1", 1_000).await;
    s.accept(a, b.w.ann.clone(), ok(), 31_000).await.unwrap();
    s.conference(a, b.w.dev.clone(), ConferenceMode::Monitor, ok(), 32_000).await.unwrap();
    end(b, a, true, 91_500).await;
    s.rate(a, 4, Some("clear, thanks".into())).await.unwrap();
    let c = start(s, &b.w, None, "s2", 2_000).await;
    s.accept(c, b.w.ann.clone(), ok(), 12_000).await.unwrap();
    end(b, c, false, 22_000).await;
    s.rate(c, 2, None).await.unwrap();
    assert_eq!(s.span_histogram(range(b), Span::Wait).await.unwrap(), vec![(10, 1), (30, 1)]);
    assert_eq!(s.span_histogram(range(b), Span::Duration).await.unwrap(), vec![(10, 1), (60, 1)]);
    assert_eq!(s.conferenced(range(b)).await.unwrap(), 1);
    let t = &s.session_counts(range(b), SessionGroup::Total).await.unwrap()[0];
    assert_eq!((t.ratings, t.rating_sum), (2, 6));
    let ratings = s.session_counts(range(b), SessionGroup::Rating).await.unwrap();
    let mut by: Vec<(Option<i64>, i64)> = ratings.iter().map(|c| (c.keys[0], c.sessions)).collect();
    by.sort();
    assert_eq!(by, vec![(Some(2), 1), (Some(4), 1)]);
    let comments = s.rating_comments(range(b), 10).await.unwrap();
    assert_eq!(comments.len(), 1);
    assert_eq!((comments[0].rating, comments[0].comment.as_str()), (4, "clear, thanks"));
    let by_librarian = s.session_counts(range(b), SessionGroup::Librarian).await.unwrap();
    assert_eq!(by_librarian.iter().map(|c| (c.keys[0], c.accepted)).collect::<Vec<_>>(), vec![(Some(b.w.ann.id.0), 2)]);
}
