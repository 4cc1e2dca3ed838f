//! `wsharness`: the conformance and load tool.
//!
//! * [`autobahn`]: run the Autobahn|Testsuite's fuzzingclient (natively in a
//!   cached Python 2.7 virtualenv, or in Docker), judge its reports, and diff
//!   two runs or a run against checked-in expected results.
//! * [`mod@bench`]: load-test an echo server with verified echoes, and compare
//!   servers and proxies in one run.
//! * [`replay`]: play the client side of a connection recorded by
//!   `wsproxy --format json --max-preview all` against a server, and
//!   compare its answers with the recorded ones.

pub mod autobahn;
pub mod bench;
pub mod replay;
