//! Longest-prefix lookups against a 100 000-row deck: `scripts/bench-rating` (criterion prints
//! the throughput in lookups per second as `thrpt`, elements being lookups).

use std::fmt::Write;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use opentact_rating::Deck;

/// A repeatable pseudo-random sequence (xorshift64), so every run rates the same numbers.
struct Numbers(u64);

impl Numbers {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// 100 000 distinct prefixes of 1 to 8 digits, spread over the country codes a carrier's deck
/// has, like a real international deck (NANP area codes and exchanges, mobile ranges…).
fn deck_csv(rows: usize) -> String {
    let mut random = Numbers(0x5eed);
    let mut seen = std::collections::HashSet::new();
    let mut csv = String::from("prefix,per_minute,per_sms,increment\n");
    while seen.len() < rows {
        let digits = 1 + random.next() % 8;
        let prefix = random.next() % 10u64.pow(u32::try_from(digits).unwrap_or(8));
        let prefix = format!("{prefix:0width$}", width = usize::try_from(digits).unwrap_or(8));
        if prefix.starts_with('0') || !seen.insert(prefix.clone()) {
            continue;
        }
        let _ = writeln!(csv, "{prefix},0.{:04},0.0040,60/6", random.next() % 10_000);
    }
    csv
}

fn lookups(c: &mut Criterion) {
    let deck = Deck::from_csv(&deck_csv(100_000)).expect("the generated deck loads");
    assert_eq!(deck.len(), 100_000);
    let mut random = Numbers(0xca11);
    let numbers: Vec<String> =
        (0..10_000).map(|_| format!("{}", 10_000_000_000 + random.next() % 90_000_000_000)).collect();
    let rated = numbers.iter().filter(|number| deck.lookup(number).is_some()).count();
    println!("deck: {} rows; {rated} of {} sample numbers have a rate", deck.len(), numbers.len());
    let mut group = c.benchmark_group("rating");
    group.throughput(Throughput::Elements(numbers.len() as u64));
    group.bench_function("longest_prefix_lookup_100k_deck", |b| {
        b.iter(|| {
            let mut found = 0usize;
            for number in &numbers {
                found += usize::from(deck.lookup(black_box(number)).is_some());
            }
            found
        });
    });
    group.finish();
}

criterion_group!(benches, lookups);
criterion_main!(benches);
