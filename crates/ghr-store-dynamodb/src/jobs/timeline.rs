//! A job's timeline: the list attribute `timeline` (L of M `{at, kind, detail}`) on the job item, in insertion
//! order, appended with `list_append` in the same write as the change it records.
//!
//! Kept on the item rather than as items of their own: `job_timeline` is one `GetItem`, an entry commits with
//! its change without a transaction, and pruning a job deletes its timeline with it. The price is the item
//! size limit (400 KB), hence the cap: at most [`TIMELINE_CAP`] entries of at most [`DETAIL_MAX_BYTES`] of
//! detail each (about 120 KB). Past the cap the first entry (the job's creation) and the newest entries are
//! kept; the ones between are dropped and a [`TRIMMED_KIND`] entry in second place says how many went (the
//! item counts them in `timeline_dropped`). A job gathers that many entries only when something fails for a
//! long time (a launch retried again and again), and then the newest entries are the ones that explain it.

use crate::error::corrupt;
use crate::item::{Item, Reader, ms_to_ts, n, s, ts_ms};
use crate::job_item::{Expr, attr};
use crate::tables::job as names;
use aws_sdk_dynamodb::types::AttributeValue;
use ghr_core::ids::JobId;
use ghr_core::job::JobEvent;
use ghr_core::ports::StoreError;
use std::collections::HashMap;

pub(crate) use names::{
    TIMELINE_CAP, TIMELINE_DETAIL_MAX_BYTES as DETAIL_MAX_BYTES, TIMELINE_TRIMMED_KIND as TRIMMED_KIND,
};
/// What marks a cut detail.
const CUT_MARK: &str = "…";

/// The stored form of an entry.
pub(crate) fn entry_value(event: &JobEvent) -> AttributeValue {
    AttributeValue::M(HashMap::from([
        (attr::EVENT_AT.to_owned(), ts_ms(event.at)),
        (attr::EVENT_KIND.to_owned(), s(event.kind.clone())),
        (attr::EVENT_DETAIL.to_owned(), s(cut(&event.detail))),
    ]))
}

fn cut(detail: &str) -> String {
    if detail.len() <= DETAIL_MAX_BYTES {
        return detail.to_owned();
    }
    let mut end = DETAIL_MAX_BYTES - CUT_MARK.len();
    while !detail.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{CUT_MARK}", &detail[..end])
}

/// The entries of an item's timeline, in insertion order (absent: none).
pub(crate) fn decode(op: &'static str, job: JobId, item: &Item) -> Result<Vec<JobEvent>, StoreError> {
    let Some(list) = Reader::new(op, item).opt_list(names::TIMELINE)? else {
        return Ok(Vec::new());
    };
    list.iter()
        .map(|value| {
            let AttributeValue::M(entry) = value else {
                return Err(corrupt(op, format!("attribute {}: an entry is not a map (M)", names::TIMELINE)));
            };
            let r = Reader::new(op, entry);
            let ms = r.i64(attr::EVENT_AT)?;
            let at = ms_to_ts(ms).ok_or_else(|| corrupt(op, format!("timeline entry time {ms} is out of range")))?;
            Ok(JobEvent {
                job_id: job,
                at,
                kind: r.s(attr::EVENT_KIND)?.to_owned(),
                detail: r.opt_s(attr::EVENT_DETAIL)?.unwrap_or_default().to_owned(),
            })
        })
        .collect()
}

/// How many entries were dropped past the cap so far.
pub(crate) fn dropped(op: &'static str, item: &Item) -> Result<u64, StoreError> {
    Ok(Reader::new(op, item).opt_u64(attr::TIMELINE_DROPPED)?.unwrap_or(0))
}

/// Time order, insertion order among equal times (as the SQL stores' `ORDER BY at, id`).
pub(crate) fn in_time_order(mut events: Vec<JobEvent>) -> Vec<JobEvent> {
    events.sort_by_key(|event| event.at);
    events
}

/// Add `new` to a timeline read as `current` (with `dropped` entries dropped before): a `list_append` while
/// the cap allows, else the trimmed whole list. The write must be conditioned on the version read.
pub(crate) fn add(expr: &mut Expr, current: &[JobEvent], dropped: u64, new: &[JobEvent]) {
    if current.len() + new.len() <= TIMELINE_CAP {
        append(expr, new);
        return;
    }
    let (list, total) = trimmed(current, dropped, new);
    expr.set(names::TIMELINE, AttributeValue::L(list.iter().map(entry_value).collect()));
    expr.set(attr::TIMELINE_DROPPED, n(total));
}

/// `timeline = list_append(timeline, new)`, creating the list when absent.
pub(crate) fn append(expr: &mut Expr, new: &[JobEvent]) {
    let name = expr.name(names::TIMELINE);
    let empty = expr.value(AttributeValue::L(Vec::new()));
    let entries = expr.value(AttributeValue::L(new.iter().map(entry_value).collect()));
    expr.set_clause(format!("{name} = list_append(if_not_exists({name}, {empty}), {entries})"));
}

/// The condition that an append of `count` entries keeps the timeline within the cap.
pub(crate) fn room_for(expr: &mut Expr, count: usize) {
    let name = expr.name(names::TIMELINE);
    let most = expr.value(n(TIMELINE_CAP.saturating_sub(count)));
    expr.condition(format!("attribute_not_exists({name}) OR size({name}) <= {most}"));
}

/// The first entry, a [`TRIMMED_KIND`] entry, and the newest entries, `TIMELINE_CAP` in all; with the total
/// dropped.
pub(crate) fn trimmed(current: &[JobEvent], dropped: u64, new: &[JobEvent]) -> (Vec<JobEvent>, u64) {
    let mut all: Vec<&JobEvent> = current.iter().chain(new).collect();
    let first = all.remove(0);
    all.retain(|event| event.kind != TRIMMED_KIND);
    let keep = TIMELINE_CAP - 2;
    let cut_at = all.len().saturating_sub(keep);
    let (gone, kept) = all.split_at(cut_at);
    let total = dropped + gone.len() as u64;
    let at = gone.last().map_or(first.at, |event| event.at);
    let marker = JobEvent {
        job_id: first.job_id,
        at,
        kind: TRIMMED_KIND.to_owned(),
        detail: format!("{total} earlier entries dropped: a timeline keeps at most {TIMELINE_CAP}"),
    };
    let list = std::iter::once(first.clone()).chain(std::iter::once(marker)).chain(kept.iter().map(|e| (*e).clone()));
    (list.collect(), total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn event(secs: i64) -> JobEvent {
        JobEvent {
            job_id: JobId(1),
            at: Utc.timestamp_opt(secs, 0).unwrap(),
            kind: "k".to_owned(),
            detail: secs.to_string(),
        }
    }

    #[test]
    fn trimming_keeps_the_first_and_the_newest_and_counts_the_rest() {
        let current: Vec<JobEvent> = (0..TIMELINE_CAP as i64).map(event).collect();
        let (list, total) = trimmed(&current, 0, &[event(1000)]);
        assert_eq!(list.len(), TIMELINE_CAP);
        assert_eq!((list[0].detail.as_str(), list[1].kind.as_str()), ("0", TRIMMED_KIND));
        assert_eq!(list.last().unwrap().detail, "1000");
        assert_eq!(total, 2, "101 entries with one marker slot: two go");
        let (again, total) = trimmed(&list, total, &[event(1001)]);
        assert_eq!((again.len(), total), (TIMELINE_CAP, 3));
        assert_eq!(again.iter().filter(|e| e.kind == TRIMMED_KIND).count(), 1, "one marker");
    }

    #[test]
    fn long_details_are_cut_at_a_character_boundary() {
        let long = "é".repeat(DETAIL_MAX_BYTES);
        let AttributeValue::M(map) = entry_value(&JobEvent { detail: long, ..event(1) }) else { panic!("a map") };
        let Some(AttributeValue::S(detail)) = map.get(attr::EVENT_DETAIL) else { panic!("a detail") };
        assert!(detail.len() <= DETAIL_MAX_BYTES && detail.ends_with(CUT_MARK), "{}", detail.len());
    }
}
