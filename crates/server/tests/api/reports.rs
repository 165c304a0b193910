//! Reports (issue 15) checked against a model of their own. A generated set
//! of chats — several libraries, librarians serving each other's patrons,
//! codes, READ levels, missed and abandoned chats, offline forms,
//! conferences, transfers, ratings and practice chats — goes through the
//! real API on a manual clock; the test keeps its own record of every chat
//! and computes each report from that record, following the contract
//! of issue 15 (nearest-rank percentiles on whole seconds, means to two
//! decimals, every day and week of the range, the 168 cells of the heat
//! map), never from the app's code. Then every report, in JSON and in CSV,
//! for a cooperative admin, an institution admin, one library and two
//! librarians, with local offsets other than UTC. Also CSV escaping read
//! back with a real CSV parser, and bad input.

use crate::helpers::{spawn_app_with_manual_clock, spawn_app_with_manual_clock_and, Patron, Staff, TestApp};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

const SEC: i64 = 1000;
const MIN: i64 = 60 * SEC;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;

/// A small linear congruential generator (Knuth's MMIX constants): the same
/// chats on every run and every backend, without a dependency. Its output
/// goes through a mixing step (as PCG's does): a bare power-of-two LCG's
/// draws a few steps apart are correlated, which left whole branches of the
/// generator untaken.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let mut z = self.0;
        z = (z ^ (z >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
        z ^ (z >> 33)
    }

    /// A whole number in `lo..=hi`.
    fn between(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo + 1) as u64) as i64
    }

    fn chance(&mut self, percent: i64) -> bool {
        self.between(0, 99) < percent
    }

    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.between(0, xs.len() as i64 - 1) as usize]
    }
}

/// The libraries: the demo's three and one the test adds. (slug, name, institution)
const LIBS: [(&str, &str, usize); 4] = [
    ("riverside-main", "Riverside University Main Library", 0),
    ("riverside-law", "Riverside University Law Library", 0),
    ("lakeside-public", "Lakeside Public Library", 1),
    ("lakeside-branch", "Lakeside Branch Library", 1),
];

/// Who serves: (username, display name, library index, created by the test).
const PEOPLE: [(&str, &str, usize, bool); 8] = [
    ("ann", "Ann Archer", 0, false),
    ("carla", "Carla Catalog", 0, false),
    ("lou", "Lou Ledger", 1, true),
    ("dev", "Dev Dewey", 1, false),
    ("ben", "Ben Booker", 2, false),
    ("lee", "Lee Lexicon", 2, true),
    ("erin", "Erin Index", 2, false),
    ("bea", "Bea Bindery", 3, true),
];
const DEV: usize = 3;
const ERIN: usize = 6;
const PASSWORD: &str = "stacks-and-shelves-7731";

/// A resolution code as `GET /api/codes` gives it.
#[derive(Clone, Debug)]
struct Code {
    key: String,
    label: String,
    status: String,
    exclude: bool,
}

/// The test's own record of a question.
#[derive(Clone, Debug)]
struct Q {
    /// Its number (0 for those no report names).
    id: i64,
    created: i64,
    code: Option<String>,
    status: String,
    read: Option<i64>,
}

/// The test's own record of a chat or offline form, as the manual clock gave its times.
#[derive(Clone, Debug, Default)]
struct Chat {
    library: usize,
    created: i64,
    /// The first acceptance.
    accepted: Option<i64>,
    ended: Option<i64>,
    ended_by_patron: bool,
    form: bool,
    /// Who served it last (index into PEOPLE).
    librarian: Option<usize>,
    rating: Option<i64>,
    comment: Option<String>,
    transfers: i64,
    conferenced: bool,
    /// The cases `session_members` alone would count wrongly: an admin who
    /// conferenced and left, a librarian who stayed (whispering) after a
    /// transfer; and a chat accepted again after a transfer to a queue.
    left_conference: bool,
    stayed: bool,
    requeued: bool,
    practice: bool,
    question: Option<Q>,
}

impl Chat {
    fn channel(&self) -> &'static str {
        if self.form {
            "form"
        } else if self.accepted.is_some() {
            "chat"
        } else if self.ended.is_none() {
            "waiting"
        } else if self.ended_by_patron {
            "abandoned"
        } else {
            "missed"
        }
    }
}

struct World<'a> {
    app: &'a TestApp,
    staff: Vec<Staff>,
    codes: Vec<Code>,
    chats: Vec<Chat>,
    rng: Lcg,
}

fn now(app: &TestApp) -> i64 {
    app.clock().now()
}

async fn on_duty(s: &Staff) {
    let (status, body) = s.post("/api/me/availability", json!({"availability": "on_duty"})).await;
    assert_eq!(status, 200, "{body}");
}

impl World<'_> {
    fn advance(&self, ms: i64) {
        self.app.clock().advance(ms);
    }

    /// Time passes: a whole number of ms in `lo..=hi`.
    fn wait(&mut self, lo: i64, hi: i64) {
        let ms = self.rng.between(lo, hi);
        self.advance(ms);
    }

    fn code(&self, key: &str) -> &Code {
        self.codes.iter().find(|c| c.key == key).unwrap_or_else(|| panic!("code {key}"))
    }

    /// A patron of `library` starts a chat: the patron, the chat's record
    /// (not yet pushed) and whether they gave an e-mail address — a chat
    /// nobody accepts leaves a question only then (a "missed chat").
    async fn start(&mut self, library: usize, n: usize) -> (Patron, Chat, bool) {
        let mut form = json!({"name": format!("Patron {n}"), "question": format!("Question {n}: where is the atlas?")});
        let email = self.rng.chance(60);
        if email {
            form["email"] = json!(format!("patron{n}@example.org"));
        }
        let created = now(self.app);
        let patron = self.app.start_chat_with(LIBS[library].0, form).await;
        (patron, Chat { library, created, ..Chat::default() }, email)
    }

    /// Someone of `server`'s choosing accepts after waiting `wait` ms.
    async fn accept(&mut self, chat: &mut Chat, session: i64, server: usize) {
        on_duty(&self.staff[server]).await;
        let (status, body) = self.staff[server].accept(session).await;
        assert_eq!(status, 200, "{} accepts {session}: {body}", PEOPLE[server].0);
        let t = now(self.app);
        if chat.accepted.is_none() {
            chat.accepted = Some(t);
            let id = body["ctx"]["question"].as_i64().expect("an accepted chat's question");
            chat.question = Some(Q { id, created: t, code: None, status: "answered".into(), read: None });
        }
        chat.librarian = Some(server);
    }

    async fn set_code(&mut self, chat: &mut Chat, session: i64, key: &str, read: Option<i64>) {
        let who = chat.librarian.unwrap();
        let mut body = json!({"code": key});
        if let Some(r) = read {
            body["read_scale"] = json!(r);
        }
        let (status, state) = self.staff[who].post(&format!("/api/sessions/{session}/code"), body).await;
        assert_eq!(status, 200, "{state}");
        let code = self.code(key).clone();
        let q = chat.question.as_mut().unwrap();
        q.code = Some(key.to_owned());
        q.status = code.status.clone();
        q.read = read.or(q.read);
        chat.practice = code.exclude;
        assert_eq!(state["status"], q.status.as_str());
        assert_eq!(state["read_scale"], json!(q.read));
    }

    /// A chat a librarian accepts, with what may happen in it.
    async fn served(&mut self, n: usize) {
        let library = self.rng.between(0, 3) as usize;
        let cross = self.rng.chance(40);
        let servers: Vec<usize> = (0..PEOPLE.len()).filter(|&i| (PEOPLE[i].2 == library) != cross).collect();
        let server = self.rng.pick(&servers);
        let (patron, mut chat, _) = self.start(library, n).await;
        let s = patron.session;
        // Another library's librarian is offered the chat once it rolled up (60 s).
        let wait = if cross { self.rng.between(61 * SEC, 9 * MIN) } else { self.rng.between(1500, 5 * MIN) };
        self.advance(wait);
        self.accept(&mut chat, s, server).await;
        self.wait(5 * SEC, 3 * MIN);
        let who = chat.librarian.unwrap();
        let (status, _) =
            self.staff[who].post(&format!("/api/sessions/{s}/messages"), json!({"body": "Let me look."})).await;
        assert_eq!(status, 200);

        // A conference: an institution or cooperative admin in scope enters.
        if self.rng.chance(22) {
            let mut admins = vec![ERIN];
            if LIBS[library].2 == 0 {
                admins.push(DEV);
            }
            admins.retain(|a| Some(*a) != chat.librarian);
            if !admins.is_empty() {
                let admin = self.rng.pick(&admins);
                let mode = self.rng.pick(&["monitor", "whisper", "join"]);
                on_duty(&self.staff[admin]).await;
                let path = format!("/api/sessions/{s}/conference");
                let (status, body) = self.staff[admin].post(&path, json!({"mode": mode})).await;
                assert_eq!(status, 200, "{body}");
                chat.conferenced = true;
                self.wait(10 * SEC, 2 * MIN);
                match self.rng.between(0, 2) {
                    0 => {
                        let (status, body) =
                            self.staff[admin].post(&format!("/api/sessions/{s}/leave"), json!(null)).await;
                        assert_eq!(status, 200, "{body}");
                        chat.left_conference = true;
                    }
                    1 => {
                        let (status, body) =
                            self.staff[admin].post(&format!("/api/sessions/{s}/takeover"), json!(null)).await;
                        assert_eq!(status, 200, "{body}");
                        chat.transfers += 1;
                        chat.librarian = Some(admin);
                    }
                    _ => {}
                }
                self.wait(10 * SEC, 2 * MIN);
            }
        }

        // A transfer: to a colleague, to a library's queue, or to the cooperative's.
        if self.rng.chance(22) {
            let from = chat.librarian.unwrap();
            let path = format!("/api/sessions/{s}/transfer");
            let stay = self.rng.chance(50);
            match self.rng.between(0, 2) {
                0 => {
                    let others: Vec<usize> = (0..PEOPLE.len()).filter(|&i| i != from).collect();
                    let to = self.rng.pick(&others);
                    on_duty(&self.staff[to]).await;
                    on_duty(&self.staff[from]).await;
                    let (status, body) =
                        self.staff[from].post(&path, json!({"to": self.staff[to].id, "stay": stay})).await;
                    assert_eq!(status, 200, "{body}");
                    chat.librarian = Some(to);
                }
                k => {
                    let target = self.rng.between(0, 3) as usize;
                    let body = if k == 1 {
                        json!({"library": LIBS[target].0, "stay": stay})
                    } else {
                        json!({"cooperative": true, "stay": stay})
                    };
                    let (status, out) = self.staff[from].post(&path, body).await;
                    assert_eq!(status, 200, "{out}");
                    assert_eq!(out["state"], "waiting");
                    self.wait(3 * SEC, 50 * SEC);
                    let takers: Vec<usize> = (0..PEOPLE.len()).filter(|&i| k == 2 || PEOPLE[i].2 == target).collect();
                    let taker = self.rng.pick(&takers);
                    self.accept(&mut chat, s, taker).await;
                    chat.requeued = true;
                }
            }
            chat.transfers += 1;
            chat.stayed |= stay;
            self.wait(10 * SEC, 3 * MIN);
        }

        // The code (maybe first another, which the second replaces), before or after the end.
        let practice = self.rng.chance(12);
        let plain = ["answered", "follow_up_by_me", "follow_up_by_library", "lost_call", "inappropriate"];
        let last = if practice {
            Some("practice")
        } else if self.rng.chance(82) {
            Some(self.rng.pick(&plain))
        } else {
            None
        };
        let read = |rng: &mut Lcg| rng.chance(60).then(|| rng.between(1, 6));
        if last.is_some() && self.rng.chance(20) {
            let first = if practice { self.rng.pick(&plain) } else { "practice" };
            let r = read(&mut self.rng);
            self.set_code(&mut chat, s, first, r).await;
        }
        let code_after_end = self.rng.chance(40);
        if let (Some(key), false) = (last, code_after_end) {
            let r = read(&mut self.rng);
            self.set_code(&mut chat, s, key, r).await;
        }
        self.wait(20 * SEC, 8 * MIN);
        let by_patron = self.rng.chance(30);
        let (status, body) = if by_patron {
            patron.post("/api/chat/end", json!(null)).await
        } else {
            self.staff[chat.librarian.unwrap()].post(&format!("/api/sessions/{s}/end"), json!(null)).await
        };
        assert_eq!(status, 200, "{body}");
        chat.ended = Some(now(self.app));
        chat.ended_by_patron = by_patron;
        if let (Some(key), true) = (last, code_after_end) {
            self.wait(SEC, 40 * SEC);
            let r = read(&mut self.rng);
            self.set_code(&mut chat, s, key, r).await;
        }
        // Practice chats are always rated, with a comment: none of it may show.
        if practice || self.rng.chance(55) {
            let rating = self.rng.between(1, 5);
            let mut body = json!({"rating": rating});
            if practice || self.rng.chance(60) {
                let comment = format!("Comment {n}: rated {rating}, thanks");
                body["comment"] = json!(comment);
                chat.comment = Some(comment);
            }
            let (status, out) = patron.post("/api/chat/rating", body).await;
            assert_eq!(status, 200, "{out}");
            chat.rating = Some(rating);
        }
        self.chats.push(chat);
    }

    /// An offline form: an ended session and a `new` question.
    async fn form(&mut self, n: usize) {
        let library = self.rng.between(0, 3) as usize;
        let body = json!({"name": "Pat", "email": format!("form{n}@example.org"), "question": format!("Form {n}")});
        let res = reqwest::Client::new()
            .post(self.app.url(&format!("/api/libraries/{}/questions", LIBS[library].0)))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        let t = now(self.app);
        let q = Q { id: 0, created: t, code: None, status: "new".into(), read: None };
        self.chats.push(Chat { library, created: t, ended: Some(t), form: true, question: Some(q), ..Chat::default() });
    }

    /// The patron leaves the queue before anyone accepts.
    async fn abandoned(&mut self, n: usize) {
        let library = self.rng.between(0, 3) as usize;
        let (patron, mut chat, email) = self.start(library, n).await;
        self.wait(2 * SEC, 10 * MIN);
        let (status, body) = patron.post("/api/chat/end", json!(null)).await;
        assert_eq!(status, 200, "{body}");
        let t = now(self.app);
        chat.ended = Some(t);
        chat.ended_by_patron = true;
        chat.question = email.then(|| Q { id: 0, created: t, code: None, status: "new".into(), read: None });
        self.chats.push(chat);
    }

    /// Chats nobody accepts: the waiting-chat expiry (15 minutes) ends them.
    async fn missed(&mut self, count: usize, n: &mut usize) {
        let mut waiting = Vec::new();
        for _ in 0..count {
            self.wait(SEC, 2 * MIN);
            *n += 1;
            let library = self.rng.between(0, 3) as usize;
            waiting.push(self.start(library, *n).await);
        }
        self.wait(16 * MIN, 16 * MIN + 999);
        // The round the server runs every second, run now: the end is at this clock's time.
        self.app.state.app.tick(now(self.app)).await;
        let t = now(self.app);
        for (patron, mut chat, email) in waiting {
            let (status, page) = patron.get("/api/chat").await;
            assert_eq!((status, page["state"].as_str()), (200, Some("ended")), "{page}");
            chat.ended = Some(t);
            chat.question = email.then(|| Q { id: 0, created: t, code: None, status: "new".into(), read: None });
            self.chats.push(chat);
        }
    }
}

// --- the model's reports ----------------------------------------------------

fn leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

/// A day since 1970-01-01 as YYYY-MM-DD, counted out year by year.
fn date(mut day: i64) -> String {
    let mut y = 1970;
    loop {
        let len = if leap(y) { 366 } else { 365 };
        if day < len {
            break;
        }
        day -= len;
        y += 1;
    }
    let months = [31, if leap(y) { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let mut m = 0;
    while day >= months[m] {
        day -= months[m];
        m += 1;
    }
    format!("{y:04}-{:02}-{:02}", m + 1, day + 1)
}

/// 0 = Monday; 1970-01-01 was a Thursday.
fn weekday(day: i64) -> i64 {
    (day + 3).rem_euclid(7)
}

/// What a report is asked for, and by whom.
#[derive(Clone, Debug)]
struct Ask {
    viewer: usize,
    scope: BTreeSet<usize>,
    library: Option<usize>,
    from: i64,
    to: i64,
    offset: i64,
}

impl Ask {
    fn day(&self, t: i64) -> i64 {
        (t + self.offset * MIN).div_euclid(DAY)
    }

    fn in_range(&self, t: i64) -> bool {
        (self.from..=self.to).contains(&self.day(t))
    }

    fn query(&self) -> String {
        let mut q = format!("from={}&to={}&utc_offset={}", date(self.from), date(self.to), self.offset);
        if let Some(l) = self.library {
            q.push_str(&format!("&library={}", LIBS[l].0));
        }
        q
    }
}

/// Nearest rank: sorted v, p = num/den → v[ceil(p·n) − 1].
fn nearest_rank(v: &mut [i64], num: usize, den: usize) -> Value {
    if v.is_empty() {
        return Value::Null;
    }
    v.sort_unstable();
    let rank = (num * v.len()).div_ceil(den);
    json!(v[rank - 1] as f64)
}

fn mean(sum: i64, n: i64) -> Value {
    if n == 0 {
        Value::Null
    } else {
        json!(((sum as f64 / n as f64) * 100.0).round() / 100.0)
    }
}

/// chats, accepted, missed, abandoned, forms (questions are counted apart).
fn counts<'a>(chats: impl Iterator<Item = &'a Chat>) -> [i64; 5] {
    let mut c = [0; 5];
    for ch in chats {
        let i = match ch.channel() {
            "form" => 4,
            "missed" => 2,
            "abandoned" => 3,
            _ => 5,
        };
        if !ch.form {
            c[0] += 1;
        }
        if ch.accepted.is_some() {
            c[1] += 1;
        }
        if i < 5 {
            c[i] += 1;
        }
    }
    c
}

fn row(first: Value, c: [i64; 5], questions: i64) -> Vec<Value> {
    let mut r = vec![first];
    r.extend(c.iter().map(|n| json!(n)));
    r.push(json!(questions));
    r
}

/// The columns' keys and the rows the contract gives for this report.
fn expected(chats: &[Chat], codes: &[Code], name: &str, a: &Ask) -> (Vec<&'static str>, Vec<Vec<Value>>) {
    let sessions: Vec<&Chat> =
        chats.iter().filter(|c| a.scope.contains(&c.library) && !c.practice && a.in_range(c.created)).collect();
    let questions: Vec<(&Chat, &Q)> = chats
        .iter()
        .filter(|c| a.scope.contains(&c.library) && !c.practice)
        .filter_map(|c| c.question.as_ref().map(|q| (c, q)))
        .filter(|(_, q)| a.in_range(q.created))
        .collect();
    // Served chats: accepted, in the range, not practice, whatever the patron's library.
    let served: Vec<&Chat> =
        chats.iter().filter(|c| c.accepted.is_some() && !c.practice && a.in_range(c.created)).collect();
    let session_keys = ["chats", "accepted", "missed", "abandoned", "forms", "questions"];
    let with = |first: &'static str| std::iter::once(first).chain(session_keys).collect::<Vec<_>>();
    match name {
        "by-day" | "by-week" => {
            let week = name == "by-week";
            let bucket = |d: i64| if week { d - weekday(d) } else { d };
            let mut rows = Vec::new();
            let mut d = bucket(a.from);
            while d <= a.to {
                let c = counts(sessions.iter().copied().filter(|c| bucket(a.day(c.created)) == d));
                let q = questions.iter().filter(|(_, q)| bucket(a.day(q.created)) == d).count() as i64;
                rows.push(row(json!(date(d)), c, q));
                d += if week { 7 } else { 1 };
            }
            (with(if week { "week" } else { "date" }), rows)
        }
        "by-hour" => {
            let mut rows = Vec::new();
            for wd in 0..7 {
                for h in 0..24 {
                    let n = sessions
                        .iter()
                        .filter(|c| !c.form)
                        .filter(|c| {
                            let local = c.created + a.offset * MIN;
                            weekday(local.div_euclid(DAY)) == wd && local.rem_euclid(DAY) / HOUR == h
                        })
                        .count();
                    rows.push(vec![json!(wd), json!(h), json!(n)]);
                }
            }
            (vec!["weekday", "hour", "chats"], rows)
        }
        "by-library" => {
            let mut rows: Vec<Vec<Value>> = a
                .scope
                .iter()
                .filter_map(|&l| {
                    let c = counts(sessions.iter().copied().filter(|c| c.library == l));
                    let q = questions.iter().filter(|(c, _)| c.library == l).count() as i64;
                    (c[0] + c[4] + q > 0).then(|| row(json!(LIBS[l].1), c, q))
                })
                .collect();
            rows.sort_by(|x, y| x[0].as_str().cmp(&y[0].as_str()));
            (with("library"), rows)
        }
        "coverage" => {
            let mut pairs: BTreeMap<(&str, &str), i64> = BTreeMap::new();
            for c in &served {
                let serving = PEOPLE[c.librarian.unwrap()].2;
                if a.scope.contains(&c.library) || a.scope.contains(&serving) {
                    *pairs.entry((LIBS[c.library].1, LIBS[serving].1)).or_default() += 1;
                }
            }
            let rows = pairs.into_iter().map(|((p, s), n)| vec![json!(p), json!(s), json!(n)]).collect();
            (vec!["patron_library", "serving_library", "chats"], rows)
        }
        "by-librarian" => {
            let mut rows = Vec::new();
            for (i, (_, who, lib, _)) in PEOPLE.iter().enumerate() {
                let mine: Vec<&&Chat> = served.iter().filter(|c| c.librarian == Some(i)).collect();
                if !a.scope.contains(lib) || mine.is_empty() {
                    continue;
                }
                let timed: Vec<i64> =
                    mine.iter().filter_map(|c| Some((c.ended? - c.accepted?).div_euclid(SEC))).collect();
                let ratings: Vec<i64> = mine.iter().filter_map(|c| c.rating).collect();
                rows.push(vec![
                    json!(who),
                    json!(LIBS[*lib].1),
                    json!(mine.len()),
                    json!(0), // no answer is e-mailed here: `answers_emailed_count_for_the_librarian`
                    mean(timed.iter().sum(), timed.len() as i64),
                    json!(ratings.len()),
                    mean(ratings.iter().sum(), ratings.len() as i64),
                ]);
            }
            rows.sort_by(|x, y| x[0].as_str().cmp(&y[0].as_str()));
            (vec!["librarian", "library", "chats", "emailed", "mean_duration_s", "ratings", "mean_rating"], rows)
        }
        "by-code" => {
            let mut rows = Vec::new();
            for code in codes {
                let n = questions.iter().filter(|(_, q)| q.code.as_deref() == Some(&code.key)).count();
                if n > 0 {
                    rows.push(vec![json!(code.key), json!(code.label), json!(n)]);
                }
            }
            let none = questions.iter().filter(|(_, q)| q.code.is_none()).count();
            if none > 0 {
                rows.push(vec![json!(""), json!("(no code yet)"), json!(none)]);
            }
            (vec!["code", "label", "questions"], rows)
        }
        "by-status" => {
            let rows = ["new", "pending", "answered", "closed"]
                .iter()
                .map(|s| vec![json!(s), json!(questions.iter().filter(|(_, q)| q.status == *s).count())])
                .collect();
            (vec!["status", "questions"], rows)
        }
        "by-channel" => {
            let rows = ["chat", "missed", "abandoned", "waiting", "form"]
                .iter()
                .map(|ch| {
                    let s = sessions.iter().filter(|c| c.channel() == *ch).count();
                    let q = questions.iter().filter(|(c, _)| c.channel() == *ch).count();
                    vec![json!(ch), json!(s), json!(q)]
                })
                .collect();
            (vec!["channel", "sessions", "questions"], rows)
        }
        "service" => {
            let c = counts(sessions.iter().copied());
            let mut waits: Vec<i64> =
                sessions.iter().filter_map(|c| Some((c.accepted? - c.created).div_euclid(SEC))).collect();
            let mut durations: Vec<i64> =
                sessions.iter().filter_map(|c| Some((c.ended? - c.accepted?).div_euclid(SEC))).collect();
            let ratings: Vec<i64> = sessions.iter().filter_map(|c| c.rating).collect();
            let rows = vec![
                ("chats", json!(c[0])),
                ("accepted", json!(c[1])),
                ("missed", json!(c[2])),
                ("abandoned", json!(c[3])),
                ("wait_median_s", nearest_rank(&mut waits, 1, 2)),
                ("wait_p90_s", nearest_rank(&mut waits, 9, 10)),
                ("duration_median_s", nearest_rank(&mut durations, 1, 2)),
                ("duration_p90_s", nearest_rank(&mut durations, 9, 10)),
                ("conferenced_chats", json!(sessions.iter().filter(|c| c.conferenced).count())),
                ("transfers", json!(sessions.iter().map(|c| c.transfers).sum::<i64>())),
                ("ratings", json!(ratings.len())),
                ("mean_rating", mean(ratings.iter().sum(), ratings.len() as i64)),
            ];
            (vec!["metric", "value"], rows.into_iter().map(|(k, v)| vec![json!(k), v]).collect())
        }
        "ratings" => {
            let rows = (1..=5)
                .map(|r| vec![json!(r), json!(sessions.iter().filter(|c| c.rating == Some(r)).count())])
                .collect();
            (vec!["rating", "chats"], rows)
        }
        "rating-comments" => {
            let mut rated: Vec<&&Chat> =
                sessions.iter().filter(|c| c.rating.is_some() && c.comment.is_some()).collect();
            rated.sort_by_key(|c| std::cmp::Reverse(c.created));
            let rows = rated
                .iter()
                .map(|c| {
                    let q = c.question.as_ref().map(|q| q.id);
                    vec![
                        json!(date(a.day(c.created))),
                        json!(LIBS[c.library].1),
                        json!(c.rating),
                        json!(c.comment),
                        json!(q),
                    ]
                })
                .collect();
            (vec!["date", "library", "rating", "comment", "question"], rows)
        }
        "read-scale" => {
            let levels = (1..=6).map(Some).chain([None]);
            let rows = levels
                .map(|l| {
                    let n = questions.iter().filter(|(_, q)| q.read == l).count();
                    vec![json!(l.map(|l| l.to_string()).unwrap_or_default()), json!(n)]
                })
                .collect();
            (vec!["level", "questions"], rows)
        }
        other => panic!("a report the contract does not name: {other}"),
    }
}

/// Equal cells: numbers by value (a count may be sent as 3 or 3.0), the rest exactly.
fn same(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => (x - y).abs() < 1e-9,
        _ => a == b,
    }
}

fn same_rows(got: &[Vec<Value>], want: &[Vec<Value>]) -> bool {
    got.len() == want.len()
        && got.iter().zip(want).all(|(g, w)| g.len() == w.len() && g.iter().zip(w).all(|(x, y)| same(x, y)))
}

/// A cell as the CSV must hold it: text starting with = + - @ (or tab, CR) behind a `'`.
fn csv_cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) if s.starts_with(['=', '+', '-', '@', '\t', '\r']) => format!("'{s}"),
        Value::String(s) => s.clone(),
        Value::Number(n) if n.is_f64() => format!("{}", n.as_f64().unwrap()),
        other => other.to_string(),
    }
}

fn read_csv(body: &[u8]) -> Vec<Vec<String>> {
    let text = std::str::from_utf8(body).expect("CSV in UTF-8");
    let mut r = csv::ReaderBuilder::new().has_headers(false).from_reader(text.as_bytes());
    r.records().map(|rec| rec.expect("RFC 4180").iter().map(str::to_owned).collect()).collect()
}

async fn get_raw(s: &Staff, path: &str) -> reqwest::Response {
    s.http.get(format!("{}{path}", s.base())).send().await.unwrap()
}

/// One report for one asker: the JSON and the CSV against the model.
async fn check(world: &World<'_>, name: &str, title: &str, a: &Ask) {
    let who = PEOPLE[a.viewer].0;
    let (keys, want) = expected(&world.chats, &world.codes, name, a);
    let path = format!("/api/reports/{name}?{}", a.query());
    let (status, t) = world.staff[a.viewer].get(&path).await;
    assert_eq!(status, 200, "{who} {path}: {t}");
    assert_eq!((t["name"].as_str(), t["title"].as_str()), (Some(name), Some(title)));
    assert_eq!((t["from"].as_str(), t["to"].as_str()), (Some(date(a.from).as_str()), Some(date(a.to).as_str())));
    assert_eq!(t["utc_offset"], a.offset);
    let columns = t["columns"].as_array().unwrap();
    let got_keys: Vec<&str> = columns.iter().map(|c| c["key"].as_str().unwrap()).collect();
    assert_eq!(got_keys, keys, "{name}'s columns");
    for c in columns {
        assert!(["text", "date", "int", "number"].contains(&c["kind"].as_str().unwrap()), "{c}");
    }
    let rows: Vec<Vec<Value>> = serde_json::from_value(t["rows"].clone()).unwrap();
    assert!(same_rows(&rows, &want), "{name} for {who} ({}):\n got  {}\n want {}", a.query(), json!(rows), json!(want));

    let res = get_raw(&world.staff[a.viewer], &format!("{path}&format=csv")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/csv; charset=utf-8");
    assert!(res.headers()["content-disposition"].to_str().unwrap().starts_with("attachment"));
    let body = res.bytes().await.unwrap();
    assert!(body.ends_with(b"\r\n"), "CRLF line ends");
    let records = read_csv(&body);
    let labels: Vec<String> = columns.iter().map(|c| c["label"].as_str().unwrap().to_owned()).collect();
    assert_eq!(records[0], labels, "{name}: the header row is the labels");
    let want_csv: Vec<Vec<String>> = want.iter().map(|r| r.iter().map(csv_cell).collect()).collect();
    assert_eq!(records[1..], want_csv[..], "{name} CSV for {who} ({})", a.query());
}

#[tokio::test]
async fn every_report_in_json_and_csv_matches_a_model_of_generated_chats_for_every_scope() {
    let app = spawn_app_with_manual_clock_and(|c| {
        // Weeks pass on the manual clock: sign-ins last, forms are not capped per day.
        c.limits.login_hours = 24 * 366;
        c.limits.form_questions_per_address_per_day = 100_000;
        // The staff here work over HTTP alone (no socket marks them seen):
        // minutes pass within a chat, and the background round, whenever
        // it came, would sign its librarian off and send the chat back in
        // line, which the model does not follow (a CI run on PostgreSQL
        // failed so, an end refused as not the librarian's).
        c.limits.signoff_minutes = 24 * 60;
    })
    .await;
    let erin = app.staff("erin").await;
    let (status, body) = erin.post("/api/libraries", json!({"slug": LIBS[3].0, "name": LIBS[3].1})).await;
    assert_eq!(status, 201, "{body}");
    let mut staff = Vec::new();
    for (username, name, lib, created) in PEOPLE {
        if created {
            let body = json!({"username": username, "display_name": name, "library": LIBS[lib].0,
                "role": "librarian", "password": PASSWORD});
            let (status, out) = erin.post("/api/staff", body).await;
            assert_eq!(status, 201, "{out}");
            staff.push(app.staff_with_password(username, PASSWORD).await);
        } else {
            staff.push(app.staff(username).await);
        }
    }
    let (_, codes) = staff[0].get("/api/codes").await;
    let codes: Vec<Code> = codes
        .as_array()
        .unwrap()
        .iter()
        .map(|c| Code {
            key: c["key"].as_str().unwrap().into(),
            label: c["label"].as_str().unwrap().into(),
            status: c["status"].as_str().unwrap().into(),
            exclude: c["exclude_from_stats"].as_bool().unwrap(),
        })
        .collect();
    assert_eq!(codes.iter().filter(|c| c.exclude).map(|c| c.key.as_str()).collect::<Vec<_>>(), ["practice"]);

    let mut w = World { app: &app, staff, codes, chats: Vec::new(), rng: Lcg(0x5eed_0015) };
    let start = now(&app);
    let mut n = 0;
    for _slot in 0..30 {
        // Hours to a day between busy spells: every hour of the week may be hit.
        w.wait(40 * MIN, 22 * HOUR);
        let mut missed = 0;
        for _ in 0..w.rng.between(1, 5) {
            n += 1;
            match w.rng.between(0, 99) {
                0..=7 => w.form(n).await,
                8..=16 => w.abandoned(n).await,
                17..=27 => missed += 1,
                _ => w.served(n).await,
            }
            w.wait(10 * SEC, 6 * MIN);
        }
        if missed > 0 {
            w.missed(missed, &mut n).await;
        }
    }
    // Left as they are when the reports are read: two chats waiting, one being served.
    for _ in 0..2 {
        n += 1;
        w.wait(SEC, MIN);
        let library = w.rng.between(0, 3) as usize;
        let (_, chat, _) = w.start(library, n).await;
        w.chats.push(chat);
    }
    let (patron, mut live, _) = w.start(2, n + 1).await;
    w.advance(20 * SEC);
    w.accept(&mut live, patron.session, 4).await;
    w.chats.push(live);

    // The set is what it was meant to be: every kind of chat, several times.
    let chats = &w.chats;
    let kinds = |f: &dyn Fn(&Chat) -> bool| chats.iter().filter(|c| f(c)).count();
    let cross = |c: &Chat| c.librarian.is_some_and(|l| PEOPLE[l].2 != c.library);
    eprintln!(
        "{} sessions: {} served, {} cross-library, {} missed, {} abandoned, {} forms, {} practice, {} conferenced, \
         {} transferred, {} rated, {} commented, over {} days",
        chats.len(),
        kinds(&|c| c.accepted.is_some()),
        kinds(&cross),
        kinds(&|c| c.channel() == "missed"),
        kinds(&|c| c.channel() == "abandoned"),
        kinds(&|c| c.form),
        kinds(&|c| c.practice),
        kinds(&|c| c.conferenced),
        kinds(&|c| c.transfers > 0),
        kinds(&|c| c.rating.is_some()),
        kinds(&|c| c.comment.is_some()),
        (now(&app) - start) / DAY,
    );
    assert!(chats.len() >= 60);
    for (what, count) in [
        ("missed", kinds(&|c| c.channel() == "missed")),
        ("abandoned", kinds(&|c| c.channel() == "abandoned")),
        ("forms", kinds(&|c| c.form)),
        ("practice", kinds(&|c| c.practice)),
        ("conferenced", kinds(&|c| c.conferenced)),
        ("transferred", kinds(&|c| c.transfers > 0)),
        ("left a conference", kinds(&|c| c.left_conference)),
        ("stayed after a transfer, never conferenced", kinds(&|c| c.stayed && !c.conferenced)),
        ("accepted again from a queue", kinds(&|c| c.requeued)),
        ("commented", kinds(&|c| c.comment.is_some())),
        ("practice rated", kinds(&|c| c.practice && c.rating.is_some())),
        ("Riverside served by others", kinds(&|c| c.library == 0 && cross(c))),
        ("others served by Riverside", kinds(&|c| c.library != 0 && c.librarian.is_some_and(|l| PEOPLE[l].2 == 0))),
    ] {
        assert!(count >= 2, "the generated set has too few {what}: {count}");
    }

    let (status, list) = w.staff[0].get("/api/reports").await;
    assert_eq!(status, 200);
    let reports: Vec<(String, String)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["name"].as_str().unwrap().to_owned(), r["title"].as_str().unwrap().to_owned()))
        .collect();
    let names: Vec<&str> = reports.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "by-day",
            "by-week",
            "by-hour",
            "by-library",
            "coverage",
            "by-librarian",
            "by-code",
            "by-status",
            "by-channel",
            "service",
            "ratings",
            "rating-comments",
            "read-scale"
        ]
    );

    // A day either side of the data (zeros included), and a range that cuts through it.
    let all: BTreeSet<usize> = (0..LIBS.len()).collect();
    let day = |t: i64, off: i64| (t + off * MIN).div_euclid(DAY);
    let whole = |viewer: usize, scope: BTreeSet<usize>, library: Option<usize>, offset: i64| Ask {
        viewer,
        scope,
        library,
        from: day(start, offset) - 1,
        to: day(now(&app), offset) + 1,
        offset,
    };
    let middle = (day(start, 0) + day(now(&app), 0)) / 2;
    let asks = [
        whole(ERIN, all.clone(), None, -300),
        Ask { from: middle - 4, to: middle + 2, ..whole(ERIN, all.clone(), None, 0) },
        whole(ERIN, [1].into(), Some(1), 0),
        whole(DEV, [0, 1].into(), None, 330),
        whole(0, [0].into(), None, -300),
        whole(7, [3].into(), None, 60),
    ];
    for a in &asks {
        for (name, title) in &reports {
            check(&w, name, title, a).await;
        }
    }
}

// --- CSV ----------------------------------------------------------------------

/// Texts a spreadsheet would misread, and text beyond ASCII.
const AWKWARD: [&str; 12] = [
    "=HYPERLINK(\"http://evil.example/?q=1\",\"click me\")",
    "+1 555 0100 is my number",
    "-2 degrees and snowing",
    "@SUM(A1:A9)",
    "plain, with a comma, or two",
    "she said \"hello\" and \"bye\"",
    "line one\nline two\n\nline four",
    "Ελληνικά: πού είναι η βιβλιοθήκη;",
    "日本語の本はありますか？「源氏物語」",
    "هل لديكم كتب باللغة العربية؟",
    "a=b, +c, -d, @e: only the start counts",
    "=\"quoted, formula\"\nand a second line",
];

fn defused(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_owned()
    }
}

#[tokio::test]
async fn csv_exports_neutralise_formulas_and_keep_commas_quotes_newlines_and_any_script_byte_for_byte() {
    let app = spawn_app_with_manual_clock().await;
    let ann = app.staff("ann").await;
    for (i, text) in AWKWARD.iter().enumerate() {
        app.clock().advance(SEC);
        let patron = app.start_chat("riverside-main", text).await;
        assert_eq!(ann.accept(patron.session).await.0, 200);
        assert_eq!(ann.post(&format!("/api/sessions/{}/end", patron.session), json!(null)).await.0, 200);
        if i == 0 {
            let code = json!({"code": "follow_up_by_me"});
            assert_eq!(ann.post(&format!("/api/sessions/{}/code", patron.session), code).await.0, 200);
        }
        let rating = json!({"rating": i % 5 + 1, "comment": text});
        assert_eq!(patron.post("/api/chat/rating", rating).await.0, 200);
    }
    // Another library's question, which the filtered export must leave out.
    let ben = app.staff("ben").await;
    let other = app.start_chat("lakeside-public", "=1+1 from Lakeside").await;
    assert_eq!(ben.accept(other.session).await.0, 200);

    let erin = app.staff("erin").await;
    let today = now(&app).div_euclid(DAY);
    let range = format!("from={}&to={}", date(today - 1), date(today + 1));
    let res = get_raw(&erin, &format!("/api/reports/rating-comments?{range}&format=csv")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/csv; charset=utf-8");
    let body = res.bytes().await.unwrap();
    assert!(
        body.starts_with(b"\"Date\",\"Library\",\"Rating\",\"Comment\",\"Question\"\r\n"),
        "every field quoted: {}",
        String::from_utf8_lossy(&body)
    );
    assert!(body.windows("「源氏物語」".len()).any(|w| w == "「源氏物語」".as_bytes()), "UTF-8 as is, not escaped");
    let records = read_csv(&body);
    assert_eq!(records[0], ["Date", "Library", "Rating", "Comment", "Question"]);
    assert_eq!(records.len(), AWKWARD.len() + 1);
    // Newest first.
    for (i, (rec, text)) in records[1..].iter().zip(AWKWARD.iter().enumerate().rev()).enumerate() {
        let (k, text) = text;
        assert_eq!(rec[0], date(today), "{i}");
        assert_eq!(rec[1], "Riverside University Main Library");
        assert_eq!(rec[2], (k % 5 + 1).to_string());
        assert_eq!(rec[3], defused(text), "comment {k}");
    }

    // The question list's export, with a filter: only Riverside Main's.
    let res = get_raw(&erin, "/api/questions/export?library=riverside-main").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/csv; charset=utf-8");
    assert!(res.headers()["content-disposition"].to_str().unwrap().starts_with("attachment"));
    let body = res.bytes().await.unwrap();
    assert!(body.ends_with(b"\r\n"));
    let records = read_csv(&body);
    let head = [
        "Question",
        "Created (UTC)",
        "Library",
        "Status",
        "Code",
        "READ scale",
        "Librarian",
        "Assigned to",
        "Referred to",
        "Follow-up",
        "Rating",
        "Question text",
        "Answered by e-mail by",
        "Channel",
        "Live",
    ];
    assert_eq!(records[0], head);
    let texts: Vec<&str> = records[1..].iter().map(|r| r[11].as_str()).collect();
    let mut want: Vec<String> = AWKWARD.iter().map(|t| defused(t)).collect();
    want.reverse(); // newest first
    assert_eq!(texts, want);
    for r in &records[1..] {
        assert_eq!(r[2], "Riverside University Main Library");
        assert_eq!(r[6], "Ann Archer");
    }
    // The coded one (the oldest, last): its code as the librarian picked
    // it, and to whom the code gave it.
    let coded = records.last().unwrap();
    assert_eq!((coded[3].as_str(), coded[4].as_str(), coded[7].as_str()), ("new", "Follow-up by me", "Ann Archer"));
    assert!(records[1..records.len() - 1].iter().all(|r| r[4].is_empty() && r[7].is_empty()), "no code, nobody");
    // Ended without a code: still live (R5), and marked so (B1); coded: not.
    assert!(records[1..records.len() - 1].iter().all(|r| r[14] == "yes"), "live, marked");
    assert_eq!(coded[14], "");
    // Without the filter, Lakeside's formula is there too, neutralised.
    let all = read_csv(&get_raw(&erin, "/api/questions/export").await.bytes().await.unwrap());
    assert_eq!(all.len(), AWKWARD.len() + 2);
    assert!(all.iter().any(|r| r[11] == "'=1+1 from Lakeside" && r[2] == "Lakeside Public Library"));
}

// --- bad input ----------------------------------------------------------------

#[tokio::test]
async fn reports_refuse_bad_input_naming_it() {
    let app = spawn_app_with_manual_clock().await;
    let ann = app.staff("ann").await;
    let ok = "from=2026-01-01&to=2026-01-31";
    assert_eq!(ann.get(&format!("/api/reports/by-day?{ok}")).await.0, 200);
    assert_eq!(ann.get(&format!("/api/reports/by-day?{ok}&tz=America/Argentina/ComodRivadavia")).await.0, 200);

    let (status, err) = ann.get(&format!("/api/reports/no-such-report?{ok}")).await;
    assert_eq!((status, err["error"]["code"].as_str()), (404, Some("not_found")), "{err}");

    for (query, field) in [
        ("from=2026-02-30&to=2026-03-01", "from"),
        ("from=2026-1-05&to=2026-01-31", "from"),
        ("from=yesterday&to=2026-01-31", "from"),
        ("from=2026-01-01&to=2026-13-01", "to"),
        ("from=2026-01-31&to=2026-01-01", "to"),
        ("from=2020-01-01&to=2023-12-31", "to"),
        ("from=2026-01-01&to=2026-01-31&utc_offset=ninety", "utc_offset"),
        ("from=2026-01-01&to=2026-01-31&utc_offset=900", "utc_offset"),
        ("from=2026-01-01&to=2026-01-31&utc_offset=-841", "utc_offset"),
        ("from=2026-01-01&to=2026-01-31&tz=Mars/Olympus_Mons", "tz"),
        ("from=2026-01-01&to=2026-01-31&tz=../../etc/passwd", "tz"),
        ("from=2026-01-01&to=2026-01-31&tz=Europe/Paris&utc_offset=60", "tz"),
        ("from=2026-01-01&to=2026-01-31&format=xlsx", "format"),
        // A librarian's scope is their library.
        ("from=2026-01-01&to=2026-01-31&library=lakeside-public", "library"),
        ("from=2026-01-01&to=2026-01-31&library=no-such-library", "library"),
    ] {
        let (status, err) = ann.get(&format!("/api/reports/by-day?{query}")).await;
        assert_eq!((status, err["error"]["code"].as_str()), (422, Some("invalid")), "{query}: {err}");
        let message = err["error"]["message"].as_str().unwrap();
        assert!(message.starts_with(&format!("invalid {field}:")), "{query} names {field}: {err}");
    }
    // At most 1,100 days: 1,100 is allowed.
    assert_eq!(ann.get("/api/reports/by-week?from=2023-01-01&to=2026-01-04").await.0, 200);
    let (status, err) = ann.get("/api/reports/by-week?from=2023-01-01&to=2026-01-05").await;
    assert_eq!((status, err["error"]["code"].as_str()), (422, Some("invalid")), "1,101 days: {err}");
    assert_eq!(ann.get(&format!("/api/reports/by-day?{ok}&library=riverside-main")).await.0, 200);

    let (status, err) = ann.get(&format!("/api/reports/by-day?{ok}&colour=blue")).await;
    assert_eq!((status, err["error"]["code"].as_str()), (400, Some("bad_query")), "{err}");

    let anon = reqwest::Client::new();
    for path in
        ["/api/reports".to_owned(), format!("/api/reports/by-day?{ok}"), format!("/api/reports/by-day?{ok}&format=csv")]
    {
        let res = anon.get(app.url(&path)).send().await.unwrap();
        assert_eq!(res.status(), 401, "{path}");
        let err: Value = res.json().await.unwrap();
        assert_eq!(err["error"]["code"], "unauthenticated");
    }
    let res = anon.get(app.url("/api/questions/export")).send().await.unwrap();
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn the_question_export_goes_out_a_page_at_a_time_and_holds_every_question_once() {
    let app = spawn_app_with_manual_clock().await;
    // Two full pages of 200 and a part.
    ask_offline_questions(&app, 450).await;
    let erin = app.staff("erin").await;
    let res = get_raw(&erin, "/api/questions/export").await;
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("content-length").is_none(), "streamed, not built whole first");
    let records = read_csv(&res.bytes().await.unwrap());
    assert_eq!(records.len(), 451, "the heading and every question");
    let ids: Vec<i64> = records[1..].iter().map(|r| r[0].parse().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first, each once");
    let texts: BTreeSet<&str> = records[1..].iter().map(|r| r[11].as_str()).collect();
    assert_eq!(texts.len(), 450);
}

#[tokio::test]
async fn each_page_of_a_question_export_spends_a_read_of_the_exporters_budget() {
    // An export reads a page at a time as its client takes them: without a
    // read per page, one request would let an account read 250 pages at
    // the speed of its download, and a few hundred at once the whole store.
    let app = spawn_app_with_manual_clock_and(|c| c.limits.staff_reads_per_second = 1).await;
    ask_offline_questions(&app, 450).await;
    let erin = app.staff("erin").await;
    // The account's reads spent (ten seconds' worth), then one back.
    let mut spent = 0;
    while erin.get("/api/me").await.0 != 429 {
        spent += 1;
        assert!(spent < 100, "the read budget never ran out");
    }
    // The budget refills in time (a token a second): there is nothing to
    // wait on but the clock.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let started = std::time::Instant::now();
    let res = get_raw(&erin, "/api/questions/export").await;
    assert_eq!(res.status(), 200, "the request spends the one read back");
    let records = read_csv(&res.bytes().await.unwrap());
    assert_eq!(records.len(), 451, "the whole export, however slowly");
    // Its two further pages waited for a read each (a second apiece).
    let took = started.elapsed();
    assert!(took >= std::time::Duration::from_millis(1500), "three pages in {took:?}");
}

#[tokio::test]
async fn a_question_export_ends_at_its_next_page_once_its_sign_in_has_ended() {
    let app = spawn_app_with_manual_clock_and(|c| c.limits.staff_reads_per_second = 1).await;
    ask_offline_questions(&app, 450).await;
    let erin = app.staff("erin").await;
    // Its reads spent, so that the second page waits a second for one.
    while erin.get("/api/me").await.0 != 429 {}
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let res = get_raw(&erin, "/api/questions/export").await;
    assert_eq!(res.status(), 200);
    // Signed out (elsewhere, or by an admin disabling the account) while
    // the download goes on: what is left is not read.
    let token = erin.cookie.split_once('=').unwrap().1;
    app.state.app.logout(token).await.unwrap();
    let body = res.bytes().await;
    assert!(body.is_err(), "the download ends short, not with the whole list: {:?}", body.map(|b| b.len()));
}

/// `n` offline-form questions at Riverside Main: two full pages of an
/// export and a part, for 450.
async fn ask_offline_questions(app: &TestApp, n: usize) {
    for i in 0..n {
        let form = refdesk_app::OfflineForm {
            name: None,
            email: Some("pat@example.org".into()),
            question: format!("Question {i}"),
            browser: None,
        };
        app.state.app.ask_offline("riverside-main", form, None).await.unwrap();
    }
}

/// A question asked by the form has no chat and no chatting librarian: the
/// librarian who answers it by e-mail is named in the list, found by its
/// librarian filter, counted by librarian and named in the export (they
/// were in none of them).
#[tokio::test]
async fn answers_emailed_count_for_the_librarian_in_the_list_its_filter_and_the_reports() {
    let app = spawn_app_with_manual_clock().await;
    let (ann, ben, carla) = (app.staff("ann").await, app.staff("ben").await, app.staff("carla").await);
    app.ask_by_form("riverside-main", "Can I renew by phone?").await;
    app.ask_by_form("riverside-main", "Do you hold the 1911 census?").await;
    let (_, list) = ann.get("/api/questions").await;
    let id = |text: &str| list.as_array().unwrap().iter().find(|q| q["text"] == text).unwrap()["id"].as_i64().unwrap();
    let (renew, census) = (id("Can I renew by phone?"), id("Do you hold the 1911 census?"));
    // Flagged for the library's follow-up, then answered by Ann: the
    // follow-up is done (the export said "yes" still, the view left it out).
    assert_eq!(ann.act(renew, "code", json!({"code": "follow_up_by_library"})).await.0, 200);
    let follow_up = |id: i64| {
        let carla = &carla;
        async move {
            let csv = read_csv(&get_raw(carla, "/api/questions/export").await.bytes().await.unwrap());
            let col = csv[0].iter().position(|h| h == "Follow-up").unwrap();
            csv.iter().find(|r| r[0] == id.to_string()).unwrap()[col].clone()
        }
    };
    assert_eq!(follow_up(renew).await, "yes", "to do");
    let (status, out) = ann.act(renew, "answer", json!({"body": "Yes: 555-0100."})).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(ann.act(census, "code", json!({"code": "answered"})).await.0, 200);
    assert_eq!((follow_up(renew).await.as_str(), follow_up(census).await.as_str()), ("done", ""), "answered: done");

    let (_, list) = carla.get("/api/questions").await;
    let listed = |id: i64| list.as_array().unwrap().iter().find(|q| q["id"] == id).unwrap().clone();
    assert_eq!(
        (&listed(renew)["emailed_by_name"], &listed(renew)["librarian_name"]),
        (&json!("Ann Archer"), &json!(null))
    );
    assert_eq!(listed(census)["emailed_by_name"], json!(null), "coded, not answered");

    let (_, mine) = carla.get(&format!("/api/questions?librarian={}", ann.id)).await;
    let ids: Vec<i64> = mine.as_array().unwrap().iter().map(|q| q["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, [renew], "Ann's: the one she answered");
    let (_, bens) = carla.get(&format!("/api/questions?librarian={}", ben.id)).await;
    assert_eq!(bens, json!([]));

    let today = date(app.clock().now().div_euclid(DAY));
    let (status, report) = carla.get(&format!("/api/reports/by-librarian?from={today}&to={today}&utc_offset=0")).await;
    assert_eq!(status, 200, "{report}");
    let keys: Vec<&str> = report["columns"].as_array().unwrap().iter().map(|c| c["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["librarian", "library", "chats", "emailed", "mean_duration_s", "ratings", "mean_rating"]);
    assert_eq!(
        report["rows"],
        json!([["Ann Archer", "Riverside University Main Library", 0, 1, null, 0, null]]),
        "Ann, who served no chat"
    );

    let csv = read_csv(&get_raw(&carla, "/api/questions/export").await.bytes().await.unwrap());
    let col = csv[0].iter().position(|h| h == "Answered by e-mail by").unwrap();
    let row = |id: i64| csv.iter().find(|r| r[0] == id.to_string()).unwrap()[col].clone();
    assert_eq!((row(renew).as_str(), row(census).as_str()), ("Ann Archer", ""));
}

/// A librarian who signs out leaves her chats: one whose patron is there
/// goes back in line, which is no transfer (no one handed it on); one whose
/// patron closed the page ends, hers, and counts as served by her (it went
/// back in line, counted as a transfer, its time in line as chatting, and
/// credited to no one when it expired).
#[tokio::test]
async fn a_sign_out_is_no_transfer_and_a_chat_whose_patron_left_stays_its_librarians() {
    let app = spawn_app_with_manual_clock_and(|c| c.limits.patron_away_seconds = 0).await;
    let (ann, carla) = (app.staff("ann").await, app.staff("carla").await);
    let here = app.start_chat("riverside-main", "Still here: where are the atlases?").await;
    let gone = app.start_chat("riverside-main", "Gone soon: do you have microfiche?").await;
    let mut page = here.socket().await;
    page.resume(Some(here.session), 0).await;
    for s in [here.session, gone.session] {
        assert_eq!(ann.accept(s).await.0, 200);
    }
    // The page has seen the accept: it counts as open on the live chat.
    page.until(|f| f["type"] == "event" && f["system"] == "accepted").await;
    app.clock().advance(90 * SEC);
    assert_eq!(ann.post("/api/logout", json!(null)).await.0, 200);
    let state = |s: i64| {
        let carla = &carla;
        async move { carla.get(&format!("/api/sessions/{s}")).await.1["session"].clone() }
    };
    assert_eq!(state(here.session).await["state"], "waiting", "the patron who is there waits for the next librarian");
    // The other is left a while, in case a page of its patron's comes back
    // (a reload, a node starting), then ends, Ann's.
    assert_eq!(state(gone.session).await["state"], "active", "not at once");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(40);
    while state(gone.session).await["state"] != "ended" {
        assert!(std::time::Instant::now() < deadline, "ended within the wait");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let ended = state(gone.session).await;
    assert_eq!(ended["ctx"]["librarian"], json!(ann.id), "{ended}");
    on_duty(&carla).await;
    assert_eq!(carla.accept(here.session).await.0, 200);

    let today = date(app.clock().now().div_euclid(DAY));
    let range = format!("from={today}&to={today}&utc_offset=0");
    let (_, service) = carla.get(&format!("/api/reports/service?{range}")).await;
    let figure = |name: &str| service["rows"].as_array().unwrap().iter().find(|r| r[0] == name).unwrap()[1].clone();
    assert_eq!(figure("transfers"), json!(0), "{service}");
    let (_, people) = carla.get(&format!("/api/reports/by-librarian?{range}")).await;
    let anns = people["rows"].as_array().unwrap().iter().find(|r| r[0] == "Ann Archer").cloned();
    assert_eq!(
        anns.map(|r| (r[2].clone(), r[4].clone())),
        Some((json!(1), json!(90.0))),
        "her chat, 90 s long: {people}"
    );
}

/// A day since 1970-01-01, counted out year by year (the inverse of `date`).
fn day_number(y: i64, m: usize, d: i64) -> i64 {
    let years: i64 = (1970..y).map(|y| if leap(y) { 366 } else { 365 }).sum();
    let months = [31, if leap(y) { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    years + months[..m - 1].iter().sum::<i64>() + d - 1
}

/// Paris's offset at `t`, by the European Union's rule: summer time (UTC+2)
/// from 01:00 UTC on the last Sunday of March to 01:00 UTC on the last
/// Sunday of October, UTC+1 otherwise.
fn paris_offset(t: i64) -> i64 {
    let y: i64 = date(t.div_euclid(DAY))[..4].parse().unwrap();
    let last_sunday = |m: usize, days: i64| {
        let end = day_number(y, m, days);
        end - (weekday(end) + 1) % 7
    };
    let (start, end) = (last_sunday(3, 31) * DAY + HOUR, last_sunday(10, 31) * DAY + HOUR);
    if (start..end).contains(&t) {
        2 * HOUR
    } else {
        HOUR
    }
}

/// The heat map's cells with chats: (weekday, hour, chats).
fn lit_cells(heat: &Value) -> Vec<(i64, i64, i64)> {
    let int = |v: &Value| v.as_i64().unwrap();
    heat["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| int(&r[2]) != 0)
        .map(|r| (int(&r[0]), int(&r[1]), int(&r[2])))
        .collect()
}

/// A report asked for in a time zone counts each chat on the day and in the
/// hour it had there, daylight saving time included: at 22:30 UTC, a chat
/// in winter is 23:30 in Paris, one in summer 00:30 the next day. With one
/// offset for the year (all a report could be asked for), the summer one
/// was counted an hour early, on the day before.
#[tokio::test]
async fn reports_in_a_time_zone_place_each_chat_by_the_offset_it_had_then() {
    let app = spawn_app_with_manual_clock_and(|c| {
        c.limits.login_hours = 24 * 366;
        c.limits.signoff_minutes = 24 * 60;
    })
    .await;
    let carla = app.staff("carla").await;
    // 15 January and 15 July of next year, at 22:30 UTC: one in Paris's
    // summer time, the other not.
    let year: i64 = date(app.clock().now().div_euclid(DAY))[..4].parse().unwrap();
    let first = day_number(year + 1, 1, 15) * DAY + 22 * HOUR + 30 * MIN;
    let second = day_number(year + 1, 7, 15) * DAY + 22 * HOUR + 30 * MIN;
    assert_eq!((paris_offset(first), paris_offset(second)), (HOUR, 2 * HOUR), "winter, then summer time");
    for t in [first, second] {
        app.clock().advance(t - app.clock().now());
        app.start_chat("riverside-main", "When do you open on Sunday?").await;
        app.ask_by_form("riverside-main", "Can I renew by phone?").await;
    }
    let local = |t: i64| t + paris_offset(t);
    let (from, to) = (date(first.div_euclid(DAY) - 1), date(second.div_euclid(DAY) + 2));
    let ask = |name: &str, zone: &str| format!("/api/reports/{name}?from={from}&to={to}&{zone}");

    let (status, heat) = carla.get(&ask("by-hour", "tz=Europe/Paris")).await;
    assert_eq!(status, 200, "{heat}");
    assert_eq!(heat["time_zone"], "Europe/Paris");
    let lit = lit_cells(&heat);
    let cell = |t: i64| (weekday(local(t).div_euclid(DAY)), local(t).rem_euclid(DAY) / HOUR, 1);
    let mut want = vec![cell(first), cell(second)];
    want.sort();
    assert_eq!(lit, want, "23:30 in winter, 00:30 in summer");
    assert!(want.iter().any(|&(_, h, _)| h == 0) && want.iter().any(|&(_, h, _)| h == 23));

    let days = |report: &Value| -> Vec<(String, i64, i64)> {
        report["rows"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r[1].as_i64() != Some(0) || r[5].as_i64() != Some(0))
            .map(|r| (r[0].as_str().unwrap().to_owned(), r[1].as_i64().unwrap(), r[5].as_i64().unwrap()))
            .collect()
    };
    let (status, by_day) = carla.get(&ask("by-day", "tz=Europe/Paris")).await;
    assert_eq!(status, 200, "{by_day}");
    let on = |t: i64| (date(local(t).div_euclid(DAY)), 1, 1);
    assert_eq!(days(&by_day), [on(first), on(second)], "each chat and form on its local day");
    assert_eq!(date(local(second).div_euclid(DAY)), date(second.div_euclid(DAY) + 1), "the next day in summer");

    // One offset all year, as before: the summer one an hour early.
    let (status, fixed) = carla.get(&ask("by-day", "utc_offset=60")).await;
    assert_eq!(status, 200, "{fixed}");
    assert_eq!(fixed["time_zone"], "UTC+01:00");
    let on_fixed = |t: i64| (date((t + HOUR).div_euclid(DAY)), 1, 1);
    assert_eq!(days(&fixed), [on_fixed(first), on_fixed(second)]);
    assert_ne!(days(&fixed), days(&by_day));

    // Lord Howe Island is 11 hours ahead in January and 10:30 in July (its
    // clocks change by half an hour: the store counts quarter hours): both
    // at 09:xx the next day.
    let (status, howe) = carla.get(&ask("by-hour", "tz=Australia/Lord_Howe")).await;
    assert_eq!(status, 200, "{howe}");
    let lit = lit_cells(&howe);
    let mut want = vec![(weekday(first.div_euclid(DAY) + 1), 9, 1), (weekday(second.div_euclid(DAY) + 1), 9, 1)];
    want.sort();
    want.dedup_by(|a, b| {
        (a.0, a.1) == (b.0, b.1) && {
            b.2 += a.2;
            true
        }
    });
    assert_eq!(lit, want, "09:30 and 09:00");

    // The CSV is counted the same way.
    let res = get_raw(&carla, &ask("by-day", "tz=Europe/Paris&format=csv")).await;
    let file = res.headers()["content-disposition"].to_str().unwrap().to_owned();
    assert!(file.ends_with(&format!("refdesk-by-day-{from}-{to}-Europe_Paris.csv\"")), "the zone in its name: {file}");
    let csv = read_csv(&res.bytes().await.unwrap());
    let rows: Vec<&Vec<String>> = csv[1..].iter().filter(|r| r[1] != "0").collect();
    assert_eq!(rows.iter().map(|r| r[0].clone()).collect::<Vec<_>>(), [on(first).0, on(second).0]);
}

/// The list says how each question came — a chat a librarian took, the
/// offline form, a chat missed or abandoned — finds them by it, and the
/// export has it (a form's or a missed chat's question, whose patron had no
/// one to talk to, looked like any other: the by-channel report counted
/// them and nothing led to them).
#[tokio::test]
async fn the_list_says_how_each_question_came_and_finds_them_by_it() {
    let app = spawn_app_with_manual_clock().await;
    let (ann, carla) = (app.staff("ann").await, app.staff("carla").await);
    let chat = |question: &str, email: &str| {
        app.start_chat_with("riverside-main", json!({"name": "Pat", "email": email, "question": question}))
    };
    let served = chat("Served: where are the atlases?", "a@example.org").await;
    assert_eq!(ann.accept(served.session).await.0, 200);
    app.ask_by_form("riverside-main", "Form: can I renew by phone?").await;
    let left = chat("Abandoned: is anyone there?", "b@example.org").await;
    assert_eq!(left.post("/api/chat/end", json!(null)).await.0, 200);
    chat("Missed: do you have microfiche?", "c@example.org").await;
    // No one takes it: the waiting-chat expiry ends it.
    app.clock().advance(16 * MIN);
    app.state.app.tick(app.clock().now()).await;

    let (status, list) = carla.get("/api/questions").await;
    assert_eq!(status, 200, "{list}");
    let mut came: Vec<(String, String)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|q| (q["text"].as_str().unwrap().to_owned(), q["channel"].as_str().unwrap().to_owned()))
        .collect();
    came.sort();
    let want = [
        ("Abandoned: is anyone there?", "abandoned"),
        ("Form: can I renew by phone?", "form"),
        ("Missed: do you have microfiche?", "missed"),
        ("Served: where are the atlases?", "chat"),
    ];
    assert_eq!(came, want.map(|(t, c)| (t.to_owned(), c.to_owned())));

    for (text, channel) in want {
        let (status, found) = carla.get(&format!("/api/questions?channel={channel}")).await;
        assert_eq!(status, 200, "{found}");
        let texts: Vec<&str> = found.as_array().unwrap().iter().map(|q| q["text"].as_str().unwrap()).collect();
        assert_eq!(texts, [text], "channel={channel}");
    }
    // No question is of a chat still waiting (it is made when the chat is
    // taken or ends): asking for them is a mistake, not a read of every question.
    for bad in ["channel=phone", "channel=", "channel=waiting"] {
        let (status, err) = carla.get(&format!("/api/questions?{bad}")).await;
        assert_eq!((status, err["error"]["code"].as_str()), (422, Some("invalid")), "{bad}: {err}");
        assert!(err["error"]["message"].as_str().unwrap().starts_with("invalid channel:"), "{bad}: {err}");
    }

    let csv = read_csv(&get_raw(&carla, "/api/questions/export").await.bytes().await.unwrap());
    assert_eq!(csv[0][13], "Channel", "added after the columns before, which keep their places");
    let mut exported: Vec<(String, String)> = csv[1..].iter().map(|r| (r[11].clone(), r[13].clone())).collect();
    exported.sort();
    assert_eq!(exported, came);
    let forms = read_csv(&get_raw(&carla, "/api/questions/export?channel=form").await.bytes().await.unwrap());
    assert_eq!(forms.len(), 2, "the header and the form's question");
}
