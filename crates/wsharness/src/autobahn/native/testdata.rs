//! The test data the compression cases cut their messages from: the files
//! in the testsuite's `autobahntestsuite/testdata/` (Goethe's Faust, a
//! bitmap, a PDF, a JSON and an HTML file). They are third-party files, so
//! this repository does not carry them: the engine reads them where the
//! installed testsuite has them, and checks each against the size and SHA-1
//! that `autobahn/spec/cases.json` pins, so that the messages are byte for
//! byte the ones wstest sends.
//!
//! Where it looks, first found wins:
//! 1. `$WSHARNESS_AUTOBAHN_TESTDATA`, a directory holding the files;
//! 2. the testsuite's virtualenv (`--venv`, `$WSHARNESS_VENV`, or the one
//!    `wsharness autobahn setup` or any wstest run creates in the cache), under
//!    `lib/python*/site-packages/autobahntestsuite/testdata`.
//!
//! Reading them runs no Python. On a machine without the virtualenv, the
//! files come out of the package itself:
//! `pip download --no-deps autobahntestsuite==25.10.1` and unpack its
//! `autobahntestsuite/testdata/`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use sha1::{Digest, Sha1};

use super::cases::TestdataSpec;

/// The environment variable naming a directory with the test data files.
pub const TESTDATA_ENV: &str = "WSHARNESS_AUTOBAHN_TESTDATA";

/// One test data file, as `sendOne` cuts it: binary files by bytes, text
/// files by characters (Autobahn decodes them to `unicode` first).
#[derive(Debug)]
pub struct TestFile {
    bytes: Vec<u8>,
    /// For text: the byte offset of each character, then the length.
    chars: Option<Vec<usize>>,
}

impl TestFile {
    /// A file's content; `binary` as the case's test data says.
    pub fn new(bytes: Vec<u8>, binary: bool) -> anyhow::Result<TestFile> {
        let chars = if binary {
            None
        } else {
            let text = std::str::from_utf8(&bytes).context("a text test data file that is not UTF-8")?;
            Some(text.char_indices().map(|(i, _)| i).chain([bytes.len()]).collect())
        };
        Ok(TestFile { bytes, chars })
    }

    /// The length `sendOne` wraps at (`len(payload)`): characters for text.
    pub fn units(&self) -> usize {
        self.chars.as_ref().map_or(self.bytes.len(), |c| c.len() - 1)
    }

    fn offset(&self, unit: usize) -> usize {
        self.chars.as_ref().map_or(unit, |c| c[unit])
    }

    /// `sendOne`: the message of `len` units from `from`, wrapping around
    /// the end of the file, and where the next one starts.
    pub fn cut(&self, from: usize, len: usize) -> (Vec<u8>, usize) {
        let units = self.units();
        if units == 0 || len == 0 {
            return (Vec::new(), from);
        }
        let to = (from + len) % units;
        let (a, b) = (self.offset(from), self.offset(to));
        let message = if to > from { self.bytes[a..b].to_vec() } else { [&self.bytes[a..], &self.bytes[..b]].concat() };
        (message, to)
    }
}

/// The directories to look in, in order.
fn candidates(venv: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(dir) = std::env::var_os(TESTDATA_ENV) {
        dirs.push(PathBuf::from(dir));
    }
    let lib = venv.join("lib");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&lib)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("python"))
        .map(|e| e.path().join("site-packages").join("autobahntestsuite").join("testdata"))
        .collect();
    found.sort();
    dirs.extend(found);
    dirs
}

/// Reads and checks one file.
fn read_checked(dir: &Path, name: &str, spec: &TestdataSpec) -> anyhow::Result<Vec<u8>> {
    let path = dir.join(name);
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let digest: String = Sha1::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    if bytes.len() as u64 != spec.size || digest != spec.sha1 {
        bail!(
            "{} is not the testsuite's file ({} bytes, SHA-1 {digest}; autobahntestsuite 25.10.1 has {} bytes, {})",
            path.display(),
            bytes.len(),
            spec.size,
            spec.sha1
        );
    }
    Ok(bytes)
}

/// Loads the named files (each with whether the cases read it as binary)
/// from the first directory that has them all.
pub fn load(
    wanted: &BTreeSet<(String, bool)>,
    specs: &BTreeMap<String, TestdataSpec>,
    venv: &Path,
) -> anyhow::Result<BTreeMap<String, Arc<TestFile>>> {
    let dirs = candidates(venv);
    let mut errors = Vec::new();
    for dir in &dirs {
        let loaded: anyhow::Result<BTreeMap<String, Arc<TestFile>>> = wanted
            .iter()
            .map(|(name, binary)| {
                let spec = specs.get(name).with_context(|| format!("{name}: not in the spec table"))?;
                let bytes = read_checked(dir, name, spec)?;
                Ok((name.clone(), Arc::new(TestFile::new(bytes, *binary)?)))
            })
            .collect();
        match loaded {
            Ok(files) => return Ok(files),
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    let looked = if dirs.is_empty() {
        format!("no ${TESTDATA_ENV}, and no testsuite virtualenv at {}", venv.display())
    } else {
        errors.join("; ")
    };
    bail!(
        "the compression cases (12.*, 13.*) need the testsuite's test data files ({looked}). Create the \
         virtualenv once (`wsharness autobahn setup`), pass it with --venv, or set \
         ${TESTDATA_ENV} to a directory with the files of autobahntestsuite 25.10.1's testdata/ \
         (`pip download --no-deps autobahntestsuite==25.10.1`, then unpack them)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_cuts_wrap_around_by_bytes() {
        let f = TestFile::new(b"0123456789".to_vec(), true).expect("file");
        assert_eq!(f.units(), 10);
        assert_eq!(f.cut(0, 4), (b"0123".to_vec(), 4));
        assert_eq!(f.cut(8, 4), (b"8901".to_vec(), 2));
        // A cut as long as the file ends where it began: the whole file, rotated.
        assert_eq!(f.cut(3, 10), (b"3456789012".to_vec(), 3));
    }

    #[test]
    fn text_cuts_by_characters() {
        let f = TestFile::new("aßcдe€".as_bytes().to_vec(), false).expect("file");
        assert_eq!(f.units(), 6);
        assert_eq!(f.cut(0, 2), ("aß".as_bytes().to_vec(), 2));
        assert_eq!(f.cut(4, 3), ("e€a".as_bytes().to_vec(), 1));
        assert!(TestFile::new(vec![0xff], false).is_err());
    }

    #[test]
    fn a_directory_without_the_files_says_where_to_get_them() {
        let dir = std::env::temp_dir().join(format!("wsharness-no-testdata-{}", std::process::id()));
        let wanted = BTreeSet::from([("data1.json".to_owned(), false)]);
        let specs = super::super::cases::testdata_specs();
        let err = load(&wanted, &specs, &dir).expect_err("nothing there");
        assert!(format!("{err:#}").contains("pip download --no-deps autobahntestsuite==25.10.1"), "{err:#}");
    }
}
