//! The fault catalogue and the parity table name tests that exist, and every row names one.

use std::path::Path;

/// Every `file::function` in backticks in `doc`'s table rows, checked against the sources: an
/// integration test in `tests/it/<file>.rs`, or else a test function anywhere in `layers/src`,
/// `sim/src` or `src`. A row names a test or says `design:`.
fn check_rows(doc: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join(doc)).expect("doc");
    let sources = |dir: &str| -> String {
        let mut all = String::new();
        let mut stack = vec![root.join(dir)];
        while let Some(path) = stack.pop() {
            for entry in std::fs::read_dir(&path).expect("dir").flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    all.push_str(&std::fs::read_to_string(&path).expect("source"));
                }
            }
        }
        all
    };
    let unit_sources = [sources("layers/src"), sources("sim/src"), sources("src")].concat();
    // Recorded runs (fuzzing, the long soak) are tables of figures, not of faults.
    let catalogue = text.split("## Recorded runs").next().unwrap_or_default();
    let lines: Vec<&str> = catalogue.lines().collect();
    let mut rows = 0;
    for (i, row) in lines.iter().enumerate() {
        let header = lines.get(i + 1).is_some_and(|next| next.starts_with("|--"));
        if !row.starts_with("| ") || header {
            continue;
        }
        let names: Vec<&str> = row
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|n| {
                n.contains("::")
                    && n.chars().all(|c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == ':'
                    })
            })
            .collect();
        let design = row.contains("design:");
        assert!(
            !names.is_empty() || design,
            "{doc}: a row without a test (or a `design:` note): {row}"
        );
        rows += 1;
        for name in names {
            let parts: Vec<&str> = name.split("::").collect();
            let function = parts.last().copied().unwrap_or_default();
            let integration =
                std::fs::read_to_string(root.join(format!("tests/it/{}.rs", parts[0])));
            let found = match integration {
                Ok(source) if parts.len() == 2 => source.contains(&format!("fn {function}(")),
                _ => unit_sources.contains(&format!("fn {function}(")),
            };
            assert!(found, "{doc}: no test {name}");
        }
    }
    assert!(rows >= 15, "{doc}: only {rows} rows");
}

#[test]
fn every_fault_catalogue_row_names_a_test_that_exists() {
    check_rows("docs/faults.md");
}

#[test]
fn every_parity_row_names_a_test_or_a_design_decision() {
    check_rows("docs/parity.md");
}
