//! The sections of a report over several files (and the per-position KLD of any report that
//! holds it): draws the data of `compare.rs` as tables and inline SVG, hover values as
//! `<title>`s, folded rows in `<details>` — no script.

use super::charts::labelled;
use super::compare::{
    self, kld_level, kld_scale_ticks, KldStrip, SizeChart, StripFrame, TensorRanking, WeightsTable,
    KLD_LEVELS, SIZE_FRAME, WEIGHT_ROWS_SHOWN,
};
use super::markup::{markup, Writer};
use super::num;
use crate::{Report, TensorDiff};
use parallax_source::human_bytes;

/// Every file of the run: name, format, size, hash and the lanes that read it.
pub(super) fn files(w: &mut Writer, r: &Report) {
    if r.files.len() < 2 {
        return;
    }
    w.lit(
        "<section class=\"px-files\"><h3>Files</h3>\
         <p class=\"px-note\">Every path ran on every file; a path on file <i>k</i> from the second on is named <code>path@k</code>.</p>\
         <table><tr><th>#</th><th>file</th><th>format</th><th>size</th><th>tensors by type</th><th>paths</th><th>sha256</th></tr>",
    );
    for (k, f) in r.files.iter().enumerate() {
        let types: Vec<String> = f.types.iter().map(|(ty, n)| format!("{n} × {ty}")).collect();
        markup!(
            w,
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code class=\"px-hash\">{}</code></td></tr>",
            k + 1,
            f.file_name,
            f.format,
            human_bytes(f.bytes),
            types.join(", "),
            f.paths.join(", "),
            f.sha256.as_deref().unwrap_or("not computed")
        );
    }
    w.lit("</table></section>\n");
}

/// Each non-reference lane's KL at every prompt position on a fixed log colour scale, with its
/// summary as llama-perplexity's `--kl-divergence` writes it.
pub(super) fn kld_strips(w: &mut Writer, r: &Report) {
    let strips = compare::kld_strips(r);
    let Some(longest) = strips.iter().map(|s| s.positions.len()).max() else { return };
    markup!(
        w,
        "<section class=\"px-kld\"><h3>Next-token divergence at every prompt position, against {}</h3>\
         <p class=\"px-note\">One cell per position: KL(P<sub>{}</sub> ‖ P<sub>path</sub>) in nats, on a fixed log scale (the same colours in every report). \
         Hover a cell for the position, its token, the KL and both most likely next tokens.</p>",
        r.reference,
        r.reference
    );
    let frame = StripFrame::new(longest, strips.len());
    let (width, height) = frame.size();
    markup!(
        w,
        "<svg class=\"px-svg px-fixed\" width=\"{:.1}\" height=\"{}\" viewBox=\"0 0 {:.1} {}\" role=\"img\" aria-label=\"KL divergence per prompt position\">",
        width,
        height,
        width,
        height
    );
    for t in labelled(longest, StripFrame::POSITION_LABELS) {
        markup!(
            w,
            "<text class=\"px-tick\" x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            frame.position_label_x(t),
            StripFrame::TOP - 5.0,
            t
        );
    }
    for (row, strip) in strips.iter().enumerate() {
        strip_row(w, r, &frame, row, strip);
    }
    scale(w, &frame);
    w.lit("</svg>");
    summary_table(w, r, &strips);
    w.lit("</section>\n");
}

fn strip_row(w: &mut Writer, r: &Report, frame: &StripFrame, row: usize, strip: &KldStrip<'_>) {
    markup!(
        w,
        "<text class=\"px-tick\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
        StripFrame::LEFT - 6.0,
        frame.row_label_y(row),
        strip.lane
    );
    for (t, p) in strip.positions.iter().enumerate() {
        let (x, y) = frame.cell(t, row);
        let piece = super::tokens::prompt_token(r, t);
        let class = match kld_level(p.kl) {
            Some(level) => format!("px-c{level}"),
            None => "px-na".to_string(),
        };
        markup!(
            w,
            "<rect class=\"{}\" x=\"{:.2}\" y=\"{}\" width=\"{:.2}\" height=\"{}\"><title>{} · position {} {} · KL {:.3e} nats · next token {}, reference’s {} at p {:.4}</title></rect>",
            class,
            x,
            y,
            frame.cell_width,
            StripFrame::ROW_HEIGHT,
            strip.lane,
            t,
            piece,
            p.kl,
            super::tokens::token_and_id(r, p.top1),
            super::tokens::token_and_id(r, p.reference_top1),
            p.reference_p
        );
    }
}

/// The colour bar: one box per level, a tick at each decade.
fn scale(w: &mut Writer, frame: &StripFrame) {
    let y = frame.scale_y();
    markup!(
        w,
        "<text class=\"px-tick\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">KL, nats</text>",
        StripFrame::LEFT - 6.0,
        y + 10.0
    );
    for level in 0..KLD_LEVELS {
        let range = match level {
            0 => format!("below {}", compare::kld_level_edge(1)),
            l if l == KLD_LEVELS - 1 => format!("{} and above", compare::kld_level_edge(l)),
            l => format!(
                "{:.2e} to {:.2e}",
                compare::kld_level_edge(l),
                compare::kld_level_edge(l + 1)
            ),
        };
        markup!(
            w,
            "<rect class=\"px-c{}\" x=\"{}\" y=\"{:.1}\" width=\"{}\" height=\"12\"><title>KL {}</title></rect>",
            level,
            frame.scale_x(level),
            y,
            StripFrame::SCALE_BOX,
            range
        );
    }
    for (level, label) in kld_scale_ticks() {
        let x = frame.scale_x(level);
        markup!(
            w,
            "<line class=\"px-grid\" x1=\"{}\" x2=\"{}\" y1=\"{:.1}\" y2=\"{:.1}\"/><text class=\"px-tick\" x=\"{}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            x,
            x,
            y,
            y + 16.0,
            x,
            y + 28.0,
            label
        );
    }
}

/// The lanes' summaries over all positions, one row each.
fn summary_table(w: &mut Writer, r: &Report, strips: &[KldStrip<'_>]) {
    w.lit(
        "<table class=\"px-kld-summary\"><tr><th>path</th><th>positions</th><th>mean KLD ± stderr</th><th>median</th><th>p99</th><th>max</th>\
         <th>same top-1</th><th>RMS Δp</th><th>PPL ratio</th></tr>",
    );
    for s in strips {
        let Some(p) = s.summary else {
            markup!(
                w,
                "<tr><td>{}</td><td>{}</td><td colspan=\"7\">no summary (a logit was not finite)</td></tr>",
                s.lane,
                s.positions.len()
            );
            continue;
        };
        let mean = match p.kld.stderr {
            Some(e) => format!("{:.6} ± {:.6}", p.kld.mean, e),
            None => format!("{:.6}", p.kld.mean),
        };
        markup!(
            w,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.6}</td><td>{:.6}</td><td>{:.6}</td><td>{:.1} % ({}/{})</td><td>{:.3} %</td><td>{}</td></tr>",
            s.lane,
            p.n,
            mean,
            p.kld.median,
            p.kld.p99,
            p.kld.max,
            p.same_top1 * 100.0,
            p.same_top1_count,
            p.n,
            p.dp_rms * 100.0,
            num(p.ppl_ratio, 4)
        );
    }
    markup!(
        w,
        "</table><p class=\"px-note\">KLD as <code>llama-perplexity --kl-divergence</code> reports it, over the prompt's positions; \
         RMS Δp: the change in the probability of {}'s most likely token; PPL ratio: the prompt's perplexity on the path over {}'s.</p>",
        r.reference,
        r.reference
    );
}

/// For each lane on another file: its matmul sites worst first by the error the op adds on its
/// own, with the weight's type in both files.
pub(super) fn tensor_rankings(w: &mut Writer, r: &Report) {
    let rankings = compare::tensor_rankings(r);
    if rankings.is_empty() {
        return;
    }
    w.lit(
        "<section class=\"px-ranking\"><h3>Which tensors this quantization hurts most</h3>\
         <p class=\"px-note\">Each matmul fed the reference's own input, against the reference's output: the error its weight adds on its own, \
         apart from what accumulated upstream.</p>",
    );
    for k in &rankings {
        ranking(w, r, k);
    }
    w.lit("</section>\n");
}

fn ranking(w: &mut Writer, r: &Report, k: &TensorRanking) {
    markup!(
        w,
        "<h4>{} against {}: the worst {} of {} matmul sites</h4>\
         <table><tr><th>#</th><th>layer</th><th>site</th><th>tensor</th><th>type in file {}</th><th>type in file {}</th>\
         <th>op alone: rel L2</th><th>weights: rel L2</th></tr>",
        k.lane,
        r.reference,
        k.sites.len(),
        k.total,
        k.reference_file,
        k.lane_file
    );
    for (i, s) in k.sites.iter().enumerate() {
        markup!(
            w,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{:.4e}</td><td>{}</td></tr>",
            i + 1,
            s.layer,
            s.site,
            s.tensor.as_deref().unwrap_or("—"),
            s.reference_type.as_deref().unwrap_or("—"),
            s.lane_type.as_deref().unwrap_or("—"),
            s.local_rel_l2,
            s.weights_rel_l2.map(|v| format!("{v:.4e}")).unwrap_or_else(|| "—".into())
        );
    }
    w.lit("</table>");
}

/// Every tensor that differs, worst first, with its type in each file; identical ones as one
/// line.
pub(super) fn weights(w: &mut Writer, r: &Report) {
    let Some(table) = WeightsTable::new(r) else { return };
    w.lit(
        "<section class=\"px-weights\"><h3>Weights, file by file</h3>\
         <p class=\"px-note\">Each file's types as llama-quantize's command line would ask for them: \
         the most common type of the quantized tensors, then one override per role and type.</p>",
    );
    for c in &table.files {
        markup!(
            w,
            "<p class=\"px-note\">file {} <code>{}</code> as llama-quantize types: <code class=\"px-recipe\">{}</code></p>",
            c.number,
            c.name,
            if c.recipe.is_empty() { "no quantized tensor".to_string() } else { c.recipe.join(" ") }
        );
    }
    markup!(
        w,
        "<p>{} of {} tensors differ from file 1's after dequantization; worst first by relative L2 error.</p>",
        table.differing.len(),
        r.weights.len()
    );
    let (shown, folded) = table.differing.split_at(table.differing.len().min(WEIGHT_ROWS_SHOWN));
    if !shown.is_empty() {
        weights_rows(w, &table, shown);
    }
    if !folded.is_empty() {
        markup!(w, "<details><summary>{} more differing tensors</summary>", folded.len());
        weights_rows(w, &table, folded);
        w.lit("</details>");
    }
    match table.identical {
        0 => w.lit("</section>\n"),
        1 => w.lit("<p class=\"px-identical\">1 tensor identical in every file</p></section>\n"),
        n => markup!(
            w,
            "<p class=\"px-identical\">{} tensors identical in every file</p></section>\n",
            n
        ),
    }
}

fn weights_rows(w: &mut Writer, table: &WeightsTable<'_>, rows: &[&TensorDiff]) {
    w.lit("<table class=\"px-weights-table\"><tr><th>tensor</th><th>shape (ne0, ne1, …)</th>");
    for c in &table.files {
        markup!(w, "<th>type in {}</th>", c.number);
    }
    for c in table.files.iter().skip(1) {
        markup!(
            w,
            "<th>rel L2 ({})</th><th>SQNR dB ({})</th><th>max |Δ| ({})</th><th>cosine ({})</th>",
            c.number,
            c.number,
            c.number,
            c.number
        );
    }
    w.lit("</tr>");
    for t in rows {
        let shape: Vec<String> = t.ne.iter().map(u64::to_string).collect();
        markup!(w, "<tr><td><code>{}</code></td><td>{}</td>", t.name, shape.join(" × "));
        for k in 0..table.files.len() {
            markup!(w, "<td>{}</td>", t.files.get(k).map_or("—", |f| f.ty.as_str()));
        }
        for c in table.files.iter().skip(1) {
            match WeightsTable::compare(t, c.number) {
                Some(c) if c.identical => w.lit("<td colspan=\"4\">identical</td>"),
                Some(c) => markup!(
                    w,
                    "<td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
                    c.rel_l2.map(|v| format!("{v:.4e}")).unwrap_or_else(|| "undefined".into()),
                    num(c.sqnr_db, 2),
                    c.max_abs.map(|v| format!("{v:.4e}")).unwrap_or_else(|| "—".into()),
                    num(c.cosine, 7)
                ),
                None => w.lit("<td colspan=\"4\">not compared</td>"),
            }
        }
        w.lit("</tr>");
    }
    w.lit("</table>");
}

/// File size against mean KLD, one point per file (three or more files).
pub(super) fn size_chart(w: &mut Writer, r: &Report) {
    let Some(chart) = SizeChart::new(r) else { return };
    let f = &SIZE_FRAME;
    markup!(
        w,
        "<section class=\"px-size\"><h3>File size against mean KLD</h3>\
         <p class=\"px-note\">Each file's mean KLD over the prompt is that of {}'s path run on it. {}</p>\
         <svg class=\"px-svg px-size-chart\" viewBox=\"0 0 {} {}\" role=\"img\" aria-label=\"file size against mean KLD\">",
        r.reference,
        if chart.left_out.is_empty() {
            String::new()
        } else {
            format!("Not drawn (no divergence to put on a log axis): {}.", chart.left_out.join(", "))
        },
        f.width,
        f.height
    );
    for (t, label) in chart.y_ticks() {
        let y = chart.y(t);
        super::svg::y_tick(w, f, y, &label);
    }
    for (bytes, label) in chart.x_ticks() {
        markup!(
            w,
            "<text class=\"px-tick\" x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            chart.x(bytes),
            f.height - f.bottom + 16.0,
            label
        );
    }
    markup!(
        w,
        "<text class=\"px-axis\" x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">file size</text>",
        (f.left + f.width - f.right) / 2.0,
        f.height - 4.0
    );
    for p in &chart.points {
        let (x, y) = (chart.x(p.bytes as f64), chart.y(libm::log10(p.kld_mean)));
        markup!(
            w,
            "<circle class=\"px-size-pt\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"5\"><title>file {} {} · {} · mean KLD {:.6} ({})</title></circle>\
             <text class=\"px-tick\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            x,
            y,
            p.file,
            p.name,
            human_bytes(p.bytes),
            p.kld_mean,
            p.lane,
            x + 8.0,
            y - 6.0,
            p.file
        );
    }
    w.lit("</svg></section>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(f: fn(&mut Writer, &Report), r: &Report) -> String {
        let mut w = Writer::new();
        f(&mut w, r);
        w.finish().into_string()
    }

    /// A one-file report without per-position logits draws none of these sections.
    #[test]
    fn a_one_file_report_draws_nothing_here() {
        let seed = include_str!("../../../../fuzz/corpus/report_json/tiny-report.json");
        let r = Report::from_json(seed).unwrap();
        for f in [files, kld_strips, tensor_rankings, weights, size_chart] {
            assert_eq!(render(f, &r), "");
        }
    }
}
