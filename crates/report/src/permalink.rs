//! Permalinks: a report packed into a URL fragment (`#r=…`), so a link restores the view
//! without the model or any server.
//!
//! The packed report keeps everything the page draws and drops the per-token statistics it does
//! not (all but the reference path's rows of [`PER_TOKEN_SITES`]), then is deflated and base64url
//! encoded. Unpacking refuses more than [`MAX_UNPACKED`] bytes, so a hostile link cannot exhaust
//! memory.

use base64::Engine;

use crate::Report;

/// The largest report a permalink may unpack to.
pub const MAX_UNPACKED: usize = 32 << 20;
/// The fragment key: `#r=<payload>`.
pub const FRAGMENT_KEY: &str = "r";

/// The report as the page needs it to redraw the view.
pub fn slim(report: &Report) -> Report {
    let mut r = report.clone();
    // Per token, the page draws the reference path's std only.
    let keep = |site: &mut crate::TokenSite| {
        site.paths.retain(|p, _| *p == report.reference);
        site.compare.clear();
        for stats in site.paths.values_mut().flatten() {
            stats.mean = None;
            stats.min = None;
            stats.max = None;
            stats.absmax = None;
        }
    };
    keep(&mut r.per_token.embed);
    keep(&mut r.per_token.final_norm);
    for layer in &mut r.per_token.layers {
        layer.values_mut().for_each(keep);
    }
    r
}

/// Pack `report` (slimmed) into a URL-safe string.
pub fn encode(report: &Report) -> String {
    // Serializing plain data cannot fail.
    let json = serde_json::to_vec(&slim(report)).expect("report serializes");
    let packed = miniz_oxide::deflate::compress_to_vec(&json, 9);
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
    let text =
        String::from_utf8(json).map_err(|_| "the link's report is not UTF-8 text".to_string())?;
    Report::from_json(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

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
