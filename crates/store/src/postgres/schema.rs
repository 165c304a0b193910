//! PostgreSQL migrations, versioned in the `refdesk_schema` table:
//! migration *n* brings the schema from version *n* to *n + 1*. Append,
//! never edit. Every integer is a `BIGINT` (ids and times are `i64` in Rust);
//! flags are `BOOLEAN`.
//!
//! The statements are kept as `.sql` files in `migrations/`, one per version.

/// The migrations, in order.
pub const MIGRATIONS: &[&str] = &[
    include_str!("migrations/001.sql"),
    include_str!("migrations/002.sql"),
    include_str!("migrations/003.sql"),
    include_str!("migrations/004.sql"),
    include_str!("migrations/005.sql"),
    include_str!("migrations/006.sql"),
    include_str!("migrations/007.sql"),
    include_str!("migrations/008.sql"),
    include_str!("migrations/009.sql"),
    include_str!("migrations/010.sql"),
    include_str!("migrations/011.sql"),
    include_str!("migrations/012.sql"),
    include_str!("migrations/013.sql"),
    include_str!("migrations/014.sql"),
    include_str!("migrations/015.sql"),
    include_str!("migrations/016.sql"),
    include_str!("migrations/017.sql"),
    include_str!("migrations/018.sql"),
    include_str!("migrations/019.sql"),
    include_str!("migrations/020.sql"),
    include_str!("migrations/021.sql"),
    include_str!("migrations/022.sql"),
    include_str!("migrations/023.sql"),
    include_str!("migrations/024.sql"),
    include_str!("migrations/025.sql"),
    include_str!("migrations/026.sql"),
    include_str!("migrations/027.sql"),
    include_str!("migrations/028.sql"),
    include_str!("migrations/029.sql"),
    include_str!("migrations/030.sql"),
    include_str!("migrations/031.sql"),
    include_str!("migrations/032.sql"),
    include_str!("migrations/033.sql"),
    include_str!("migrations/034.sql"),
    include_str!("migrations/035.sql"),
    include_str!("migrations/036.sql"),
];
