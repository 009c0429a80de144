//! The server's one clock, in the two forms it is stored and shown in: Unix milliseconds
//! (release schedules, webhook retries, the change log's age) and RFC 3339 UTC with
//! milliseconds (every `at` and `created_at` the API and the audit log show).

use time::format_description::well_known::Rfc3339;

/// Unix time in milliseconds.
pub type Millis = i64;

/// Now, in Unix milliseconds.
pub fn now_millis() -> Millis {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as Millis
}

/// Now, as RFC 3339 UTC with milliseconds (`2026-12-01T08:00:00.123Z`).
pub fn now_rfc3339() -> String {
    rfc3339(now_millis()).unwrap_or_default()
}

/// `at` as RFC 3339 UTC with milliseconds; `None` outside the calendar's range.
pub fn rfc3339(at: Millis) -> Option<String> {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(at) * 1_000_000)
        .ok()?
        .format(&Rfc3339)
        .ok()
}

/// `text` as Unix milliseconds: RFC 3339 (`2026-12-24T08:00:00Z`, any offset), also without
/// seconds (`2026-12-24T08:00Z`) as people write it.
pub fn parse_rfc3339(text: &str) -> Option<Millis> {
    let parse = |t: &str| time::OffsetDateTime::parse(t, &Rfc3339).ok();
    let at = parse(text).or_else(|| {
        let (minutes, offset) = (text.get(..16)?, text.get(16..)?);
        let no_seconds = offset.starts_with(['Z', 'z', '+', '-']);
        no_seconds.then(|| parse(&format!("{minutes}:00{offset}")))?
    })?;
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rfc3339_with_and_without_seconds() {
        let at = parse_rfc3339("2026-12-24T08:00Z").unwrap();
        assert_eq!(Some(at), parse_rfc3339("2026-12-24T09:00:00+01:00"));
        assert_eq!(rfc3339(at).unwrap(), "2026-12-24T08:00:00Z");
        assert_eq!(parse_rfc3339("tomorrow"), None);
        assert_eq!(parse_rfc3339("2026-12-24T08:00"), None);
    }

    #[test]
    fn rfc3339_round_trips_in_milliseconds() {
        let at = parse_rfc3339("2026-12-01T03:00:00.250Z").unwrap();
        assert_eq!(rfc3339(at).unwrap(), "2026-12-01T03:00:00.25Z");
        assert_eq!(parse_rfc3339("2026-12-01T04:00:00+01:00"), Some(at - 250));
        assert_eq!(parse_rfc3339("2026-12-01 03:00"), None);
    }
}
