//! `wsharness`: the conformance and load tool.
//!
//! * [`autobahn`]: run the Autobahn|Testsuite's fuzzingclient (natively in a
//!   cached Python 2.7 virtualenv, or in Docker), judge its reports, and diff
//!   two runs or a run against checked-in expected results.
//! * [`mod@bench`]: load-test an echo server with verified echoes, and compare
//!   servers and proxies in one run.

pub mod autobahn;
pub mod bench;
