//! The summary card that opens a report: the answer before the detail. The verdict with its
//! tally, the first divergence (layer, site, value, band and whether the op itself is at
//! fault), whether the paths agree on the next token, and per path a sparkline of its distance
//! from the reference layer by layer — the distance chart (`distance.rs`) drawn small.
//!
//! It is report HTML, not page furniture, so a saved standalone report and a permalink open on
//! the same answer as the page does.

use super::distance::DistanceChart;
use super::markup::{markup, Html, Writer};
use super::{svg, tokens};
use crate::verdict::Cause;
use crate::Report;

/// The card, unless the report has nothing to put in it (no verdicts, no logits compared, no
/// relative L2).
pub(super) fn summary_card(w: &mut Writer, r: &Report) {
    let others: Vec<&String> = r.paths.iter().filter(|p| **p != r.reference).collect();
    let charts: Vec<(&String, DistanceChart)> =
        others.iter().filter_map(|p| DistanceChart::new(r, p).map(|c| (*p, c))).collect();
    let compared = others.iter().any(|p| r.logits.compare.contains_key(*p));
    if r.verdicts.is_none() && charts.is_empty() && !compared {
        return;
    }
    // `px-verdicts` where there is a verdict: the class that has always held the verdict line.
    w.lit(if r.verdicts.is_some() {
        "<section class=\"px-summary-card px-verdicts\">"
    } else {
        "<section class=\"px-summary-card\">"
    });
    verdict(w, r);
    next_token(w, r, &others);
    for (other, chart) in &charts {
        w.lit("<div class=\"px-spark-row\">");
        svg::sparkline(w, chart, other, &r.reference);
        let (outside, explained, _) = chart.counts();
        let layers_out = chart.worst_per_layer().iter().flatten().filter(|p| p.failing()).count();
        markup!(
            w,
            "<p class=\"px-note\"><b>{}</b> against <b>{}</b>, layer 0 to {}: the line is the {}'s relative L2 \
             (log axis, as in the chart below); each cell is its layer's worst point against its band. {}</p></div>",
            other,
            r.reference,
            chart.n_layers.saturating_sub(1),
            chart.series.first().map(|s| s.kind.describe()).unwrap_or("distance"),
            if outside + explained == 0 {
                "Every point lies inside its band.".to_string()
            } else {
                format!(
                    "{layers_out} of {} layers leave their band ({outside} points outside, {explained} explained).",
                    chart.n_layers
                )
            }
        );
    }
    w.lit("</section>\n");
}

/// The overall verdict, the tally and the first divergence, when the report was judged.
fn verdict(w: &mut Writer, r: &Report) {
    let Some(v) = &r.verdicts else {
        w.lit("<h3>Not judged</h3><p class=\"px-note\">This report carries no verdicts: no contract was applied.</p>");
        return;
    };
    let t = v.tally();
    let overall = Html::lit(if v.passed() {
        "<span class=\"pass\">PASS</span>"
    } else {
        "<span class=\"fail\">FAIL</span>"
    });
    markup!(
        w,
        "<h3>Verdict: {}</h3><p class=\"px-note\">{}{} passed, {} failed, {}{} refused (unequal or unknown samples), {} not measurable.</p>",
        overall,
        if t.explained > 0 { format!("{} explained by the arithmetic (not failures), ", t.explained) } else { String::new() },
        t.pass,
        t.fail,
        // Only where there is one, so reports judged before the outcome existed read as they did.
        if t.measured > 0 { format!("{} measured (no band known for them), ", t.measured) } else { String::new() },
        t.refused,
        t.not_measurable
    );
    let Some(d) = &v.first_divergence else {
        w.lit("<p class=\"px-first-divergence px-calm\"><b>No divergence:</b> no judged value leaves its band.</p>");
        return;
    };
    let cause = match d.cause {
        Cause::Root => "Root: the op alone, fed the reference's input, already leaves the band",
        Cause::Propagated => {
            "Propagated: the op alone stays inside the band; the accumulated error leaves it"
        }
        Cause::Unknown => "Run in replay mode to tell whether the op itself is at fault",
    };
    markup!(
        w,
        "<div class=\"px-callout px-first-divergence\"><b>First divergence: {}</b> — {} {} ({}, band {}). {}.<br><span class=\"px-note\">{}</span></div>",
        d.at.place(),
        d.test,
        d.at.value.map(|x| format!("{x:.6}")).unwrap_or_else(|| "no value".into()),
        d.contract,
        d.band,
        cause,
        d.explanation
    );
}

/// Per compared path: whether it predicts the reference's next token at the last position,
/// and over every position when the run computed them.
fn next_token(w: &mut Writer, r: &Report, others: &[&String]) {
    let top1 = |p: &str| r.logits.paths.get(p).and_then(|l| l.top.first()).map(|t| t.0);
    for other in others {
        let Some(c) = r.logits.compare.get(*other) else { continue };
        let agree = Html::lit(if c.top1_agree {
            "<span class=\"pass\">same</span>"
        } else {
            "<span class=\"fail\">different</span>"
        });
        markup!(w, "<p class=\"px-next-token\">Next token: {} — ", agree);
        match (c.top1_agree, top1(other), top1(&r.reference), &c.top1_flip) {
            (true, Some(id), _, _) => {
                markup!(
                    w,
                    "<b>{}</b> and <b>{}</b> both predict <span title=\"id {}\">{}</span>",
                    other,
                    r.reference,
                    id,
                    tokens::token(r, id)
                )
            }
            (false, _, _, Some(f)) => {
                markup!(
                    w,
                    "<b>{}</b> predicts <span title=\"id {}\">{}</span>, <b>{}</b> <span title=\"id {}\">{}</span>, which it held {} logits higher",
                    other,
                    f.path,
                    tokens::token(r, f.path),
                    r.reference,
                    f.reference,
                    tokens::token(r, f.reference),
                    format!("{:.4}", f.margin)
                );
                if let Some(tie) = c.tie_margin.filter(|t| f.margin <= *t) {
                    markup!(
                        w,
                        " (within this run's tie margin {}: a tie, not a wrong op)",
                        format!("{tie:.4}")
                    );
                }
            }
            (_, path, reference, _) => {
                let id = |t: Option<u32>| t.map_or("none".to_string(), |t| tokens::token(r, t));
                markup!(
                    w,
                    "<b>{}</b> predicts {}, <b>{}</b> {}",
                    other,
                    id(path),
                    r.reference,
                    id(reference)
                );
            }
        }
        markup!(
            w,
            " at the last position; top-10 overlap {}/10, KL {} nats.",
            c.top10_overlap,
            c.kl.map_or("—".to_string(), |kl| format!("{kl:.3e}"))
        );
        if let Some(p) = &c.positions {
            markup!(
                w,
                " Over all {} positions the top token agrees at {} ({}).",
                p.n,
                p.same_top1_count,
                format!("{:.1} %", 100.0 * p.same_top1)
            );
        }
        w.lit("</p>");
    }
}
