//! Reading the testsuite's reports: `index.json` in a report directory,
//! the per-case JSON files beside it, or an expected-results file.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// A case id like `6.4.3`, ordered numerically (`9.10` after `9.9`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CaseId {
    text: String,
    parts: Vec<u32>,
}

impl CaseId {
    /// Parses `1.2.3`; any non-numeric part sorts as 0.
    pub fn new(text: &str) -> CaseId {
        CaseId { text: text.to_owned(), parts: text.split('.').map(|p| p.parse().unwrap_or(0)).collect() }
    }

    /// The id as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The first component: the category (1 framing, 6 UTF-8, …).
    pub fn category(&self) -> u32 {
        self.parts.first().copied().unwrap_or(0)
    }
}

impl Ord for CaseId {
    fn cmp(&self, other: &Self) -> Ordering {
        self.parts.cmp(&other.parts).then_with(|| self.text.cmp(&other.text))
    }
}

impl PartialOrd for CaseId {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for CaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// One case's verdict, as `index.json` gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseResult {
    /// OK, NON-STRICT, INFORMATIONAL, UNIMPLEMENTED, FAILED, …
    pub behavior: String,
    /// How the closing handshake went: OK, INFORMATIONAL, FAILED, …
    #[serde(rename = "behaviorClose")]
    pub behavior_close: String,
    /// The close code the peer sent, if any.
    #[serde(rename = "remoteCloseCode", default, skip_serializing_if = "Option::is_none")]
    pub remote_close_code: Option<u16>,
    /// Milliseconds (not compared, not kept in expected results).
    #[serde(default, skip_serializing)]
    pub duration: Option<u64>,
    /// The per-case report file name, in a report directory.
    #[serde(rename = "reportfile", default, skip_serializing)]
    pub report_file: Option<String>,
}

/// The results of one agent: where they came from and each case.
#[derive(Debug, Clone)]
pub struct Results {
    /// The agent (server name) the testsuite reported.
    pub agent: String,
    /// The report directory, when the results came from one.
    pub dir: Option<PathBuf>,
    /// Every case, in case order.
    pub cases: BTreeMap<CaseId, CaseResult>,
}

/// The format of `autobahn/expected/*.json`: one agent, durations stripped.
#[derive(Debug, Serialize, Deserialize)]
pub struct ExpectedFile {
    /// The agent.
    pub agent: String,
    /// Case id → result.
    pub cases: BTreeMap<String, CaseResult>,
}

type Index = BTreeMap<String, BTreeMap<String, CaseResult>>;

fn pick_agent(
    index: Index,
    agent: Option<&str>,
    source: &Path,
) -> anyhow::Result<(String, BTreeMap<String, CaseResult>)> {
    let names: Vec<String> = index.keys().cloned().collect();
    let mut index = index;
    match agent {
        Some(name) => match index.remove(name) {
            Some(cases) => Ok((name.to_owned(), cases)),
            None => bail!("{} has no results for agent {name:?} (it has: {})", source.display(), names.join(", ")),
        },
        None => {
            let mut all = index.into_iter();
            match (all.next(), all.next()) {
                (Some(only), None) => Ok(only),
                (None, _) => bail!("{} holds no results", source.display()),
                (Some(_), Some(_)) => {
                    bail!("{} holds several agents ({}); choose one with --agent", source.display(), names.join(", "))
                }
            }
        }
    }
}

/// Loads results from a report directory (its `index.json`), an
/// `index.json` file, or an expected-results file.
pub fn load_results(path: &Path, agent: Option<&str>) -> anyhow::Result<Results> {
    let (file, dir) = if path.is_dir() {
        let index = path.join("index.json");
        if !index.is_file() {
            bail!(
                "{} is not an Autobahn report directory: it has no index.json (did the run finish? wstest writes it last)",
                path.display()
            );
        }
        (index, Some(path.to_path_buf()))
    } else if path.is_file() {
        (path.to_path_buf(), None)
    } else {
        bail!("{} does not exist", path.display());
    };
    let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", file.display()))?;
    let (agent, cases) = if value.get("cases").is_some() && value.get("agent").is_some_and(|a| a.is_string()) {
        let expected: ExpectedFile = serde_json::from_value(value)
            .with_context(|| format!("{} is not an expected-results file", file.display()))?;
        if let Some(want) = agent
            && want != expected.agent
        {
            bail!("{} holds results for agent {:?}, not {want:?}", file.display(), expected.agent);
        }
        (expected.agent, expected.cases)
    } else {
        let index: Index = serde_json::from_value(value)
            .with_context(|| format!("{} is not an Autobahn index.json (agent → case → result)", file.display()))?;
        pick_agent(index, agent, &file)?
    };
    let cases = cases.into_iter().map(|(id, r)| (CaseId::new(&id), r)).collect();
    Ok(Results { agent, dir, cases })
}

impl Results {
    /// The expected-results form of these results (durations stripped).
    pub fn to_expected(&self) -> ExpectedFile {
        ExpectedFile {
            agent: self.agent.clone(),
            cases: self.cases.iter().map(|(id, r)| (id.as_str().to_owned(), r.clone())).collect(),
        }
    }
}

/// What a per-case report file says about the case.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CaseDetails {
    /// What the case does.
    #[serde(default)]
    pub description: String,
    /// What the testsuite expects of the server.
    #[serde(default)]
    pub expectation: String,
    /// Why the verdict is what it is, when the testsuite says.
    #[serde(default)]
    pub result: String,
    /// The same for the close.
    #[serde(rename = "resultClose", default)]
    pub result_close: String,
}

/// Reads a case's report file from the results' directory, if there is one.
pub fn read_case_details(results: &Results, result: &CaseResult) -> Option<CaseDetails> {
    let path = results.dir.as_ref()?.join(result.report_file.as_ref()?);
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&lenient_json(&text)).ok()
}

/// The testsuite (Python 2) writes lone UTF-16 surrogates as `\uD8xx`
/// escapes in the wire logs of its UTF-8 cases, which strict JSON parsers
/// refuse; they become U+FFFD here.
pub(crate) fn lenient_json(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains("\\u") {
        return std::borrow::Cow::Borrowed(text);
    }
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut copied = 0;
    while i + 6 <= bytes.len() {
        // An escape starts at a backslash preceded by an even number of backslashes.
        if bytes[i] == b'\\' && bytes[i + 1] == b'u' {
            let hex = &text[i + 2..i + 6];
            if let Ok(unit) = u16::from_str_radix(hex, 16)
                && (0xD800..=0xDFFF).contains(&unit)
            {
                out.push_str(&text[copied..i]);
                out.push_str("\\ufffd");
                i += 6;
                copied = i;
                continue;
            }
            i += 2;
            continue;
        }
        if bytes[i] == b'\\' {
            i += 2;
            continue;
        }
        i += 1;
    }
    out.push_str(&text[copied..]);
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lone_surrogates_are_replaced() {
        let text = r#"{"a": "x\ud800y", "b": "\\ud800", "c": "\u00e9"}"#;
        let v: serde_json::Value = serde_json::from_str(&lenient_json(text)).expect("parses");
        assert_eq!(v["a"], "x\u{fffd}y");
        assert_eq!(v["b"], "\\ud800", "an escaped backslash is not an escape");
        assert_eq!(v["c"], "é");
    }

    #[test]
    fn case_ids_sort_numerically() {
        let mut ids: Vec<CaseId> = ["9.10.1", "9.9.1", "1.1.10", "1.1.2", "12.1.1", "2.1"].map(CaseId::new).into();
        ids.sort();
        let sorted: Vec<&str> = ids.iter().map(|i| i.as_str()).collect();
        assert_eq!(sorted, ["1.1.2", "1.1.10", "2.1", "9.9.1", "9.10.1", "12.1.1"]);
        assert_eq!(CaseId::new("12.1.1").category(), 12);
    }
}
