-- The networks each staff member signed in from (a digest of an IPv4
-- address or an IPv6 /64, apart from patrons'), and when last: a network an
-- account signed in from in the last 30 days is not held back by its failed
-- sign-ins (`limits.failed_logins_per_account_per_hour`), so that a stranger
-- failing on purpose cannot lock a librarian out at her desk. Kept in the
-- database, a restart or another node no longer forgets them. At most 8 per
-- account (the oldest goes), none older than 30 days (the background round),
-- none once the password is reset or the account disabled.
CREATE TABLE sign_in_networks (
    staff_id BIGINT NOT NULL REFERENCES staff(id),
    network  TEXT NOT NULL,
    last_at  BIGINT NOT NULL,
    PRIMARY KEY (staff_id, network)
);
