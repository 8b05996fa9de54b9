//! Sticky bucketing: pinned vectors (so no SDK drifts) and statistical invariants.

use proptest::prelude::*;
use rampart_eval::bucket::{BUCKETS, bucket, inside, murmur3_x86_32, threshold};

#[test]
fn pinned_vectors_hold() {
    let text = include_str!("bucket_vectors.tsv");
    let mut n = 0;
    for (line_no, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        assert_eq!(fields.len(), 3, "line {}: {line:?}", line_no + 1);
        let expect: u32 = fields[2].parse().unwrap();
        assert_eq!(
            bucket(fields[0], fields[1].as_bytes()),
            expect,
            "line {}: salt {:?} key {:?}",
            line_no + 1,
            fields[0],
            fields[1]
        );
        n += 1;
    }
    assert!(n >= 70, "only {n} vectors");
}

/// `n` keys shaped like tenant ids.
fn keys(n: usize, prefix: &str) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// Whether `observed` of `n` trials is within `z` standard deviations of rate `p`.
fn within(observed: usize, n: usize, p: f64, z: f64) -> bool {
    let expected = n as f64 * p;
    let sigma = (n as f64 * p * (1.0 - p)).sqrt().max(1.0);
    (observed as f64 - expected).abs() <= z * sigma
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn monotonic_in_percent(salt in ".{0,24}", key in proptest::collection::vec(any::<u8>(), 0..40),
                            p in 0.0f64..=100.0, q in 0.0f64..=100.0) {
        let (lo, hi) = if p <= q { (p, q) } else { (q, p) };
        if inside(&salt, &key, lo) {
            prop_assert!(inside(&salt, &key, hi));
        }
        prop_assert!(bucket(&salt, &key) < BUCKETS);
    }

    #[test]
    fn split_input_hashes_like_contiguous(a in proptest::collection::vec(any::<u8>(), 0..20),
                                          b in proptest::collection::vec(any::<u8>(), 0..20),
                                          seed in any::<u32>()) {
        let whole: Vec<u8> = a.iter().chain(&b).copied().collect();
        prop_assert_eq!(murmur3_x86_32(&[&a, &b], seed), murmur3_x86_32(&[&whole], seed));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn uniform_within_tolerance(salt in "[a-z0-9-]{1,20}", p in 0.5f64..99.5) {
        let n = 20_000;
        let ks = keys(n, "tenant");
        let hits = ks.iter().filter(|k| inside(&salt, k.as_bytes(), p)).count();
        // 5 sigma over 16 cases: a false failure is vanishingly rare.
        prop_assert!(within(hits, n, p / 100.0, 5.0), "{hits} of {n} inside {p}%");

        // And across the whole range: ten equal slices of the buckets, chi-square with 9 d.f.
        let mut slices = [0usize; 10];
        for k in &ks {
            slices[(bucket(&salt, k.as_bytes()) / (BUCKETS / 10)) as usize] += 1;
        }
        let e = n as f64 / 10.0;
        let chi2: f64 = slices.iter().map(|&o| (o as f64 - e).powi(2) / e).sum();
        // The 0.9999 quantile of chi-square(9) is 33.7.
        prop_assert!(chi2 < 33.7, "chi2 {chi2} over slices {slices:?}");
    }

    #[test]
    fn independent_across_salts(a in "[a-z0-9-]{1,20}", b in "[a-z0-9-]{1,20}",
                                p in 10.0f64..90.0, q in 10.0f64..90.0) {
        prop_assume!(a != b);
        let n = 20_000;
        let ks = keys(n, "user");
        let both = ks.iter().filter(|k| inside(&a, k.as_bytes(), p) && inside(&b, k.as_bytes(), q)).count();
        // Independent rollouts overlap on p*q of keys, not on min(p, q) as a shared hash would.
        prop_assert!(within(both, n, p / 100.0 * q / 100.0, 5.0), "{both} of {n} inside both {p}% and {q}%");
    }
}

#[test]
fn granularity_is_a_ten_thousandth_of_a_percent() {
    assert_eq!(threshold(0.0001), 1);
    assert_eq!(threshold(0.0002), 2);
    let ks = keys(200_000, "k");
    let hits = ks
        .iter()
        .filter(|k| inside("fine", k.as_bytes(), 0.01))
        .count();
    assert!(within(hits, ks.len(), 0.0001, 5.0), "{hits} inside 0.01%");
}
