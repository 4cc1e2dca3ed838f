//! Matching a `wsproxy --format json` log of an Autobahn run to the run's
//! cases: which cases made the proxy report a violation, and by whom.
//!
//! On a connection that negotiated permessage-deflate, a compressed message
//! that the proxy could not inflate counts as a violation
//! `proxy:not_inflated` of its case, so a run whose every message should
//! have been read says so. (Without the extension, RSV1 is only a
//! `reserved_bit_set` violation.)
//!
//! Each case runs on one connection. A connection is matched to its case
//! by the `Sec-WebSocket-Key` of its upgrade request, which the proxy logs
//! and the case's report holds in `httpRequest` (RFC 6455 §4.1: a fresh
//! random key per connection), so cases run at the same time (`autobahn
//! run --jobs N`) are told apart; a connection whose key no report has (or
//! two reports have) is not attributed to a case. Where the reports hold no
//! requests, the order decides: the fuzzingclient runs its cases in order, and the k-th
//! connection that sent an upgrade request is the case whose report says
//! `"case": k`. (Other connections, such as a reachability probe, are
//! skipped.)

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, bail};

use super::report::{CaseId, Results};

/// Per case, the rules the proxy reported, with who broke them.
pub type CaseViolations = BTreeMap<CaseId, BTreeSet<(String, String)>>;

/// The run's cases in the order they ran, and by the `Sec-WebSocket-Key`
/// of their upgrade requests (`None`: a key two reports have).
type ByKey = BTreeMap<String, Option<CaseId>>;

fn cases_in_run_order(results: &Results) -> anyhow::Result<(Vec<CaseId>, ByKey)> {
    let dir = results.dir.as_ref().context("the case order needs a report directory, not an index file")?;
    let mut numbered = Vec::new();
    let mut by_key = BTreeMap::new();
    for (id, result) in &results.cases {
        let Some(file) = &result.report_file else { bail!("case {id} has no report file in index.json") };
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let value: serde_json::Value = serde_json::from_str(&super::report::lenient_json(&text))
            .with_context(|| format!("{} is not JSON", path.display()))?;
        let n = value["case"].as_u64().with_context(|| format!("{} has no \"case\" number", path.display()))?;
        numbered.push((n, id.clone()));
        if let Some(key) = value["httpRequest"].as_str().and_then(request_key) {
            by_key.entry(key.to_owned()).and_modify(|case| *case = None).or_insert_with(|| Some(id.clone()));
        }
    }
    numbered.sort();
    Ok((numbered.into_iter().map(|(_, id)| id).collect(), by_key))
}

/// The `Sec-WebSocket-Key` of a request head as a report holds it.
fn request_key(head: &str) -> Option<&str> {
    head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim().eq_ignore_ascii_case("sec-websocket-key").then(|| value.trim())
    })
}

/// Reads the proxy's log and attributes its violations to cases.
pub fn violations_by_case(results: &Results, log: &Path) -> anyhow::Result<CaseViolations> {
    let (order, by_key) = cases_in_run_order(results)?;
    let text = std::fs::read_to_string(log).with_context(|| format!("reading {}", log.display()))?;
    let mut upgrade_index: BTreeMap<u64, usize> = BTreeMap::new();
    let mut conn_key: BTreeMap<u64, String> = BTreeMap::new();
    let mut by_conn: BTreeMap<u64, BTreeSet<(String, String)>> = BTreeMap::new();
    let mut deflate_conns = BTreeSet::new();
    for (n, line) in text.lines().enumerate() {
        let v: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("{}:{}: not a JSON event", log.display(), n + 1))?;
        let conn = v["conn"].as_u64().with_context(|| format!("{}:{}: no conn", log.display(), n + 1))?;
        match v["event"].as_str() {
            Some("handshake_request") => {
                let next = upgrade_index.len();
                upgrade_index.entry(conn).or_insert(next);
                let key = v["headers"].as_array().and_then(|headers| {
                    headers.iter().find_map(|h| {
                        let name = h["name"].as_str()?;
                        name.eq_ignore_ascii_case("sec-websocket-key").then(|| h["value"].as_str())?
                    })
                });
                if let Some(key) = key {
                    conn_key.entry(conn).or_insert_with(|| key.trim().to_owned());
                }
            }
            Some("violation") => {
                let from = v["from"].as_str().unwrap_or("?").to_owned();
                let rule = v["rule"].as_str().unwrap_or("?").to_owned();
                by_conn.entry(conn).or_default().insert((from, rule));
            }
            Some("handshake_response")
                if v["extensions"].as_array().is_some_and(|exts| {
                    exts.iter().any(|e| e.as_str().is_some_and(|e| e.trim_start().starts_with("permessage-deflate")))
                }) =>
            {
                deflate_conns.insert(conn);
            }
            Some("message")
                if v["compressed"] == true && v["decompressed_len"].is_null() && deflate_conns.contains(&conn) =>
            {
                by_conn.entry(conn).or_default().insert(("proxy".to_owned(), "not_inflated".to_owned()));
            }
            _ => {}
        }
    }
    let mut out = CaseViolations::new();
    for (conn, rules) in by_conn {
        let case = if by_key.is_empty() {
            upgrade_index.get(&conn).and_then(|&k| order.get(k)).cloned()
        } else {
            conn_key.get(&conn).and_then(|key| by_key.get(key).cloned().flatten())
        };
        let case = case.unwrap_or_else(|| CaseId::new(&format!("conn-{conn}")));
        out.entry(case).or_default().extend(rules);
    }
    Ok(out)
}

/// One line per case: `CASE from:rule[,from:rule]`.
pub fn render_violations(v: &CaseViolations) -> String {
    let mut out = String::new();
    for (case, rules) in v {
        let rules: Vec<String> = rules.iter().map(|(from, rule)| format!("{from}:{rule}")).collect();
        let _ = writeln!(out, "{} {}", case.as_str(), rules.join(","));
    }
    out
}

/// Whether the rules reported for one case are the expected ones: every
/// expected `from:rule` reported, and nothing else, except that an
/// expected `from:*` lets that side's other rules through. (For cases where
/// what follows a violation depends on random bytes: a client that sends
/// its close inside a frame it had not finished, after the server failed
/// the connection, has the rest of its close read as a frame header whose
/// bits come from its masking key.)
pub fn expected_matches(expected: &BTreeSet<(String, String)>, reported: &BTreeSet<(String, String)>) -> bool {
    let any_from = |from: &str| expected.contains(&(from.to_owned(), "*".to_owned()));
    expected.iter().filter(|(_, rule)| rule != "*").all(|r| reported.contains(r))
        && reported.iter().all(|r| expected.contains(r) || any_from(&r.0))
}

/// Parses the format [`render_violations`] writes (`#` comments allowed;
/// `from:*` as [`expected_matches`] reads it).
pub fn parse_expected_violations(text: &str) -> anyhow::Result<CaseViolations> {
    let mut out = CaseViolations::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let (case, rules) =
            line.split_once(' ').with_context(|| format!("line {}: expected `CASE from:rule,…`", n + 1))?;
        let set = out.entry(CaseId::new(case)).or_default();
        for r in rules.trim().split(',') {
            let (from, rule) = r.split_once(':').with_context(|| format!("line {}: {r:?} is not from:rule", n + 1))?;
            set.insert((from.to_owned(), rule.to_owned()));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cases run at the same time: each connection goes to the case whose
    /// report has its key, whatever the order the connections opened in; a
    /// connection without a known key goes to no case.
    #[test]
    fn connections_are_matched_to_cases_by_their_key() {
        let dir = std::env::temp_dir().join(format!("wsharness-proxylog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut index = serde_json::Map::new();
        for (n, (id, key)) in [("1.1.1", "a2V5LW9uZQ=="), ("2.1", "a2V5LXR3bw=="), ("3.1", "")].iter().enumerate() {
            let file = format!("echo_case_{}.json", id.replace('.', "_"));
            let request = if key.is_empty() {
                String::new()
            } else {
                format!("GET / HTTP/1.1\r\nUpgrade: WebSocket\r\nsec-websocket-key: {key}\r\n\r\n")
            };
            let report = serde_json::json!({ "case": n + 1, "httpRequest": request });
            std::fs::write(dir.join(&file), report.to_string()).expect("write");
            index.insert(
                (*id).to_owned(),
                serde_json::json!({ "behavior": "OK", "behaviorClose": "OK", "duration": 1, "reportfile": file }),
            );
        }
        std::fs::write(dir.join("index.json"), serde_json::json!({ "echo": index }).to_string()).expect("write");
        let upgrade = |conn: u64, key: &str| {
            let headers = if key.is_empty() {
                serde_json::json!([])
            } else {
                serde_json::json!([{ "name": "Sec-WebSocket-Key", "value": key }])
            };
            serde_json::json!({ "conn": conn, "event": "handshake_request", "headers": headers }).to_string()
        };
        let violation = |conn: u64, rule: &str| {
            serde_json::json!({ "conn": conn, "event": "violation", "from": "client", "rule": rule }).to_string()
        };
        // 2.1's connection opens first, then 1.1.1's, then one without a
        // key: not attributed, as the order cannot be trusted here.
        let log = [
            upgrade(5, "a2V5LXR3bw=="),
            upgrade(6, "a2V5LW9uZQ=="),
            upgrade(7, ""),
            violation(6, "one"),
            violation(5, "two"),
            violation(7, "three"),
        ]
        .join("\n");
        let log_path = dir.join("proxy.jsonl");
        std::fs::write(&log_path, log).expect("write");
        let results = super::super::report::load_results(&dir, None).expect("reports");
        let found = violations_by_case(&results, &log_path).expect("attributed");
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(render_violations(&found), "conn-7 client:three\n1.1.1 client:one\n2.1 client:two\n");
    }

    #[test]
    fn a_wildcard_lets_one_sides_other_rules_through() {
        let set = |text: &str| {
            parse_expected_violations(&format!("6.4.3 {text}\n")).expect("valid")[&CaseId::new("6.4.3")].clone()
        };
        let expected = set("client:invalid_utf8,client:*");
        assert!(expected_matches(&expected, &set("client:invalid_utf8")));
        assert!(expected_matches(&expected, &set("client:invalid_utf8,client:reserved_opcode")));
        assert!(!expected_matches(&expected, &set("client:reserved_opcode")), "the exact rule is still required");
        assert!(!expected_matches(&expected, &set("client:invalid_utf8,upstream:reserved_opcode")), "only that side");
        let exact = set("client:invalid_utf8");
        assert!(!expected_matches(&exact, &set("client:invalid_utf8,client:reserved_opcode")));
        assert!(expected_matches(&exact, &set("client:invalid_utf8")));
    }

    #[test]
    fn expected_format_round_trips() {
        let text = "# comment\n2.5 client:control_frame_too_long\n5.2 client:control_frame_fragmented,client:unexpected_continuation\n";
        let parsed = parse_expected_violations(text).expect("valid");
        assert_eq!(parsed.len(), 2);
        assert_eq!(parse_expected_violations(&render_violations(&parsed)).expect("valid"), parsed);
        assert!(parse_expected_violations("2.5 nocolon").is_err());
    }
}
