//! What the black-box tests share.

use std::path::PathBuf;

/// The cached testsuite's virtualenv, if there is one (`WSHARNESS_VENV`, or
/// the newest `autobahn-py27-*` in the cache directory).
pub fn autobahn_venv() -> Option<PathBuf> {
    if let Some(venv) = std::env::var_os("WSHARNESS_VENV") {
        let venv = PathBuf::from(venv);
        return venv.join("bin/wstest").is_file().then_some(venv);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    let mut found: Vec<PathBuf> = std::fs::read_dir(cache.join("wstoolkit"))
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("autobahn-py27-"))
        .map(|e| e.path())
        .filter(|v| v.join("bin/wstest").is_file())
        .collect();
    found.sort();
    found.pop()
}
