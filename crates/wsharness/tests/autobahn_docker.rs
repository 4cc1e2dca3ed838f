//! `autobahn run --engine docker` without Docker: a stand-in `docker` first
//! on the PATH checks the command line wsharness gives it (host networking,
//! the report directory mounted at `/reports`, the pinned image, wstest's
//! arguments, container paths in the spec), then runs the same wstest from
//! the cached Python 2.7 virtualenv; wsharness must read the reports back.
//!
//! Needs that virtualenv (`WSHARNESS_VENV`, or the one `autobahn run`
//! creates under `~/.cache/wstoolkit/`); without it the test says so and
//! passes, unless `WSTOOLKIT_REQUIRE_AUTOBAHN=1`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

const STAND_IN: &str = r##"#!/bin/bash
# A stand-in for `docker run`: checks its arguments, then runs wstest natively.
set -eu
fail() { echo "docker stand-in: $*" >&2; exit 64; }
[ "$#" -eq 12 ] || fail "expected 12 arguments, got $#: $*"
[ "$1 $2 $3 $4 $5" = "run --rm --network host -v" ] || fail "unexpected options: $*"
host=${6%:/reports}
[ "$host:/reports" = "$6" ] && [ -d "$host" ] || fail "volume is not HOST:/reports: $6"
[ "$7" = "$EXPECT_IMAGE" ] || fail "image $7, expected $EXPECT_IMAGE"
shift 7
[ "$*" = "wstest -m fuzzingclient -s /reports/fuzzingclient.json" ] || fail "command: $*"
grep -q '"outdir": "/reports"' "$host/fuzzingclient.json" || fail "the spec does not name the container path"
echo "$EXPECT_IMAGE" > "$host/docker-stand-in-ran"
sed 's#"/reports"#"'"$host"'"#' "$host/fuzzingclient.json" > "$host/spec-on-host.json"
cd "$host"
exec "$WSTEST" -m fuzzingclient -s "$host/spec-on-host.json"
"##;

/// The cached testsuite's `wstest`, if there is one.
fn wstest() -> Option<PathBuf> {
    common::autobahn_venv().map(|venv| venv.join("bin/wstest"))
}

fn write_stand_in(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let docker = dir.join("docker");
    std::fs::write(&docker, STAND_IN).expect("write the stand-in");
    std::fs::set_permissions(&docker, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_docker_engine_runs_the_pinned_image_with_the_reports_mounted() {
    let Some(wstest) = wstest() else {
        assert!(
            std::env::var_os("WSTOOLKIT_REQUIRE_AUTOBAHN").is_none(),
            "no Autobahn virtualenv, and WSTOOLKIT_REQUIRE_AUTOBAHN is set"
        );
        eprintln!("skipped: no Autobahn virtualenv (run `wsharness autobahn run` once, or set WSHARNESS_VENV)");
        return;
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let server = wsecho::spawn(listener, wsecho::Config::default()).expect("wsecho");
    let url = format!("ws://{}", server.local_addr());
    let root = std::env::temp_dir().join(format!("wsharness-docker-{}", std::process::id()));
    let bin = root.join("bin");
    let out = root.join("reports");
    std::fs::create_dir_all(&bin).expect("temp dir");
    write_stand_in(&bin);
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let (o, out2) = (out.clone(), url.clone());
    let result = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_wsharness"))
            .env("PATH", path)
            .env("WSTEST", &wstest)
            .env("EXPECT_IMAGE", "crossbario/autobahn-testsuite:0.8.2")
            .args(["autobahn", "run", "--engine", "docker", "--url", &out2, "--agent", "wsecho"])
            .args(["--cases", "1.1.1,2.1", "--out"])
            .arg(&o)
            .output()
            .expect("runs wsharness")
    })
    .await
    .expect("join");
    server.shutdown().await;
    let shown = format!("{}{}", String::from_utf8_lossy(&result.stdout), String::from_utf8_lossy(&result.stderr));
    let ran = std::fs::read_to_string(out.join("docker-stand-in-ran")).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&root);
    assert_eq!(result.status.code(), Some(0), "{shown}");
    assert_eq!(ran.trim(), "crossbario/autobahn-testsuite:0.8.2", "the stand-in ran: {shown}");
    let total = shown.lines().find(|l| l.starts_with("Total")).unwrap_or_default();
    assert_eq!(total.split_whitespace().nth(1), Some("2"), "both cases read back: {shown}");
}
