//! Synthetic identifiers as injective functions of a seed: NHS numbers, NOMIS numbers,
//! CRNs and ledger person ids. Each says the range of seeds over which no two seeds give
//! the same value, and panics beyond it rather than wrap round and repeat a number (a
//! generator that once wrapped handed two test people the same NHS number).

use throughcare_events::{nhs_check_digit, PersonId};
use ulid::Ulid;

/// Seeds `0..NHS_SEEDS` give distinct NHS numbers.
pub const NHS_SEEDS: u64 = 500_000;
/// Seeds `0..NOMIS_SEEDS` give distinct NOMIS numbers (26 * 676 * 10 000).
pub const NOMIS_SEEDS: u64 = 26 * 676 * 10_000;
/// Seeds `0..CRN_SEEDS` give distinct CRNs (26 letters * a million).
pub const CRN_SEEDS: u64 = 26 * 1_000_000;

/// The millisecond part of every synthetic person id (a fixed day in 2026), so ids sort
/// by `series` then by seed and never collide with ids the ledger mints from its clock
/// in a test run today.
const PERSON_EPOCH_MS: u64 = 1_790_000_000_000;

/// The synthetic NHS number of `seed`: ten digits in the 999 range (never issued to a
/// patient) whose last digit is the Modulus 11 check digit
/// ([`throughcare_events::nhs_check_digit`]).
///
/// Seed `n` uses the nine-digit stem 999 000 000 + 2n, or the stem after it when the
/// first has no check digit (remainder 10). The two stems differ only in their last digit,
/// which has weight 2, so their weighted sums differ by 2 and at most one of them lacks a
/// check digit; no other seed uses either stem. So the function is injective over
/// `0..NHS_SEEDS`.
///
/// # Panics
/// When `seed >= NHS_SEEDS`.
pub fn nhs_number(seed: u64) -> String {
    assert!(
        seed < NHS_SEEDS,
        "synthetic NHS numbers run out at {NHS_SEEDS} seeds (asked for {seed})"
    );
    let first = 999_000_000 + 2 * seed;
    for stem in [first, first + 1] {
        let text = format!("{stem:09}");
        let digits: Vec<u8> = text.bytes().map(|b| b - b'0').collect();
        if let Some(check) = nhs_check_digit(&digits) {
            return format!("{text}{check}");
        }
    }
    unreachable!("of two stems differing only in the last digit, one has a check digit")
}

/// Ten digits shaped like [`nhs_number`] of `seed` but with the wrong check digit, for
/// tests of refusal. A valid number's check digit is unique, so any other last digit fails.
pub fn invalid_nhs_number(seed: u64) -> String {
    let good = nhs_number(seed);
    let last = good.as_bytes()[9] - b'0';
    format!("{}{}", &good[..9], (last + 1) % 10)
}

fn letter(k: u64) -> char {
    char::from(b'A' + (k % 26) as u8)
}

/// The synthetic NOMIS prison number of `seed`, shaped `A1234BC`: the four digits are
/// `seed % 10 000` and the three letters spell `seed / 10 000` in base 26, so the function
/// is injective over `0..NOMIS_SEEDS`.
///
/// # Panics
/// When `seed >= NOMIS_SEEDS`.
pub fn nomis(seed: u64) -> String {
    assert!(
        seed < NOMIS_SEEDS,
        "synthetic NOMIS numbers run out at {NOMIS_SEEDS} seeds (asked for {seed})"
    );
    let high = seed / 10_000;
    format!(
        "{}{:04}{}{}",
        letter(high / 676),
        seed % 10_000,
        letter(high / 26),
        letter(high)
    )
}

/// The synthetic probation case reference (CRN) of `seed`, shaped `X123456`: a letter for
/// `seed / 1 000 000` and six digits for the rest, injective over `0..CRN_SEEDS`.
///
/// # Panics
/// When `seed >= CRN_SEEDS`.
pub fn crn(seed: u64) -> String {
    assert!(
        seed < CRN_SEEDS,
        "synthetic CRNs run out at {CRN_SEEDS} seeds (asked for {seed})"
    );
    format!("{}{:06}", letter(seed / 1_000_000), seed % 1_000_000)
}

/// The ledger person id of `seed` in `series` (series keep runs or test groups apart):
/// a ULID whose time part is a fixed instant plus `series` milliseconds and whose random
/// part is the seed, so distinct `(series, seed)` pairs give distinct ids.
pub fn person_id(series: u16, seed: u64) -> PersonId {
    PersonId(Ulid::from_parts(
        PERSON_EPOCH_MS + u64::from(series),
        u128::from(seed),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use throughcare_events::{Crn, NhsNumber, Nomis};

    /// The whole documented range: every number passes the events crate's own validation
    /// (999 range, Modulus 11) and no two seeds share one.
    #[test]
    fn nhs_numbers_are_valid_and_distinct_over_the_whole_range() {
        let mut seen = HashSet::with_capacity(NHS_SEEDS as usize);
        for seed in 0..NHS_SEEDS {
            let n = nhs_number(seed);
            assert!(n.starts_with("999"), "{n} is outside the 999 test range");
            assert!(
                NhsNumber::parse(&n).is_ok(),
                "seed {seed}: {n} fails Modulus 11"
            );
            assert!(seen.insert(n.clone()), "seed {seed} repeats {n}");
        }
    }

    #[test]
    #[should_panic(expected = "run out")]
    fn nhs_numbers_refuse_a_seed_past_the_range() {
        nhs_number(NHS_SEEDS);
    }

    #[test]
    fn invalid_nhs_numbers_fail_the_check() {
        for seed in (0..NHS_SEEDS).step_by(997) {
            let bad = invalid_nhs_number(seed);
            assert_eq!(bad.len(), 10);
            assert!(NhsNumber::parse(&bad).is_err(), "{bad} passes");
        }
    }

    #[test]
    fn nomis_numbers_are_valid_and_distinct() {
        // Every low seed, then strides across the range and its last seed.
        let seeds: std::collections::BTreeSet<u64> = (0..100_000)
            .chain((0..NOMIS_SEEDS).step_by(9_973))
            .chain([NOMIS_SEEDS - 1])
            .collect();
        let mut seen = HashSet::new();
        for seed in seeds {
            let n = nomis(seed);
            assert!(Nomis::parse(&n).is_ok(), "{n}");
            assert!(seen.insert(n.clone()), "seed {seed} repeats {n}");
        }
        assert_eq!(nomis(0), "A0000AA");
    }

    #[test]
    fn crns_are_valid_and_distinct() {
        let mut seen = HashSet::new();
        for seed in (0..CRN_SEEDS).step_by(1_009).chain([CRN_SEEDS - 1]) {
            let c = crn(seed);
            assert!(Crn::parse(&c).is_ok(), "{c}");
            assert!(seen.insert(c.clone()), "seed {seed} repeats {c}");
        }
    }

    #[test]
    fn person_ids_are_distinct_per_series_and_seed() {
        let mut seen = HashSet::new();
        for series in 0..4 {
            for seed in 0..1_000 {
                assert!(seen.insert(person_id(series, seed)));
            }
        }
        assert_eq!(person_id(2, 9), person_id(2, 9));
    }
}
