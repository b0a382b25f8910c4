//! The one report renderer: HTML with inline SVG charts, used for the CLI's standalone report
//! (`parallax run --html`), inside the page, and for the page's model summary.
//!
//! The output carries no script at all: hover values are SVG `<title>`s, legend toggles and
//! metric switches are checkboxes and radio buttons styled by `report.css`. Output is written
//! only through `markup::Writer`, which escapes every string it is given, so a hostile name
//! renders as text. Chart models (scales, ticks, bands, heat levels) are plain data in
//! `charts.rs`, and the first chart's (distance from the reference per layer) in `distance.rs`;
//! `svg.rs` draws them; `summary_card.rs` opens the report with the answer. What a run over several files adds (weights table,
//! per-position KLD, tensor ranking, size against KLD) is plain data in `compare.rs`, drawn by
//! `compare_markup.rs`. This module lays out the sections.

mod charts;
pub mod compare;
mod compare_markup;
mod distance;
mod heat;
pub(crate) mod markup;
mod summary;
mod summary_card;
mod svg;
mod tokens;
mod why;

pub use charts::{token_std_as_drawn, RatioChart, RatioPoint};
pub use distance::RESIDUAL_SITE;
pub use summary::{render_summary, SummaryMeta, SummaryTensor, SummaryView};

use markup::{markup, Html, Writer};

use crate::verdict::TestVerdict;
use crate::Report;

/// The stylesheet of the rendered report (also served to the page as `report.css`).
pub const REPORT_CSS: &str = include_str!("../report.css");

/// Sites that get a colour and a legend toggle, in execution order: the layer sites of the one
/// site table, `parallax_metrics::sites`, which the engine and the contracts use too.
pub use parallax_metrics::sites::LAYER_SITES as KNOWN_SITES;

/// A whole HTML document that opens offline: styles inline, no script, a CSP forbidding any.
pub fn render_standalone(report: &Report) -> String {
    standalone(report, &fragment(report), &cell_details(report))
}

/// What the page shows and offers for one report, each drawn once: the fragment
/// ([`render_fragment`]), the cells' panels ([`render_cell_details`]) and the standalone document
/// ([`render_standalone`]), which is made of those two.
pub struct PageRenderings {
    pub fragment: String,
    pub details: String,
    pub standalone: String,
}

/// [`PageRenderings`] of `report`: the three strings the render functions give one by one, with
/// the fragment and the panels drawn once instead of twice.
pub fn render_for_page(report: &Report) -> PageRenderings {
    let (fragment, details) = (fragment(report), cell_details(report));
    let standalone = standalone(report, &fragment, &details);
    PageRenderings { fragment: fragment.into_string(), details: details.into_string(), standalone }
}

/// The standalone document around a report's drawn `fragment` and `details`.
fn standalone(report: &Report, fragment: &Html, details: &Html) -> String {
    let mut w = Writer::new();
    markup!(
        w,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; script-src 'none'; style-src 'unsafe-inline'; img-src data:\">\n\
         <title>Parallax report — {}</title>\n<style>\n",
        report.model.file_name
    );
    w.lit(REPORT_CSS);
    // One main landmark and a level-one heading, as a document of its own should have (the
    // page has its own; the fragment's headings start at two).
    w.lit("</style>\n</head>\n<body class=\"px-standalone\">\n<main class=\"px-report\">\n");
    w.lit("<h1 class=\"px-doc-title\">Parallax report</h1>\n");
    w.html(fragment);
    w.html(details);
    w.lit("\n</main>\n</body>\n</html>\n");
    w.finish().into_string()
}

/// The residual stream's distance from the reference per layer while a run streams, before its
/// report exists: `points` holds, for each finished layer, each compared lane's relative L2 (in
/// the order of `lanes`; `None` where it is not a number). On the distance chart's fixed log
/// decades, so a point sits where the report's chart will draw it; the page replaces it with the
/// report when the run ends.
pub fn render_live_distance(
    reference: &str,
    lanes: &[String],
    n_layers: u32,
    points: &[(u32, Vec<Option<f64>>)],
) -> String {
    let mut w = Writer::new();
    svg::live_distance(&mut w, reference, lanes, n_layers, points);
    w.finish().into_string()
}

/// The report as an HTML fragment (a `<div class="px-report">`), for the page.
pub fn render_fragment(r: &Report) -> String {
    fragment(r).into_string()
}

/// The panels the heatmaps' cells open (a `<div class="px-report px-why-panels-all">`), for a
/// report that holds the sites' detail — the run's own, not a permalink's, which the same view
/// draws without them; empty for one that holds none. The standalone report ends with them,
/// and the page puts them after the fragment.
pub fn render_cell_details(r: &Report) -> String {
    cell_details(r).into_string()
}

fn cell_details(r: &Report) -> Html {
    let mut w = Writer::new();
    if why::has_details(r) {
        w.lit("<div class=\"px-report px-why-details\">");
        for other in r.paths.iter().filter(|p| **p != r.reference) {
            why::panels(&mut w, r, other);
        }
        w.lit("</div>\n");
    }
    w.finish()
}

/// The report's answer alone (a `<div class="px-report">`): what was run, the summary card
/// (verdict, first divergence, sparklines) and the distance chart of each path — the fragment's
/// leading sections, byte for byte, so the page shows them while the rest is drawn and the
/// fragment then puts the same markup at the same place (a few KB against the fragment's MBs).
pub fn render_answer(r: &Report) -> String {
    let mut w = Writer::new();
    w.lit("<div class=\"px-report\">\n");
    answer(&mut w, r);
    w.lit("</div>\n");
    w.finish().into_string()
}

/// The fragment's leading sections: the header, the files, the summary card and the distance
/// charts.
fn answer(w: &mut Writer, r: &Report) {
    header(w, r);
    compare_markup::files(w, r);
    summary_card::summary_card(w, r);
    // The chart that shows where and how far a path leaves the reference comes before the
    // verdict tables' long lists of passes: the answer at a glance, the detail after.
    for other in r.paths.iter().filter(|p| **p != r.reference) {
        svg::distance_chart(w, r, other);
    }
}

fn fragment(r: &Report) -> Html {
    let mut w = Writer::new();
    w.lit("<div class=\"px-report\">\n");
    answer(&mut w, r);
    verdict_tables(&mut w, r);
    logits(&mut w, r);
    compare_markup::kld_strips(&mut w, r);
    compare_markup::tensor_rankings(&mut w, r);
    compare_markup::weights(&mut w, r);
    compare_markup::size_chart(&mut w, r);
    for other in r.paths.iter().filter(|p| **p != r.reference) {
        svg::ratio_chart(&mut w, r, other);
        svg::heatmaps(&mut w, r, other);
    }
    svg::per_token(&mut w, r);
    execution(&mut w, r);
    w.lit("</div>\n");
    w.finish()
}

/// What was run, on what, over which sample.
fn header(w: &mut Writer, r: &Report) {
    let n_tokens = r.prompt.tokens.len();
    markup!(
        w,
        "<header class=\"px-head\"><h2>{}</h2><p>{} · {} · {} layers · {} · sha256 {}</p><p>prompt ",
        r.model.name.as_deref().unwrap_or(&r.model.file_name),
        r.model.file_name,
        r.model.format,
        r.model.n_layers,
        r.model.arch,
        r.model.sha256.as_deref().unwrap_or("not computed"),
    );
    match &r.prompt.text {
        Some(t) => markup!(w, "“{}”", t),
        None => w.lit("token ids"),
    }
    markup!(w, ": {} tokens <code>{}</code></p>", n_tokens, format!("{:?}", r.prompt.tokens));
    let width =
        r.layers.first().and_then(|l| l.sites.get("ffn_swigl")).map(|s| s.width).unwrap_or(0);
    let per = match r.scope {
        crate::Scope::All => format!("all {n_tokens} tokens"),
        crate::Scope::Last => "the last token".to_string(),
    };
    markup!(
        w,
        "<p class=\"px-scope\">Every statistic is over <b>{}</b> ({} std); an FFN site holds <b>{}</b> values per path \
         ({} per token). Reference path <b>{}</b>; mode <b>{}</b>.</p>",
        per,
        r.std_kind,
        if r.scope == crate::Scope::All { width * n_tokens as u64 } else { width },
        width,
        r.reference,
        Html::lit(match r.mode {
            crate::Mode::Free => "free (each path keeps its own residual stream)",
            crate::Mode::Replay => "replay (each layer starts from the reference's residual stream)",
        }),
    );
    // Provenance, each part where the report has it (older reports lack some): which Parallax
    // computed the report, when, and the command that computes it again.
    let e = &r.execution;
    if e.parallax_version.is_some() || e.date.is_some() || e.reproduce.is_some() {
        w.lit("<p class=\"px-reproduce\">");
        let mut separator = "";
        if let Some(version) = &e.parallax_version {
            markup!(w, "Parallax {}", version);
            separator = " · ";
        }
        if let Some(date) = &e.date {
            w.lit(separator);
            markup!(w, "computed <time datetime=\"{}\">{}</time>", date, date);
            separator = " · ";
        }
        if let Some(command) = &e.reproduce {
            w.lit(separator);
            markup!(w, "to compute this report again: <code>{}</code>", command);
        }
        w.lit("</p>");
    }
    w.lit("</header>\n");
}

/// Every contract's tests, when the report was judged: per contract, what needs a look first
/// (failed and refused tests, then the explained and the measured ones), and the passes and
/// the not-measurable tests folded away under their count.
fn verdict_tables(w: &mut Writer, r: &Report) {
    use crate::verdict::Outcome;
    let Some(v) = &r.verdicts else { return };
    w.lit("<section class=\"px-verdicts px-verdict-tables\">");
    for c in &v.contracts {
        markup!(
            w,
            "<h4>{}{}</h4>",
            c.name,
            c.version.as_deref().map(|v| format!(" v{v}")).unwrap_or_default()
        );
        let rank = |o: Outcome| match o {
            Outcome::Fail => 0,
            Outcome::Refused => 1,
            Outcome::Explained => 2,
            Outcome::Measured => 3,
            Outcome::Pass => 4,
            Outcome::NotMeasurable => 5,
        };
        let folded = |o: Outcome| matches!(o, Outcome::Pass | Outcome::NotMeasurable);
        // A stable sort: within an outcome the contract's own order.
        let mut tests: Vec<&TestVerdict> = c.tests.iter().collect();
        tests.sort_by_key(|t| rank(t.outcome));
        let (folded_tests, open): (Vec<&TestVerdict>, Vec<&TestVerdict>) =
            tests.into_iter().partition(|t| folded(t.outcome));
        if !open.is_empty() {
            verdict_table(w, &open);
        }
        if !folded_tests.is_empty() {
            let count = |o: Outcome| folded_tests.iter().filter(|t| t.outcome == o).count();
            let parts: Vec<String> =
                [(Outcome::Pass, "passed"), (Outcome::NotMeasurable, "not measurable")]
                    .into_iter()
                    .filter(|(o, _)| count(*o) > 0)
                    .map(|(o, label)| format!("{} {label}", count(o)))
                    .collect();
            markup!(
                w,
                "<details class=\"px-folded-tests\"><summary>{} — show</summary>",
                parts.join(", ")
            );
            verdict_table(w, &folded_tests);
            w.lit("</details>");
        }
    }
    w.lit("</section>\n");
}

/// A probability as a percentage people read: 38.1 %, 0.04 %, < 0.01 %.
fn percent(p: f64) -> String {
    match p * 100.0 {
        v if v >= 1.0 => format!("{v:.1} %"),
        v if v >= 0.01 => format!("{v:.2} %"),
        _ => "< 0.01 %".into(),
    }
}

/// One table of test verdicts, in the order given.
fn verdict_table(w: &mut Writer, tests: &[&TestVerdict]) {
    use crate::verdict::Outcome;
    w.lit("<table><tr><th>outcome</th><th>test</th><th>rule</th><th>worst / first failure (elements per path)</th></tr>");
    for t in tests {
        let class = match t.outcome {
            Outcome::Pass => "pass",
            Outcome::Fail | Outcome::Refused => "fail",
            Outcome::Explained => "explained",
            Outcome::Measured => "measured",
            Outcome::NotMeasurable => "nm",
        };
        let at = t
            .first_failure
            .as_ref()
            .or(t.worst.as_ref())
            .map(|m| m.to_string())
            .unwrap_or_default();
        markup!(
            w,
            "<tr><td class=\"{}\">{}</td><td><code>{}</code></td><td>{}</td><td>{}",
            class,
            t.outcome.to_string(),
            t.id,
            t.rule,
            at
        );
        if let Some(b) = &t.band {
            markup!(w, " · band {}", b);
        }
        for n in &t.notes {
            markup!(w, "<br><span class=\"px-note\">{}</span>", n);
        }
        w.lit("</td></tr>");
    }
    w.lit("</table>");
}

/// A statistic with `digits` decimals, or a dash when there is none.
fn num(v: Option<f64>, digits: usize) -> String {
    v.map(|v| format!("{v:.digits$}")).unwrap_or_else(|| "—".into())
}

/// Logits agreement at the last position, one row per path, with the run's logit noise and the
/// tie margin the top-1 and top-10 tests judge flips against.
fn logits(w: &mut Writer, r: &Report) {
    w.lit("<section class=\"px-logits\"><h3>Logits at the last position</h3><table><tr><th>path</th><th>top-1</th><th>top-10 (hover: id, logit)</th><th>KL vs reference (nats)</th><th>top-10 overlap</th><th>cosine</th><th>logit noise σ</th><th>tie margin 3·√2·σ</th></tr>");
    for p in &r.paths {
        let Some(l) = r.logits.paths.get(p) else { continue };
        // The top-1 as text with its probability (the logit and id are in the top-10 hover).
        let mut top1 = l
            .top
            .first()
            .map(|t| match l.top_p.first() {
                Some(p) => format!("{} {}", tokens::token(r, t.0), percent(*p)),
                None => format!("{} (logit {:.4})", tokens::token(r, t.0), t.1),
            })
            .unwrap_or_default();
        let (kl, mut overlap, cos, noise, margin) = match r.logits.compare.get(p) {
            Some(c) => {
                if let Some(f) = &c.top1_flip {
                    top1.push_str(&format!(
                        "; the reference's {} is {:.4} above it",
                        tokens::token(r, f.reference),
                        f.margin
                    ));
                }
                (
                    num(c.kl, 6),
                    format!("{}/10", c.top10_overlap),
                    num(c.cosine, 7),
                    num(c.logit_noise, 4),
                    num(c.tie_margin, 4),
                )
            }
            None => ("—".into(), "—".into(), "—".into(), "—".into(), "—".into()),
        };
        if let Some(c) = r.logits.compare.get(p).filter(|c| c.top10_ties > 0) {
            overlap.push_str(&format!(" ({} more within the tie margin)", c.top10_ties));
        }
        // Each top token as text and probability; its id and logit on hover.
        let mut top10 = Writer::new();
        for (i, t) in l.top.iter().enumerate() {
            let p = l.top_p.get(i).map(|p| format!(" {}", percent(*p))).unwrap_or_default();
            markup!(
                top10,
                "<span class=\"px-token\" title=\"id {} · logit {:.4}\">{}{}</span> ",
                t.0,
                f64::from(t.1),
                tokens::token(r, t.0),
                p
            );
        }
        markup!(
            w,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            p,
            top1,
            top10.finish(),
            kl,
            overlap,
            cos,
            noise,
            margin
        );
    }
    w.lit("</table></section>\n");
}

/// How each path ran: kernels, shared ops, notes, the GPU adapter.
fn execution(w: &mut Writer, r: &Report) {
    w.lit("<section class=\"px-exec\"><h3>How each path ran</h3><ul>");
    for (p, kernels) in &r.execution.matmuls {
        markup!(w, "<li><b>{}</b>: {}</li>", p, kernels.join("; "));
    }
    markup!(w, "<li>shared: {}</li>", r.execution.shared_ops.join("; "));
    if let Some(threads) = r.execution.threads {
        markup!(w, "<li>threads: {} (the numbers do not depend on it)</li>", threads);
    }
    for n in &r.execution.notes {
        markup!(w, "<li>{}</li>", n);
    }
    if let Some(g) = &r.execution.gpu {
        markup!(w, "<li><b>gpu</b> adapter: {} ({}, {}", g.adapter, g.backend, g.device_type);
        if !g.driver.is_empty() {
            w.lit(", ");
            w.text(&g.driver);
        }
        let limits: Vec<String> = g.limits.iter().map(|(k, v)| format!("{k} {v}")).collect();
        markup!(
            w,
            "); features: {}; limits: {}</li><li>gpu placement: {}</li>",
            if g.features.is_empty() { "none".to_string() } else { g.features.join(", ") },
            limits.join(", "),
            g.placement
        );
    }
    if let Some(why) = &r.execution.gpu_unavailable {
        markup!(w, "<li class=\"px-warn\"><b>gpu unavailable</b>: {}</li>", why);
    }
    w.lit("</ul></section>\n");
}
