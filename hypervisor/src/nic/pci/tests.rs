//! PCI enumeration, BAR sizing and enabling against a fake configuration space; the address parser by example and by property.

use super::*;
use crate::nic::fake::{FakeConfig, FakeFunction};
use proptest::prelude::*;

fn addr(bus: u8, dev: u8, func: u8) -> PciAddress {
    PciAddress::new(bus, dev, func).unwrap()
}

/// BAR0 of the 82540EM in Bochs: 32-bit memory at 0xc0000000, 128 KiB.
fn e1000_function() -> FakeFunction {
    FakeFunction::new(0x8086, 0x100E, 0).bar(0, 0xc000_0000, !(128 * 1024 - 1))
}

fn machine() -> FakeConfig {
    let mut cs = FakeConfig::default();
    cs.functions
        .insert(addr(0, 0, 0), FakeFunction::new(0x8086, 0x1237, 0));
    // A multi-function device (header type bit 7) with the NIC as function 3.
    cs.functions
        .insert(addr(0, 1, 0), FakeFunction::new(0x8086, 0x7000, 0x80));
    cs.functions.insert(addr(0, 1, 3), e1000_function());
    // A single-function device whose function 1 would alias: not scanned.
    cs.functions
        .insert(addr(0, 4, 0), FakeFunction::new(0x1234, 0x1111, 0));
    cs.functions.insert(addr(0, 4, 1), e1000_function());
    cs.functions.insert(addr(3, 2, 0), e1000_function());
    cs
}

#[test]
fn enumeration_sees_functions_of_multi_function_devices_only() {
    let cs = machine();
    let mut seen = Vec::new();
    for_each_function(&cs, |at, id| {
        seen.push((at.to_string(), id.device));
        ControlFlow::Continue(())
    });
    assert_eq!(
        seen,
        vec![
            ("00:00.0".to_string(), 0x1237),
            ("00:01.0".to_string(), 0x7000),
            ("00:01.3".to_string(), 0x100E),
            ("00:04.0".to_string(), 0x1111),
            ("03:02.0".to_string(), 0x100E),
        ]
    );
    assert_eq!(find(&cs, ID_82540EM), Some(addr(0, 1, 3)));
    let other = PciId {
        vendor: VENDOR_INTEL,
        device: 0x100F,
    };
    assert_eq!(find(&cs, other), None);
    assert_eq!(find(&FakeConfig::default(), ID_82540EM), None);
}

#[test]
fn a_32_bit_bar_is_sized_with_decoding_off_and_restored() {
    let mut cs = machine();
    let at = addr(0, 1, 3);
    cs.functions.get_mut(&at).unwrap().header[1] = COMMAND_MEMORY | (0x0290 << 16);
    let bar = memory_bar0(&mut cs, at).unwrap();
    assert_eq!(
        bar,
        MemoryBar {
            base: 0xc000_0000,
            size: 0x2_0000,
            is_64: false,
            prefetchable: false
        }
    );
    let probes: Vec<_> = cs
        .writes
        .iter()
        .filter(|w| w.1 == CFG_BAR0 && w.2 == BAR_SIZE_PROBE)
        .collect();
    assert_eq!(probes.len(), 1);
    assert!(!probes[0].3, "memory decoding was on during the probe");
    let f = &cs.functions[&at];
    assert_eq!(f.header[4], 0xc000_0000);
    assert_eq!(f.header[1], COMMAND_MEMORY, "command restored");
    // Status bits (write-one-to-clear) were never written as ones.
    assert!(
        cs.writes
            .iter()
            .filter(|w| w.1 == CFG_COMMAND)
            .all(|w| w.2 >> 16 == 0)
    );
    assert!(bar.check_below(at, 1 << 32).is_ok());
    assert!(bar.check_below(at, 0xc001_0000).is_err());
}

#[test]
fn a_64_bit_bar_above_4_gib_is_refused_by_the_check() {
    let mut cs = FakeConfig::default();
    let at = addr(0, 2, 0);
    let f = FakeFunction::new(0x8086, 0x100E, 0)
        .bar(
            0,
            BAR_TYPE_64 | BAR_PREFETCHABLE,
            !(1024 * 1024 - 1) & BAR_MEM_ADDR_MASK,
        )
        .bar(1, 0x8, u32::MAX);
    cs.functions.insert(at, f);
    let bar = memory_bar0(&mut cs, at).unwrap();
    assert_eq!(
        bar,
        MemoryBar {
            base: 0x8_0000_0000,
            size: 0x10_0000,
            is_64: true,
            prefetchable: true
        }
    );
    let e = bar.check_below(at, 1 << 32).unwrap_err();
    assert!(matches!(e, PciError::BarAboveLimit { .. }));
    assert!(e.to_string().contains("00:02.0 BAR0"), "{e}");
    // The high half was restored after its probe.
    assert_eq!(cs.functions[&at].header[5], 0x8);
}

#[test]
fn unusable_bars_are_named() {
    let at = addr(0, 2, 0);
    let cases = [
        (
            FakeFunction::new(0x8086, 0x100E, 0).bar(0, 0xc001, !0x3f),
            PciError::BarIsIo { at },
        ),
        (
            FakeFunction::new(0x8086, 0x100E, 0).bar(0, 0xc000_0002, !0xfff),
            PciError::BarReservedType { at, ty: 1 },
        ),
        (
            FakeFunction::new(0x8086, 0x100E, 0),
            PciError::BarNotImplemented { at },
        ),
        (
            FakeFunction::new(0x8086, 0x100E, 0).bar(0, 0, !0xfff),
            PciError::BarUnassigned { at },
        ),
    ];
    for (f, want) in cases {
        let mut cs = FakeConfig::default();
        cs.functions.insert(at, f);
        let e = memory_bar0(&mut cs, at).unwrap_err();
        assert_eq!(e, want);
        assert!(e.to_string().starts_with("00:02.0"), "{e}");
    }
}

#[test]
fn enabling_sets_memory_bus_master_and_intx_disable() {
    let mut cs = machine();
    let at = addr(3, 2, 0);
    cs.functions.get_mut(&at).unwrap().header[1] = 1 | (0xffff << 16);
    enable_memory_and_dma(&mut cs, at);
    let (_, _, value, _) = *cs.writes.last().unwrap();
    assert_eq!(
        value,
        1 | COMMAND_MEMORY | COMMAND_BUS_MASTER | COMMAND_INTX_DISABLE
    );
}

#[test]
fn addresses_parse_and_print() {
    let a: PciAddress = "00:02.0".parse().unwrap();
    assert_eq!(a, addr(0, 2, 0));
    assert_eq!(a.to_string(), "00:02.0");
    assert_eq!((a.bus(), a.dev(), a.func()), (0, 2, 0));
    assert_eq!("ff:1f.7".parse::<PciAddress>().unwrap(), addr(255, 31, 7));
    assert_eq!(
        "0:2.0".parse::<PciAddress>().unwrap().to_string(),
        "00:02.0"
    );
    assert_eq!("0A:1B.3".parse::<PciAddress>().unwrap(), addr(10, 27, 3));
    for (s, e) in [
        ("00:20.0", PciAddressError::Device(0x20)),
        ("00:02.8", PciAddressError::Function(8)),
        ("", PciAddressError::Syntax),
        ("00:02", PciAddressError::Syntax),
        ("000:02.0", PciAddressError::Syntax),
        ("00:02.00", PciAddressError::Syntax),
        ("0x0:02.0", PciAddressError::Syntax),
        ("+0:02.0", PciAddressError::Syntax),
        ("00:02.a", PciAddressError::Syntax),
        ("auto", PciAddressError::Syntax),
    ] {
        assert_eq!(s.parse::<PciAddress>(), Err(e), "{s}");
        assert!(!e.to_string().is_empty());
    }
    assert_eq!(PciAddress::new(0, 32, 0), None);
    assert_eq!(PciAddress::new(0, 0, 8), None);
}

proptest::proptest! {
    #[test]
    fn parsing_never_panics(s in "\\PC{0,12}") {
        let _ = s.parse::<PciAddress>();
    }

    #[test]
    fn parsing_near_misses_never_panics(s in "[0-9a-fA-F:.x+-]{0,10}") {
        if let Ok(a) = s.parse::<PciAddress>() {
            proptest::prop_assert_eq!(a.to_string().parse::<PciAddress>(), Ok(a));
        }
    }

    #[test]
    fn addresses_round_trip(bus: u8, dev in 0u8..32, func in 0u8..8) {
        let a = addr(bus, dev, func);
        proptest::prop_assert_eq!(a.to_string().parse::<PciAddress>(), Ok(a));
    }
}

fn at(dev: u8) -> PciAddress {
    PciAddress::new(0, dev, 0).unwrap()
}

#[test]
fn named_addresses_are_kept_and_auto_takes_the_rest_in_bus_order() {
    let found = [at(2), at(3), at(4)];
    let mut out = [None; 3];
    resolve(
        &found,
        &[Wanted::Auto, Wanted::At(at(2)), Wanted::Auto],
        &mut out,
    )
    .unwrap();
    assert_eq!(out, [Some(at(3)), Some(at(2)), Some(at(4))]);
}

#[test]
fn a_missing_device_or_too_many_autos_name_the_nic() {
    let found = [at(2)];
    let mut out = [None; 2];
    assert_eq!(
        resolve(&found, &[Wanted::Auto, Wanted::At(at(5))], &mut out),
        Err((1, ResolveError::NotThere(at(5))))
    );
    assert_eq!(
        resolve(&found, &[Wanted::Auto, Wanted::Auto], &mut out),
        Err((1, ResolveError::NoneLeft { found: 1 }))
    );
    assert_eq!(
        resolve(&[], &[Wanted::Auto], &mut out)
            .unwrap_err()
            .1
            .to_string(),
        "`auto` found no free supported NIC (0 found, all taken)"
    );
}

proptest! {
    /// Whatever is found and wanted: no device is given twice, every
    /// device given was found, and a named address gets exactly that.
    #[test]
    fn resolution_never_gives_a_device_twice(
        found in proptest::collection::btree_set(0u8..8, 0..6),
        wanted in proptest::collection::vec(proptest::option::of(0u8..8), 0..5),
    ) {
        let found: Vec<PciAddress> = found.into_iter().map(at).collect();
        let wanted: Vec<Wanted> = wanted
            .into_iter()
            .map(|w| w.map_or(Wanted::Auto, |d| Wanted::At(at(d))))
            .collect();
        let mut out = vec![None; wanted.len()];
        if resolve(&found, &wanted, &mut out).is_ok() {
            let given: Vec<PciAddress> = out.iter().map(|o| o.unwrap()).collect();
            for (i, g) in given.iter().enumerate() {
                prop_assert!(found.contains(g));
                if let Wanted::At(a) = wanted[i] {
                    prop_assert_eq!(*g, a);
                }
            }
            let mut sorted = given.clone();
            sorted.sort();
            sorted.dedup();
            // Two NICs naming the same address would share it: the manifest
            // refuses duplicate addresses, so only then may a device repeat.
            let dup_named = wanted.iter().enumerate().any(|(i, w)| {
                matches!(w, Wanted::At(_)) && wanted[..i].contains(w)
            });
            prop_assert!(dup_named || sorted.len() == given.len());
        }
    }
}
