//! The wire log's data renderings, as `fuzzing.py` writes them
//! (`binLogData`, `asciiLogData`), and the report's timestamps.

use serde_json::Value;

/// Bytes shown of a logged payload or write.
const MAX_LOG_DATA: usize = 64;
const ELLIPSES: &str = " ...";

/// `binLogData`: hex, cut to 64 bytes with " ..." when longer than 60.
pub fn bin_log_data(data: &[u8]) -> String {
    if data.len() > MAX_LOG_DATA - ELLIPSES.len() {
        format!("{}{ELLIPSES}", super::conn::hex(&data[..data.len().min(MAX_LOG_DATA)]))
    } else {
        super::conn::hex(data)
    }
}

/// `asciiLogData`: the (cut) payload as text when it is UTF-8, else `0x`
/// and [`bin_log_data`].
pub fn ascii_log_data(data: &[u8]) -> String {
    let shown: Vec<u8> = if data.len() > MAX_LOG_DATA - ELLIPSES.len() {
        [&data[..data.len().min(MAX_LOG_DATA)], ELLIPSES.as_bytes()].concat()
    } else {
        data.to_vec()
    };
    match String::from_utf8(shown) {
        Ok(text) => text,
        Err(_) => format!("0x{}", bin_log_data(data)),
    }
}

/// A delay as Python's JSON writes it: `1` for whole seconds, `0.5` otherwise.
pub fn seconds(s: f64) -> Value {
    if s.fract() == 0.0 && s.abs() < 1e15 { Value::from(s as i64) } else { Value::from(s) }
}

/// The current time as `2026-11-30T16:30:25.216Z` (Autobahn's `utcnow`).
pub fn utc_now() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = now.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        now.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renderings_as_fuzzing_py() {
        assert_eq!(bin_log_data(b"\x81\x00"), "8100");
        let long = vec![0xabu8; 70];
        assert_eq!(bin_log_data(&long), format!("{} ...", "ab".repeat(64)));
        assert_eq!(ascii_log_data(b"Hello"), "Hello");
        assert_eq!(ascii_log_data(b"\x03\xe8"), "0x03e8");
        assert_eq!(ascii_log_data(&[b'*'; 61]), format!("{} ...", "*".repeat(61)));
        assert_eq!(ascii_log_data(b"\xff"), "0xff");
        assert_eq!(seconds(1.0), Value::from(1));
        assert_eq!(seconds(0.5), Value::from(0.5));
    }

    #[test]
    fn timestamps_look_like_autobahns() {
        let t = utc_now();
        assert_eq!(t.len(), 24, "{t}");
        assert!(t.ends_with('Z') && t.as_bytes()[10] == b'T', "{t}");
        assert!(t.starts_with("20"), "{t}");
    }
}
