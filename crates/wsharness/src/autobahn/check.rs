//! The verdict on one run: counts per category and every failing case.

use std::fmt::Write as _;

use super::report::{CaseDetails, CaseId, CaseResult, Results, read_case_details};
use super::{PASSING_CLOSE, passes};

/// The testsuite's case categories, by their first id component.
const CATEGORIES: [(&[u32], &str); 10] = [
    (&[1], "1 Framing"),
    (&[2], "2 Ping/Pong"),
    (&[3], "3 Reserved bits"),
    (&[4], "4 Opcodes"),
    (&[5], "5 Fragmentation"),
    (&[6], "6 UTF-8"),
    (&[7], "7 Close"),
    (&[9], "9 Limits/Performance"),
    (&[10], "10 Misc"),
    (&[12, 13], "12/13 Compression"),
];

/// Counts for one category.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Row {
    /// The category's name.
    pub name: String,
    /// Cases in it.
    pub total: usize,
    /// behavior OK.
    pub ok: usize,
    /// behavior NON-STRICT.
    pub non_strict: usize,
    /// behavior INFORMATIONAL.
    pub informational: usize,
    /// behavior UNIMPLEMENTED.
    pub unimplemented: usize,
    /// behavior FAILED or anything not known to pass.
    pub failed: usize,
    /// behaviorClose other than OK or INFORMATIONAL.
    pub bad_close: usize,
}

/// A failing case and what the testsuite says about it.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The case.
    pub id: CaseId,
    /// Its verdict.
    pub result: CaseResult,
    /// Its description and expectation, when the report file is at hand.
    pub details: Option<CaseDetails>,
}

/// The verdict on a run.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The agent.
    pub agent: String,
    /// One row per category that has cases, then the total.
    pub rows: Vec<Row>,
    /// Every failing case, in case order.
    pub failures: Vec<Failure>,
}

impl Summary {
    /// Whether every case passed.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

fn category_name(id: &CaseId) -> String {
    CATEGORIES
        .iter()
        .find(|(ids, _)| ids.contains(&id.category()))
        .map_or_else(|| format!("{} Other", id.category()), |(_, name)| (*name).to_owned())
}

/// Counts the results per category and collects the failures.
pub fn summarize(results: &Results) -> Summary {
    let mut rows: Vec<Row> = Vec::new();
    let mut total = Row { name: "Total".into(), ..Row::default() };
    let mut failures = Vec::new();
    for (id, result) in &results.cases {
        let name = category_name(id);
        let index = match rows.iter().position(|r| r.name == name) {
            Some(i) => i,
            None => {
                rows.push(Row { name, ..Row::default() });
                rows.len() - 1
            }
        };
        for row in [&mut rows[index], &mut total] {
            row.total += 1;
            match result.behavior.as_str() {
                "OK" => row.ok += 1,
                "NON-STRICT" => row.non_strict += 1,
                "INFORMATIONAL" => row.informational += 1,
                "UNIMPLEMENTED" => row.unimplemented += 1,
                _ => row.failed += 1,
            }
            if !PASSING_CLOSE.contains(&result.behavior_close.as_str()) {
                row.bad_close += 1;
            }
        }
        if !passes(result) {
            failures.push(Failure {
                id: id.clone(),
                result: result.clone(),
                details: read_case_details(results, result),
            });
        }
    }
    rows.push(total);
    Summary { agent: results.agent.clone(), rows, failures }
}

/// The summary as a table, then the failing cases.
pub fn render_check(summary: &Summary) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Autobahn results for {}", summary.agent);
    let header = ["category", "cases", "OK", "NON-STRICT", "INFO", "UNIMPL", "FAILED", "bad close"];
    let _ = writeln!(
        out,
        "{:<22} {:>5} {:>5} {:>10} {:>5} {:>6} {:>6} {:>9}",
        header[0], header[1], header[2], header[3], header[4], header[5], header[6], header[7]
    );
    for (i, r) in summary.rows.iter().enumerate() {
        if i + 1 == summary.rows.len() {
            let _ = writeln!(out, "{}", "-".repeat(77));
        }
        let _ = writeln!(
            out,
            "{:<22} {:>5} {:>5} {:>10} {:>5} {:>6} {:>6} {:>9}",
            r.name, r.total, r.ok, r.non_strict, r.informational, r.unimplemented, r.failed, r.bad_close
        );
    }
    if summary.failures.is_empty() {
        let _ = writeln!(
            out,
            "\nverdict: PASS (every case OK, NON-STRICT, INFORMATIONAL or UNIMPLEMENTED; every close OK or INFORMATIONAL)"
        );
        return out;
    }
    let _ = writeln!(out, "\nfailing cases ({}):", summary.failures.len());
    for f in &summary.failures {
        let _ =
            writeln!(out, "  {:<10} behavior {} / close {}", f.id.as_str(), f.result.behavior, f.result.behavior_close);
        if let Some(d) = &f.details {
            for (label, text) in [
                ("case", &d.description),
                ("expects", &d.expectation),
                ("result", &d.result),
                ("close", &d.result_close),
            ] {
                if !text.is_empty() {
                    let _ = writeln!(out, "             {label}: {text}");
                }
            }
        }
    }
    let _ = writeln!(out, "\nverdict: FAIL ({} failing)", wscli::count(summary.failures.len() as u64, "case"));
    out
}
