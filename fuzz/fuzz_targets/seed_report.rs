//! The report the judging targets judge against: the synthetic 2-layer model's, the committed
//! seed of the report_json target (parsed once per process).

use std::sync::OnceLock;

use parallax_report::Report;

pub fn report() -> &'static Report {
    static REPORT: OnceLock<Report> = OnceLock::new();
    REPORT.get_or_init(|| {
        Report::from_json(include_str!("../corpus/report_json/tiny-report.json"))
            .expect("seed report parses")
    })
}
