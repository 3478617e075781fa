//! The declared `rust-version` is true: no dependency in `Cargo.lock` asks for a newer Rust
//! (our own code is held to it by clippy's `incompatible_msrv` lint, which reads the same
//! field), and it is not higher than the newest of theirs, so it is the minimum.
//!
//! Only one toolchain can be installed where the tests run, so the check reads the
//! dependencies' manifests in cargo's registry instead of building with an older compiler.

use std::path::PathBuf;

fn version(text: &str) -> Vec<u32> {
    text.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

/// `rust-version = "..."` of a manifest's `[package]`, if it has one.
fn rust_version(manifest: &str) -> Option<Vec<u32>> {
    let line = manifest
        .lines()
        .find(|l| l.trim_start().starts_with("rust-version"))?;
    let value = line.split('"').nth(1)?;
    Some(version(value))
}

#[test]
fn rust_version_is_the_newest_a_dependency_needs() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let workspace = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let declared = rust_version(&workspace).expect("the workspace declares rust-version");
    let cargo_home = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap()).join(".cargo"));
    let sources: Vec<PathBuf> = std::fs::read_dir(cargo_home.join("registry/src"))
        .map(|dirs| dirs.filter_map(|d| Some(d.ok()?.path())).collect())
        .unwrap_or_default();
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).unwrap();
    let (mut newest, mut read) = (Vec::new(), 0);
    let mut newest_name = String::new();
    for package in lock.split("[[package]]").skip(1) {
        let field = |key: &str| {
            package
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{key} = \"")))
                .map(|v| v.trim_end_matches('"').to_string())
        };
        let (Some(name), Some(version)) = (field("name"), field("version")) else {
            continue;
        };
        // Sources of packages no build here needs (other platforms) are not downloaded.
        let Some(manifest) = sources
            .iter()
            .map(|s| s.join(format!("{name}-{version}/Cargo.toml")))
            .find_map(|p| std::fs::read_to_string(p).ok())
        else {
            continue;
        };
        read += 1;
        if let Some(v) = rust_version(&manifest) {
            if v > newest {
                newest = v;
                newest_name = format!("{name} {version}");
            }
        }
    }
    if read == 0 {
        eprintln!(
            "skipping: no dependency sources in {}",
            cargo_home.display()
        );
        return;
    }
    assert!(
        declared >= newest,
        "rust-version {declared:?} is lower than {newest_name}'s {newest:?}"
    );
    assert_eq!(
        declared, newest,
        "rust-version is higher than any dependency needs ({newest_name}: {newest:?})"
    );
}
