//! Permalinks: a report packed into a URL fragment (`#r=…`), so a link restores the view
//! without the model or any server.
//!
//! The packed report keeps what the page draws and drops the rest ([`slim`]; the full report is
//! the JSON download). Its bulk then moves out of the JSON ([`PACKED_SCHEMA`]): the numbers the
//! charts draw and class against the contract bands travel exactly, as f64 bits laid out byte
//! plane by byte plane (17 decimal digits of JSON per number deflate worse than 8 bytes whose
//! sign and exponent bytes repeat), and the per-token rows as columns (a JSON record per row
//! spends more on keys and nulls than on its one number). The result is deflated and base64url
//! encoded: the 0.5B's report with the page's defaults went from 107,001 characters (the slim
//! report as JSON) to under 32 KiB (`the_05b_permalink_is_under_32_kib_and_redraws_the_same_view`
//! in `tests/report_html.rs`). Unpacking refuses more than [`MAX_UNPACKED`] bytes, so a hostile
//! link cannot exhaust memory. Links of the earlier form (the slim report as plain JSON) still
//! open.

use base64::Engine;
use serde::{Deserialize, Serialize};

use parallax_metrics::{Compare, Stats};

use crate::{Report, SiteRecord};

/// The largest report a permalink may unpack to.
pub const MAX_UNPACKED: usize = 32 << 20;
/// The fragment key: `#r=<payload>`.
pub const FRAGMENT_KEY: &str = "r";

/// The report as the page needs it to redraw the view, and nothing more: what
/// [`crate::html::render_fragment`] reads is kept exactly, or rounded exactly as it is drawn;
/// the rest, which only the JSON download holds, is dropped.
///
/// - At every site: the paths' own statistics (the view draws their comparisons, never the
///   statistics) and the site's detail (the cells' panels); each comparison's `max_abs`; the op-alone comparisons of lanes on the
///   reference's file, and of the others all but `rel_l2` (the tensor ranking draws only that,
///   only for lanes on another file); the noise prediction but for its `ratio` (the noise
///   heatmap).
/// - Per token, every path but the reference and every statistic but its `std`, rounded as the
///   per-token grid draws it ([`crate::html::token_std_as_drawn`]).
///
/// Verdicts travel as they are: the view shows the verdicts judged on the full numbers, and
/// never judges again.
pub fn slim(report: &Report) -> Report {
    let mut r = report.clone();
    // The op-alone comparisons are drawn as the tensor ranking of a lane on another file than
    // the reference's (`html::compare::tensor_rankings`), and nowhere else.
    let reference_file = crate::html::compare::lane_file(report, &report.reference);
    let ranked = |lane: &str| {
        let file = crate::html::compare::lane_file(report, lane);
        reference_file.is_some() && file.is_some() && file != reference_file
    };
    let slim_site = |site: &mut SiteRecord| {
        site.paths.clear();
        // The cells' detail panels are the full report's (JSON, standalone HTML).
        site.detail = None;
        for c in site.compare.values_mut() {
            c.max_abs = None;
        }
        site.local.retain(|lane, _| ranked(lane));
        for c in site.local.values_mut() {
            *c = Compare {
                count: c.count,
                rel_l2: c.rel_l2,
                std_ratio: None,
                cosine: None,
                sqnr_db: None,
                max_abs: None,
            };
        }
        for n in site.noise.values_mut() {
            n.predicted_rel_l2 = 0.0;
            n.position = 0;
        }
    };
    slim_site(&mut r.embed);
    slim_site(&mut r.final_norm);
    for layer in &mut r.layers {
        layer.sites.values_mut().for_each(slim_site);
    }
    let slim_tokens = |site: &mut crate::TokenSite| {
        site.paths.retain(|p, _| *p == report.reference);
        site.compare.clear();
        for stats in site.paths.values_mut().flatten() {
            *stats = drawn_token_stats(stats.count, stats.std.map(crate::html::token_std_as_drawn));
        }
    };
    slim_tokens(&mut r.per_token.embed);
    slim_tokens(&mut r.per_token.final_norm);
    for layer in &mut r.per_token.layers {
        layer.values_mut().for_each(slim_tokens);
    }
    r
}

/// The `schema` of a permalink's JSON: the slim report with its numbers moved out.
pub const PACKED_SCHEMA: &str = "parallax.permalink/2";

/// What a permalink holds once inflated: this as JSON, a NUL byte (which JSON text never
/// holds), then the [`exact numbers`](exact_slots) as f64 bits, byte plane by byte plane.
#[derive(Serialize, Deserialize)]
struct Packed {
    schema: String,
    /// The slim report without the numbers that moved out: its per-token statistics as empty
    /// rows, its exact numbers `null`.
    report: Report,
    /// Per per-token site and path, in [`token_rows`] order: how many rows (prompt positions).
    token_rows: Vec<usize>,
    /// Each row's element count.
    token_count: Vec<u64>,
    /// Each row's std, as the grid draws it (a few significant digits: as text, shorter than
    /// the f64's bytes).
    token_std: Vec<Option<f64>>,
}

/// `None` among the exact numbers: a NaN no computation produces (JSON could not carry a NaN
/// anyway, so a report read from JSON never holds one where this stands).
const NONE_BITS: u64 = 0x7ff8_dead_beef_0001;

/// One exact number's place in the report.
enum Slot<'a> {
    Optional(&'a mut Option<f64>),
    Plain(&'a mut f64),
}

/// Every number that travels exactly (the comparisons the charts and heatmaps draw and class
/// against the contract bands, so not one may round), grouped by field so each group's bytes
/// resemble each other: every site (embed, each layer's sites, final norm), each compared path.
/// Packing and unpacking both walk this one list, so they cannot disagree.
fn exact_slots(r: &mut Report) -> Vec<Slot<'_>> {
    let mut by_field: [Vec<Slot<'_>>; 6] = Default::default();
    let Report { embed, layers, final_norm, .. } = r;
    let sites = std::iter::once(embed)
        .chain(layers.iter_mut().flat_map(|l| l.sites.values_mut()))
        .chain(std::iter::once(final_norm));
    for site in sites {
        let SiteRecord { compare, local, noise, .. } = site;
        for cmp in compare.values_mut() {
            let Compare { std_ratio, cosine, rel_l2, sqnr_db, .. } = cmp;
            by_field[0].push(Slot::Optional(std_ratio));
            by_field[1].push(Slot::Optional(cosine));
            by_field[2].push(Slot::Optional(rel_l2));
            by_field[3].push(Slot::Optional(sqnr_db));
        }
        for cmp in local.values_mut() {
            by_field[4].push(Slot::Optional(&mut cmp.rel_l2));
        }
        for n in noise.values_mut() {
            by_field[5].push(Slot::Plain(&mut n.ratio));
        }
    }
    by_field.into_iter().flatten().collect()
}

/// The per-token rows, per site and path: embed, each layer's sites, final norm.
fn token_rows(r: &mut Report) -> impl Iterator<Item = &mut Vec<Stats>> {
    let t = &mut r.per_token;
    std::iter::once(&mut t.embed)
        .chain(t.layers.iter_mut().flat_map(|l| l.values_mut()))
        .chain(std::iter::once(&mut t.final_norm))
        .flat_map(|site| site.paths.values_mut())
}

/// `values` as bytes, byte plane by byte plane (every value's first byte, then every second
/// byte…): sign and exponent, alike within a field, end up side by side, where deflate finds
/// them.
fn planes(values: &[u64]) -> Vec<u8> {
    (0..8).flat_map(|p| values.iter().map(move |v| v.to_be_bytes()[p])).collect()
}

fn from_planes(bytes: &[u8]) -> Vec<u64> {
    let n = bytes.len() / 8;
    (0..n).map(|i| u64::from_be_bytes(std::array::from_fn(|p| bytes[p * n + i]))).collect()
}

fn pack(mut report: Report) -> Vec<u8> {
    let exact: Vec<u64> = exact_slots(&mut report)
        .into_iter()
        .map(|slot| match slot {
            Slot::Optional(v) => v.take().map_or(NONE_BITS, f64::to_bits),
            Slot::Plain(v) => std::mem::replace(v, 0.0).to_bits(),
        })
        .collect();
    let (mut rows, mut count, mut std) = (Vec::new(), Vec::new(), Vec::new());
    for stats in token_rows(&mut report) {
        rows.push(stats.len());
        count.extend(stats.iter().map(|s| s.count));
        std.extend(stats.iter().map(|s| s.std));
        stats.clear();
    }
    let packed = Packed {
        schema: PACKED_SCHEMA.to_string(),
        report,
        token_rows: rows,
        token_count: count,
        token_std: std,
    };
    // Serializing plain data cannot fail.
    let mut bytes = serde_json::to_vec(&packed).expect("report serializes");
    bytes.push(0);
    bytes.extend(planes(&exact));
    bytes
}

fn unpack(packed: Packed, exact: &[u8]) -> Result<Report, String> {
    let damaged = || "the link is damaged (its numbers do not fit its report); copy it whole";
    let Packed { mut report, token_rows: rows, token_count, token_std, .. } = packed;
    let slots = exact_slots(&mut report);
    if exact.len() != slots.len() * 8 {
        return Err(damaged().to_string());
    }
    for (slot, bits) in slots.into_iter().zip(from_planes(exact)) {
        match slot {
            Slot::Optional(v) => *v = (bits != NONE_BITS).then(|| f64::from_bits(bits)),
            Slot::Plain(v) => *v = f64::from_bits(bits),
        }
    }
    let total: usize = rows.iter().sum();
    if rows.len() != token_rows(&mut report).count()
        || token_count.len() != total
        || token_std.len() != total
    {
        return Err(damaged().to_string());
    }
    let mut cells = token_count.into_iter().zip(token_std);
    for (stats, n) in token_rows(&mut report).zip(rows) {
        stats.extend(cells.by_ref().take(n).map(|(count, std)| drawn_token_stats(count, std)));
    }
    Ok(report)
}

/// Pack `report` (slimmed, its numbers moved out) into a URL-safe string.
pub fn encode(report: &Report) -> String {
    let packed = miniz_oxide::deflate::compress_to_vec(&pack(slim(report)), 9);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(packed)
}

/// Unpack a permalink payload (the part after `#r=`, or the whole fragment).
pub fn decode(payload: &str) -> Result<Report, String> {
    let payload = payload.trim().trim_start_matches('#');
    let payload = payload.strip_prefix(&format!("{FRAGMENT_KEY}=")).unwrap_or(payload);
    let packed = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|e| format!("the link is damaged (not base64url: {e}); copy it whole"))?;
    let json =
        miniz_oxide::inflate::decompress_to_vec_with_limit(&packed, MAX_UNPACKED).map_err(|e| {
            match e.status {
                miniz_oxide::inflate::TINFLStatus::HasMoreOutput => {
                    format!("the link unpacks to more than {} MiB; refusing it", MAX_UNPACKED >> 20)
                }
                _ => "the link is damaged (its compressed report does not unpack); copy it whole"
                    .to_string(),
            }
        })?;
    // JSON text, then (in links of the packed form) a NUL and the exact numbers.
    let (text, exact) = match json.iter().position(|&b| b == 0) {
        Some(at) => (json[..at].to_vec(), &json[at + 1..]),
        None => (json.clone(), &[][..]),
    };
    let text =
        String::from_utf8(text).map_err(|_| "the link's report is not UTF-8 text".to_string())?;
    #[derive(Deserialize)]
    struct Schema {
        schema: Option<String>,
    }
    let schema: Schema = serde_json::from_str(&text).map_err(|e| format!("not valid JSON: {e}"))?;
    if schema.schema.as_deref() != Some(PACKED_SCHEMA) {
        // A link of the earlier form: the slim report itself (or not a report at all,
        // which the report's reader names).
        return Report::from_json(&text);
    }
    // Straight from the text, not through `serde_json::Value`, whose maps sort their keys: the
    // numbers fill the report's sites in the order the link wrote them.
    let packed: Packed = serde_json::from_str(&text)
        .map_err(|e| format!("the link is damaged (malformed {PACKED_SCHEMA}: {e})"))?;
    if packed.report.schema != crate::SCHEMA {
        return Err(format!(
            "unsupported report schema `{}` (this Parallax reads {})",
            packed.report.schema,
            crate::SCHEMA
        ));
    }
    unpack(packed, exact)
}

/// A per-token row as the link carries it: the element count and the std the grid draws, the
/// rest of its statistics dropped (one definition for slimming and for unpacking, so both give
/// the same value).
fn drawn_token_stats(count: u64, std: Option<f64>) -> Stats {
    Stats { count, std, mean: None, min: None, max: None, absmax: None, nan: 0, inf: 0, zeros: 0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::html::render_fragment;

    /// The fuzz corpus's small report with numbers as a run writes them (full f64 digits), the
    /// op-alone comparisons and noise predictions a matmul site has, and per-token statistics
    /// for every site of every path.
    fn full_report() -> Report {
        let seed = include_str!("../../../fuzz/corpus/report_json/tiny-report.json");
        let mut r = Report::from_json(seed).unwrap();
        let mut x = 0.1234567890123_f64;
        let mut next = move || {
            x = (x * 7.31 + 0.377).fract() + 0.0123;
            x
        };
        let stats = |next: &mut dyn FnMut() -> f64| Stats {
            count: 32,
            mean: Some(next() - 0.5),
            std: Some(next()),
            min: Some(-next()),
            max: Some(next()),
            absmax: Some(next()),
            nan: 0,
            inf: 0,
            zeros: 1,
        };
        let compare = |next: &mut dyn FnMut() -> f64| Compare {
            count: 32,
            std_ratio: Some(1.0 + next() / 100.0),
            cosine: Some(1.0 - next() / 1000.0),
            rel_l2: Some(next() / 50.0),
            sqnr_db: Some(30.0 + next()),
            max_abs: Some(next()),
        };
        let base = r.layers[0].clone();
        r.layers = (0..3u32).map(|index| crate::LayerRecord { index, ..base.clone() }).collect();
        for layer in &mut r.layers {
            for (name, site) in &mut layer.sites {
                for s in site.paths.values_mut() {
                    *s = stats(&mut next);
                }
                site.compare.insert("q8".into(), compare(&mut next));
                if name == "ffn_gate" {
                    site.local.insert("q8".into(), compare(&mut next));
                    let noise =
                        crate::LocalNoise { predicted_rel_l2: next(), ratio: next(), position: 1 };
                    site.noise.insert("q8".into(), noise);
                }
            }
        }
        let tokens = r.prompt.tokens.len();
        let token_site = |next: &mut dyn FnMut() -> f64| crate::TokenSite {
            paths: ["f32", "q8"]
                .iter()
                .map(|p| (p.to_string(), (0..tokens).map(|_| stats(next)).collect()))
                .collect(),
            compare: [("q8".to_string(), (0..tokens).map(|_| compare(next)).collect())].into(),
        };
        r.per_token.layers = (0..3)
            .map(|_| r.site_order.iter().map(|s| (s.clone(), token_site(&mut next))).collect())
            .collect();
        r
    }

    /// Fails naming the first place two views differ (a whole view is too long to print).
    fn assert_same_view(view: &str, linked: &str) {
        if view != linked {
            let at = view.bytes().zip(linked.bytes()).take_while(|(a, b)| a == b).count();
            let around = |s: &str| {
                let from = s.floor_char_boundary(at.saturating_sub(120));
                s[from..s.ceil_char_boundary((at + 120).min(s.len()))].to_string()
            };
            panic!("the views differ at byte {at}:\n{}\n---\n{}", around(view), around(linked));
        }
    }

    #[test]
    fn a_link_redraws_the_view_of_the_full_report_and_carries_no_more() {
        let report = full_report();
        let link = encode(&report);
        let back = decode(&link).unwrap();
        assert_same_view(&render_fragment(&report), &render_fragment(&back));
        // What the view does not draw stayed behind: the paths' statistics at each site, and
        // every per-token statistic but the reference's std.
        let ffn_gate = &back.layers[1].sites["ffn_gate"];
        assert!(ffn_gate.paths.is_empty());
        assert_eq!(ffn_gate.compare["q8"].max_abs, None);
        // One file: no tensor ranking is drawn, so no op-alone comparison travels.
        assert!(ffn_gate.local.is_empty());
        let tokens = &back.per_token.layers[2]["q"];
        assert_eq!(tokens.paths.keys().collect::<Vec<_>>(), ["f32"]);
        assert!(tokens.compare.is_empty());
        let std = report.per_token.layers[2]["q"].paths["f32"][0].std.unwrap();
        assert_eq!(tokens.paths["f32"][0].std, Some(crate::html::token_std_as_drawn(std)));
        assert_ne!(tokens.paths["f32"][0].std, Some(std), "the seed's stds have more digits");
        assert!(link.len() < encode_unslimmed(&report).len() / 2, "{} characters", link.len());
    }

    /// The comparison above can fail: a per-token std or a comparison changed at a digit the
    /// view shows draws another view.
    #[test]
    fn a_changed_drawn_number_draws_another_view() {
        let report = full_report();
        let mut token_std = report.clone();
        let std = &mut token_std.per_token.layers[0]
            .get_mut("ffn_swigl")
            .unwrap()
            .paths
            .get_mut("f32")
            .unwrap()[0]
            .std;
        *std = std.map(|v| v * 1.01);
        assert_ne!(
            render_fragment(&decode(&encode(&token_std)).unwrap()),
            render_fragment(&report)
        );
        let mut cosine = report.clone();
        let c = cosine.layers[2].sites.get_mut("q").unwrap().compare.get_mut("q8").unwrap();
        c.cosine = c.cosine.map(|v| v - 1e-3);
        assert_ne!(render_fragment(&decode(&encode(&cosine)).unwrap()), render_fragment(&report));
    }

    /// A run over two files draws the tensor ranking of the lane on the second file: its
    /// op-alone relative L2 travels, exactly.
    #[test]
    fn a_link_of_a_run_over_two_files_keeps_what_its_tensor_ranking_draws() {
        let mut report = full_report();
        report.files = ["f32", "q8"]
            .iter()
            .enumerate()
            .map(|(k, lane)| crate::FileInfo {
                file_name: format!("file-{k}.gguf"),
                format: "GGUF v3".into(),
                bytes: 1000 + k as u64,
                sha256: None,
                types: Default::default(),
                paths: vec![lane.to_string()],
            })
            .collect();
        let back = decode(&encode(&report)).unwrap();
        assert_same_view(&render_fragment(&report), &render_fragment(&back));
        let (sent, kept) = (
            &report.layers[1].sites["ffn_gate"].local["q8"],
            &back.layers[1].sites["ffn_gate"].local["q8"],
        );
        assert_eq!(kept.rel_l2, sent.rel_l2);
        assert_eq!(kept.cosine, None);
    }

    /// Links of the earlier form held the slim report as plain JSON; they still open.
    #[test]
    fn a_link_of_the_earlier_form_still_opens() {
        let report = full_report();
        let earlier = encode_unslimmed(&slim(&report));
        assert_eq!(decode(&earlier).unwrap(), slim(&report));
        // A packed link whose numbers do not fit its report is damaged, not misread.
        let mut packed = pack(slim(&report));
        packed.truncate(packed.len() - 8);
        let link = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(miniz_oxide::deflate::compress_to_vec(&packed, 9));
        assert!(decode(&link).unwrap_err().contains("do not fit its report"));
    }

    fn encode_unslimmed(report: &Report) -> String {
        let json = serde_json::to_vec(report).unwrap();
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(miniz_oxide::deflate::compress_to_vec(&json, 9))
    }

    #[test]
    fn damaged_and_hostile_payloads_are_refused() {
        assert!(decode("!!!").unwrap_err().contains("damaged"));
        assert!(decode("AAAA").unwrap_err().contains("damaged"));
        // A zip bomb: 64 MiB of zeros deflates to a few KiB.
        let bomb = miniz_oxide::deflate::compress_to_vec(&vec![b' '; 64 << 20], 9);
        let link = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bomb);
        assert!(decode(&link).unwrap_err().contains("more than 32 MiB"));
        let not_report = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(miniz_oxide::deflate::compress_to_vec(b"{\"schema\":\"other/2\"}", 9));
        assert!(decode(&format!("#r={not_report}"))
            .unwrap_err()
            .contains("unsupported report schema"));
    }
}
