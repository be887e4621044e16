//! The module layout the README's architecture section promises: dependencies between the
//! top-level modules of `src/` point one way (no import cycle), counting every `crate::module`
//! reference outside test code.
//!
//! `cargo test --test architecture -- --nocapture` prints the graph.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use petgraph::graphmap::DiGraphMap;

/// Top-level module -> the top-level modules its non-test code names as `crate::module`.
type Graph = BTreeMap<String, BTreeSet<String>>;

#[test]
fn no_import_cycle_among_the_top_level_modules() {
    let graph = module_graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    for (module, uses) in &graph {
        let uses: Vec<&str> = uses.iter().map(String::as_str).collect();
        println!("{module} -> {}", uses.join(", "));
    }
    let cycles: Vec<Vec<String>> = strongly_connected(&graph)
        .into_iter()
        .filter(|component| component.len() > 1)
        .collect();
    assert!(
        cycles.is_empty(),
        "import cycles among src/'s modules: {cycles:?}"
    );
}

#[test]
fn the_cycle_finder_finds_a_cycle() {
    let edges = [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")];
    let mut graph = Graph::new();
    for (from, to) in edges {
        graph.entry(from.into()).or_default().insert(to.into());
        graph.entry(to.into()).or_default();
    }
    let components = strongly_connected(&graph);
    assert!(
        components.contains(&vec!["a".to_string(), "b".into(), "c".into()]),
        "{components:?}"
    );
    assert!(components.contains(&vec!["d".to_string()]), "{components:?}");
}

#[test]
fn test_code_and_comments_do_not_count() {
    let text = "use crate::a::X;\n// crate::b in a comment\nfn f() { crate::c::g() }\n\
                #[cfg(test)]\nmod tests {\n    use crate::d;\n    fn t() { { } }\n}\nfn h() { crate::e::x(); }\n";
    let named: BTreeSet<String> = references(text).collect();
    let expected: BTreeSet<String> = ["a", "c", "e"].map(String::from).into();
    assert_eq!(named, expected);
}

fn module_graph(src: &Path) -> Graph {
    let mut graph = Graph::new();
    for entry in walkdir::WalkDir::new(src) {
        let file = entry.expect("walk src").into_path();
        if file.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let relative = file.strip_prefix(src).expect("under src");
        let Some(module) = top_level_module(relative) else {
            continue;
        };
        let text = std::fs::read_to_string(&file).expect("read source");
        let uses = graph.entry(module.clone()).or_default();
        uses.extend(references(&text).filter(|used| *used != module));
    }
    // Only modules of this crate (not `crate::Running`, a re-export at the root).
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    for uses in graph.values_mut() {
        uses.retain(|used| modules.contains(used));
    }
    graph
}

/// `config/validate/mod.rs` -> `config`; `gateway.rs` -> `gateway`; the crate roots -> none.
/// A `tests.rs` file is a test module.
fn top_level_module(relative: &Path) -> Option<String> {
    if relative.file_name().is_some_and(|name| name == "tests.rs") {
        return None;
    }
    let first = relative.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main")).then(|| name.to_string())
}

/// The module names after each `crate::` in code that is neither a comment nor inside a
/// `#[cfg(test)]` item.
fn references(text: &str) -> impl Iterator<Item = String> + '_ {
    let code = without_test_items(text);
    let mut found = Vec::new();
    for line in code.lines() {
        let line = line.split("//").next().unwrap_or_default();
        for (at, _) in line.match_indices("crate::") {
            let rest = &line[at + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.push(name);
            }
            // `crate::{a, b::c}`: each name in the braces.
            if let Some(list) = rest.strip_prefix('{') {
                let list = list.split('}').next().unwrap_or_default();
                found.extend(
                    list.split(',')
                        .filter_map(|item| item.trim().split("::").next())
                        .filter(|name| !name.is_empty())
                        .map(String::from),
                );
            }
        }
    }
    found.into_iter()
}

/// The text with every item that follows a `#[cfg(test)]` line removed (to its matching `}`
/// or `;`).
fn without_test_items(text: &str) -> String {
    let mut kept = String::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.trim() != "#[cfg(test)]" {
            kept.push_str(line);
            kept.push('\n');
            continue;
        }
        let mut depth = 0i32;
        for item_line in lines.by_ref() {
            depth += item_line.matches('{').count() as i32 - item_line.matches('}').count() as i32;
            let ended = depth <= 0 && (item_line.contains('}') || item_line.trim_end().ends_with(';'));
            if ended {
                break;
            }
        }
    }
    kept
}

/// The strongly connected components (petgraph's Tarjan), each sorted.
fn strongly_connected(graph: &Graph) -> Vec<Vec<String>> {
    let mut map = DiGraphMap::<&str, ()>::new();
    for (module, uses) in graph {
        map.add_node(module);
        for used in uses {
            map.add_edge(module, used, ());
        }
    }
    let mut components = petgraph::algo::tarjan_scc(&map);
    components.iter_mut().for_each(|component| component.sort());
    components
        .into_iter()
        .map(|c| c.into_iter().map(String::from).collect())
        .collect()
}
