//! Memory accounting over a run: totals of the per-VM figures the
//! hypervisor reports (shared memory counted once per image), the largest
//! fleet of each image that would fit in the memory left for VMs, and byte
//! counts written for people.

use crate::outcome::MemoryUse;
use serde::Serialize;
use std::collections::BTreeMap;

/// Memory totals over the VMs that ended (those the hypervisor accounted).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// VMs counted.
    pub vms: u32,
    /// Private guest memory, summed.
    pub private: u64,
    /// Shared guest memory, counted once per image (the most any VM of
    /// that image reported).
    pub shared: u64,
    /// Hypervisor overhead, summed.
    pub overhead: u64,
}

/// The largest `shared` reported by a VM of each image.
fn shared_by_image<'a>(vms: &[(&'a str, MemoryUse)]) -> BTreeMap<&'a str, u64> {
    let mut shared: BTreeMap<&str, u64> = BTreeMap::new();
    for (image, m) in vms {
        let s = shared.entry(image).or_default();
        *s = (*s).max(m.shared);
    }
    shared
}

/// Totals over `vms` (image name and memory use of each VM that ended).
pub fn totals(vms: &[(&str, MemoryUse)]) -> Totals {
    Totals {
        vms: vms.len() as u32,
        private: vms.iter().map(|(_, m)| m.private).sum(),
        shared: shared_by_image(vms).values().sum(),
        overhead: vms.iter().map(|(_, m)| m.overhead).sum(),
    }
}

/// For each image, how many VMs of it fit in `free` bytes: the image's
/// shared memory once, then private memory and overhead per VM (averaged
/// over its VMs in `vms`). Images whose VMs reported no per-VM cost are
/// left out.
pub fn largest_fleet(free: u64, vms: &[(&str, MemoryUse)]) -> BTreeMap<String, u64> {
    let mut per_image: BTreeMap<&str, (u128, u128)> = BTreeMap::new();
    for (image, m) in vms {
        let (count, cost) = per_image.entry(image).or_default();
        *count += 1;
        *cost += u128::from(m.private) + u128::from(m.overhead);
    }
    let shared = shared_by_image(vms);
    per_image
        .into_iter()
        .filter(|(_, (_, cost))| *cost > 0)
        .map(|(image, (count, cost))| {
            let room = u128::from(free.saturating_sub(shared[image]));
            let fits = room * count / cost;
            (image.to_string(), u64::try_from(fits).unwrap_or(u64::MAX))
        })
        .collect()
}

/// `bytes` in B, KiB, MiB or GiB, with one decimal unless it is whole.
pub fn human(bytes: u64) -> String {
    const UNITS: [(&str, u32); 3] = [("GiB", 30), ("MiB", 20), ("KiB", 10)];
    for (name, shift) in UNITS {
        let unit = 1u64 << shift;
        if bytes >= unit {
            if bytes.is_multiple_of(unit) {
                return format!("{} {name}", bytes >> shift);
            }
            let tenths = (u128::from(bytes) * 10 + u128::from(unit / 2)) / u128::from(unit);
            return format!("{}.{} {name}", tenths / 10, tenths % 10);
        }
    }
    format!("{bytes} B")
}

/// The summary line, e.g. `memory: private 15.1 MiB, shared 24 KiB,
/// overhead 1.3 MiB over 64 VMs; largest hello fleet that fits in 254 MiB:
/// 1020`. `None` if no VM was accounted.
pub fn summary(
    totals: &Totals,
    free: Option<u64>,
    fleets: &BTreeMap<String, u64>,
) -> Option<String> {
    if totals.vms == 0 {
        return None;
    }
    let mut line = format!(
        "memory: private {}, shared {}, overhead {} over {} VM{}",
        human(totals.private),
        human(totals.shared),
        human(totals.overhead),
        totals.vms,
        if totals.vms == 1 { "" } else { "s" }
    );
    if let Some(free) = free {
        let mut each = fleets.iter();
        match (each.next(), each.next()) {
            (None, _) => {}
            (Some((image, n)), None) => {
                line.push_str(&format!(
                    "; largest {image} fleet that fits in {}: {n}",
                    human(free)
                ));
            }
            (Some(_), Some(_)) => {
                let each: Vec<String> = fleets.iter().map(|(i, n)| format!("{i} {n}")).collect();
                line.push_str(&format!(
                    "; largest fleets that fit in {}: {}",
                    human(free),
                    each.join(", ")
                ));
            }
        }
    }
    Some(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(private: u64, shared: u64, overhead: u64) -> MemoryUse {
        MemoryUse {
            private,
            shared,
            overhead,
        }
    }

    #[test]
    fn shared_memory_counts_once_per_image() {
        let vms = [
            ("hello", m(100, 20, 10)),
            ("hello", m(100, 24, 10)),
            ("spin", m(50, 8, 5)),
        ];
        assert_eq!(
            totals(&vms),
            Totals {
                vms: 3,
                private: 250,
                shared: 32,
                overhead: 25
            }
        );
        assert_eq!(totals(&[]), Totals::default());
    }

    #[test]
    fn largest_fleet_is_free_minus_shared_over_the_average_cost() {
        // hello: (1000 - 24) / ((110 + 130) / 2 = 120) = 8.13 -> 8
        // spin: (1000 - 8) / 55 = 18.04 -> 18
        let vms = [
            ("hello", m(100, 20, 10)),
            ("hello", m(120, 24, 10)),
            ("spin", m(50, 8, 5)),
        ];
        let fleets = largest_fleet(1000, &vms);
        assert_eq!(
            fleets,
            BTreeMap::from([("hello".to_string(), 8), ("spin".to_string(), 18)])
        );
        // Exact division: (1000 - 100) / 300 = 3.
        assert_eq!(largest_fleet(1000, &[("x", m(200, 100, 100))])["x"], 3);
        // Shared alone does not fit.
        assert_eq!(largest_fleet(10, &[("x", m(1, 100, 1))])["x"], 0);
        // Nothing known per VM: left out.
        assert!(largest_fleet(10, &[("x", m(0, 4, 0))]).is_empty());
        // Large numbers do not overflow.
        let big = largest_fleet(u64::MAX, &[("x", m(1, 0, 0)), ("x", m(1, 0, 0))]);
        assert_eq!(big["x"], u64::MAX);
    }

    #[test]
    fn the_fleet_from_the_issue_example() {
        // 254 MiB free, 24 KiB shared, 256 KiB private + 16 KiB overhead each.
        let vms = vec![("hello", m(256 << 10, 24 << 10, 16 << 10)); 64];
        let fleets = largest_fleet(254 << 20, &vms);
        assert_eq!(fleets["hello"], ((254u64 << 20) - (24 << 10)) / (272 << 10));
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(human(0), "0 B");
        assert_eq!(human(1023), "1023 B");
        assert_eq!(human(1024), "1 KiB");
        assert_eq!(human(24 << 10), "24 KiB");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human((15 << 20) + (100 << 10)), "15.1 MiB");
        assert_eq!(human(254 << 20), "254 MiB");
        assert_eq!(human(3 << 30), "3 GiB");
        assert_eq!(human((1 << 20) - 1), "1024.0 KiB");
    }

    #[test]
    fn summary_lines() {
        let t = Totals {
            vms: 64,
            private: (15 << 20) + (100 << 10),
            shared: 24 << 10,
            overhead: (13 << 20) / 10,
        };
        let one = BTreeMap::from([("hello".to_string(), 1020)]);
        assert_eq!(
            summary(&t, Some(254 << 20), &one).unwrap(),
            "memory: private 15.1 MiB, shared 24 KiB, overhead 1.3 MiB over 64 VMs; largest hello fleet that fits in 254 MiB: 1020"
        );
        let two = BTreeMap::from([("hello".to_string(), 1020), ("spin".to_string(), 7)]);
        assert!(
            summary(&t, Some(1 << 20), &two)
                .unwrap()
                .ends_with("; largest fleets that fit in 1 MiB: hello 1020, spin 7")
        );
        assert!(summary(&t, None, &one).unwrap().ends_with("over 64 VMs"));
        let single = Totals { vms: 1, ..t };
        assert!(summary(&single, None, &one).unwrap().ends_with("over 1 VM"));
        assert_eq!(summary(&Totals::default(), Some(1), &one), None);
    }
}
