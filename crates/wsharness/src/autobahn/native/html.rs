//! `index.html`: one self-contained page for a native run: a table of the
//! cases colored by verdict, and per case its description, expectation,
//! expected and observed events, closing flags and wire log.

use std::fmt::Write as _;

use serde_json::Value;

/// Escapes text for HTML.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// The CSS class of a verdict.
fn class(verdict: &str) -> &'static str {
    match verdict {
        "OK" => "ok",
        "NON-STRICT" => "nonstrict",
        "INFORMATIONAL" => "info",
        "UNIMPLEMENTED" => "unimpl",
        _ => "failed",
    }
}

const STYLE: &str = "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}\
td,th{border:1px solid #bbb;padding:2px 8px;text-align:left;vertical-align:top}\
.ok{background:#8f8}.nonstrict{background:#ff8}.info{background:#8cf}.unimpl{background:#ddd}\
.failed{background:#f88}pre{background:#f4f4f4;padding:4px;overflow-x:auto;font-size:85%}\
section{margin-top:2em;border-top:2px solid #888}";

/// The compression ratios of a compression case that passed (compressed
/// size over message size, received and sent), as wstest's index shows them.
fn compression(r: &Value) -> String {
    let ratio = |k: &str| r["trafficStats"][k].as_f64().map_or_else(|| "-".to_owned(), |x| format!("{x:.3}"));
    if r["reportCompressionRatio"].as_bool() == Some(true) && r["trafficStats"].is_object() {
        format!("in {} / out {}", ratio("incomingCompressionRatio"), ratio("outgoingCompressionRatio"))
    } else {
        String::new()
    }
}

/// The page for `agent`'s run, from the per-case reports in case order.
pub fn render(agent: &str, reports: &[Value]) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Autobahn results for {a}</title>\
         <style>{STYLE}</style></head><body>\n<h1>Autobahn results for {a}</h1>\n\
         <p>Run by the wsharness native engine: {n} cases.</p>\n<table id=\"cases\">\n\
         <tr><th>case</th><th>behavior</th><th>close</th><th>ms</th><th>remote close code</th>\
         <th>compression</th></tr>\n",
        a = esc(agent),
        n = reports.len()
    );
    for r in reports {
        let id = r["id"].as_str().unwrap_or_default();
        let b = r["behavior"].as_str().unwrap_or_default();
        let bc = r["behaviorClose"].as_str().unwrap_or_default();
        let _ = writeln!(
            out,
            "<tr><td><a href=\"#case-{id}\">{id}</a></td><td class=\"{}\">{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td>\
             <td>{}</td></tr>",
            class(b),
            esc(b),
            class(bc),
            esc(bc),
            r["duration"],
            r["remoteCloseCode"],
            compression(r),
            id = esc(id),
        );
    }
    out.push_str("</table>\n");
    for r in reports {
        let id = esc(r["id"].as_str().unwrap_or_default());
        let text = |k: &str| esc(r[k].as_str().unwrap_or_default());
        let pretty = |k: &str| esc(&serde_json::to_string_pretty(&r[k]).unwrap_or_default());
        let wirelog: Vec<String> =
            r["wirelog"].as_array().into_iter().flatten().map(|row| esc(&row.to_string())).collect();
        // Descriptions are Autobahn's own HTML (<b>, <br>), shown as it shows them.
        let _ = write!(
            out,
            "<section id=\"case-{id}\"><h2>Case {id}: <span class=\"{}\">{}</span> / close <span class=\"{}\">{}</span></h2>\n\
             <p><b>Case:</b> {}</p>\n<p><b>Expectation:</b> {}</p>\n<p><b>Result:</b> {} <b>Close:</b> {}</p>\n\
             <p><b>Expected:</b></p><pre>{}</pre>\n<p><b>Observed:</b></p><pre>{}</pre>\n\
             <p><b>Closing:</b></p><pre>closedByMe {} failedByMe {} droppedByMe {} wasClean {} wasNotCleanReason {}\n\
             localCloseCode {} remoteCloseCode {} remoteCloseReason {}</pre>\n{}\
             <details><summary>Wire log ({} entries)</summary><pre>{}</pre></details></section>\n",
            class(r["behavior"].as_str().unwrap_or_default()),
            text("behavior"),
            class(r["behaviorClose"].as_str().unwrap_or_default()),
            text("behaviorClose"),
            r["description"].as_str().unwrap_or_default(),
            r["expectation"].as_str().unwrap_or_default(),
            text("result"),
            text("resultClose"),
            pretty("expected"),
            pretty("received"),
            r["closedByMe"],
            r["failedByMe"],
            r["droppedByMe"],
            r["wasClean"],
            esc(&r["wasNotCleanReason"].to_string()),
            r["localCloseCode"],
            r["remoteCloseCode"],
            esc(&r["remoteCloseReason"].to_string()),
            if r["trafficStats"].is_object() {
                format!("<p><b>Traffic:</b></p><pre>{}</pre>\n", pretty("trafficStats"))
            } else {
                String::new()
            },
            wirelog.len(),
            wirelog.join("\n"),
        );
    }
    out.push_str("</body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_row_and_a_section_per_case_with_text_escaped() {
        let report = serde_json::json!({
            "id": "3.1", "behavior": "FAILED", "behaviorClose": "OK", "duration": 3, "remoteCloseCode": 1002,
            "description": "Send <b>RSV = 1</b>.", "expectation": "Fail.", "result": "x", "resultClose": "y",
            "expected": {"OK": []}, "received": [["message", "<script>", false]],
            "closedByMe": false, "failedByMe": false, "droppedByMe": false, "wasClean": true,
            "wasNotCleanReason": null, "localCloseCode": 1000, "remoteCloseReason": null,
            "wirelog": [["RO", [2, "8800"]]]
        });
        let page = render("a<b", &[report]);
        assert!(page.contains("<title>Autobahn results for a&lt;b</title>"));
        assert!(page.contains("<td class=\"failed\">FAILED</td><td class=\"ok\">OK</td>"), "{page}");
        assert!(page.contains("<section id=\"case-3.1\">"));
        assert!(page.contains("Send <b>RSV = 1</b>."), "Autobahn's own markup is kept");
        assert!(page.contains("&lt;script&gt;") && !page.contains("<script>"), "observed payloads are escaped");
        assert!(page.contains("Wire log (1 entries)"));
        assert!(!page.contains("Traffic:"), "no traffic section without trafficStats");
    }

    #[test]
    fn compression_cases_show_their_ratios() {
        let report = serde_json::json!({
            "id": "12.1.1", "behavior": "OK", "behaviorClose": "OK", "duration": 900, "remoteCloseCode": 1000,
            "reportCompressionRatio": true,
            "trafficStats": {"incomingCompressionRatio": 0.303625, "outgoingCompressionRatio": 0.9925625},
            "wirelog": []
        });
        let page = render("x", &[report]);
        assert!(page.contains("<td>in 0.304 / out 0.993</td>"), "{page}");
        assert!(page.contains("<p><b>Traffic:</b></p>"));
    }
}
