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
