-- Appends an event that changes no state (streamed text) to a task's events.
-- KEYS: 1 events stream
-- ARGV: 1 event name, 2 data json (with at_us), 3 events maxlen
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'event', ARGV[1], 'data', ARGV[2])
changed(KEYS[1])
announce()
return 1
