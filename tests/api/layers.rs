//! The layers of DESIGN.md §2, checked in the source: every `crate::<module>` a module names
//! must be one its layer may use, and the modules' dependencies have no cycle. A handler that
//! reaches past the service to a store, or a store that reaches up into the API, fails here
//! with the file and line.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::helpers::repo_path;

/// What each top-level module of `src/` may name. The composition root (`app`), the command
/// line (`cli`, `batch_cli`) and the benchmarks (`bench`) build everything and may name it.
const MAY_USE: &[(&str, &[&str])] = &[
    ("api", &["service", "auth", "config", "feature", "metrics"]),
    ("http_server", &["config"]),
    (
        "service",
        &[
            "audit",
            "auth",
            "batches",
            "cache",
            "capacity",
            "config",
            "facts",
            "feature",
            "guard",
            "limits",
            "metrics",
            "outcome",
            "prompts",
            "providers",
            "shutdown",
            "storage",
            "tasks",
            "webhooks",
        ],
    ),
    (
        "batches",
        &[
            "config", "facts", "feature", "metrics", "storage", "tasks", "webhooks",
        ],
    ),
    (
        "webhooks",
        &[
            "auth", "config", "facts", "metrics", "outcome", "storage", "tasks",
        ],
    ),
    (
        "tasks",
        &[
            "config", "facts", "feature", "metrics", "outcome", "shutdown", "storage",
        ],
    ),
    (
        "audit",
        &[
            "config", "facts", "feature", "metrics", "outcome", "storage",
        ],
    ),
    (
        "limits",
        &["auth", "config", "feature", "metrics", "storage"],
    ),
    (
        "cache",
        &[
            "config",
            "feature",
            "metrics",
            "prompts",
            "providers",
            "storage",
        ],
    ),
    (
        "providers",
        &["config", "feature", "metrics", "outcome", "prompts"],
    ),
    ("capacity", &["config", "metrics", "providers", "storage"]),
    ("guard", &["config", "feature", "prompts"]),
    ("prompts", &["config", "feature", "outcome"]),
    ("auth", &["config", "facts"]),
    ("storage", &["config"]),
    ("shutdown", &["prompts"]),
    ("metrics", &["config", "feature", "outcome"]),
    ("telemetry", &["config"]),
    ("config", &["feature"]),
    ("feature", &[]),
    ("outcome", &[]),
    ("facts", &["feature"]),
];

const ROOTS: &[&str] = &["app", "cli", "batch_cli", "bench", "lib", "main"];

/// `(module, file, line, named module)` for every `crate::<name>` outside comments.
fn references() -> Vec<(String, String, usize, String)> {
    let src = repo_path("src");
    let mut found = Vec::new();
    for path in crate::helpers::files_under(&src, "rs") {
        let module = top_module(&src, &path);
        let text = std::fs::read_to_string(&path).unwrap();
        for (number, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            for (at, _) in code.match_indices("crate::") {
                let named: String = code[at + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !named.is_empty() && named != module {
                    let file = path.strip_prefix(&src).unwrap().display().to_string();
                    found.push((module.clone(), file, number + 1, named));
                }
            }
        }
    }
    found.sort();
    found
}

fn top_module(src: &Path, file: &Path) -> String {
    let first = file
        .strip_prefix(src)
        .unwrap()
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy()
        .into_owned();
    first.trim_end_matches(".rs").to_owned()
}

#[test]
fn every_module_names_only_the_layers_below_it() {
    let rules: BTreeMap<&str, &[&str]> = MAY_USE.iter().copied().collect();
    let mut broken = Vec::new();
    for (module, file, line, named) in references() {
        if ROOTS.contains(&module.as_str()) {
            continue;
        }
        let allowed = rules
            .get(module.as_str())
            .unwrap_or_else(|| panic!("src/{file}: the module `{module}` has no row in MAY_USE"));
        if !allowed.contains(&named.as_str()) {
            broken.push(format!(
                "src/{file}:{line}: `{module}` names `crate::{named}`"
            ));
        }
    }
    assert!(
        broken.is_empty(),
        "{} reference(s) past the layers of DESIGN.md §2:\n{}",
        broken.len(),
        broken.join("\n")
    );
}

/// The HTTP layer reaches no store by its client crate either.
#[test]
fn the_api_names_no_store_client() {
    let api = repo_path("src/api");
    let mut broken = Vec::new();
    let mut stack = vec![api];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for (number, line) in text.lines().enumerate() {
                    let code = line.split("//").next().unwrap_or_default();
                    for client in ["redis::", "sqlx::"] {
                        let named = code.match_indices(client).any(|(at, _)| {
                            !code[..at].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
                        });
                        if named {
                            broken.push(format!(
                                "{}:{}: names `{client}`",
                                path.display(),
                                number + 1
                            ));
                        }
                    }
                }
            }
        }
    }
    assert!(
        broken.is_empty(),
        "the API reaches a store directly:\n{}",
        broken.join("\n")
    );
}

#[test]
fn the_modules_depend_on_each_other_without_a_cycle() {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, _, _, named) in references() {
        if !ROOTS.contains(&module.as_str()) {
            edges.entry(module).or_default().insert(named);
        }
    }
    // Depth-first search; a node met again while on the path closes a cycle.
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| n == node) {
            let mut cycle = path[start..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        if let Some(cycle) = visit(node, &edges, &mut Vec::new(), &mut done) {
            panic!(
                "the modules depend on each other in a cycle: {}",
                cycle.join(" → ")
            );
        }
    }
}
