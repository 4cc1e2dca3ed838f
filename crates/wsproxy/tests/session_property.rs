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

/// The output for recorded connections (the seeds: keep-alive, upgrades,
/// compression, enforcement, answers that are not HTTP) with injected
/// timestamps, byte for byte. The JSON is a public interface: a change
/// here is a change users see. `WSPROXY_BLESS=1 cargo test` rewrites the
/// files after a deliberate change (and the diff shows it).
#[test]
fn events_for_recorded_connections_are_byte_identical() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let golden = root.join("tests/golden");
    let bless = std::env::var_os("WSPROXY_BLESS").is_some();
    let seeds = inputs(&root.join("../../fuzz/seeds/proxy_session"));
    let mut compared = 0;
    for (path, data) in &seeds {
        let name = Path::new(path).file_name().expect("a name").to_string_lossy().into_owned();
        let driven = wsproxy::fuzzing::drive(data).expect("a seed has flags");
        let file = golden.join(format!("{name}.out"));
        if bless {
            std::fs::create_dir_all(&golden).expect("golden dir");
            std::fs::write(&file, &driven.events).expect("write golden");
            continue;
        }
        let want =
            std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e} (WSPROXY_BLESS=1 writes it)", file.display()));
        assert!(
            driven.events == want,
            "{name}: the output changed:\n--- want\n{}\n--- got\n{}",
            String::from_utf8_lossy(&want),
            String::from_utf8_lossy(&driven.events)
        );
        // Every JSON line still reads back strictly.
        if driven.events.first() == Some(&b'{') {
            for line in String::from_utf8_lossy(&driven.events).lines() {
                wsproxy::schema::parse_strict(line).unwrap_or_else(|e| panic!("{name}: {e}"));
            }
        }
        compared += 1;
    }
    assert!(bless || compared == seeds.len());
}

/// `--fault` rules that match nothing (flag 64) change nothing: the
/// recorded connections and random streams after an upgrade go through the
/// fault engines and come out byte for byte (`check_session` compares).
#[test]
fn faults_that_match_nothing_relay_byte_for_byte() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    for (path, data) in inputs(&fuzz.join("seeds/proxy_session")) {
        let mut data = data.clone();
        // With the rules, and without --enforce (which may cut).
        data[0] = (data[0] | 64) & !1;
        let held = std::panic::catch_unwind(|| wsproxy::fuzzing::check_session(&data));
        assert!(held.is_ok(), "{path} with --fault breaks the session property");
        let driven = wsproxy::fuzzing::drive(&data).expect("flags");
        assert!(driven.forwarded[0] == driven.fed[1] && !driven.fed[1].is_empty(), "{path}");
    }
    arbtest::arbtest(|u| {
        // An upgrade (flag 16), the rules (64), maybe deflate (32), JSON.
        let mut data = vec![16 | 64 | 2 | if u.arbitrary()? { 32 } else { 0 }];
        let len = u.arbitrary_len::<u8>()?;
        for _ in 0..len {
            data.push(u.arbitrary::<u8>()?);
        }
        wsproxy::fuzzing::check_session(&data);
        Ok(())
    })
    .budget_ms(2_000);
}

/// Rules that act (flag 128: every action, both sides) on the recorded
/// connections and random streams: no panic, memory bounded.
#[test]
fn faults_that_act_never_panic() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    for (path, data) in inputs(&fuzz.join("seeds/proxy_session")) {
        for enforce in [0, 1] {
            let mut data = data.clone();
            data[0] = (data[0] & !(1 | 64)) | 128 | enforce;
            let held = std::panic::catch_unwind(|| wsproxy::fuzzing::check_session(&data));
            assert!(held.is_ok(), "{path} with acting rules panics");
        }
    }
    arbtest::arbtest(|u| {
        let mut data = vec![16 | 128 | 2 | if u.arbitrary()? { 1 } else { 0 }];
        let len = u.arbitrary_len::<u8>()?;
        for _ in 0..len {
            data.push(u.arbitrary::<u8>()?);
        }
        wsproxy::fuzzing::check_session(&data);
        Ok(())
    })
    .budget_ms(1_500);
}
