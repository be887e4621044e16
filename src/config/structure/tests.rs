//! Tests for reading a file's structure past its first problem.

use serde::Deserialize;
use toml::Spanned;

use super::*;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Mirror {
    #[serde(default)]
    section: Section,
    #[serde(default)]
    items: Vec<Spanned<Item>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Section {
    size: Option<i64>,
    #[serde(default)]
    names: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Item {
    name: Option<String>,
}

fn messages(problems: &[Problem]) -> Vec<&str> {
    problems.iter().map(|p| p.message.as_str()).collect()
}

#[test]
fn every_unknown_key_and_wrong_type_is_reported_and_the_rest_is_read() {
    let text = "[section]\nsize = \"big\"\nnames = [\"a\", 2, \"c\"]\nextra = 1\n\n\
                [[items]]\nname = \"one\"\n\n[[items]]\nname = 2\ncolour = \"red\"\n";
    let parsed = parse::<Mirror>(text).expect("readable past its problems");
    let mut found = messages(&parsed.problems);
    found.sort();
    assert_eq!(
        found,
        [
            "invalid type: integer `2` for `name` in [[items]] #2, expected a string",
            "invalid type: integer `2` for item 2 of `names` in [section], expected a string",
            "invalid type: string \"big\" for `size` in [section], expected an integer",
            "unknown field `colour` in [[items]] #2, expected `name`",
            "unknown field `extra` in [section], expected `size` or `names`",
        ]
    );
    assert_eq!(parsed.value.section.names, ["a", "c"]);
    assert_eq!(parsed.value.section.size, None);
    assert_eq!(parsed.value.items.len(), 2);
    assert_eq!(parsed.value.items[0].get_ref().name.as_deref(), Some("one"));
    let second = parsed.value.items[1].span();
    assert!(parsed.dropped.in_table(&second, "name"), "{:?}", parsed.dropped);
    assert!(!parsed.dropped.in_table(&parsed.value.items[0].span(), "name"));
}

#[test]
fn a_problem_points_at_the_key_or_the_value_it_is_about() {
    let text = "section = 5\nother = true\n";
    let problems = match parse::<Mirror>(text) {
        Ok(parsed) => parsed.problems,
        Err(problems) => panic!("{problems:?}"),
    };
    let mut found: Vec<_> = problems
        .iter()
        .map(|p| (p.span.clone(), p.message.as_str()))
        .collect();
    found.sort_by_key(|(span, _)| span.start);
    assert_eq!(
        found,
        [
            (
                10..11,
                "invalid type: integer `5` for `section` at the top level, expected a table"
            ),
            (
                12..17,
                "unknown field `other` at the top level, expected `section` or `items`"
            ),
        ]
    );
}

#[test]
fn a_syntax_error_stops_at_the_first() {
    let problems = parse::<Mirror>("[section\nsize = 1\n= 2\n").expect_err("not TOML");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].span.start, 8);
}

#[test]
fn a_file_that_is_mostly_wrong_stops_after_a_bounded_number_of_problems() {
    let text: String = (0..MAX_PROBLEMS + 50)
        .map(|i| format!("unknown{i} = 1\n"))
        .collect();
    let problems = parse::<Mirror>(&text).expect_err("too many problems to go on");
    assert_eq!(problems.len(), MAX_PROBLEMS + 1);
    let last = problems.last().map(|p| p.message.as_str());
    assert_eq!(last, Some("stopped after 100 problems; fix these first"));
}
