-- Questions left for an e-mail answer from one network in a day (offline
-- forms and missed chats together, `form_questions_per_address_per_day`)
-- are counted at each form and each missed chat: over a network's sessions
-- of the day, not over every session ever started.
CREATE INDEX sessions_net ON sessions(net_key, created_at) WHERE net_key IS NOT NULL;
