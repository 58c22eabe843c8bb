//! Bar charts as inline SVG, rendered on the server: grouped bars per category with a y axis of round ticks
//! and a legend. Colours are SVG attributes (the console's CSP forbids inline styles).

use maud::{Markup, html};

/// Drawing area, in SVG user units (the SVG scales to its container).
const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 260.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 40.0;
/// Height of a bar whose value is zero or tiny, so that "no wait" still shows as data, unlike "no data".
const MIN_BAR: f64 = 2.0;
/// Colours of the series, in order.
const COLOURS: [&str; 3] = ["#3b82f6", "#f59e0b", "#10b981"];

/// One named series of values, one per category (None: no data for that category).
pub struct Series<'a> {
    pub name: &'a str,
    pub values: Vec<Option<f64>>,
}

/// A round number at or above `value`: 1, 2 or 5 times a power of ten.
pub fn nice_ceiling(value: f64) -> f64 {
    if value <= 0.0 || !value.is_finite() {
        return 1.0;
    }
    let power = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * power).find(|v| *v >= value).unwrap_or(10.0 * power)
}

/// Grid lines above zero for an axis topping at a [`nice_ceiling`]: steps of 0.2, 0.5 or 1 of its power of ten.
fn tick_count(top: f64) -> usize {
    let lead = (top / 10f64.powf(top.log10().floor())).round();
    if lead == 2.0 { 4 } else { 5 }
}

/// A number with two significant digits and no trailing zeros (axis ticks and bar values).
pub fn significant(value: f64) -> String {
    if value == 0.0 || !value.is_finite() {
        return "0".to_owned();
    }
    let decimals = (1 - value.abs().log10().floor() as i32).max(0) as usize;
    let text = format!("{value:.decimals$}");
    if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.').to_owned() } else { text }
}

/// A grouped bar chart. `labels` names the categories (every `label_every`-th is printed), `format` prints axis
/// values; `id` is the SVG's element id.
pub fn bars(id: &str, title: &str, labels: &[String], series: &[Series<'_>], format: &dyn Fn(f64) -> String) -> Markup {
    let max = series.iter().flat_map(|s| s.values.iter().flatten()).fold(0.0_f64, |a, b| a.max(*b));
    let top = nice_ceiling(max);
    let ticks = tick_count(top);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let n = labels.len().max(1) as f64;
    let slot = plot_w / n;
    let bar_w = (slot * 0.8) / series.len().max(1) as f64;
    let label_every = (labels.len() / 12).max(1);
    let y = |v: f64| TOP + plot_h - (v / top) * plot_h;
    let has_data = series.iter().any(|s| s.values.iter().any(Option::is_some));
    html! {
        figure.chart {
            svg id=(id) viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img" aria-label=(title)
                xmlns="http://www.w3.org/2000/svg" {
                title { (title) }
                @for tick in 0..=ticks {
                    @let value = top * tick as f64 / ticks as f64;
                    line x1=(LEFT) x2=(WIDTH - RIGHT) y1=(y(value)) y2=(y(value)) stroke="#e5e7eb" stroke-width="1" {}
                    text x=(LEFT - 6.0) y=(y(value) + 4.0) text-anchor="end" font-size="11" fill="#6b7280" {
                        (format(value))
                    }
                }
                @for (i, label) in labels.iter().enumerate() {
                    @let x0 = LEFT + slot * i as f64 + slot * 0.1;
                    @for (k, s) in series.iter().enumerate() {
                        @if let Some(Some(v)) = s.values.get(i) {
                            @let height = (TOP + plot_h - y(*v)).max(MIN_BAR);
                            rect x=(x0 + bar_w * k as f64) y=(TOP + plot_h - height) width=(bar_w.max(1.0))
                                height=(height) rx="2" fill=(COLOURS[k % COLOURS.len()])
                                data-series=(s.name) data-value=(v) {
                                title { (s.name) " " (label) ": " (format(*v)) }
                            }
                        }
                    }
                    @if i % label_every == 0 {
                        text x=(LEFT + slot * (i as f64 + 0.5)) y=(HEIGHT - BOTTOM + 16.0) text-anchor="middle"
                            font-size="11" fill="#6b7280" { (label) }
                    }
                }
                line x1=(LEFT) x2=(WIDTH - RIGHT) y1=(TOP + plot_h) y2=(TOP + plot_h) stroke="#9ca3af" {}
                @if !has_data {
                    text x=(LEFT + plot_w / 2.0) y=(TOP + plot_h / 2.0) text-anchor="middle" font-size="14"
                        fill="#9ca3af" { "no data in this range" }
                }
            }
            figcaption {
                @for (k, s) in series.iter().enumerate() {
                    span.legend {
                        svg width="12" height="12" viewBox="0 0 12 12" { rect width="12" height="12" rx="2" fill=(COLOURS[k % COLOURS.len()]) {} }
                        " " (s.name)
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn significant_digits() {
        let table = [
            (0.0, "0"),
            (0.25, "0.25"),
            (0.5, "0.5"),
            (1.0, "1"),
            (12.6, "13"),
            (12.4, "12"),
            (0.0012, "0.0012"),
            (250.0, "250"),
        ];
        for (value, expected) in table {
            assert_eq!(significant(value), expected, "{value}");
        }
    }

    #[test]
    fn ticks_fall_on_round_steps() {
        for (top, ticks) in [(1.0, 5), (2.0, 4), (5.0, 5), (10.0, 5), (0.2, 4), (50.0, 5)] {
            assert_eq!(tick_count(top), ticks, "{top}");
        }
    }

    #[test]
    fn nice_ceilings() {
        let table =
            [(0.0, 1.0), (-3.0, 1.0), (0.3, 0.5), (1.0, 1.0), (1.2, 2.0), (3.0, 5.0), (7.0, 10.0), (42.0, 50.0)];
        for (value, expected) in table {
            assert!((nice_ceiling(value) - expected).abs() < 1e-9, "{value} -> {}", nice_ceiling(value));
        }
    }

    #[test]
    fn bars_draw_one_rect_per_value_and_say_when_empty() {
        let labels = vec!["a".to_owned(), "b".to_owned()];
        let series = [
            Series { name: "p50", values: vec![Some(1.0), None] },
            Series { name: "p95", values: vec![Some(2.0), Some(3.0)] },
        ];
        let svg = bars("c", "t", &labels, &series, &|v| format!("{v}")).into_string();
        assert_eq!(svg.matches("<rect x=").count(), 3, "{svg}");
        assert!(!svg.contains("no data"));
        let empty = [Series { name: "p50", values: vec![None, None] }];
        assert!(bars("c", "t", &labels, &empty, &|v| format!("{v}")).into_string().contains("no data in this range"));
    }
}
