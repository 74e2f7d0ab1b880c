use nof1::*;
use std::path::Path;
fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let rule = match args.get(1).map(|s| s.as_str()) {
        Some("pa") | None => ComponentRule::ParallelAnalysis,
        Some(s) if s.starts_with('v') => ComponentRule::Variance(s[1..].parse().unwrap()),
        Some(s) => ComponentRule::Fixed(s.parse().unwrap()),
    };
    let stat = if args.get(2).map(|s| s.as_str()) == Some("mean") {
        KnnStatistic::MeanDistance
    } else {
        KnnStatistic::KthDistance
    };
    let params = Params::default().components(rule).knn_statistic(stat);
    let what = args.get(3).cloned().unwrap_or("all".into());
    if what == "all" || what == "ad" {
        let mut rows = Vec::new();
        for f in nof1::eval::csv_files(Path::new("../shared/data/adbench-dev"))? {
            for seed in [1u64] {
                let q = nof1::eval::adbench_table(&f, &params, seed)?;
                println!(
                    "{:<16} n={:5} c={:3} auc={:.3} knn={:.3} res={:.3} p={:.3} fi={:.3} det={:.3}",
                    q.name,
                    q.n_reference,
                    q.n_components,
                    q.auroc,
                    q.auroc_knn,
                    q.auroc_residual,
                    q.auroc_p,
                    q.false_invisible,
                    q.detected
                );
                rows.push(q);
            }
        }
        let m = |f: &dyn Fn(&nof1::eval::RunQuality) -> f64| {
            rows.iter().map(f).sum::<f64>() / rows.len() as f64
        };
        println!(
            "MEAN auc={:.3} knn={:.3} res={:.3} p={:.3} fi={:.3} maxfi={:.3} det={:.3}",
            m(&|q| q.auroc),
            m(&|q| q.auroc_knn),
            m(&|q| q.auroc_residual),
            m(&|q| q.auroc_p),
            m(&|q| q.false_invisible),
            rows.iter().map(|q| q.false_invisible).fold(0.0, f64::max),
            m(&|q| q.detected)
        );
    }
    if what == "all" || what == "loso" {
        let panel = nof1::eval::read_panel(Path::new(
            "../shared/data/1000genomes-aisnp/seldin_128_dosage.csv",
        ))?;
        let rows = nof1::eval::loso(&panel, &params, 1)?;
        for q in &rows {
            println!(
                "{:<16} n={:5} c={:3} auc={:.3} knn={:.3} res={:.3} p={:.3} fi={:.3} det={:.3} flag={:.3}",
                q.name,
                q.n_reference,
                q.n_components,
                q.auroc,
                q.auroc_knn,
                q.auroc_residual,
                q.auroc_p,
                q.false_invisible,
                q.detected,
                q.flagged
            );
        }
        let m = |f: &dyn Fn(&nof1::eval::RunQuality) -> f64| {
            rows.iter().map(f).sum::<f64>() / rows.len() as f64
        };
        println!(
            "LOSO MEAN auc={:.3} knn={:.3} res={:.3} p={:.3} fi={:.3}",
            m(&|q| q.auroc),
            m(&|q| q.auroc_knn),
            m(&|q| q.auroc_residual),
            m(&|q| q.auroc_p),
            m(&|q| q.false_invisible)
        );
    }
    Ok(())
}
