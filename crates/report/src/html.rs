//! The one report renderer: HTML with inline SVG charts, used for the CLI's standalone report
//! (`parallax run --html`) and inside the page.
//!
//! The output carries no script at all: hover values are SVG `<title>`s, legend toggles and
//! metric switches are checkboxes and radio buttons styled by `report.css`. Every string that
//! came from a model file or a report is escaped, so a hostile name renders as text.

use std::fmt::Write;

use crate::{Report, SiteRecord};

/// The stylesheet of the rendered report (also served to the page as `report.css`).
pub const REPORT_CSS: &str = include_str!("report.css");

/// Sites that get a colour and a legend toggle, in execution order: the layer sites of the one
/// site table, `parallax_metrics::sites`, which the engine and the contracts use too.
pub use parallax_metrics::sites::LAYER_SITES as KNOWN_SITES;

/// Escape text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole HTML document that opens offline: styles inline, no script, a CSP forbidding any.
pub fn render_standalone(report: &Report) -> String {
    let title = format!("Parallax report — {}", report.model.file_name);
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; script-src 'none'; style-src 'unsafe-inline'; img-src data:\">\n\
         <title>{}</title>\n<style>\n{}</style>\n</head>\n<body class=\"px-standalone\">\n{}\n</body>\n</html>\n",
        esc(&title),
        REPORT_CSS,
        render_fragment(report)
    )
}

/// The report as an HTML fragment (a `<div class="px-report">`), for the page.
pub fn render_fragment(r: &Report) -> String {
    let mut h = String::new();
    let others: Vec<&str> =
        r.paths.iter().map(String::as_str).filter(|p| *p != r.reference).collect();
    let n_tokens = r.prompt.tokens.len();
    h.push_str("<div class=\"px-report\">\n");

    // Header: what was run, on what, over which sample.
    let _ = write!(
        h,
        "<header class=\"px-head\"><h2>{}</h2><p>{} · {} · {} layers · {} · sha256 {}</p>",
        esc(r.model.name.as_deref().unwrap_or(&r.model.file_name)),
        esc(&r.model.file_name),
        esc(&r.model.format),
        r.model.n_layers,
        esc(&r.model.arch),
        esc(r.model.sha256.as_deref().unwrap_or("not computed")),
    );
    let prompt = match &r.prompt.text {
        Some(t) => format!("“{}”", esc(t)),
        None => "token ids".to_string(),
    };
    let _ = write!(
        h,
        "<p>prompt {prompt}: {n_tokens} tokens <code>{}</code></p>",
        esc(&format!("{:?}", r.prompt.tokens))
    );
    let width =
        r.layers.first().and_then(|l| l.sites.get("ffn_swigl")).map(|s| s.width).unwrap_or(0);
    let per = match r.scope {
        crate::Scope::All => format!("all {n_tokens} tokens"),
        crate::Scope::Last => "the last token".to_string(),
    };
    let _ = write!(
        h,
        "<p class=\"px-scope\">Every statistic is over <b>{per}</b> ({} std); an FFN site holds <b>{}</b> values per path \
         ({} per token). Reference path <b>{}</b>; mode <b>{}</b>.</p></header>",
        esc(&r.std_kind),
        if r.scope == crate::Scope::All { width * n_tokens as u64 } else { width },
        width,
        esc(&r.reference),
        match r.mode {
            crate::Mode::Free => "free (each path keeps its own residual stream)",
            crate::Mode::Replay => "replay (matmuls also fed the reference's input)",
        },
    );
    h.push('\n');

    verdicts(&mut h, r);

    // Logits agreement.
    h.push_str("<section class=\"px-logits\"><h3>Logits at the last position</h3><table><tr><th>path</th><th>top-1</th><th>top-10 ids</th><th>KL vs reference (nats)</th><th>top-10 overlap</th><th>cosine</th></tr>");
    for p in &r.paths {
        let Some(l) = r.logits.paths.get(p) else { continue };
        let top1 = l.top.first().map(|t| format!("{} ({:.4})", t.0, t.1)).unwrap_or_default();
        let ids: Vec<String> = l.top.iter().map(|t| t.0.to_string()).collect();
        let (kl, overlap, cos) = match r.logits.compare.get(p) {
            Some(c) => (num(c.kl, 6), format!("{}/10", c.top10_overlap), num(c.cosine, 7)),
            None => ("—".into(), "—".into(), "—".into()),
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td>{kl}</td><td>{overlap}</td><td>{cos}</td></tr>",
            esc(p),
            esc(&top1),
            esc(&ids.join(" "))
        );
    }
    h.push_str("</table></section>\n");

    for other in &others {
        ratio_chart(&mut h, r, other);
        heatmaps(&mut h, r, other);
    }
    per_token(&mut h, r);
    execution(&mut h, r);
    h.push_str("</div>\n");
    h
}

/// The verdict table and the first-divergence callout, when the report was judged.
fn verdicts(h: &mut String, r: &Report) {
    use crate::verdict::{Cause, Outcome};
    let Some(v) = &r.verdicts else { return };
    let (pass, fail, nm, refused) = v.tally();
    let overall = if v.passed() {
        "<span class=\"pass\">PASS</span>"
    } else {
        "<span class=\"fail\">FAIL</span>"
    };
    let _ = write!(
        h,
        "<section class=\"px-verdicts\"><h3>Verdict: {overall}</h3><p class=\"px-note\">{pass} passed, {fail} failed, {refused} refused (unequal or unknown samples), {nm} not measurable.</p>"
    );
    if let Some(d) = &v.first_divergence {
        let cause = match d.cause {
            Cause::Root => "root: the op alone, fed the reference's input, already leaves the band",
            Cause::Propagated => {
                "propagated: the op alone stays inside the band; the accumulated error leaves it"
            }
            Cause::Unknown => "run in replay mode to tell whether the op itself is at fault",
        };
        let _ = write!(
            h,
            "<div class=\"px-callout\"><b>First divergence: {}</b> — {} {} ({}, band {}). {}.<br><span class=\"px-note\">{}</span></div>",
            esc(&d.at.place()),
            esc(&d.test),
            esc(&d.at.value.map(|x| format!("{x:.6}")).unwrap_or_else(|| "no value".into())),
            esc(&d.contract),
            esc(&d.band),
            esc(cause),
            esc(&d.explanation)
        );
    }
    for c in &v.contracts {
        let _ = write!(
            h,
            "<h4>{}{}</h4><table><tr><th>outcome</th><th>test</th><th>rule</th><th>worst / first failure (elements per path)</th></tr>",
            esc(&c.name),
            esc(&c.version.as_deref().map(|v| format!(" v{v}")).unwrap_or_default())
        );
        for t in &c.tests {
            let class = match t.outcome {
                Outcome::Pass => "pass",
                Outcome::Fail | Outcome::Refused => "fail",
                Outcome::NotMeasurable => "nm",
            };
            let at = t
                .first_failure
                .as_ref()
                .or(t.worst.as_ref())
                .map(|m| m.to_string())
                .unwrap_or_default();
            let mut detail = esc(&at);
            if let Some(b) = &t.band {
                detail.push_str(&format!(" · band {}", esc(b)));
            }
            for n in &t.notes {
                detail.push_str(&format!("<br><span class=\"px-note\">{}</span>", esc(n)));
            }
            let _ = write!(
                h,
                "<tr><td class=\"{class}\">{}</td><td><code>{}</code></td><td>{}</td><td>{detail}</td></tr>",
                t.outcome,
                esc(&t.id),
                esc(&t.rule)
            );
        }
        h.push_str("</table>");
    }
    h.push_str("</section>\n");
}

fn num(v: Option<f64>, digits: usize) -> String {
    v.map(|v| format!("{v:.digits$}")).unwrap_or_else(|| "—".into())
}

fn site_class(site: &str) -> String {
    // Site names are identifiers from our own list; anything else gets a neutral class.
    if KNOWN_SITES.contains(&site) {
        format!("s-{site}")
    } else {
        "s-other".into()
    }
}

/// One shaded band of the σ-ratio chart: a contract's `std(path) / std(reference)` bounds and
/// the sites and layers they apply to (several tests with the same bounds share one band).
struct ChartBand {
    lo: Option<f64>,
    hi: Option<f64>,
    tests: Vec<String>,
    /// Sites, layers, and how to say them.
    places: Vec<(Vec<String>, Option<(u32, u32)>, String)>,
}

impl ChartBand {
    fn contains(&self, v: f64) -> bool {
        self.lo.is_none_or(|lo| v >= lo) && self.hi.is_none_or(|hi| v <= hi)
    }

    fn applies(&self, site: &str, layer: u32) -> bool {
        self.places.iter().any(|(sites, layers, _)| {
            sites.iter().any(|s| s == site) && layers.is_none_or(|(a, b)| (a..b).contains(&layer))
        })
    }

    fn range(&self) -> String {
        let f = |v: Option<f64>, open: &str| {
            v.map(|v| format!("{}", (v * 1e6).round() / 1e6)).unwrap_or_else(|| open.into())
        };
        format!("[{}, {}]", f(self.lo, "0"), f(self.hi, "∞"))
    }

    fn describe(&self) -> String {
        let places: Vec<&str> = self.places.iter().map(|(_, _, label)| label.as_str()).collect();
        format!("{} band {} at {}", self.tests.join(", "), self.range(), places.join("; "))
    }
}

/// The std-ratio bands of the contracts this report was judged by, oriented as
/// `path / reference` and merged by bounds.
fn ratio_bands(r: &Report, path: &str) -> Vec<ChartBand> {
    let mut out: Vec<ChartBand> = Vec::new();
    let Some(verdicts) = &r.verdicts else { return out };
    for c in &verdicts.contracts {
        for t in &c.tests {
            let Some(rb) = &t.ratio_band else { continue };
            if t.outcome == crate::verdict::Outcome::NotMeasurable {
                continue; // e.g. a layer this model does not have
            }
            let Some((lo, hi)) = rb.oriented(path, &r.reference) else { continue };
            if lo.is_none() && hi.is_none() {
                continue;
            }
            // Layers clipped to the model's; a range covering them all is no qualifier.
            let n = r.layers.len() as u32;
            let layers =
                rb.layers.map(|(a, b)| (a.min(n), b.min(n))).filter(|&(a, b)| !(a == 0 && b >= n));
            let every_site = r.site_order.iter().all(|s| rb.sites.contains(s));
            let label = match (every_site, layers) {
                (true, None) => "every site".to_string(),
                (true, Some((a, b))) => format!("every site, layers {a}–{}", b.saturating_sub(1)),
                (false, None) => rb.sites.join(", "),
                (false, Some((a, b))) if b == a + 1 => {
                    format!("{} (layer {a})", rb.sites.join(", "))
                }
                (false, Some((a, b))) => {
                    format!("{} (layers {a}–{})", rb.sites.join(", "), b.saturating_sub(1))
                }
            };
            let place = (rb.sites.clone(), layers, label);
            match out.iter_mut().find(|b| b.lo == lo && b.hi == hi) {
                Some(b) => {
                    if !b.tests.contains(&t.id) {
                        b.tests.push(t.id.clone());
                    }
                    if !b.places.contains(&place) {
                        b.places.push(place);
                    }
                }
                None => {
                    out.push(ChartBand { lo, hi, tests: vec![t.id.clone()], places: vec![place] })
                }
            }
        }
    }
    out
}

/// The chart note's sentence about bands.
fn band_note(bands: &[ChartBand], visible: bool) -> String {
    if bands.is_empty() {
        return "No contract this report was judged by bounds this ratio, so no band is drawn."
            .into();
    }
    let list: Vec<String> = bands.iter().map(|b| b.describe()).collect();
    format!(
        "Shaded: {}{}.",
        esc(&list.join("; ")),
        if visible { "" } else { " (outside this view: every point lies well inside)" }
    )
}

/// Per-layer std ratio (path / reference) per site, log axis, with the contract band shaded.
fn ratio_chart(h: &mut String, r: &Report, other: &str) {
    let (w, ht, left, right, top, bottom) = (880.0, 320.0, 60.0, 20.0, 16.0, 36.0);
    let n_layers = r.layers.len().max(1);
    let mut lo = f64::INFINITY;
    let mut hi = f64::NEG_INFINITY;
    for l in &r.layers {
        for s in l.sites.values() {
            if let Some(v) = s.compare.get(other).and_then(|c| c.std_ratio).filter(|v| *v > 0.0) {
                lo = lo.min(v.log10());
                hi = hi.max(v.log10());
            }
        }
    }
    if !lo.is_finite() {
        return;
    }
    // The contracts' std-ratio bands for this pair of paths, drawn when they lie in (or near)
    // the view; a bound the band leaves open is drawn to the chart's edge.
    let bands = ratio_bands(r, other);
    let pad = ((hi - lo) * 0.1).max(0.002);
    let (mut y0, mut y1) = (lo - pad, hi + pad);
    let span = y1 - y0;
    let log_bounds = |b: &ChartBand| (b.lo.map(f64::log10), b.hi.map(f64::log10));
    let band_visible = !bands.is_empty()
        && bands.iter().all(|b| {
            let (l, h) = log_bounds(b);
            l.is_none_or(|l| l > y0 - 3.0 * span) && h.is_none_or(|h| h < y1 + 3.0 * span)
        });
    if band_visible {
        for b in &bands {
            let (l, h) = log_bounds(b);
            if let Some(l) = l {
                y0 = y0.min(l - 0.05);
            }
            if let Some(h) = h {
                y1 = y1.max(h + 0.05);
            }
        }
    }
    let x = |i: usize| left + (w - left - right) * (i as f64 + 0.5) / n_layers as f64;
    let y = |v: f64| top + (ht - top - bottom) * (1.0 - (v - y0) / (y1 - y0));

    let _ = write!(
        h,
        "<section class=\"px-chart\"><h3>σ ratio {} / {} per layer</h3>\
         <p class=\"px-note\">std of each site on <b>{}</b> divided by its std on <b>{}</b>, same tokens, same element count. \
         Log axis. {} Hover a point or band for its value; untick a site to hide it.</p>",
        esc(other),
        esc(&r.reference),
        esc(other),
        esc(&r.reference),
        band_note(&bands, band_visible),
    );
    legend(h, &format!("rt-{}", esc(other)), r);
    let _ = write!(h, "<svg class=\"px-svg px-ratio\" viewBox=\"0 0 {w} {ht}\" role=\"img\" aria-label=\"std ratio per layer\">");
    if band_visible {
        for b in &bands {
            let (l, hb) = log_bounds(b);
            let (top_y, bottom_y) = (y(hb.unwrap_or(y1)), y(l.unwrap_or(y0)));
            let _ = write!(
                h,
                "<rect class=\"px-band\" x=\"{left}\" y=\"{top_y:.1}\" width=\"{:.1}\" height=\"{:.1}\"><title>{}</title></rect>",
                w - left - right,
                bottom_y - top_y,
                esc(&b.describe())
            );
        }
    }
    // Grid and labels: ratio ticks at "nice" values.
    for t in ticks(y0, y1) {
        let _ = write!(
            h,
            "<line class=\"px-grid\" x1=\"{left}\" x2=\"{}\" y1=\"{:.1}\" y2=\"{:.1}\"/><text class=\"px-tick\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            w - right,
            y(t),
            y(t),
            left - 6.0,
            y(t) + 4.0,
            fmt_ratio(10f64.powf(t))
        );
    }
    for i in (0..n_layers).step_by((n_layers / 14).max(1)) {
        let _ = write!(
            h,
            "<text class=\"px-tick\" x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{i}</text>",
            x(i),
            ht - bottom + 16.0
        );
    }
    let _ = write!(
        h,
        "<text class=\"px-axis\" x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">layer</text>",
        (left + w - right) / 2.0,
        ht - 4.0
    );
    for site in &r.site_order {
        let pts: Vec<(usize, f64)> = r
            .layers
            .iter()
            .enumerate()
            .filter_map(|(i, l)| {
                l.sites
                    .get(site)
                    .and_then(|s| s.compare.get(other))
                    .and_then(|c| c.std_ratio)
                    .map(|v| (i, v))
            })
            .filter(|(_, v)| *v > 0.0)
            .collect();
        if pts.is_empty() {
            continue;
        }
        let cls = site_class(site);
        let path: Vec<String> =
            pts.iter().map(|(i, v)| format!("{:.1},{:.1}", x(*i), y(v.log10()))).collect();
        let _ = write!(h, "<g class=\"px-series {cls}\"><polyline points=\"{}\"/>", path.join(" "));
        for (i, v) in pts {
            let violated: Vec<&ChartBand> =
                bands.iter().filter(|b| b.applies(site, i as u32) && !b.contains(v)).collect();
            let out = !violated.is_empty();
            let why = violated
                .iter()
                .map(|b| format!(" — outside {} ({})", b.range(), b.tests.join(", ")))
                .collect::<String>();
            let _ = write!(
                h,
                "<circle class=\"{}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"{}\"><title>layer {i} · {} · ratio {:.6}{}</title></circle>",
                if out { "px-out" } else { "px-pt" },
                x(i),
                y(v.log10()),
                if out { 5 } else { 3 },
                esc(site),
                v,
                esc(&why)
            );
        }
        h.push_str("</g>");
    }
    h.push_str("</svg></section>\n");
}

fn legend(h: &mut String, prefix: &str, r: &Report) {
    h.push_str("<div class=\"px-legend\">");
    for site in &r.site_order {
        let cls = site_class(site);
        let _ = write!(
            h,
            "<label class=\"{cls}\"><input type=\"checkbox\" class=\"px-toggle\" data-site=\"{}\" id=\"{prefix}-{}\" checked><span class=\"px-swatch\"></span>{}</label>",
            esc(site),
            esc(site),
            esc(site)
        );
    }
    h.push_str("</div>");
}

fn fmt_ratio(v: f64) -> String {
    if (0.1..10.0).contains(&v) {
        format!("{v:.4}").trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        format!("{v:.3e}")
    }
}

fn ticks(y0: f64, y1: f64) -> Vec<f64> {
    let span = y1 - y0;
    let step = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0]
        .into_iter()
        .find(|s| span / s <= 8.0)
        .unwrap_or(1.0);
    let mut t = (y0 / step).ceil() * step;
    let mut out = Vec::new();
    while t <= y1 && out.len() < 12 {
        out.push(t);
        t += step;
    }
    out
}

/// Site × layer heatmaps for each metric; radio buttons pick which one shows.
fn heatmaps(h: &mut String, r: &Report, other: &str) {
    type Metric =
        (&'static str, &'static str, fn(&SiteRecord, &str) -> Option<f64>, fn(f64) -> String);
    let metrics: [Metric; 4] = [
        (
            "cosine",
            "nines of cosine, −log10(1 − cos): more is closer",
            |s, p| s.compare.get(p)?.cosine.map(|c| -(1.0 - c).max(1e-12).log10()),
            |v| format!("{:.8}", 1.0 - 10f64.powf(-v)),
        ),
        (
            "sqnr",
            "SQNR in dB: more is closer",
            |s, p| s.compare.get(p)?.sqnr_db,
            |v| format!("{v:.2} dB"),
        ),
        (
            "rel_l2",
            "relative L2 error, −log10: more is closer",
            |s, p| s.compare.get(p)?.rel_l2.map(|e| -e.max(1e-12).log10()),
            |v| format!("{:.3e}", 10f64.powf(-v)),
        ),
        (
            "ratio",
            "|log10 σ ratio|, inverted: more is closer",
            |s, p| {
                s.compare
                    .get(p)?
                    .std_ratio
                    .filter(|v| *v > 0.0)
                    .map(|v| -v.log10().abs().max(1e-9).log10())
            },
            |v| format!("±{:.3e} in log10 σ", 10f64.powf(-v)),
        ),
    ];
    let group = format!("hm-{}", esc(other));
    let _ = write!(
        h,
        "<section class=\"px-heat\"><h3>Site × layer: {} against {}</h3>\
         <p class=\"px-note\">Darker cells are further apart. Hover a cell for its value and element count.</p><div class=\"px-metrics\">",
        esc(other),
        esc(&r.reference)
    );
    for (i, (name, ..)) in metrics.iter().enumerate() {
        let _ = write!(
            h,
            "<input type=\"radio\" name=\"{group}\" id=\"{group}-{name}\" class=\"px-metric-{name}\"{}><label for=\"{group}-{name}\">{name}</label>",
            if i == 0 { " checked" } else { "" }
        );
    }
    for (name, caption, get, show) in metrics {
        let cell = 18.0;
        let left = 110.0;
        let cols = r.layers.len();
        let rows = r.site_order.len();
        let (w, ht) = (left + cell * cols as f64 + 10.0, 20.0 + cell * rows as f64 + 10.0);
        let values: Vec<Vec<Option<f64>>> = r
            .site_order
            .iter()
            .map(|site| {
                r.layers.iter().map(|l| l.sites.get(site).and_then(|s| get(s, other))).collect()
            })
            .collect();
        let all: Vec<f64> =
            values.iter().flatten().flatten().copied().filter(|v| v.is_finite()).collect();
        let (lo, hi) =
            all.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
        let _ = write!(h, "<figure class=\"px-hm px-hm-{name}\"><figcaption>{caption}</figcaption><svg class=\"px-svg px-fixed\" width=\"{w}\" height=\"{ht}\" viewBox=\"0 0 {w} {ht}\" role=\"img\">");
        for (j, site) in r.site_order.iter().enumerate() {
            let _ = write!(
                h,
                "<text class=\"px-tick\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                left - 6.0,
                20.0 + cell * (j as f64 + 0.7),
                esc(site)
            );
            for (i, v) in values[j].iter().enumerate() {
                let (x, y) = (left + cell * i as f64, 20.0 + cell * j as f64);
                let count = r.layers[i]
                    .sites
                    .get(site)
                    .and_then(|s| s.compare.get(other))
                    .map(|c| c.count)
                    .unwrap_or(0);
                match v {
                    Some(v) => {
                        // 0 = closest in this run, 9 = furthest: a sequential scale.
                        let level =
                            if hi > lo { (9.0 * (hi - v) / (hi - lo)).round() as u32 } else { 0 };
                        let _ = write!(h, "<rect class=\"px-c{level}\" x=\"{x}\" y=\"{y}\" width=\"{cell}\" height=\"{cell}\"><title>layer {i} · {} · {} · {count} values</title></rect>", esc(site), show(*v));
                    }
                    None => {
                        let _ = write!(h, "<rect class=\"px-na\" x=\"{x}\" y=\"{y}\" width=\"{cell}\" height=\"{cell}\"><title>layer {i} · {} · identical or undefined</title></rect>", esc(site));
                    }
                }
            }
        }
        for i in (0..cols).step_by((cols / 12).max(1)) {
            let _ = write!(
                h,
                "<text class=\"px-tick\" x=\"{:.1}\" y=\"14\" text-anchor=\"middle\">{i}</text>",
                left + cell * (i as f64 + 0.5)
            );
        }
        h.push_str("</svg></figure>");
    }
    h.push_str("</div></section>\n");
}

/// Which prompt position dominates a site's std: per-token std of the reference path, token ×
/// layer, for any site (radio buttons pick it; `ffn_swigl` first, where upstream's artefact was).
fn per_token(h: &mut String, r: &Report) {
    let n_tokens = r.prompt.tokens.len();
    let sites: Vec<&str> =
        r.site_order.iter().map(String::as_str).filter(|s| KNOWN_SITES.contains(s)).collect();
    let _ = write!(
        h,
        "<section class=\"px-tokens\"><h3>Per token: std of each prompt position on {}</h3>\
         <p class=\"px-note\">An all-token std is dominated by the largest row: position 0 often carries activations 10–100× the others. \
         This is why a statistic over all tokens must never be compared with one over the last token. Pick a site:</p><div class=\"px-token-sites\">",
        esc(&r.reference)
    );
    for site in &sites {
        let _ = write!(
            h,
            "<input type=\"radio\" name=\"px-ptk\" id=\"ptk-{site}\" class=\"px-ptk-{site}\"{}><label for=\"ptk-{site}\">{site}</label>",
            if *site == "ffn_swigl" { " checked" } else { "" }
        );
    }
    for site in sites {
        let rows: Vec<Vec<Option<f64>>> = (0..n_tokens)
            .map(|t| {
                r.per_token
                    .layers
                    .iter()
                    .map(|l| {
                        l.get(site)
                            .and_then(|s| s.paths.get(&r.reference))
                            .and_then(|v| v.get(t))
                            .and_then(|s| s.std)
                    })
                    .collect()
            })
            .collect();
        let all: Vec<f64> =
            rows.iter().flatten().flatten().copied().filter(|v| *v > 0.0).map(f64::log10).collect();
        if all.is_empty() {
            continue;
        }
        let (lo, hi) =
            all.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
        let cell = 18.0;
        let left = 150.0;
        let cols = r.per_token.layers.len();
        let (w, ht) = (left + cell * cols as f64 + 10.0, 20.0 + cell * n_tokens as f64 + 10.0);
        let _ = write!(
            h,
            "<figure class=\"px-tok px-tok-{site}\"><figcaption>{site}: std per position (rows) and layer (columns); log colour, darker = larger</figcaption>\
             <svg class=\"px-svg px-fixed\" width=\"{w}\" height=\"{ht}\" viewBox=\"0 0 {w} {ht}\" role=\"img\">"
        );
        for i in (0..cols).step_by((cols / 12).max(1)) {
            let _ = write!(
                h,
                "<text class=\"px-tick\" x=\"{:.1}\" y=\"14\" text-anchor=\"middle\">{i}</text>",
                left + cell * (i as f64 + 0.5)
            );
        }
        for (t, row) in rows.iter().enumerate() {
            let piece = r.prompt.pieces.get(t).map(String::as_str).unwrap_or("");
            let id = r.prompt.tokens.get(t).copied().unwrap_or(0);
            let label: String = format!("{t}: {piece}").chars().take(20).collect();
            let _ = write!(
                h,
                "<text class=\"px-tick\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                left - 6.0,
                20.0 + cell * (t as f64 + 0.7),
                esc(&label)
            );
            for (i, v) in row.iter().enumerate() {
                let (x, y) = (left + cell * i as f64, 20.0 + cell * t as f64);
                match v {
                    Some(v) if *v > 0.0 => {
                        let level = if hi > lo {
                            (9.0 * (v.log10() - lo) / (hi - lo)).round() as u32
                        } else {
                            0
                        };
                        let _ = write!(h, "<rect class=\"px-c{level}\" x=\"{x}\" y=\"{y}\" width=\"{cell}\" height=\"{cell}\"><title>layer {i} · position {t} (id {id}, {}) · std {v:.6}</title></rect>", esc(piece));
                    }
                    _ => {
                        let _ = write!(h, "<rect class=\"px-na\" x=\"{x}\" y=\"{y}\" width=\"{cell}\" height=\"{cell}\"/>");
                    }
                }
            }
        }
        h.push_str("</svg></figure>");
    }
    h.push_str("</div></section>\n");
}

fn execution(h: &mut String, r: &Report) {
    h.push_str("<section class=\"px-exec\"><h3>How each path ran</h3><ul>");
    for (p, kernels) in &r.execution.matmuls {
        let _ = write!(h, "<li><b>{}</b>: {}</li>", esc(p), esc(&kernels.join("; ")));
    }
    let _ = write!(h, "<li>shared: {}</li>", esc(&r.execution.shared_ops.join("; ")));
    for n in &r.execution.notes {
        let _ = write!(h, "<li>{}</li>", esc(n));
    }
    if let Some(g) = &r.execution.gpu {
        let limits: Vec<String> = g.limits.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = write!(
            h,
            "<li><b>gpu</b> adapter: {} ({}, {}{}); features: {}; limits: {}</li><li>gpu placement: {}</li>",
            esc(&g.adapter),
            esc(&g.backend),
            esc(&g.device_type),
            if g.driver.is_empty() { String::new() } else { format!(", {}", esc(&g.driver)) },
            esc(&if g.features.is_empty() { "none".to_string() } else { g.features.join(", ") }),
            esc(&limits.join(", ")),
            esc(&g.placement)
        );
    }
    if let Some(why) = &r.execution.gpu_unavailable {
        let _ = write!(h, "<li class=\"px-warn\"><b>gpu unavailable</b>: {}</li>", esc(why));
    }
    h.push_str("</ul></section>\n");
}
