//! The README's "Using the SDK" section cannot drift from code that compiles: its Rust blocks
//! are the bodies of `examples/quickstart.rs` and `examples/openfeature.rs` (between the
//! `// README begin` / `// README end` markers), which `cargo test` builds, and its Cargo
//! lines name the versions the workspace builds them with.
//!
//! Why examples and a text comparison rather than the README as a doctest: the README must
//! show complete programs a reader can paste, and a doctest needs hidden `# ` lines that
//! GitHub would render; every unlabelled fence in the README would become a Rust doctest too;
//! and `include_str!` of a file outside the package breaks `cargo package`. An example is
//! also runnable against a live server.

use std::path::Path;

fn read(path: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The "Using the SDK" section of the README.
fn section() -> String {
    let readme = read("../README.md");
    let start = readme
        .find("## Using the SDK")
        .expect("README has `## Using the SDK`");
    let rest = &readme[start + 3..];
    let end = rest.find("\n## ").map_or(rest.len(), |i| i + 1);
    rest[..end].to_owned()
}

/// The contents of the fenced blocks of `lang` in `text`, in order.
fn blocks(text: &str, lang: &str) -> Vec<String> {
    let open = format!("```{lang}\n");
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(&open) {
        let body = &rest[start + open.len()..];
        let end = body.find("```\n").expect("an unterminated code block");
        out.push(body[..end].to_owned());
        rest = &body[end..];
    }
    out
}

fn example_body(name: &str) -> String {
    let text = read(&format!("examples/{name}.rs"));
    let (_, body) = text.split_once("// README begin\n").expect("begin marker");
    let (body, _) = body.split_once("// README end").expect("end marker");
    body.to_owned()
}

#[test]
fn readme_rust_blocks_are_the_examples() {
    let rust = blocks(&section(), "rust");
    let examples = ["quickstart", "openfeature"].map(example_body);
    assert_eq!(rust.len(), examples.len(), "one README block per example");
    for (shown, example) in rust.iter().zip(&examples) {
        assert_eq!(
            shown, example,
            "the README's block differs from its example; copy the example's code between the markers"
        );
    }
}

#[test]
fn readme_dependency_lines_match_the_workspace() {
    let workspace = read("../Cargo.toml");
    let version = |name: &str| -> String {
        let line = workspace
            .lines()
            .find(|l| l.starts_with(&format!("{name} = ")))
            .unwrap_or_else(|| panic!("workspace dependency {name}"));
        let quoted = line.split('"').nth(1).expect("a quoted version");
        quoted.to_owned()
    };
    let toml = blocks(&section(), "toml").concat();
    for name in ["tokio", "open-feature"] {
        let wanted = version(name);
        let shown = toml
            .lines()
            .find(|l| l.starts_with(&format!("{name} = ")))
            .unwrap_or_else(|| panic!("the README names no {name} dependency"));
        assert!(
            shown.contains(&format!("\"{wanted}\"")),
            "README: `{shown}`; the workspace builds with {name} {wanted}"
        );
    }
    assert!(toml.contains("features = [\"openfeature\"]"));
    assert!(toml.contains("features = [\"macros\", \"rt-multi-thread\"]"));
}
