//! The module layout the README's architecture section promises: dependencies between the
//! top-level modules of `src/` point one way (no import cycle), counting every `crate::module`
//! reference outside test code.
//!
//! `cargo test --test architecture -- --nocapture` prints the graph.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

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
    for file in rust_files(src) {
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

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
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

/// Tarjan's strongly connected components, each sorted, in a stable order.
fn strongly_connected(graph: &Graph) -> Vec<Vec<String>> {
    struct State<'g> {
        graph: &'g Graph,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        components: Vec<Vec<String>>,
    }
    fn visit<'g>(state: &mut State<'g>, node: &'g str) {
        let n = state.index.len();
        state.index.insert(node, n);
        state.low.insert(node, n);
        state.stack.push(node);
        state.on_stack.insert(node);
        for next in state.graph.get(node).into_iter().flatten() {
            let next = next.as_str();
            if !state.index.contains_key(next) {
                visit(state, next);
                let low = state.low[node].min(state.low[next]);
                state.low.insert(node, low);
            } else if state.on_stack.contains(next) {
                let low = state.low[node].min(state.index[next]);
                state.low.insert(node, low);
            }
        }
        if state.low[node] == state.index[node] {
            let mut component = Vec::new();
            while let Some(member) = state.stack.pop() {
                state.on_stack.remove(member);
                component.push(member.to_string());
                if member == node {
                    break;
                }
            }
            component.sort();
            state.components.push(component);
        }
    }
    let mut state = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        components: Vec::new(),
    };
    for node in graph.keys() {
        if !state.index.contains_key(node.as_str()) {
            visit(&mut state, node);
        }
    }
    state.components
}
