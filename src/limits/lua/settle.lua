-- Settles a task's reservation when it ends, as a follow-up of the partition script that
-- recorded the end (tasks/outbox.rs; settlement.lua, prepended).
-- KEYS: 1 daily quota, 2 monthly quota, 3 the feature's token bucket, 4 the user's settled set
-- ARGV: 1 the reservation (`Reservation::encode`), 2 tokens used, 3 task id
-- Returns 1 when it settled, 0 when the task was settled before (or the reservation is not ours).
return settle_reservation(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], tonumber(ARGV[2]), ARGV[3])
