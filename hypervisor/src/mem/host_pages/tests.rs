//! W^X tests: every page of a layout gets the rights of its range, no entry is both writable and executable once sealed, and the audit counts what the entries say.

use super::*;
use proptest::prelude::*;

fn layout() -> Layout {
    Layout {
        text: 0x10_0000..0x14_0000,
        rodata: 0x14_0000..0x15_0000,
        guard: 0x15_0000,
        trampoline: Some(0x8000),
        jit: 0x15_1000..0x15_3000,
        jit_code: false,
    }
}

#[test]
fn the_jit_area_is_data_then_code_never_both() {
    let l = layout();
    assert_eq!(rights(0x15_1000, &l), Rights::Data);
    assert_eq!(rights(0x15_2000, &l), Rights::Data);
    let sealed = l.jit_sealed();
    assert_eq!(rights(0x15_1000, &sealed), Rights::Code);
    assert_eq!(rights(0x15_2000, &sealed), Rights::Code);
    assert_eq!(rights(0x15_3000, &sealed), Rights::Data, "past the area");
    let both = sealed.sealed();
    let a = audit(
        (0..SMALL_PAGES).map(|i| small_page(i, &both)),
        (1..2048).map(large_page),
    );
    assert_eq!((a.exec, a.writable_exec), (0x40 + 2, 0));
}

#[test]
fn each_range_gets_its_rights() {
    let l = layout();
    assert_eq!(rights(0x10_0000, &l), Rights::Code);
    assert_eq!(rights(0x13_f000, &l), Rights::Code);
    assert_eq!(rights(0x14_0000, &l), Rights::ReadOnly);
    assert_eq!(rights(0x15_0000, &l), Rights::None);
    assert_eq!(rights(0x15_1000, &l), Rights::Data);
    assert_eq!(rights(0x8000, &l), Rights::StartUp);
    assert_eq!(rights(0x8000, &l.sealed()), Rights::Data);
    assert_eq!(rights(0, &l), Rights::Data);
    // Entries: the address and the flags.
    let code = small_page(0x100, &l);
    assert_eq!(code & !0xfff & !(1 << 63), 0x10_0000);
    let f = PageTableFlags::from_bits_truncate(code);
    assert!(f.contains(PageTableFlags::PRESENT));
    assert!(!f.contains(PageTableFlags::WRITABLE));
    assert!(!f.contains(PageTableFlags::NO_EXECUTE));
    assert_eq!(small_page(0x150, &l), 0, "the guard page is unmapped");
    let big = PageTableFlags::from_bits_truncate(large_page(3));
    assert!(big.contains(PageTableFlags::HUGE_PAGE | PageTableFlags::NO_EXECUTE));
    assert_eq!(large_page(3) & 0x000f_ffff_ffe0_0000, 3 * LARGE_PAGE);
}

#[test]
fn the_audit_counts_writable_executable_pages() {
    let l = layout();
    let small = |l: &Layout| {
        (0..SMALL_PAGES)
            .map(move |i| small_page(i, l))
            .collect::<Vec<_>>()
    };
    let large: Vec<u64> = (1..2048).map(large_page).collect();
    let before = audit(small(&l), large.iter().copied());
    assert_eq!(before.writable_exec, 1, "the start-up page");
    assert_eq!(before.exec, 0x40 + 1);
    let after = audit(small(&l.sealed()), large.iter().copied());
    assert_eq!(after.writable_exec, 0);
    assert_eq!(after.exec, 0x40, "exactly the code pages");
    // Everything but code, read-only data and the guard page is writable.
    assert_eq!(after.writable, 2048 * 512 - 0x40 - 0x10 - 1);
    // An entry with no NX and RW is caught, whatever else it has.
    let mut a = Audit::default();
    a.add(0x20_0000 | 0x83, 512);
    assert_eq!(a.writable_exec, 512);
    a.add(0x40_0000 | 0x82, 512);
    assert_eq!(a.writable_exec, 512, "not present: not counted");
}

proptest! {
    #[test]
    fn sealed_layouts_never_map_a_page_writable_and_executable(
        text_start in 0u64..256,
        text_len in 1u64..128,
        ro_len in 0u64..64,
        guard in 0u64..512,
        tramp in 0u64..256,
        jit in 0u64..512,
        jit_len in 0u64..32,
        sealed_jit: bool,
    ) {
        let start = text_start * SMALL_PAGE;
        let text_end = start + text_len * SMALL_PAGE;
        let l = Layout {
            text: start..text_end,
            rodata: text_end..text_end + ro_len * SMALL_PAGE,
            guard: guard * SMALL_PAGE,
            trampoline: Some(tramp * SMALL_PAGE),
            jit: jit * SMALL_PAGE..(jit + jit_len) * SMALL_PAGE,
            jit_code: sealed_jit,
        };
        let sealed = l.sealed();
        let a = audit((0..SMALL_PAGES).map(|i| small_page(i, &sealed)), (1..2048).map(large_page));
        prop_assert_eq!(a.writable_exec, 0);
        // Before sealing, only the start-up page may be both.
        let b = audit((0..SMALL_PAGES).map(|i| small_page(i, &l)), (1..2048).map(large_page));
        prop_assert!(b.writable_exec <= 1);
    }
}
