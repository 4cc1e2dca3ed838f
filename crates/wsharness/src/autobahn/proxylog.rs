//! Matching a `wsproxy --format json` log of an Autobahn run to the run's
//! cases: which cases made the proxy report a violation, and by whom.
//!
//! On a connection that negotiated permessage-deflate, a compressed message
//! that the proxy could not inflate counts as a violation
//! `proxy:not_inflated` of its case, so a run whose every message should
//! have been read says so. (Without the extension, RSV1 is only a
//! `reserved_bit_set` violation.)
//!
//! The fuzzingclient runs its cases one connection each, in order; the
//! k-th connection that sent an upgrade request is the case whose report
//! says `"case": k`. (Other connections, such as a reachability probe, are
//! skipped.)

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, bail};

use super::report::{CaseId, Results};

/// Per case, the rules the proxy reported, with who broke them.
pub type CaseViolations = BTreeMap<CaseId, BTreeSet<(String, String)>>;

/// The run's cases in the order they ran.
fn cases_in_run_order(results: &Results) -> anyhow::Result<Vec<CaseId>> {
    let dir = results.dir.as_ref().context("the case order needs a report directory, not an index file")?;
    let mut numbered = Vec::new();
    for (id, result) in &results.cases {
        let Some(file) = &result.report_file else { bail!("case {id} has no report file in index.json") };
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let value: serde_json::Value = serde_json::from_str(&super::report::lenient_json(&text))
            .with_context(|| format!("{} is not JSON", path.display()))?;
        let n = value["case"].as_u64().with_context(|| format!("{} has no \"case\" number", path.display()))?;
        numbered.push((n, id.clone()));
    }
    numbered.sort();
    Ok(numbered.into_iter().map(|(_, id)| id).collect())
}

/// Reads the proxy's log and attributes its violations to cases.
pub fn violations_by_case(results: &Results, log: &Path) -> anyhow::Result<CaseViolations> {
    let order = cases_in_run_order(results)?;
    let text = std::fs::read_to_string(log).with_context(|| format!("reading {}", log.display()))?;
    let mut upgrade_index: BTreeMap<u64, usize> = BTreeMap::new();
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
        let case = upgrade_index.get(&conn).and_then(|&k| order.get(k)).cloned();
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

/// Parses the format [`render_violations`] writes (`#` comments allowed).
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

    #[test]
    fn expected_format_round_trips() {
        let text = "# comment\n2.5 client:control_frame_too_long\n5.2 client:control_frame_fragmented,client:unexpected_continuation\n";
        let parsed = parse_expected_violations(text).expect("valid");
        assert_eq!(parsed.len(), 2);
        assert_eq!(parse_expected_violations(&render_violations(&parsed)).expect("valid"), parsed);
        assert!(parse_expected_violations("2.5 nocolon").is_err());
    }
}
