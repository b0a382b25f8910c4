//! The stylesheet's per-site rules, generated from the one site table
//! (`parallax_metrics::sites`): each layer site's colour (light and dark scheme), its chart
//! series and legend swatch, the legend toggle that hides its series and the "only this site"
//! choice that shows it alone, and the per-token picker that shows its heatmap.
//!
//! `report.css` is one committed file because the page loads it as a file (its CSP allows no
//! inline style) and the standalone report inlines it. The generated rules sit in it in two
//! blocks between hand-written anchor rules; a test compares them with [`site_css`] and, run
//! with `UPDATE_EXPECT=1`, writes them: adding a site is a table row, then that one command.

use std::fmt::Write;

use parallax_metrics::sites::{layer_sites, SiteDef};

/// The generated blocks of `report.css`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteCss {
    /// Colours, chart series, legend toggles, and the neutral class of unknown sites.
    pub charts: String,
    /// The per-token picker: which site's heatmap a radio button shows.
    pub tokens: String,
}

/// The per-site rules for every layer site of the table, in execution order.
pub fn site_css() -> SiteCss {
    let sites: Vec<&SiteDef> = layer_sites(true).collect();
    let mut charts = String::new();
    for s in &sites {
        if let Some(c) = s.colour {
            let _ = writeln!(charts, ".px-report {{ --px-{}: {}; }}", s.name, c.light);
        }
    }
    charts.push_str("@media (prefers-color-scheme: dark) {\n");
    for s in &sites {
        if let Some(c) = s.colour {
            let _ = writeln!(charts, "  .px-report {{ --px-{}: {}; }}", s.name, c.dark);
        }
    }
    charts.push_str("}\n");
    for s in &sites {
        let n = s.name;
        let _ = writeln!(
            charts,
            ".s-{n} polyline, .s-{n} .px-pt {{ stroke: var(--px-{n}); }} .s-{n} .px-pt {{ fill: var(--px-{n}); }} .s-{n} .px-swatch {{ background: var(--px-{n}); }}"
        );
        let _ = writeln!(
            charts,
            ".px-chart:has(.px-show-sel option[value=\"ticked\"]:checked):has(input[data-site=\"{n}\"]:not(:checked)) .px-series.s-{n} {{ display: none; }}"
        );
        let _ = writeln!(
            charts,
            ".px-chart:has(.px-show-sel option[value=\"only-{n}\"]:checked) .px-series:not(.s-{n}) {{ display: none; }}"
        );
    }
    charts.push_str(".s-other polyline { stroke: #888; } .s-other .px-pt { fill: #888; }\n");
    let mut tokens = String::new();
    for s in &sites {
        let n = s.name;
        let _ = writeln!(
            tokens,
            ".px-tokens:has(.px-ptk-{n}:checked) .px-tok-{n} {{ display: block; }}"
        );
    }
    SiteCss { charts, tokens }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::html::REPORT_CSS;
    use parallax_metrics::sites::{Scope, SITES};

    /// The hand-written rule the chart block follows, the one it precedes, and the one the token
    /// block precedes (the token block follows `CHARTS_BEFORE`'s line).
    const CHARTS_AFTER: &str =
        ".px-heat:has(.px-metric-ratio:checked) .px-hm-ratio { display: block; }\n";
    const CHARTS_BEFORE: &str = ".px-svg.px-fixed ";
    const TOKENS_BEFORE: &str = ".px-exec .px-warn ";

    /// `css` with its two generated blocks replaced by `generated`; `Err` when an anchor rule is
    /// missing.
    fn splice(css: &str, generated: &SiteCss) -> Result<String, String> {
        let find = |from: usize, anchor: &str| {
            css[from..]
                .find(anchor)
                .map(|i| from + i)
                .ok_or_else(|| format!("report.css lacks the anchor rule `{}`", anchor.trim()))
        };
        let charts_start = find(0, CHARTS_AFTER)? + CHARTS_AFTER.len();
        let charts_end = find(charts_start, CHARTS_BEFORE)?;
        let tokens_start = charts_end
            + css[charts_end..].find('\n').ok_or("report.css ends on the anchor rule")?
            + 1;
        let tokens_end = find(tokens_start, TOKENS_BEFORE)?;
        Ok(format!(
            "{}{}{}{}{}",
            &css[..charts_start],
            generated.charts,
            &css[charts_end..tokens_start],
            generated.tokens,
            &css[tokens_end..]
        ))
    }

    /// The committed stylesheet holds exactly the rules the table generates
    /// (`UPDATE_EXPECT=1 cargo test -p parallax-report` writes them).
    #[test]
    fn report_css_is_generated_from_the_site_table() {
        let want = splice(REPORT_CSS, &site_css()).unwrap();
        if want == REPORT_CSS {
            return;
        }
        if std::env::var_os("UPDATE_EXPECT").is_some() {
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/report.css");
            std::fs::write(path, want).unwrap();
            return;
        }
        let first =
            REPORT_CSS.lines().zip(want.lines()).position(|(a, b)| a != b).unwrap_or_default();
        panic!(
            "report.css differs from the site table at line {}: run `UPDATE_EXPECT=1 cargo test -p parallax-report`",
            first + 1
        );
    }

    #[test]
    fn every_layer_site_has_colours_series_toggle_and_picker() {
        let css = site_css();
        for s in SITES.iter().filter(|s| s.scope == Scope::Layer) {
            let n = s.name;
            let c = s.colour.unwrap();
            for rule in [
                format!(".px-report {{ --px-{n}: {}; }}", c.light),
                format!("  .px-report {{ --px-{n}: {}; }}", c.dark),
                format!(".s-{n} .px-swatch {{ background: var(--px-{n}); }}"),
                format!("input[data-site=\"{n}\"]:not(:checked)) .px-series.s-{n} "),
            ] {
                assert!(css.charts.contains(&rule), "{rule}");
            }
            assert!(css.tokens.contains(&format!(".px-ptk-{n}:checked) .px-tok-{n} ")), "{n}");
        }
        assert!(!css.charts.contains("--px-embed") && !css.tokens.contains("logits"));
    }

    #[test]
    fn splice_replaces_only_the_generated_blocks() {
        let css = "a {}\n.px-heat:has(.px-metric-ratio:checked) .px-hm-ratio { display: block; }\nOLD\n.px-svg.px-fixed { x: 1; }\nOLD2\n.px-exec .px-warn { y: 2; }\n";
        let g = SiteCss { charts: "C\n".into(), tokens: "T\n".into() };
        assert_eq!(
            splice(css, &g).unwrap(),
            "a {}\n.px-heat:has(.px-metric-ratio:checked) .px-hm-ratio { display: block; }\nC\n.px-svg.px-fixed { x: 1; }\nT\n.px-exec .px-warn { y: 2; }\n"
        );
        assert!(splice("a {}\n", &g).is_err());
    }
}
