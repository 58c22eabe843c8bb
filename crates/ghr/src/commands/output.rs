//! How operator commands print: a table (`-o table`, or `-o wide` with more columns, `--no-headers` for
//! scripts), or the admin API's own JSON or YAML (`-o json|yaml`). Lists print their page; a table names the
//! cursor of the next page on standard error, so standard output stays the rows alone.

use crate::cli::{OutputFormat, Target};
use crate::table;
use anyhow::Context;
use ghr_api::Page;
use serde::Serialize;

/// A record that prints as one table row.
pub trait Row {
    /// Column headers; `wide` adds columns.
    fn headers(wide: bool) -> Vec<&'static str>;
    fn cells(&self, wide: bool) -> Vec<String>;
}

/// The structured (JSON or YAML) text of `value`, or None for table formats.
pub fn structured<T: Serialize>(format: OutputFormat, value: &T) -> anyhow::Result<Option<String>> {
    match format {
        OutputFormat::Json => {
            let mut text = serde_json::to_string_pretty(value).context("cannot encode the answer as JSON")?;
            text.push('\n');
            Ok(Some(text))
        }
        OutputFormat::Yaml => Ok(Some(serde_norway::to_string(value).context("cannot encode the answer as YAML")?)),
        OutputFormat::Table | OutputFormat::Wide => Ok(None),
    }
}

/// Rows as a table in `format` (table or wide).
pub fn rows<T: Row>(format: OutputFormat, no_headers: bool, items: &[T]) -> String {
    let wide = format == OutputFormat::Wide;
    let rows: Vec<Vec<String>> = items.iter().map(|item| item.cells(wide)).collect();
    let rendered = table::render(&T::headers(wide), &rows);
    if no_headers { rendered.split_once('\n').map(|(_, rest)| rest.to_owned()).unwrap_or_default() } else { rendered }
}

/// Print a page of a listing (or every page gathered by `--all`).
pub fn print_page<T: Row + Serialize>(target: &Target, what: &str, page: &Page<T>) -> anyhow::Result<()> {
    let format = target.format();
    if let Some(text) = structured(format, page)? {
        out!("{text}");
        return Ok(());
    }
    out!("{}", rows(format, target.no_headers, &page.items));
    if let Some(cursor) = &page.next_cursor {
        note!("more {what}: add --cursor {cursor} (or --all)");
    }
    Ok(())
}

/// Print one record: structured, or as `text` renders it.
pub fn print_one<T: Serialize>(target: &Target, value: &T, text: impl FnOnce() -> String) -> anyhow::Result<()> {
    match structured(target.format(), value)? {
        Some(structured) => out!("{structured}"),
        None => out!("{}", text()),
    }
    Ok(())
}

/// Every page of a listing: `fetch(cursor)` until a page has no next cursor.
pub async fn all_pages<T, F, Fut>(mut fetch: F) -> anyhow::Result<Page<T>>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: std::future::Future<Output = Result<Page<T>, ghr_api::ApiError>>,
{
    let mut items = Vec::new();
    let mut cursor = None;
    loop {
        let page = fetch(cursor.take()).await?;
        items.extend(page.items);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(Page::last(items)),
        }
    }
}

pub fn time(t: Option<ghr_api::Timestamp>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_else(|| "-".into())
}

pub fn or_dash<T: ToString>(value: Option<T>) -> String {
    value.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Pair(u32, &'static str);

    impl Row for Pair {
        fn headers(wide: bool) -> Vec<&'static str> {
            if wide { vec!["ID", "NAME", "LEN"] } else { vec!["ID", "NAME"] }
        }
        fn cells(&self, wide: bool) -> Vec<String> {
            let mut cells = vec![self.0.to_string(), self.1.to_owned()];
            if wide {
                cells.push(self.1.len().to_string());
            }
            cells
        }
    }

    #[test]
    fn tables_drop_their_header_on_request_and_widen() {
        let items = [Pair(1, "acme"), Pair(22, "b")];
        assert_eq!(rows(OutputFormat::Table, false, &items), "ID  NAME\n1   acme\n22  b\n");
        assert_eq!(rows(OutputFormat::Table, true, &items), "1   acme\n22  b\n");
        assert_eq!(rows(OutputFormat::Wide, false, &items), "ID  NAME  LEN\n1   acme  4\n22  b     1\n");
        assert_eq!(rows(OutputFormat::Table, true, &[] as &[Pair]), "");
    }

    #[test]
    fn structured_formats_carry_the_page() {
        let page = Page { items: vec![1, 2], next_cursor: Some("c1".into()) };
        let json = structured(OutputFormat::Json, &page).unwrap().unwrap();
        assert_eq!(serde_json::from_str::<serde_json::Value>(&json).unwrap()["next_cursor"], "c1");
        let yaml = structured(OutputFormat::Yaml, &page).unwrap().unwrap();
        assert_eq!(yaml, "items:\n- 1\n- 2\nnext_cursor: c1\n");
        assert!(structured(OutputFormat::Wide, &page).unwrap().is_none());
    }
}
