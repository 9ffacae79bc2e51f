//! The documentation against the repository: `docs/architecture.md` names every source file, the
//! README stays short, relative links resolve, and the shell commands the pages show refer to
//! scripts, npm scripts and `clip-lens` subcommands that exist. Plain text parsing, std only.

use std::fs;
use std::path::{Path, PathBuf};

/// The repository root.
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A file of the repository as text, with its path in the panic message when it is unreadable.
fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The files under `dir` (recursively) whose names end with `suffix`, as paths relative to
/// `dir` with `/` separators, sorted.
fn files_under(dir: &Path, suffix: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let listing = fs::read_dir(&current);
        for entry in listing.unwrap_or_else(|e| panic!("cannot list {}: {e}", current.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.to_string_lossy().ends_with(suffix) {
                let relative = path.strip_prefix(dir).unwrap();
                let parts: Vec<_> = relative.components().map(|c| c.as_os_str().to_string_lossy()).collect();
                found.push(parts.join("/"));
            }
        }
    }
    found.sort();
    found
}

/// README.md and every `docs/*.md`, as (path relative to the root, text).
fn markdown_pages() -> Vec<(String, String)> {
    let mut names = vec!["README.md".to_string()];
    names.extend(files_under(&root().join("docs"), ".md").into_iter().map(|name| format!("docs/{name}")));
    names.into_iter().map(|name| (name.clone(), read(&root().join(&name)))).collect()
}

/// Whether `text` holds `needle` as a whole name: the characters around it are not part of a
/// longer name (so `lens::omp` is not found in `lens::omp::tiles`, nor `worker.ts` in
/// `isolation-worker.ts`). A `/` may precede it (`src/lens/stats.rs` names `lens/stats.rs`).
fn mentions(text: &str, needle: &str) -> bool {
    let name_char = |c: char| c.is_alphanumeric() || "_-:".contains(c);
    text.match_indices(needle).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + needle.len()..].chars().next();
        !before.is_some_and(|c| name_char(c) || c == '.') && !after.is_some_and(|c| name_char(c) || c == '/')
    })
}

/// The ways `docs/architecture.md` may name a source file, given its path relative to `src/`
/// or `www/src/`: the path itself; for Rust, the module path (`precompute/shards.rs` ->
/// `precompute::shards`; `lens/omp/mod.rs` -> `lens::omp` or `lens/omp/`), and for a module
/// at the top, its bare name in backticks (`` `config` ``).
fn accepted_names(relative: &str) -> Vec<String> {
    let mut names = vec![relative.to_string()];
    let Some(stem) = relative.strip_suffix(".rs") else { return names };
    let mut segments: Vec<&str> = stem.split('/').collect();
    if segments.last() == Some(&"mod") {
        segments.pop();
        names.push(format!("{}/", segments.join("/")));
    }
    match segments.len() {
        0 => {}
        1 => names.push(format!("`{}`", segments[0])),
        _ => names.push(segments.join("::")),
    }
    names
}

#[test]
fn architecture_names_every_module() {
    let architecture = read(&root().join("docs/architecture.md"));
    let mut missing = Vec::new();
    for (dir, suffix) in [("src", ".rs"), ("www/src", ".ts")] {
        for relative in files_under(&root().join(dir), suffix) {
            if !accepted_names(&relative).iter().any(|name| mentions(&architecture, name)) {
                missing.push(format!("{dir}/{relative}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "docs/architecture.md does not name these source files; add them to docs/architecture.md \
         (their path under src/ or www/src/, or their module path) with their job:\n  {}",
        missing.join("\n  ")
    );
}

#[test]
fn readme_is_short() {
    let size = fs::metadata(root().join("README.md")).unwrap().len();
    assert!(size <= 12 * 1024, "README.md is {size} bytes, over 12 KiB: move details into docs/");
}

/// The targets of the Markdown links `](target)` in `text`.
fn link_targets(text: &str) -> Vec<&str> {
    text.split("](").skip(1).filter_map(|rest| rest.find(')').map(|end| &rest[..end])).collect()
}

/// The anchors GitHub makes of the headings in `text`: lowercase, spaces to `-`, other
/// punctuation dropped (`## What is computed, exactly` -> `what-is-computed-exactly`).
fn heading_anchors(text: &str) -> Vec<String> {
    text.lines()
        .filter(|line| line.starts_with('#'))
        .map(|line| {
            let title = line.trim_start_matches('#').trim();
            title
                .chars()
                .filter_map(|c| match c {
                    ' ' => Some('-'),
                    c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                    _ => None,
                })
                .flat_map(char::to_lowercase)
                .collect()
        })
        .collect()
}

#[test]
fn doc_links_resolve() {
    let mut broken = Vec::new();
    for (page, text) in markdown_pages() {
        let dir = root().join(&page).parent().unwrap().to_path_buf();
        for target in link_targets(&text) {
            if target.starts_with("http://") || target.starts_with("https://") || target.starts_with('#') {
                continue;
            }
            let (file, anchor) = target.split_once('#').unwrap_or((target, ""));
            let path = dir.join(file);
            if !path.exists() {
                broken.push(format!("{page}: {target} (no such file)"));
            } else if !anchor.is_empty() && !heading_anchors(&read(&path)).iter().any(|a| a == anchor) {
                broken.push(format!("{page}: {target} (no such heading)"));
            }
        }
    }
    assert!(broken.is_empty(), "broken links in the documentation:\n  {}", broken.join("\n  "));
}

/// The lines of the fenced code blocks tagged `sh`, `bash` or `shell` in `text`.
fn shell_lines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut in_shell = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if let Some(tag) = trimmed.strip_prefix("```") {
            in_shell = match in_shell {
                None => Some(["sh", "bash", "shell"].contains(&tag.trim())),
                Some(_) => None,
            };
        } else if in_shell == Some(true) {
            lines.push(trimmed);
        }
    }
    lines
}

/// A shell line's words, without its comment (from a `#` that starts a word), a leading `$ `,
/// and the quotes around each word.
fn shell_words(line: &str) -> Vec<&str> {
    let line = line.strip_prefix("$ ").unwrap_or(line);
    line.split_whitespace()
        .take_while(|word| !word.starts_with('#'))
        .map(|word| word.trim_matches(|c| c == '"' || c == '\'' || c == '(' || c == ')'))
        .collect()
}

/// The `clip-lens` subcommands: the variants of the enum that derives `Subcommand` in
/// `src/bin/clip-lens/main.rs` (read as text), CamelCase turned into kebab-case
/// (`EvalSeg` -> `eval-seg`). Variants are the lines of the enum's body indented by 4 spaces
/// that start with a capital letter.
fn subcommands() -> Vec<String> {
    let main = read(&root().join("src/bin/clip-lens/main.rs"));
    let after_derive = main.split("#[derive(Subcommand)]").nth(1).expect("no enum deriving Subcommand");
    let body = after_derive.split_once("{\n").expect("no enum body").1;
    let mut names = Vec::new();
    for line in body.lines().take_while(|line| *line != "}") {
        let Some(item) = line.strip_prefix("    ") else { continue };
        if !item.starts_with(|c: char| c.is_ascii_uppercase()) {
            continue;
        }
        let variant: String = item.chars().take_while(|c| c.is_alphanumeric()).collect();
        let mut kebab = String::new();
        for (i, c) in variant.chars().enumerate() {
            if c.is_uppercase() && i > 0 {
                kebab.push('-');
            }
            kebab.extend(c.to_lowercase());
        }
        names.push(kebab);
    }
    assert!(!names.is_empty(), "no subcommands found in src/bin/clip-lens/main.rs");
    names
}

/// The script names of `www/package.json` (the keys of its `"scripts"` object, read as text).
fn npm_scripts() -> Vec<String> {
    let package = read(&root().join("www/package.json"));
    let scripts = package.split("\"scripts\"").nth(1).expect("no scripts in www/package.json");
    let object = &scripts[..scripts.find('}').expect("unclosed scripts object")];
    object.split(',').filter_map(|entry| entry.split('"').nth(1).map(str::to_string)).collect()
}

/// What is wrong with one shell line: files it runs that do not exist (`bash scripts/X`,
/// `scripts/X`, `node www/X`, `python3 benches/X`, `--example X`, `--bench X`), npm scripts
/// that `www/package.json` lacks, and `clip-lens` subcommands that do not exist.
fn command_problems(line: &str, subcommands: &[String], npm_scripts: &[String]) -> Vec<String> {
    let words = shell_words(line);
    let mut problems = Vec::new();
    let mut missing_file = |path: String| {
        if !root().join(&path).exists() {
            problems.push(format!("no file {path}"));
        }
    };
    let is_script = |word: &str| word.starts_with("scripts/") || word.starts_with("./scripts/");
    for (i, word) in words.iter().enumerate() {
        let next = words.get(i + 1).copied().unwrap_or("");
        match *word {
            _ if is_script(word) => missing_file(word.to_string()),
            "bash" | "sh" | "node" | "python" | "python3" if next.contains('/') && !is_script(next) => {
                missing_file(next.to_string())
            }
            "--example" => missing_file(format!("examples/{next}.rs")),
            "--bench" => missing_file(format!("benches/{next}.rs")),
            _ => {}
        }
    }
    if let Some(npm) = words.iter().position(|w| *w == "npm") {
        if let Some(run) = words[npm..].iter().position(|w| *w == "run") {
            let name = words.get(npm + run + 1).copied().unwrap_or("");
            if !npm_scripts.iter().any(|s| s == name) {
                problems.push(format!("no npm script {name:?} in www/package.json"));
            }
        }
    }
    let subcommand = match words.iter().position(|w| *w == "clip-lens") {
        Some(at) => words.get(at + 1).copied(),
        None if words.windows(2).any(|w| w == ["cargo", "run"]) && !words.contains(&"--example") => {
            words.iter().position(|w| *w == "--").and_then(|at| words.get(at + 1).copied())
        }
        None => None,
    };
    if let Some(name) = subcommand {
        if !subcommands.iter().any(|s| s == name) {
            problems.push(format!("no clip-lens subcommand {name:?} (src/bin/clip-lens/main.rs)"));
        }
    }
    problems
}

#[test]
fn documented_commands_exist() {
    let (subcommands, npm_scripts) = (subcommands(), npm_scripts());
    for expected in ["precompute", "eval-seg", "ablate"] {
        assert!(subcommands.iter().any(|s| s == expected), "no subcommand {expected} in {subcommands:?}");
    }
    let mut wrong = Vec::new();
    for (page, text) in markdown_pages() {
        for line in shell_lines(&text) {
            for problem in command_problems(line, &subcommands, &npm_scripts) {
                wrong.push(format!("{page}: `{line}`: {problem}"));
            }
        }
    }
    assert!(wrong.is_empty(), "commands in the documentation that cannot run:\n  {}", wrong.join("\n  "));
}
