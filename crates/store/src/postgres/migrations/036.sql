-- How a library's widget button looks on its site (its wording, colours and
-- corner), kept by its admins as JSON and read by the widget with the
-- library's status: they were only written into the snippet, so a change
-- meant editing every page of the library's site that carried it.
ALTER TABLE library_settings ADD COLUMN widget TEXT;
