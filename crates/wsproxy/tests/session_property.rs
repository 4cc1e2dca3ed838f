//! The `proxy_session` fuzz target's property (`wsproxy::fuzzing`), run by
//! `cargo test` over the checked-in seeds and saved crashes, then for a few
//! seconds on random inputs, so a regression shows without a fuzzer.

use std::path::Path;

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
fn seeds_and_regressions_hold_the_property() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let seeds = inputs(&fuzz.join("seeds/proxy_session"));
    assert!(seeds.len() >= 5, "fuzz/seeds/proxy_session has {} seeds", seeds.len());
    for (path, data) in seeds.iter().chain(inputs(&fuzz.join("regressions/proxy_session")).iter()) {
        let held = std::panic::catch_unwind(|| wsproxy::fuzzing::check_session(data));
        assert!(held.is_ok(), "{path} breaks the session property");
    }
}

#[test]
fn random_inputs_hold_the_property() {
    arbtest::arbtest(|u| {
        let len = u.arbitrary_len::<u8>()?;
        let data: Vec<u8> = (0..len).map(|_| u.arbitrary::<u8>()).collect::<Result<_, _>>()?;
        wsproxy::fuzzing::check_session(&data);
        Ok(())
    })
    .budget_ms(2_000);
}
