//! Every checked-in seed and every saved crash input of every fuzz target,
//! through the same property functions the targets use; then a short
//! time-budgeted property run of each, so a regression shows without a fuzzer.

use std::path::Path;

use fuzz_props::TARGETS;

fn inputs(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut out: Vec<(String, Vec<u8>)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().is_file())
        .map(|e| (e.path().display().to_string(), std::fs::read(e.path()).expect("readable")))
        .collect();
    out.sort();
    out
}

#[test]
fn seeds_and_regressions_replay() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut total = 0;
    for (name, check) in TARGETS {
        let seeds = inputs(&fuzz.join("seeds").join(name));
        assert!(!seeds.is_empty(), "{name} has no seed corpus in fuzz/seeds/{name}");
        for (path, data) in seeds.iter().chain(inputs(&fuzz.join("regressions").join(name)).iter()) {
            let result = std::panic::catch_unwind(|| check(data));
            assert!(result.is_ok(), "{name}: {path} fails its property");
            total += 1;
        }
    }
    eprintln!("replayed {total} inputs");
}

#[test]
fn short_property_runs() {
    for (name, check) in TARGETS {
        arbtest::arbtest(|u| {
            let len = u.arbitrary_len::<u8>()?;
            let data = u.bytes(len)?;
            check(data);
            Ok(())
        })
        .budget_ms(400);
        eprintln!("{name}: ok");
    }
}

/// The builder target's seeds get past the builders, so a replay runs the
/// parse → validate half of its property, not only the refusals.
#[test]
fn handshake_build_seeds_reach_a_built_request() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/handshake_build");
    let built = inputs(&dir).iter().filter(|(_, data)| fuzz_props::handshake_build(data)).count();
    assert!(built >= 3, "only {built} handshake_build seeds build a request");
}

/// The `deflate_inspect` seeds reach the modes that found, or would have
/// found, real faults: final blocks (BFINAL) under context takeover, the
/// RFC's padded final block, and corrupt data with and without takeover.
#[test]
fn deflate_inspect_seeds_reach_every_mode() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/deflate_inspect");
    let modes: Vec<_> = inputs(&dir).iter().filter_map(|(_, data)| fuzz_props::deflate_inspect_modes(data)).collect();
    let reached = |f: &dyn Fn(&fuzz_props::DeflateModes) -> bool| modes.iter().any(f);
    assert!(reached(&|m| m.context_takeover && m.final_blocks >= 2), "final blocks with takeover");
    assert!(reached(&|m| m.padded >= 1), "a padded final block");
    assert!(reached(&|m| !m.context_takeover && m.corrupt >= 1), "corrupt data without takeover");
    assert!(reached(&|m| m.context_takeover && m.corrupt >= 1), "corrupt data with takeover");
}

/// The `deflate_window` seeds reach a message beyond its agreed window, one
/// within a smaller agreed window than the sender's, and raw bytes that
/// zlib-rs reads as a whole stream.
#[test]
fn deflate_window_seeds_reach_every_mode() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/deflate_window");
    let mut reached = fuzz_props::WindowModes::default();
    for (_, data) in inputs(&dir) {
        let m = fuzz_props::deflate_window_modes(&data);
        reached.raw_stream |= m.raw_stream;
        reached.beyond |= m.beyond;
        reached.within_smaller |= m.within_smaller;
    }
    assert_eq!(reached, fuzz_props::WindowModes { raw_stream: true, beyond: true, within_smaller: true });
}

/// The `endpoint` seeds reach messages, failures, the peer's close and
/// direct payload reads, in both roles, so a replay checks each outcome's
/// property.
#[test]
fn endpoint_seeds_reach_every_outcome_in_both_roles() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/endpoint");
    let outcomes: Vec<_> = inputs(&dir).iter().map(|(_, data)| fuzz_props::endpoint_outcomes(data)).collect();
    for client in [false, true] {
        let role: Vec<_> = outcomes.iter().filter(|o| o.0 == client).collect();
        assert!(role.iter().any(|o| o.1 > 0), "client={client}: no seed completes a message");
        assert!(role.iter().any(|o| o.2), "client={client}: no seed fails the connection");
        assert!(role.iter().any(|o| o.3), "client={client}: no seed reaches the peer's close");
        assert!(role.iter().any(|o| o.4), "client={client}: no seed reads payload straight into a message");
    }
}
