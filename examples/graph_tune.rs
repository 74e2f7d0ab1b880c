//! Builds nof1's own search graph over a fitted model's members with the
//! parameters given, and prints its build time, search time and recall@k on
//! the seeded probes fit uses (docs/performance.md, "own graph").
//!
//! ```sh
//! cargo run --release --example graph_tune -- MODEL.nof1 [M] [EF_CONSTRUCTION] [EF_SEARCH...]
//! ```

use std::time::Instant;

use nof1::index::{ExactIndex, HnswIndex, HnswParams, check};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = args
        .first()
        .ok_or("usage: graph_tune MODEL [M] [EF_C] [EF...]")?;
    let num = |i: usize, d: usize| -> Result<usize, Box<dyn std::error::Error>> {
        Ok(args.get(i).map(|s| s.parse()).transpose()?.unwrap_or(d))
    };
    let model = nof1::Model::load(std::path::Path::new(path))?;
    let data = model.data();
    let c = data.components.n_components;
    let dims = data.components.knn_components;
    let n = data.reference.len();
    let all = &data.reference.embeddings;
    let points: Vec<f32> = (0..n)
        .flat_map(|i| all[i * c..i * c + dims].iter().copied())
        .collect();
    let params = HnswParams {
        max_connections: num(1, 16)?,
        ef_construction: num(2, 100)?,
        ef_search: 64,
        max_layers: 16,
    };
    let t = Instant::now();
    let mut graph = HnswIndex::build_own(&points, dims, params, 1, None, |_| {});
    let build = t.elapsed().as_secs_f64();
    let exact = ExactIndex::new(points, dims);
    let k = 10;
    let (inside, outside) = check::probes(&exact, k, 2000, 1);
    let truth_in = check::truths(&exact, &inside, k);
    let truth_out = check::truths(&exact, &outside, k);
    println!(
        "n {n} dims {dims} M {} ef_construction {}: build {build:.2} s",
        params.max_connections, params.ef_construction
    );
    let efs: Vec<usize> = if args.len() > 3 {
        args[3..]
            .iter()
            .map(|s| s.parse())
            .collect::<Result<_, _>>()?
    } else {
        vec![16, 32, 48, 64, 96]
    };
    for ef in efs {
        graph = graph.with_ef_search(ef);
        let t = Instant::now();
        let r_in = check::recall_given(&truth_in, &graph, &inside, k);
        let r_out = check::recall_given(&truth_out, &graph, &outside, k);
        let secs = t.elapsed().as_secs_f64();
        println!(
            "  ef_search {ef:>4}: recall@{k} in {r_in:.4} out {r_out:.4}; {:.1} µs per search (wall, all threads)",
            secs * 1e6 / (2 * truth_in.len()) as f64
        );
    }
    Ok(())
}
