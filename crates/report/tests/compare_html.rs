//! The sections a run over several files adds to the report, rendered from a small report made
//! here (the committed one-layer seed, given three files, a weights comparison, per-position
//! logits and op-alone comparisons): a snapshot of their markup, so any change to what they
//! show is seen line by line (`UPDATE_EXPECT=1 cargo test -p parallax-report --test
//! compare_html` rewrites it after a deliberate change).

use expect_test::expect;
use parallax_metrics::positions::compare_positions;
use parallax_metrics::Compare;
use parallax_report::{html, FileInfo, Report, TensorDiff, TensorFile, WeightCompare};

const SEED: &str = include_str!("../../../fuzz/corpus/report_json/tiny-report.json");

fn file(name: &str, bytes: u64, types: &[(&str, u64)], paths: &[&str]) -> FileInfo {
    FileInfo {
        file_name: name.into(),
        format: "GGUF v3".into(),
        bytes,
        sha256: Some(format!("{:064x}", bytes)),
        types: types.iter().map(|(t, n)| (t.to_string(), *n)).collect(),
        paths: paths.iter().map(|p| p.to_string()).collect(),
    }
}

/// `name` in three files with these types, compared with file 1 by these relative errors
/// (0 = identical).
fn tensor(name: &str, ne: &[u64], types: [&str; 3], rel_l2: [f64; 2]) -> TensorDiff {
    TensorDiff {
        name: name.into(),
        ne: ne.to_vec(),
        files: types
            .iter()
            .map(|ty| TensorFile { name: name.into(), ty: ty.to_string(), bytes: 1024 })
            .collect(),
        compares: rel_l2
            .iter()
            .enumerate()
            .map(|(k, &rel)| WeightCompare {
                file: k as u32 + 2,
                rel_l2: Some(rel),
                sqnr_db: (rel > 0.0).then(|| -20.0 * rel.log10()),
                max_abs: Some(rel / 10.0),
                cosine: Some(1.0 - rel * rel / 2.0),
                identical: rel == 0.0,
            })
            .collect(),
    }
}

fn local(rel_l2: f64) -> Compare {
    Compare {
        count: 32,
        std_ratio: Some(1.0),
        cosine: Some(1.0 - rel_l2 * rel_l2 / 2.0),
        rel_l2: Some(rel_l2),
        sqnr_db: Some(-20.0 * rel_l2.log10()),
        max_abs: Some(rel_l2),
    }
}

/// The seed run over three files: F32 (the reference's), Q8_0 and Q4_K, the f32 path on each
/// and q8 on the first; three prompt positions.
fn three_files() -> Report {
    let mut r = Report::from_json(SEED).unwrap();
    r.prompt.tokens = vec![72, 105, 33];
    r.prompt.pieces = vec!["H".into(), "i".into(), "!".into()];
    r.paths = ["f32", "q8", "f32@2", "f32@3"].map(String::from).to_vec();
    r.files = vec![
        file("model-f32.gguf", 400 << 20, &[("F32", 5)], &["f32", "q8"]),
        file("model-q8_0.gguf", 110 << 20, &[("F32", 2), ("Q8_0", 3)], &["f32@2"]),
        file("model-q4_k.gguf", 60 << 20, &[("F32", 2), ("Q4_K", 2), ("Q6_K", 1)], &["f32@3"]),
    ];
    r.weights = vec![
        tensor("token_embd.weight", &[32, 320], ["F32", "Q8_0", "Q4_K"], [0.004, 0.03]),
        tensor("blk.0.attn_norm.weight", &[32], ["F32", "F32", "F32"], [0.0, 0.0]),
        tensor("blk.0.attn_q.weight", &[32, 32], ["F32", "Q8_0", "Q4_K"], [0.005, 0.04]),
        tensor("blk.0.ffn_down.weight", &[64, 32], ["F32", "Q8_0", "Q6_K"], [0.006, 0.01]),
        tensor("output_norm.weight", &[32], ["F32", "F32", "F32"], [0.0, 0.0]),
    ];
    // Per-position logits over a vocabulary of 4: file 2 a little off, file 3 more, q8 least.
    let reference = [2.0f32, 1.0, 0.0, -1.0, 0.5, 2.5, 0.0, 0.0, 1.0, 1.0, 3.0, 0.0];
    let shifted = |by: f32| -> Vec<f32> {
        reference.iter().enumerate().map(|(i, v)| v + by * ((i % 4) as f32 - 1.5)).collect()
    };
    let next = [105, 33].map(|t: u32| t % 4);
    for (lane, by) in [("q8", 0.01f32), ("f32@2", 0.05), ("f32@3", 0.6)] {
        let (summary, per) = compare_positions(&reference, &shifted(by), 4, &next).unwrap();
        let mut c = r.logits.compare["q8"].clone();
        c.positions = Some(summary);
        r.logits.compare.insert(lane.into(), c);
        r.per_token.logits.insert(lane.into(), per);
    }
    // The op alone at each matmul site: file 3's tensors hurt more, its ffn_down least.
    let layer = &mut r.layers[0];
    for (site, q8_0, q4_k) in [
        ("q", 0.004, 0.041),
        ("k", 0.005, 0.038),
        ("v", 0.005, 0.036),
        ("attn_proj", 0.004, 0.035),
        ("ffn_gate", 0.006, 0.040),
        ("ffn_up", 0.006, 0.039),
        ("ffn_down", 0.007, 0.012),
    ] {
        let s = layer.sites.get_mut(site).unwrap();
        s.local.insert("f32@2".into(), local(q8_0));
        s.local.insert("f32@3".into(), local(q4_k));
    }
    r
}

/// The sections with these classes, one after another, a line break after each row, cell and
/// paragraph so the snapshot reads line by line.
fn sections(html: &str, classes: &[&str]) -> String {
    let mut out = String::new();
    for class in classes {
        let start = html
            .find(&format!("<section class=\"{class}\">"))
            .unwrap_or_else(|| panic!("no {class} section"));
        let end = start + html[start..].find("</section>").unwrap() + "</section>".len();
        out.push_str(&html[start..end]);
        out.push('\n');
    }
    ["</tr>", "</p>", "</rect>", "</circle>", "</text>", "</h3>", "</h4>", "<table", "<svg"]
        .iter()
        .fold(out, |t, tag| {
            if tag.starts_with("</") {
                t.replace(tag, &format!("{tag}\n"))
            } else {
                t.replace(tag, &format!("\n{tag}"))
            }
        })
}

#[test]
fn the_sections_of_a_run_over_three_files() {
    let html = html::render_fragment(&three_files());
    let shown = sections(&html, &["px-files", "px-kld", "px-ranking", "px-weights", "px-size"]);
    expect![[r#"
        <section class="px-files"><h3>Files</h3>
        <p class="px-note">Every path ran on every file; a path on file <i>k</i> from the second on is named <code>path@k</code>.</p>

        <table><tr><th>#</th><th>file</th><th>format</th><th>size</th><th>tensors by type</th><th>paths</th><th>sha256</th></tr>
        <tr><td>1</td><td><code>model-f32.gguf</code></td><td>GGUF v3</td><td>400.00 MiB</td><td>5 × F32</td><td>f32, q8</td><td><code class="px-hash">0000000000000000000000000000000000000000000000000000000019000000</code></td></tr>
        <tr><td>2</td><td><code>model-q8_0.gguf</code></td><td>GGUF v3</td><td>110.00 MiB</td><td>2 × F32, 3 × Q8_0</td><td>f32@2</td><td><code class="px-hash">0000000000000000000000000000000000000000000000000000000006e00000</code></td></tr>
        <tr><td>3</td><td><code>model-q4_k.gguf</code></td><td>GGUF v3</td><td>60.00 MiB</td><td>2 × F32, 2 × Q4_K, 1 × Q6_K</td><td>f32@3</td><td><code class="px-hash">0000000000000000000000000000000000000000000000000000000003c00000</code></td></tr>
        </table></section>
        <section class="px-kld"><h3>Next-token divergence at every prompt position, against f32</h3>
        <p class="px-note">One cell per position: KL(P<sub>f32</sub> ‖ P<sub>path</sub>) in nats, on a fixed log scale (the same colours in every report). Hover a cell for the position, its token, the KL and both most likely next tokens.</p>

        <svg class="px-svg px-fixed" width="354.0" height="116" viewBox="0 0 354.0 116" role="img" aria-label="KL divergence per prompt position"><text class="px-tick" x="73.0" y="13" text-anchor="middle">0</text>
        <text class="px-tick" x="91.0" y="13" text-anchor="middle">1</text>
        <text class="px-tick" x="109.0" y="13" text-anchor="middle">2</text>
        <text class="px-tick" x="58" y="30.6" text-anchor="end">q8</text>
        <rect class="px-c0" x="64.00" y="18" width="18.00" height="18"><title>q8 · position 0 H · KL 3.095e-5 nats · next token id 0, reference’s id 0 at p 0.6439</title></rect>
        <rect class="px-c0" x="82.00" y="18" width="18.00" height="18"><title>q8 · position 1 i · KL 2.069e-5 nats · next token id 1, reference’s id 1 at p 0.7695</title></rect>
        <rect class="px-c0" x="100.00" y="18" width="18.00" height="18"><title>q8 · position 2 ! · KL 2.379e-5 nats · next token id 2, reference’s id 2 at p 0.7573</title></rect>
        <text class="px-tick" x="58" y="48.6" text-anchor="end">f32@2</text>
        <rect class="px-c2" x="64.00" y="36" width="18.00" height="18"><title>f32@2 · position 0 H · KL 7.861e-4 nats · next token id 0, reference’s id 0 at p 0.6439</title></rect>
        <rect class="px-c2" x="82.00" y="36" width="18.00" height="18"><title>f32@2 · position 1 i · KL 5.235e-4 nats · next token id 1, reference’s id 1 at p 0.7695</title></rect>
        <rect class="px-c2" x="100.00" y="36" width="18.00" height="18"><title>f32@2 · position 2 ! · KL 5.869e-4 nats · next token id 2, reference’s id 2 at p 0.7573</title></rect>
        <text class="px-tick" x="58" y="66.6" text-anchor="end">f32@3</text>
        <rect class="px-c7" x="64.00" y="54" width="18.00" height="18"><title>f32@3 · position 0 H · KL 1.395e-1 nats · next token id 0, reference’s id 0 at p 0.6439</title></rect>
        <rect class="px-c6" x="82.00" y="54" width="18.00" height="18"><title>f32@3 · position 1 i · KL 8.985e-2 nats · next token id 1, reference’s id 1 at p 0.7695</title></rect>
        <rect class="px-c6" x="100.00" y="54" width="18.00" height="18"><title>f32@3 · position 2 ! · KL 7.099e-2 nats · next token id 2, reference’s id 2 at p 0.7573</title></rect>
        <text class="px-tick" x="58" y="90.0" text-anchor="end">KL, nats</text>
        <rect class="px-c0" x="64" y="80.0" width="28" height="12"><title>KL below 0.0001</title></rect>
        <rect class="px-c1" x="92" y="80.0" width="28" height="12"><title>KL 1.00e-4 to 3.16e-4</title></rect>
        <rect class="px-c2" x="120" y="80.0" width="28" height="12"><title>KL 3.16e-4 to 1.00e-3</title></rect>
        <rect class="px-c3" x="148" y="80.0" width="28" height="12"><title>KL 1.00e-3 to 3.16e-3</title></rect>
        <rect class="px-c4" x="176" y="80.0" width="28" height="12"><title>KL 3.16e-3 to 1.00e-2</title></rect>
        <rect class="px-c5" x="204" y="80.0" width="28" height="12"><title>KL 1.00e-2 to 3.16e-2</title></rect>
        <rect class="px-c6" x="232" y="80.0" width="28" height="12"><title>KL 3.16e-2 to 1.00e-1</title></rect>
        <rect class="px-c7" x="260" y="80.0" width="28" height="12"><title>KL 1.00e-1 to 3.16e-1</title></rect>
        <rect class="px-c8" x="288" y="80.0" width="28" height="12"><title>KL 3.16e-1 to 1.00e0</title></rect>
        <rect class="px-c9" x="316" y="80.0" width="28" height="12"><title>KL 1 and above</title></rect>
        <line class="px-grid" x1="92" x2="92" y1="80.0" y2="96.0"/><text class="px-tick" x="92" y="108.0" text-anchor="middle">0.0001</text>
        <line class="px-grid" x1="148" x2="148" y1="80.0" y2="96.0"/><text class="px-tick" x="148" y="108.0" text-anchor="middle">0.001</text>
        <line class="px-grid" x1="204" x2="204" y1="80.0" y2="96.0"/><text class="px-tick" x="204" y="108.0" text-anchor="middle">0.01</text>
        <line class="px-grid" x1="260" x2="260" y1="80.0" y2="96.0"/><text class="px-tick" x="260" y="108.0" text-anchor="middle">0.1</text>
        <line class="px-grid" x1="316" x2="316" y1="80.0" y2="96.0"/><text class="px-tick" x="316" y="108.0" text-anchor="middle">1</text>
        </svg>
        <table class="px-kld-summary"><tr><th>path</th><th>positions</th><th>mean KLD ± stderr</th><th>median</th><th>p99</th><th>max</th><th>same top-1</th><th>RMS Δp</th><th>PPL ratio</th></tr>
        <tr><td>q8</td><td>3</td><td>0.000025 ± 0.000003</td><td>0.000024</td><td>0.000031</td><td>0.000031</td><td>100.0 % (3/3)</td><td>0.226 %</td><td>0.9980</td></tr>
        <tr><td>f32@2</td><td>3</td><td>0.000632 ± 0.000079</td><td>0.000587</td><td>0.000782</td><td>0.000786</td><td>100.0 % (3/3)</td><td>1.135 %</td><td>0.9905</td></tr>
        <tr><td>f32@3</td><td>3</td><td>0.100118 ± 0.020438</td><td>0.089848</td><td>0.138524</td><td>0.139518</td><td>100.0 % (3/3)</td><td>15.135 %</td><td>0.9925</td></tr>
        </table><p class="px-note">KLD as <code>llama-perplexity --kl-divergence</code> reports it, over the prompt's positions; RMS Δp: the change in the probability of f32's most likely token; PPL ratio: the prompt's perplexity on the path over f32's.</p>
        </section>
        <section class="px-ranking"><h3>Which tensors this quantization hurts most</h3>
        <p class="px-note">Each matmul fed the reference's own input, against the reference's output: the error its weight adds on its own, apart from what accumulated upstream.</p>
        <h4>f32@2 against f32: the worst 7 of 7 matmul sites</h4>

        <table><tr><th>#</th><th>layer</th><th>site</th><th>tensor</th><th>type in file 1</th><th>type in file 2</th><th>op alone: rel L2</th><th>weights: rel L2</th></tr>
        <tr><td>1</td><td>0</td><td>ffn_down</td><td><code>blk.0.ffn_down.weight</code></td><td>F32</td><td>Q8_0</td><td>7.0000e-3</td><td>6.0000e-3</td></tr>
        <tr><td>2</td><td>0</td><td>ffn_gate</td><td><code>blk.0.ffn_gate.weight</code></td><td>—</td><td>—</td><td>6.0000e-3</td><td>—</td></tr>
        <tr><td>3</td><td>0</td><td>ffn_up</td><td><code>blk.0.ffn_up.weight</code></td><td>—</td><td>—</td><td>6.0000e-3</td><td>—</td></tr>
        <tr><td>4</td><td>0</td><td>k</td><td><code>blk.0.attn_k.weight</code></td><td>—</td><td>—</td><td>5.0000e-3</td><td>—</td></tr>
        <tr><td>5</td><td>0</td><td>v</td><td><code>blk.0.attn_v.weight</code></td><td>—</td><td>—</td><td>5.0000e-3</td><td>—</td></tr>
        <tr><td>6</td><td>0</td><td>q</td><td><code>blk.0.attn_q.weight</code></td><td>F32</td><td>Q8_0</td><td>4.0000e-3</td><td>5.0000e-3</td></tr>
        <tr><td>7</td><td>0</td><td>attn_proj</td><td><code>blk.0.attn_output.weight</code></td><td>—</td><td>—</td><td>4.0000e-3</td><td>—</td></tr>
        </table><h4>f32@3 against f32: the worst 7 of 7 matmul sites</h4>

        <table><tr><th>#</th><th>layer</th><th>site</th><th>tensor</th><th>type in file 1</th><th>type in file 3</th><th>op alone: rel L2</th><th>weights: rel L2</th></tr>
        <tr><td>1</td><td>0</td><td>q</td><td><code>blk.0.attn_q.weight</code></td><td>F32</td><td>Q4_K</td><td>4.1000e-2</td><td>4.0000e-2</td></tr>
        <tr><td>2</td><td>0</td><td>ffn_gate</td><td><code>blk.0.ffn_gate.weight</code></td><td>—</td><td>—</td><td>4.0000e-2</td><td>—</td></tr>
        <tr><td>3</td><td>0</td><td>ffn_up</td><td><code>blk.0.ffn_up.weight</code></td><td>—</td><td>—</td><td>3.9000e-2</td><td>—</td></tr>
        <tr><td>4</td><td>0</td><td>k</td><td><code>blk.0.attn_k.weight</code></td><td>—</td><td>—</td><td>3.8000e-2</td><td>—</td></tr>
        <tr><td>5</td><td>0</td><td>v</td><td><code>blk.0.attn_v.weight</code></td><td>—</td><td>—</td><td>3.6000e-2</td><td>—</td></tr>
        <tr><td>6</td><td>0</td><td>attn_proj</td><td><code>blk.0.attn_output.weight</code></td><td>—</td><td>—</td><td>3.5000e-2</td><td>—</td></tr>
        <tr><td>7</td><td>0</td><td>ffn_down</td><td><code>blk.0.ffn_down.weight</code></td><td>F32</td><td>Q6_K</td><td>1.2000e-2</td><td>1.0000e-2</td></tr>
        </table></section>
        <section class="px-weights"><h3>Weights, file by file</h3>
        <p class="px-note">Each file's types as llama-quantize's command line would ask for them: the most common type of the quantized tensors, then one override per role and type.</p>
        <p class="px-note">file 1 <code>model-f32.gguf</code> as llama-quantize types: <code class="px-recipe">F32</code></p>
        <p class="px-note">file 2 <code>model-q8_0.gguf</code> as llama-quantize types: <code class="px-recipe">Q8_0</code></p>
        <p class="px-note">file 3 <code>model-q4_k.gguf</code> as llama-quantize types: <code class="px-recipe">Q4_K --tensor-type &#39;blk\.0\.ffn_down=q6_k&#39;</code></p>
        <p>3 of 5 tensors differ from file 1's after dequantization; worst first by relative L2 error.</p>

        <table class="px-weights-table"><tr><th>tensor</th><th>shape (ne0, ne1, …)</th><th>type in 1</th><th>type in 2</th><th>type in 3</th><th>rel L2 (2)</th><th>SQNR dB (2)</th><th>max |Δ| (2)</th><th>cosine (2)</th><th>rel L2 (3)</th><th>SQNR dB (3)</th><th>max |Δ| (3)</th><th>cosine (3)</th></tr>
        <tr><td><code>blk.0.attn_q.weight</code></td><td>32 × 32</td><td>F32</td><td>Q8_0</td><td>Q4_K</td><td>5.0000e-3</td><td>46.02</td><td>5.0000e-4</td><td>0.9999875</td><td>4.0000e-2</td><td>27.96</td><td>4.0000e-3</td><td>0.9992000</td></tr>
        <tr><td><code>token_embd.weight</code></td><td>32 × 320</td><td>F32</td><td>Q8_0</td><td>Q4_K</td><td>4.0000e-3</td><td>47.96</td><td>4.0000e-4</td><td>0.9999920</td><td>3.0000e-2</td><td>30.46</td><td>3.0000e-3</td><td>0.9995500</td></tr>
        <tr><td><code>blk.0.ffn_down.weight</code></td><td>64 × 32</td><td>F32</td><td>Q8_0</td><td>Q6_K</td><td>6.0000e-3</td><td>44.44</td><td>6.0000e-4</td><td>0.9999820</td><td>1.0000e-2</td><td>40.00</td><td>1.0000e-3</td><td>0.9999500</td></tr>
        </table><p class="px-identical">2 tensors identical in every file</p>
        </section>
        <section class="px-size"><h3>File size against mean KLD</h3>
        <p class="px-note">Each file's mean KLD over the prompt is that of f32's path run on it. Not drawn (no divergence to put on a log axis): model-f32.gguf (f32).</p>

        <svg class="px-svg px-size-chart" viewBox="0 0 560 260" role="img" aria-label="file size against mean KLD"><line class="px-grid" x1="64" x2="536" y1="187.6" y2="187.6"/><text class="px-tick" x="58" y="191.6" text-anchor="end">1.00e-3</text>
        <line class="px-grid" x1="64" x2="536" y1="149.0" y2="149.0"/><text class="px-tick" x="58" y="153.0" text-anchor="end">3.16e-3</text>
        <line class="px-grid" x1="64" x2="536" y1="110.3" y2="110.3"/><text class="px-tick" x="58" y="114.3" text-anchor="end">1.00e-2</text>
        <line class="px-grid" x1="64" x2="536" y1="71.7" y2="71.7"/><text class="px-tick" x="58" y="75.7" text-anchor="end">3.16e-2</text>
        <line class="px-grid" x1="64" x2="536" y1="33.0" y2="33.0"/><text class="px-tick" x="58" y="37.0" text-anchor="end">1.00e-1</text>
        <text class="px-tick" x="96.6" y="236" text-anchor="middle">60 MiB</text>
        <text class="px-tick" x="177.9" y="236" text-anchor="middle">70 MiB</text>
        <text class="px-tick" x="259.3" y="236" text-anchor="middle">80 MiB</text>
        <text class="px-tick" x="340.7" y="236" text-anchor="middle">90 MiB</text>
        <text class="px-tick" x="422.1" y="236" text-anchor="middle">100 MiB</text>
        <text class="px-tick" x="503.4" y="236" text-anchor="middle">110 MiB</text>
        <text class="px-axis" x="300.0" y="256" text-anchor="middle">file size</text>
        <circle class="px-size-pt" cx="503.4" cy="203.0" r="5"><title>file 2 model-q8_0.gguf · 110.00 MiB · mean KLD 0.000632 (f32@2)</title></circle>
        <text class="px-tick" x="511.4" y="197.0">2</text>
        <circle class="px-size-pt" cx="96.6" cy="33.0" r="5"><title>file 3 model-q4_k.gguf · 60.00 MiB · mean KLD 0.100118 (f32@3)</title></circle>
        <text class="px-tick" x="104.6" y="27.0">3</text>
        </svg></section>
    "#]].assert_eq(&shown);
}

/// File names, tensor names and lane ids from files are text in the new sections too.
#[test]
fn names_from_files_are_text() {
    let evil = "<script>window.__pwned=1</script>";
    let mut r = three_files();
    r.files[1].file_name = format!("{evil}.gguf");
    r.weights[2].name = format!("blk.0.{evil}.weight");
    r.weights[2].files[1].ty = evil.into();
    let html = html::render_fragment(&r);
    assert!(!html.contains("<script"), "a name became markup");
    assert!(html.contains("&lt;script&gt;window.__pwned=1&lt;/script&gt;.gguf"));
    assert!(html.contains("blk.0.&lt;script&gt;"));
}

/// A report over one file without per-position logits draws none of them; the page and the
/// standalone report draw the same fragment.
#[test]
fn one_file_draws_none_and_both_renderings_agree() {
    let one = Report::from_json(SEED).unwrap();
    let html = html::render_fragment(&one);
    for class in ["px-files", "px-kld", "px-ranking", "px-weights", "px-size"] {
        assert!(!html.contains(&format!("class=\"{class}\"")), "{class}");
    }
    let three = three_files();
    let fragment = html::render_fragment(&three);
    assert!(html::render_standalone(&three).contains(&fragment));
}
