//! Per-patient scores: kNN distance, residual, density, support, contributions.
//!
//! Scores are computed in the embedding of a [`crate::project::Projector`]
//! against an index of reference embeddings. Calibration (cross-fitted
//! reference members) and assessment (new patients) share these functions so
//! that both sides of a conformal comparison are computed the same way.

use serde::{Deserialize, Serialize};

use crate::index::Neighbour;

/// Which kNN distance statistic scores the kNN channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KnnStatistic {
    /// Distance to the k-th nearest reference member. With it, "fewer than k
    /// members within the calibrated radius" is exactly the kNN channel's alarm.
    KthDistance,
    /// Mean distance to the k nearest reference members.
    MeanDistance,
}

/// The kNN statistic of sorted neighbours (`NaN` when there are none).
pub fn knn_statistic(neighbours: &[Neighbour], statistic: KnnStatistic) -> f64 {
    if neighbours.is_empty() {
        return f64::NAN;
    }
    match statistic {
        KnnStatistic::KthDistance => neighbours[neighbours.len() - 1].distance as f64,
        KnnStatistic::MeanDistance => {
            neighbours.iter().map(|n| n.distance as f64).sum::<f64>() / neighbours.len() as f64
        }
    }
}

/// Floor on reachability distances, so duplicated members do not give infinite densities.
const MIN_REACH: f64 = 1e-9;

/// Local reachability density of a point with neighbours `neighbours`, given the
/// k-distance of every reference member: `1 / mean_o max(kdist(o), d(x, o))`.
pub fn local_reachability(neighbours: &[Neighbour], ref_kdist: &[f32]) -> f64 {
    if neighbours.is_empty() {
        return f64::NAN;
    }
    let mean_reach = neighbours
        .iter()
        .map(|n| (ref_kdist[n.index as usize] as f64).max(n.distance as f64))
        .sum::<f64>()
        / neighbours.len() as f64;
    1.0 / mean_reach.max(MIN_REACH)
}

/// LOF-style relative density: `lrd(x) / mean_o lrd(o)` (= 1 / LOF). About 1
/// for a typical member, below 1 where the patient is sparser than its neighbours.
pub fn relative_density(neighbours: &[Neighbour], ref_kdist: &[f32], ref_lrd: &[f32]) -> f64 {
    if neighbours.is_empty() {
        return f64::NAN;
    }
    let lrd = local_reachability(neighbours, ref_kdist);
    let mean_lrd = neighbours
        .iter()
        .map(|n| ref_lrd[n.index as usize] as f64)
        .sum::<f64>()
        / neighbours.len() as f64;
    if mean_lrd > 0.0 && mean_lrd.is_finite() {
        lrd / mean_lrd
    } else {
        f64::NAN
    }
}

/// Per-feature shares of the residual and of the squared distance to a neighbour.
///
/// `z` is the standardised row (`NaN` = missing), `y` its embedding (`c`
/// components), `y_nn` the neighbour's embedding in the search space (the
/// leading `d ≤ c` components) and `loadings` the row-major `p × c` loadings.
/// Returns `(residual_j, distance_sq_j)` per feature: `residual_j = e_j²` with
/// `e = z − W y` (0 for a missing feature) and `distance_sq_j = (W δ)_j²` with
/// `δ = y − y_nn`; over features they sum to the residual (before missing-value
/// rescaling) and to `‖δ‖²`.
pub fn contributions(z: &[f64], y: &[f64], y_nn: &[f32], loadings: &[f64]) -> Vec<(f64, f64)> {
    let c = y.len();
    let delta: Vec<f64> = (0..c)
        .map(|k| y_nn.get(k).map_or(0.0, |b| y[k] - *b as f64))
        .collect();
    z.iter()
        .enumerate()
        .map(|(j, &zj)| {
            let w = &loadings[j * c..(j + 1) * c];
            let fit: f64 = w.iter().zip(y).map(|(a, b)| a * b).sum();
            let wd: f64 = w.iter().zip(&delta).map(|(a, b)| a * b).sum();
            let res = if zj.is_nan() {
                0.0
            } else {
                (zj - fit) * (zj - fit)
            };
            (res, wd * wd)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nb(index: u32, distance: f32) -> Neighbour {
        Neighbour { index, distance }
    }

    #[test]
    fn statistics() {
        let n = [nb(0, 1.0), nb(1, 2.0), nb(2, 6.0)];
        assert_eq!(knn_statistic(&n, KnnStatistic::KthDistance), 6.0);
        assert_eq!(knn_statistic(&n, KnnStatistic::MeanDistance), 3.0);
        assert!(knn_statistic(&[], KnnStatistic::MeanDistance).is_nan());
    }

    #[test]
    fn density_is_one_inside_a_uniform_neighbourhood() {
        let kdist = [1.0f32; 3];
        let lrd = [1.0f32; 3];
        let n = [nb(0, 0.5), nb(1, 0.5), nb(2, 0.5)];
        assert!((relative_density(&n, &kdist, &lrd) - 1.0).abs() < 1e-12);
        let far = [nb(0, 4.0), nb(1, 4.0), nb(2, 4.0)];
        assert!(relative_density(&far, &kdist, &lrd) < 0.3);
    }

    #[test]
    fn distance_contributions_sum_to_squared_distance() {
        // Orthonormal loadings p = 3, c = 2.
        let w = [1.0, 0.0, 0.0, 1.0, 0.0, 0.0];
        let z = [1.0, 2.0, 3.0];
        let y = [1.0, 2.0];
        let y_nn = [0.0f32, 0.0];
        let parts = contributions(&z, &y, &y_nn, &w);
        let res: f64 = parts.iter().map(|p| p.0).sum();
        let dist: f64 = parts.iter().map(|p| p.1).sum();
        assert!((res - 9.0).abs() < 1e-12);
        assert!((dist - 5.0).abs() < 1e-12);
    }
}
