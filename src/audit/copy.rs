//! Audit events as PostgreSQL binary `COPY` rows: the cheapest way in for both sides. Each
//! event is written straight into one buffer (no per-column arrays to build on our side, none
//! to unpack and no `ON CONFLICT` probe on PostgreSQL's), which more than halves what a row
//! costs the database. `COPY` cannot skip a row that is already there, so a batch holding one
//! (a retry) fails as a whole and the writer inserts it again with `ON CONFLICT DO NOTHING`.
//!
//! Format: <https://www.postgresql.org/docs/current/sql-copy.html#id-1.9.3.55.9.4>.

use super::event::AuditEvent;

/// The statement the rows of [`encode`] are for (its columns in their order).
pub const STATEMENT: &str = "COPY audit_events (id, kind, request_id, task_id, user_id, role, \
     feature, prompt_name, prompt_version, created_at, provider, model, prompt_tokens, \
     completion_tokens, cost_usd, duration_ms, cached, degraded, error_kind, client_ip, payload) \
     FROM STDIN (FORMAT binary)";

const COLUMNS: i16 = 21;

/// Signature, flags (no OIDs) and an empty header extension.
const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// PostgreSQL counts time from 2000-01-01 UTC; events carry Unix microseconds.
const PG_EPOCH_UNIX_US: i64 = 946_684_800_000_000;

/// The whole `COPY` payload for `events`: header, one tuple each, trailer.
pub fn encode(events: &[AuditEvent]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER.len() + 2 + events.len() * 640);
    out.extend_from_slice(HEADER);
    for event in events {
        row(&mut out, event);
    }
    out.extend_from_slice(&(-1i16).to_be_bytes());
    out
}

fn row(out: &mut Vec<u8>, e: &AuditEvent) {
    out.extend_from_slice(&COLUMNS.to_be_bytes());
    field(out, e.id.as_bytes());
    text(out, e.kind.as_str());
    text(out, &e.request_id);
    optional(out, e.task_id.as_ref().map(|id| id.as_bytes().as_slice()));
    text(out, &e.user_id);
    text(out, &e.role);
    text(out, &e.feature);
    optional(out, e.prompt_name.as_deref().map(str::as_bytes));
    optional(out, e.prompt_version.as_deref().map(str::as_bytes));
    field(out, &(e.at_us - PG_EPOCH_UNIX_US).to_be_bytes());
    optional(out, e.provider.as_deref().map(str::as_bytes));
    optional(out, e.model.as_deref().map(str::as_bytes));
    field(out, &e.prompt_tokens.to_be_bytes());
    field(out, &e.completion_tokens.to_be_bytes());
    field(out, &e.cost_usd.to_be_bytes());
    optional(
        out,
        e.duration_ms.map(i32::to_be_bytes).as_ref().map(|b| &b[..]),
    );
    field(out, &[u8::from(e.cached)]);
    field(out, &[u8::from(e.degraded)]);
    optional(out, e.error_kind.as_deref().map(str::as_bytes));
    optional(out, e.client_ip.as_deref().map(str::as_bytes));
    // `json`'s binary form is its text, written in place; the length is patched in after.
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    serde_json::to_writer(&mut *out, &e.payload).expect("a JSON value always serialises");
    let len =
        i32::try_from(out.len() - at - 4).expect("an audit payload is capped far below 2 GiB");
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

fn field(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = i32::try_from(bytes.len()).expect("an audit field is capped far below 2 GiB");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

fn text(out: &mut Vec<u8>, value: &str) {
    field(out, value.as_bytes());
}

fn optional(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        Some(bytes) => field(out, bytes),
        None => out.extend_from_slice(&(-1i32).to_be_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Kind;

    fn event() -> AuditEvent {
        AuditEvent {
            id: uuid::Uuid::nil(),
            kind: Kind::Success,
            request_id: "r".into(),
            task_id: None,
            user_id: "u".into(),
            role: "student".into(),
            feature: "hint".into(),
            prompt_name: None,
            prompt_version: Some("1.0".into()),
            at_us: PG_EPOCH_UNIX_US + 1,
            provider: None,
            model: None,
            prompt_tokens: 7,
            completion_tokens: 0,
            cost_usd: 0.5,
            duration_ms: None,
            cached: true,
            degraded: false,
            error_kind: None,
            client_ip: None,
            payload: serde_json::json!({ "a": 1 }),
        }
    }

    /// Reads the tuple back field by field, as PostgreSQL does.
    fn fields(row: &[u8]) -> Vec<Option<&[u8]>> {
        let count = i16::from_be_bytes([row[0], row[1]]);
        let mut at = 2;
        (0..count)
            .map(|_| {
                let len = i32::from_be_bytes(row[at..at + 4].try_into().unwrap());
                at += 4;
                (len >= 0).then(|| {
                    let value = &row[at..at + len as usize];
                    at += len as usize;
                    value
                })
            })
            .collect()
    }

    #[test]
    fn a_batch_is_header_tuples_and_trailer() {
        let bytes = encode(&[event(), event()]);
        assert!(bytes.starts_with(b"PGCOPY\n\xff\r\n\0"));
        assert!(bytes.ends_with(&[0xff, 0xff]));
        let tuple = &bytes[HEADER.len()..bytes.len() - 2];
        assert_eq!(tuple.len() % 2, 0, "two equal tuples");
        let fields = fields(&tuple[..tuple.len() / 2]);
        assert_eq!(fields.len(), COLUMNS as usize);
        assert_eq!(fields[0], Some(&[0u8; 16][..]));
        assert_eq!(fields[1], Some(&b"success"[..]));
        assert_eq!(fields[3], None, "no task id");
        assert_eq!(fields[8], Some(&b"1.0"[..]));
        assert_eq!(
            fields[9],
            Some(&1i64.to_be_bytes()[..]),
            "1 µs after 2000-01-01"
        );
        assert_eq!(fields[12], Some(&7i32.to_be_bytes()[..]));
        assert_eq!(fields[14], Some(&0.5f64.to_be_bytes()[..]));
        assert_eq!(fields[15], None, "no duration");
        assert_eq!(fields[16], Some(&[1u8][..]));
        assert_eq!(fields[20], Some(&b"{\"a\":1}"[..]));
    }
}
