//! Case-by-case comparison of two runs (durations ignored).
//!
//! A partial run (`--cases '1.*,2.*'`) compared with a full one, or with an
//! expected-results file, is compared on the cases both have; the cases
//! only one side has are counted and named apart, and count as differences
//! only when asked ([`Comparison::passes`] with `require_all`).

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

/// Two runs side by side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comparison {
    /// Cases both sides ran.
    pub compared: usize,
    /// Of those, the ones whose behavior or behaviorClose differ.
    pub differences: Vec<Difference>,
    /// Cases only the left has (not run on the right).
    pub only_left: Vec<Difference>,
    /// Cases only the right has (not run on the left).
    pub only_right: Vec<Difference>,
}

impl Comparison {
    /// No case that both ran differs; with `require_all`, also no case is
    /// missing from either side.
    pub fn passes(&self, require_all: bool) -> bool {
        self.differences.is_empty() && (!require_all || (self.only_left.is_empty() && self.only_right.is_empty()))
    }
}

/// Compares `left` with `right` case by case.
pub fn compare(left: &Results, right: &Results) -> Comparison {
    let mut c = Comparison { compared: 0, differences: Vec::new(), only_left: Vec::new(), only_right: Vec::new() };
    let ids: std::collections::BTreeSet<&CaseId> = left.cases.keys().chain(right.cases.keys()).collect();
    for id in ids {
        let (l, r) = (left.cases.get(id), right.cases.get(id));
        let d = Difference { id: id.clone(), left: l.cloned(), right: r.cloned() };
        match (l, r) {
            (Some(l), Some(r)) => {
                c.compared += 1;
                if l.behavior != r.behavior || l.behavior_close != r.behavior_close {
                    c.differences.push(d);
                }
            }
            (Some(_), None) => c.only_left.push(d),
            (None, _) => c.only_right.push(d),
        }
    }
    c
}

fn show(r: &Option<CaseResult>) -> String {
    match r {
        Some(r) => format!("{} / close {}", r.behavior, r.behavior_close),
        None => "(not run)".into(),
    }
}

fn cases(n: usize) -> String {
    if n == 1 { "1 case".into() } else { format!("{n} cases") }
}

/// Up to this many case ids are listed for the cases only one side has.
const LIST_MISSING: usize = 10;

fn list(ds: &[Difference]) -> String {
    let mut s: Vec<&str> = ds.iter().take(LIST_MISSING).map(|d| d.id.as_str()).collect();
    if ds.len() > LIST_MISSING {
        s.push("…");
    }
    s.join(" ")
}

/// The comparison as text: a verdict line and each difference; the cases
/// only one side ran are differences with `require_all`, and otherwise
/// counted on lines of their own.
pub fn render_comparison(left_name: &str, right_name: &str, c: &Comparison, require_all: bool) -> String {
    let mut out = String::new();
    let mut differences: Vec<&Difference> = c.differences.iter().collect();
    let mut total = c.compared;
    if require_all {
        differences.extend(c.only_left.iter().chain(&c.only_right));
        differences.sort_by(|a, b| a.id.cmp(&b.id));
        total += c.only_left.len() + c.only_right.len();
    }
    if differences.is_empty() {
        let _ = writeln!(out, "no differences: {} with the same behavior and close behavior", cases(total));
    } else {
        let _ =
            writeln!(out, "{} of {} differ (left: {left_name}, right: {right_name}):", differences.len(), cases(total));
        for d in differences {
            let _ = writeln!(out, "  {:<10} {:<32} -> {}", d.id.as_str(), show(&d.left), show(&d.right));
        }
    }
    if !require_all {
        for (only, side, other) in [(&c.only_right, right_name, left_name), (&c.only_left, left_name, right_name)] {
            if !only.is_empty() {
                let _ = writeln!(
                    out,
                    "{} of {side} not run in {other}, not compared: {} (--require-all-cases counts them as differences)",
                    cases(only.len()),
                    list(only)
                );
            }
        }
    }
    out
}
