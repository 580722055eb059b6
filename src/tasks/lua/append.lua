-- Appends an event that changes no state (streamed text) to a task's events.
-- Keys and arguments: `AppendKeys`, `AppendArgs` (src/tasks/scripts.rs).
redis.call('XADD', key_events, 'MAXLEN', '~', arg_events_maxlen, '*', 'event', arg_name,
  'data', arg_data)
changed(key_watching, key_events)
announce(key_announcements)
return 1
