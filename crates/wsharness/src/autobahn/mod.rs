//! The Autobahn|Testsuite: reports, verdicts, diffs, running `wstest`, and
//! the [`native`] engine that runs the cases without it, against a server
//! (the fuzzingclient) or a client (the fuzzingserver, and
//! [`run_client`] to test a client in one command).

mod check;
mod client;
mod diff;
pub mod native;
mod proxylog;
mod report;
mod run;

pub use check::{Summary, render_check, summarize};
pub use client::{ClientOptions, Driver, ServerEngine, URL_ENV, driver_command, run_client};
pub use diff::{Comparison, Difference, compare, render_comparison};
pub use proxylog::{
    CaseViolations, expected_matches, parse_expected_violations, render_violations, violations_by_case,
};
pub use report::{CaseId, CaseResult, Results, load_results, read_case_details};
pub use run::{DEFAULT_IMAGE, RunOptions, ensure_venv, expected_case_ids, has_accelerator, run};

/// The verdicts a case may have and still pass: anything else fails the run.
pub const PASSING_BEHAVIORS: [&str; 4] = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED"];

/// The close behaviours that pass.
pub const PASSING_CLOSE: [&str; 2] = ["OK", "INFORMATIONAL"];

/// Whether a case's result passes.
pub fn passes(result: &CaseResult) -> bool {
    PASSING_BEHAVIORS.contains(&result.behavior.as_str()) && PASSING_CLOSE.contains(&result.behavior_close.as_str())
}
