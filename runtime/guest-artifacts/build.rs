//! Builds every guest component for `wasm32-wasip2` with a nested `cargo build`, so that the
//! normal build of the binary (and of the tests) embeds a built-in XML guest made from the
//! current sources. The nested build uses its own target directory (`<target>/wasm-guests`):
//! sharing the outer one would deadlock on cargo's build-directory lock.

use std::env;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// (name used by the crate's API, cargo package, crate file stem).
const GUESTS: &[(&str, &str)] = &[
    ("xml-guest", "opentact-xml-guest"),
    ("hello", "test-guest-hello"),
    ("gather-park", "test-guest-gather-park"),
    ("spin", "test-guest-spin"),
    ("membomb", "test-guest-membomb"),
    ("trap", "test-guest-trap"),
    ("stack-overflow", "test-guest-stack-overflow"),
    ("log-flood", "test-guest-log-flood"),
    ("report-flood", "test-guest-report-flood"),
    ("http-refused", "test-guest-http-refused"),
    ("sms-probe", "test-guest-sms-probe"),
    ("ivr", "example-ivr"),
    ("voicemail", "example-voicemail"),
    ("follow-me", "example-follow-me"),
    ("business-hours", "example-business-hours"),
    ("sms-autoresponder", "example-sms-autoresponder"),
];

/// The guest built alone: it enables the SDK's `xml-guest` feature (the `xml-flow` world), and
/// every world the SDK generates in a build ends up in each component linking it, so that
/// feature must not be unified into the customer guests' build.
const XML_GUEST_PACKAGE: &str = "opentact-xml-guest";

/// The profile of the root Cargo.toml the guests are built with.
const PROFILE: &str = "guest";

fn main() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let workspace = manifest_dir.join("../..");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    // OUT_DIR is <target>/[<triple>/]<profile>/build/<crate>-<hash>/out: the nested target
    // directory sits beside the outer profile directories.
    let target_dir = out_dir
        .ancestors()
        .find(|dir| dir.join("CACHEDIR.TAG").exists())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| out_dir.join("../../../..").to_path_buf());
    let guest_target = target_dir.join("wasm-guests");

    for watched in ["wit", "guests", "sdk", "examples", "runtime/xml", "Cargo.lock", "Cargo.toml"] {
        println!("cargo:rerun-if-changed={}", workspace.join(watched).display());
    }

    let (xml, customer): (Vec<&str>, Vec<&str>) =
        GUESTS.iter().map(|(_, package)| *package).partition(|package| *package == XML_GUEST_PACKAGE);
    for packages in [xml, customer] {
        build(&workspace, &guest_target, &packages);
    }

    let artifact_dir = guest_target.join("wasm32-wasip2").join(PROFILE);
    let mut code = String::from(
        "/// Every guest built: (name, path of its component).\npub const GUESTS: &[(&str, &str)] = &[\n",
    );
    let mut xml_guest = None;
    for (name, package) in GUESTS {
        let file = artifact_dir.join(format!("{}.wasm", package.replace('-', "_")));
        assert!(file.exists(), "the guest build did not produce {}", file.display());
        let file = file.canonicalize().expect("the artifact exists");
        if *name == "xml-guest" {
            xml_guest = Some(file.clone());
        }
        writeln!(code, "    ({name:?}, {:?}),", file.display().to_string()).expect("writing to a String");
    }
    code.push_str("];\n");
    let xml_guest = xml_guest.expect("the XML guest is in the list");
    writeln!(
        code,
        "/// The built-in XML guest component.\npub const XML_GUEST: &[u8] = include_bytes!({:?});",
        xml_guest.display().to_string()
    )
    .expect("writing to a String");
    std::fs::write(out_dir.join("artifacts.rs"), code).expect("writing artifacts.rs");
}

/// `cargo build` `packages` for wasm32-wasip2 into `guest_target`.
fn build(workspace: &Path, guest_target: &Path, packages: &[&str]) {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace)
        .args(["build", "--target", "wasm32-wasip2", "--profile", PROFILE, "--target-dir"])
        .arg(guest_target);
    for package in packages {
        command.args(["-p", package]);
    }
    // Flags meant for the host build (coverage, sanitizers) must not reach the wasm build.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
    ] {
        command.env_remove(var);
    }
    let status = command.status().expect("could not start cargo to build the guests");
    if !status.success() {
        panic!(
            "building the guests for wasm32-wasip2 failed ({status}); if the target is missing, run \
             `rustup target add wasm32-wasip2`"
        );
    }
}
