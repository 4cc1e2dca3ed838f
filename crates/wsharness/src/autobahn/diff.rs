//! Case-by-case comparison of two runs (durations ignored).

use std::fmt::Write as _;

use super::report::{CaseId, CaseResult, Results};

/// One case whose outcome differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// The case.
    pub id: CaseId,
    /// Its result on the left, if the left ran it.
    pub left: Option<CaseResult>,
    /// Its result on the right, if the right ran it.
    pub right: Option<CaseResult>,
}

/// The cases whose behavior or behaviorClose differ, or that only one side
/// has.
pub fn diff_results(left: &Results, right: &Results) -> Vec<Difference> {
    let mut out = Vec::new();
    let ids: std::collections::BTreeSet<&CaseId> = left.cases.keys().chain(right.cases.keys()).collect();
    for id in ids {
        let (l, r) = (left.cases.get(id), right.cases.get(id));
        let same = match (l, r) {
            (Some(l), Some(r)) => l.behavior == r.behavior && l.behavior_close == r.behavior_close,
            _ => false,
        };
        if !same {
            out.push(Difference { id: id.clone(), left: l.cloned(), right: r.cloned() });
        }
    }
    out
}

fn show(r: &Option<CaseResult>) -> String {
    match r {
        Some(r) => format!("{} / close {}", r.behavior, r.behavior_close),
        None => "(not run)".into(),
    }
}

/// The differences, one per line, or a line saying there are none.
pub fn render_diff(left_name: &str, right_name: &str, left: &Results, right: &Results, diffs: &[Difference]) -> String {
    let mut out = String::new();
    if diffs.is_empty() {
        let _ = writeln!(out, "no differences: {} cases with the same behavior and close behavior", left.cases.len());
        return out;
    }
    let _ = writeln!(
        out,
        "{} of {} cases differ (left: {left_name}, right: {right_name}):",
        diffs.len(),
        left.cases.len().max(right.cases.len())
    );
    for d in diffs {
        let _ = writeln!(out, "  {:<10} {:<32} -> {}", d.id.as_str(), show(&d.left), show(&d.right));
    }
    out
}
