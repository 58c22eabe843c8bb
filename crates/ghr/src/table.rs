//! Plain-text tables for operators. Cells may hold text a tenant controls (repository names, labels, runner
//! errors): control characters are shown escaped, so no cell can move the cursor, clear the operator's screen
//! or start a new row.

use std::borrow::Cow;

/// `text` with every control character escaped (`\n`, `\u{1b}`).
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect(),
    )
}

/// Render rows under headers, columns padded to their widest cell.
pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<Cow<'_, str>>> =
        rows.iter().map(|row| row.iter().map(|cell| printable(cell)).collect()).collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(width) = widths.get_mut(i) {
                *width = (*width).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<width$}", width = widths.get(i).copied().unwrap_or(0)))
            .collect();
        padded.join("  ").trim_end().to_owned()
    };
    let mut out = line(headers.to_vec());
    out.push('\n');
    for row in &rows {
        out.push_str(&line(row.iter().map(|cell| cell.as_ref()).collect()));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn pads_columns() {
        let out = super::render(&["ID", "ORG"], &[vec!["1".into(), "acme".into()], vec!["1234".into(), "b".into()]]);
        assert_eq!(out, "ID    ORG\n1     acme\n1234  b\n");
    }

    #[test]
    fn control_characters_cannot_break_a_table() {
        let out = super::render(&["LABELS"], &[vec!["\u{1b}[2J\u{1b}[31mEVIL".into()], vec!["a\nFAKE 1 2".into()]]);
        assert_eq!(out, "LABELS\n\\u{1b}[2J\\u{1b}[31mEVIL\na\\nFAKE 1 2\n");
        assert_eq!(super::printable("plain ünïcode"), "plain ünïcode");
    }
}
