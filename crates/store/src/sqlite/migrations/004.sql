ALTER TABLE sessions ADD COLUMN rating INTEGER;
ALTER TABLE sessions ADD COLUMN rating_comment TEXT;
CREATE TABLE policies (
    library_id INTEGER PRIMARY KEY REFERENCES libraries(id),
    body       TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by INTEGER REFERENCES staff(id)
);
